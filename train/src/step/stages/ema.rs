//! Stage 2, EMA (momentum frame): the momentum encoder and projector as an exponential moving
//! average of the base ones, taken before the step's update.

use super::super::heads::unflatten;
use super::super::layout::StateLayout;
use patchmix_export::graph::{Graph, GraphError, ShapeOp, ValueId};
use std::collections::BTreeMap;

/// The momentum encoder's parameters after this step's EMA update.
#[derive(Clone, Debug)]
pub(crate) struct MomentumParams {
    /// The updated flat momentum parameters `[Pm]` (the `momentum_params_out` output).
    pub flat: ValueId,
    /// state_dict name (`momentum_encoder.…`) → updated parameter view.
    pub named: BTreeMap<String, ValueId>,
}

/// `θm ← μ·θm + (1 − μ)·θ` over the base encoder and projector (the parameters the momentum
/// encoder mirrors: the first `ema_decayed` decayed ones and the `ema_plain` plain ones), in
/// scope `ema`.
///
/// In: the flat base parameters `[P]`, the flat momentum parameters `[Pm]` and μ (scalar).
/// Out: the updated momentum parameters, flat and per slot.
///
/// # Errors
/// Never for a consistent layout.
pub(crate) fn ema_update(
    g: &mut Graph,
    layout: &StateLayout,
    params: ValueId,
    momentum_params: ValueId,
    mu: ValueId,
) -> Result<MomentumParams, GraphError> {
    g.scoped("ema", |g| {
        let (pd, ed, ep) = (
            layout.decayed as i64,
            layout.ema_decayed as i64,
            layout.ema_plain as i64,
        );
        let a = g.op1(
            ShapeOp::Slice {
                starts: vec![0],
                ends: vec![ed],
                axes: vec![0],
            },
            &[params],
        )?;
        let c = g.op1(
            ShapeOp::Slice {
                starts: vec![pd],
                ends: vec![pd + ep],
                axes: vec![0],
            },
            &[params],
        )?;
        let base = g.op1(ShapeOp::Concat { axis: 0 }, &[a, c])?;
        let kept = g.mul(momentum_params, mu)?;
        let one = g.scalar_like(mu, 1.0);
        let w = g.sub(one, mu)?;
        let fresh = g.mul(base, w)?;
        let flat = g.add(kept, fresh)?;
        let named = unflatten(g, flat, &layout.momentum.slots)?;
        Ok(MomentumParams { flat, named })
    })
}

/// timm's `ModelEma` update after the optimizer step, over every parameter (a ViT
/// classifier has no buffers): `ema ← d·ema + (1 − d)·θ`, in scope `model_ema`.
///
/// In: the model EMA `[P]`, the updated parameters `[P]` and the decay d (scalar). Out: the
/// updated EMA `[P]`.
///
/// # Errors
/// A shape mismatch.
pub(crate) fn model_ema(
    g: &mut Graph,
    ema: ValueId,
    params: ValueId,
    decay: ValueId,
) -> Result<ValueId, GraphError> {
    g.scoped("model_ema", |g| {
        let kept = g.mul(ema, decay)?;
        let one = g.scalar_like(decay, 1.0);
        let w = g.sub(one, decay)?;
        let fresh = g.mul(params, w)?;
        g.add(kept, fresh)
    })
}
