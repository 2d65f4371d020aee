//! Stage 7, optimizer: AdamW over the flat parameters, skipped when an fp16 gradient
//! overflowed.

use super::super::adamw::{AdamInputs, adamw};
use super::super::layout::StateLayout;
use super::inputs::GraphInputs;
use super::loss_scaling::{Gradient, skip_if_overflow};
use patchmix_export::graph::{Graph, GraphError, ValueId};

/// The optimizer state after the step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptimizerUpdate {
    /// Updated flat parameters `[P]`.
    pub params: ValueId,
    /// Updated first moments `[P]`.
    pub exp_avg: ValueId,
    /// Updated second moments `[P]`.
    pub exp_avg_sq: ValueId,
    /// 1 when the update was applied, 0 when it was skipped (loss scaling only; f32 scalar).
    pub grads_finite: Option<ValueId>,
}

/// One AdamW update of the flat parameters and moments (scope `adamw`; weight decay on the
/// layout's decayed prefix), kept only where the gradient is finite when it carries a
/// finiteness flag.
///
/// In: the state, `lr`, `wd` and `step` inputs and the unscaled flat gradient `[P]`. Out: the
/// updated parameters and moments (and the `grads_finite` flag).
///
/// # Errors
/// A shape mismatch.
pub(crate) fn adamw_update(
    g: &mut Graph,
    inputs: &GraphInputs,
    layout: &StateLayout,
    grad: Gradient,
) -> Result<OptimizerUpdate, GraphError> {
    let old = (inputs.params, inputs.exp_avg, inputs.exp_avg_sq);
    let (p, m, v) = g.scoped("adamw", |g| {
        adamw(
            g,
            (old.0, old.1, old.2, grad.flat),
            layout.decayed,
            AdamInputs {
                lr: inputs.lr,
                wd: inputs.wd,
                step: inputs.step,
            },
        )
    })?;
    // A step with an overflow leaves the parameters and moments as they were.
    let ([params, exp_avg, exp_avg_sq], grads_finite) = match grad.finite {
        Some(ok) => {
            let (kept, flag) = skip_if_overflow(g, ok, [(p, old.0), (m, old.1), (v, old.2)])?;
            (kept, Some(flag))
        }
        None => ([p, m, v], None),
    };
    Ok(OptimizerUpdate {
        params,
        exp_avg,
        exp_avg_sq,
        grads_finite,
    })
}
