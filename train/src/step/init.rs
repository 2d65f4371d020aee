//! Initial training state and conversion to/from named tensors.

use super::config::StepConfig;
use super::layout::{Layout, StateLayout};
use super::scaler::LossScaler;
use super::state::HostState;
use ndarray::ArrayD;
use patchmix_export::vit::init_weights;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// The initial state: the encoder as timm/MoCo v3 ([`init_weights`]), head Linear weights with
/// PyTorch's default U(±1/√fan_in), BN weight 1 and bias 0, running mean 0 and variance 1,
/// AdamW moments 0, and the momentum encoder a copy of the base encoder and projector.
pub fn init_state(cfg: &StepConfig, layout: &StateLayout, seed: u64) -> HostState {
    let enc = init_weights(&cfg.vit, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let mut params = vec![0.0f32; layout.params.len()];
    for slot in &layout.params.slots {
        let dst = &mut params[slot.offset..slot.offset + slot.len];
        if let Some(timm) = slot
            .name
            .strip_prefix("base_encoder.")
            .filter(|n| !n.starts_with("head."))
        {
            dst.copy_from_slice(enc[timm].as_slice().expect("standard layout"));
        } else if slot.shape.len() == 2 {
            let bound = 1.0 / (slot.shape[1] as f64).sqrt();
            for v in dst.iter_mut() {
                *v = rng.random_range(-bound..bound) as f32;
            }
        } else if slot.name.ends_with(".weight") {
            dst.fill(1.0);
        }
    }
    let mut buffers = vec![0.0f32; layout.buffers.len()];
    for slot in &layout.buffers.slots {
        if slot.name.ends_with("running_var") {
            buffers[slot.offset..slot.offset + slot.len].fill(1.0);
        }
    }
    let momentum = momentum_from_params(layout, &params);
    HostState {
        exp_avg: vec![0.0; params.len()],
        exp_avg_sq: vec![0.0; params.len()],
        params,
        buffers,
        momentum,
        step: 0,
        scaler: cfg.scales_loss().then(LossScaler::default),
    }
}

/// The momentum encoder's vector copied from the base encoder and projector.
pub fn momentum_from_params(layout: &StateLayout, params: &[f32]) -> Vec<f32> {
    if layout.momentum.is_empty() {
        return Vec::new();
    }
    let mut out = params[..layout.ema_decayed].to_vec();
    out.extend_from_slice(&params[layout.decayed..layout.decayed + layout.ema_plain]);
    out
}

/// Splits a flat vector into named tensors.
pub fn to_named(layout: &Layout, flat: &[f32], prefix: &str) -> BTreeMap<String, ArrayD<f32>> {
    layout
        .slots
        .iter()
        .map(|s| {
            let a =
                ArrayD::from_shape_vec(s.shape.clone(), flat[s.offset..s.offset + s.len].to_vec())
                    .expect("slot shape");
            (format!("{prefix}{}", s.name), a)
        })
        .collect()
}

/// Gathers named tensors into a flat vector.
///
/// # Errors
/// A message naming the missing or mis-shaped tensor.
pub fn from_named(
    layout: &Layout,
    named: &BTreeMap<String, ArrayD<f32>>,
    prefix: &str,
) -> Result<Vec<f32>, String> {
    let mut flat = vec![0.0f32; layout.len()];
    for s in &layout.slots {
        let key = format!("{prefix}{}", s.name);
        let a = named
            .get(&key)
            .ok_or_else(|| format!("missing tensor `{key}`"))?;
        if a.shape() != s.shape.as_slice() {
            return Err(format!(
                "tensor `{key}` has shape {:?}, expected {:?}",
                a.shape(),
                s.shape
            ));
        }
        for (d, v) in flat[s.offset..s.offset + s.len].iter_mut().zip(a.iter()) {
            *d = *v;
        }
    }
    Ok(flat)
}
