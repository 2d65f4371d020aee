//! The last stage: the step's graph outputs, in their fixed order.

use super::super::heads::{RunningStats, flatten};
use super::super::layout::StateLayout;
use super::super::names;
use super::ema::MomentumParams;
use super::losses::LossValues;
use super::optimizer::OptimizerUpdate;
use patchmix_export::graph::{ElementwiseOp, Graph, GraphError, ValueKind};

/// Flattens the running statistics (scope `buffers_out`) and declares the outputs: the
/// updated state ([`names::STATE_OUTPUTS`]; an unchanged input goes out through an
/// `Identity`), the losses ([`names::LOSSES`], then [`names::LOSS_MULTI`]) and
/// [`names::GRADS_FINITE`].
///
/// In: the updated running stats, optimizer state, momentum parameters and the losses. Out:
/// the graph's outputs.
///
/// # Errors
/// A missing running statistic.
pub(crate) fn declare_outputs(
    g: &mut Graph,
    layout: &StateLayout,
    stats: &RunningStats,
    update: &OptimizerUpdate,
    momentum: Option<&MomentumParams>,
    losses: &LossValues,
) -> Result<(), GraphError> {
    let buf_vals = layout
        .buffers
        .slots
        .iter()
        .map(|s| {
            stats
                .current
                .get(&s.name)
                .copied()
                .ok_or_else(|| GraphError::Shape(format!("missing BN buffer `{}`", s.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let buf_new = g.scoped("buffers_out", |g| flatten(g, &buf_vals))?;

    let outs = [
        Some(update.params),
        Some(update.exp_avg),
        Some(update.exp_avg_sq),
        Some(buf_new),
        momentum.map(|m| m.flat),
    ];
    for (name, v) in names::STATE_OUTPUTS.iter().zip(outs) {
        if let Some(v) = v {
            let v = if g.value(v).kind == ValueKind::Input {
                g.op1(ElementwiseOp::Identity, &[v])?
            } else {
                v
            };
            g.output(v, name);
        }
    }
    for (name, v) in names::LOSSES
        .iter()
        .zip([losses.src, losses.mix, losses.mix2, losses.total])
    {
        g.output(v, name);
    }
    if let Some((m, mm)) = losses.multi {
        g.output(m, names::LOSS_MULTI[0]);
        g.output(mm, names::LOSS_MULTI[1]);
    }
    if let Some(f) = update.grads_finite {
        g.output(f, names::GRADS_FINITE);
    }
    Ok(())
}
