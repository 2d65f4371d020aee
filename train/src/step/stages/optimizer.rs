//! Stage 7, optimizer: AdamW over the flat parameters, skipped when an fp16 gradient
//! overflowed.

use super::super::adamw::{AdamInputs, GroupScales, adamw, adamw_grouped};
use super::super::finetune::FinetuneLayout;
use super::super::layout::StateLayout;
use super::inputs::GraphInputs;
use super::loss_scaling::{Gradient, skip_if_overflow};
use patchmix_export::graph::{Graph, GraphError, ShapeOp, TensorData, ValueId};

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

/// The optimizer state a fine-tune step updates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptimizerState {
    /// Flat parameters `[P]`.
    pub params: ValueId,
    /// First moments `[P]`.
    pub exp_avg: ValueId,
    /// Second moments `[P]`.
    pub exp_avg_sq: ValueId,
}

/// A constant `[P]` vector holding `value(run)` over each of the layout's scale runs: a
/// scalar expanded per run and concatenated (a handful of nodes that ONNX Runtime folds,
/// rather than a `[P]` initializer).
fn run_vector(
    g: &mut Graph,
    layout: &FinetuneLayout,
    hint: &str,
    value: impl Fn(&super::super::finetune::ScaleRun) -> f32,
) -> Result<ValueId, GraphError> {
    let parts = layout
        .scale_runs()
        .iter()
        .map(|r| {
            let c = g.constant(hint, &[1], TensorData::F32(vec![value(r)]));
            g.op1(
                ShapeOp::Expand {
                    shape: vec![r.len as i64],
                },
                &[c],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parts.len() == 1 {
        return Ok(parts[0]);
    }
    g.op1(ShapeOp::Concat { axis: 0 }, &parts)
}

/// AdamW with timm's layer-decay parameter groups (scope `adamw`): the per-element lr scales
/// and decay mask as constant vectors built from [`FinetuneLayout::scale_runs`], then
/// [`adamw_grouped`]; kept only where the gradient is finite when it carries a finiteness
/// flag.
///
/// In: the state, `lr`, `wd`, `step` and the unscaled gradient. Out: the updated state.
///
/// # Errors
/// A shape mismatch.
pub(crate) fn layer_decay_adamw_update(
    g: &mut Graph,
    old: OptimizerState,
    layout: &FinetuneLayout,
    hyper: AdamInputs,
    grad: Gradient,
) -> Result<OptimizerUpdate, GraphError> {
    let (p, m, v) = g.scoped("adamw", |g| -> Result<_, GraphError> {
        let scales = GroupScales {
            lr: run_vector(g, layout, "lr_scale", |r| r.lr_scale)?,
            decay: run_vector(g, layout, "decay_scale", |r| {
                if r.decayed { r.lr_scale } else { 0.0 }
            })?,
        };
        adamw_grouped(
            g,
            (old.params, old.exp_avg, old.exp_avg_sq, grad.flat),
            scales,
            hyper,
        )
    })?;
    let ([params, exp_avg, exp_avg_sq], grads_finite) = match grad.finite {
        Some(ok) => {
            let pairs = [(p, old.params), (m, old.exp_avg), (v, old.exp_avg_sq)];
            let (kept, flag) = skip_if_overflow(g, ok, pairs)?;
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
