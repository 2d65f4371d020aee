//! AdamW over the flat parameter vector, with PyTorch's exact formula:
//! `p ← p·(1 − lr·wd)` (decayed prefix only); `m ← β₁m + (1−β₁)g`; `v ← β₂v + (1−β₂)g²`;
//! `p ← p − (lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + eps)`.

use patchmix_export::graph::{ElementwiseOp, Graph, GraphError, ShapeOp, ValueId};

/// AdamW's β₁.
pub const BETA1: f64 = 0.9;
/// AdamW's β₂.
pub const BETA2: f64 = 0.999;
/// AdamW's eps.
pub const EPS: f64 = 1e-8;

/// The optimizer's graph inputs.
#[derive(Clone, Copy, Debug)]
pub struct AdamInputs {
    /// Learning rate (scalar).
    pub lr: ValueId,
    /// Weight decay (scalar).
    pub wd: ValueId,
    /// Step count t ≥ 1 (scalar f32).
    pub step: ValueId,
}

/// Updated (params, exp_avg, exp_avg_sq).
///
/// # Errors
/// Shape mismatch.
pub fn adamw(
    g: &mut Graph,
    (p, m, v, grad): (ValueId, ValueId, ValueId, ValueId),
    decayed: usize,
    h: AdamInputs,
) -> Result<(ValueId, ValueId, ValueId), GraphError> {
    let total = g.fixed_shape(p)?[0];
    // Weight decay on the decayed prefix.
    let lrwd = g.mul(h.lr, h.wd)?;
    let one = g.scalar_like(p, 1.0);
    let factor = g.sub(one, lrwd)?;
    let p = if decayed == 0 {
        p
    } else if decayed == total {
        g.mul(p, factor)?
    } else {
        let parts = g.node(
            ShapeOp::Split {
                axis: 0,
                sizes: vec![decayed as i64, (total - decayed) as i64],
            },
            &[p],
            2,
        )?;
        let dec = g.mul(parts[0], factor)?;
        g.op1(ShapeOp::Concat { axis: 0 }, &[dec, parts[1]])?
    };
    let (m, v) = moments(g, m, v, grad)?;
    let upd = bias_corrected_update(g, one, m, v, h)?;
    let p = g.sub(p, upd)?;
    Ok((p, m, v))
}

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`.
fn moments(
    g: &mut Graph,
    m: ValueId,
    v: ValueId,
    grad: ValueId,
) -> Result<(ValueId, ValueId), GraphError> {
    let m1 = g.mul_scalar(m, BETA1)?;
    let gm = g.mul_scalar(grad, 1.0 - BETA1)?;
    let m = g.add(m1, gm)?;
    let v1 = g.mul_scalar(v, BETA2)?;
    let g2 = g.mul(grad, grad)?;
    let g2 = g.mul_scalar(g2, 1.0 - BETA2)?;
    let v = g.add(v1, g2)?;
    Ok((m, v))
}

/// The update `(lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + eps)` from the new moments (`one`: an f32 1).
fn bias_corrected_update(
    g: &mut Graph,
    one: ValueId,
    m: ValueId,
    v: ValueId,
    h: AdamInputs,
) -> Result<ValueId, GraphError> {
    let b1 = g.scalar_like(m, BETA1);
    let b2 = g.scalar_like(m, BETA2);
    let b1t = g.op1(ElementwiseOp::Pow, &[b1, h.step])?;
    let b2t = g.op1(ElementwiseOp::Pow, &[b2, h.step])?;
    let bc1 = g.sub(one, b1t)?;
    let bc2 = g.sub(one, b2t)?;
    let step_size = g.div(h.lr, bc1)?;
    let bc2_sqrt = g.unary(ElementwiseOp::Sqrt, bc2)?;
    let vs = g.unary(ElementwiseOp::Sqrt, v)?;
    let denom = g.div(vs, bc2_sqrt)?;
    let denom = g.add_scalar(denom, EPS)?;
    let ratio = g.div(m, denom)?;
    g.mul(ratio, step_size)
}

/// Per-element scales of AdamW's learning rate and weight decay, `[P]` each: torch AdamW over
/// parameter groups with `lr = lr·scale` and `weight_decay ∈ {wd, 0}` (timm's layer decay).
#[derive(Clone, Copy, Debug)]
pub struct GroupScales {
    /// The lr scale of each element.
    pub lr: ValueId,
    /// The lr scale of each decayed element, 0 for the others (the weight-decay factor is
    /// `1 − lr·wd·decay`).
    pub decay: ValueId,
}

/// AdamW over parameter groups, as torch's AdamW with one group per (lr scale, weight decay):
/// `p ← p·(1 − lr·sᵢ·wd·dᵢ)`, the moments as [`adamw`], then
/// `p ← p − sᵢ·(lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + eps)`, with the per-element scales `s` and decay
/// mask `d` of `scales`.
///
/// # Errors
/// Shape mismatch.
pub fn adamw_grouped(
    g: &mut Graph,
    (p, m, v, grad): (ValueId, ValueId, ValueId, ValueId),
    scales: GroupScales,
    h: AdamInputs,
) -> Result<(ValueId, ValueId, ValueId), GraphError> {
    let lrwd = g.mul(h.lr, h.wd)?;
    let one = g.scalar_like(p, 1.0);
    let shrink = g.mul(scales.decay, lrwd)?;
    let factor = g.sub(one, shrink)?;
    let p = g.mul(p, factor)?;
    let (m, v) = moments(g, m, v, grad)?;
    let upd = bias_corrected_update(g, one, m, v, h)?;
    let upd = g.mul(upd, scales.lr)?;
    let p = g.sub(p, upd)?;
    Ok((p, m, v))
}
