//! Comparing two training states coordinate by coordinate, leaving out the coordinates whose
//! gradient vanishes in exact arithmetic: the key third of each attention `qkv.bias` (softmax
//! is invariant to a shift of every key by the same vector) and the final LayerNorm's
//! `norm.bias` (the projector's BatchNorm subtracts any shift common to all rows). Their
//! float32 gradients are rounding noise that differs with the summation order, and AdamW's
//! normalisation turns it into steps of up to ~lr, so no two implementations that sum in
//! different orders agree on them.

use patchmix_train::step::Layout;

/// Whether coordinate `index_in_slot` of slot `name` (of `len` values) is one whose gradient
/// vanishes analytically.
pub fn vanishes_analytically(name: &str, index_in_slot: usize, len: usize) -> bool {
    let key_third =
        name.ends_with("attn.qkv.bias") && (len / 3..2 * len / 3).contains(&index_in_slot);
    let final_norm_bias = name.ends_with("encoder.norm.bias");
    key_third || final_norm_bias
}

/// Per coordinate of a flat vector laid out by `layout`: whether its gradient vanishes
/// analytically.
pub fn analytic_zeros(layout: &Layout) -> Vec<bool> {
    layout
        .slots
        .iter()
        .flat_map(|s| (0..s.len).map(move |k| vanishes_analytically(&s.name, k, s.len)))
        .collect()
}

/// Relative L2 difference of `a` from `b` over the coordinates `keep` selects.
pub fn rel_l2(a: &[f32], b: &[f32], keep: impl Fn(usize) -> bool) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if keep(i) {
            num += f64::from(x - y).powi(2);
            den += f64::from(*y).powi(2);
        }
    }
    (num / den.max(1e-30)).sqrt()
}
