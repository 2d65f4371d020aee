//! Gradients of the data-parallel collectives.
//!
//! With per-rank losses `L_r` and `y = Σ_s x_s` on every rank, the gradient of the global loss
//! `Σ_r L_r` with respect to rank r's `x_r` is `Σ_s ∂L_s/∂y`: the all-reduce (sum) of the output
//! gradients. AllGather passes no gradient: as in the original's `concat_all_gather`, the
//! gathered keys are detached.

use super::{InGrads, OutGrads, dy0, not_differentiable};
use patchmix_export::graph::{CollectiveOp, Graph, GraphError, Node};

/// The gradient of a collective.
///
/// # Errors
/// [`GraphError::NotDifferentiable`] for AllGather.
pub fn gradient(
    g: &mut Graph,
    n: &Node,
    op: &CollectiveOp,
    dy: OutGrads<'_>,
    _needs: &[bool],
) -> Result<InGrads, GraphError> {
    match op {
        CollectiveOp::AllReduceSum => Ok(vec![Some(g.all_reduce_sum(dy0(n, dy)?)?)]),
        CollectiveOp::AllGather { .. } => Err(not_differentiable(n)),
    }
}

/// Whether gradients flow through input `index` of a collective.
pub fn differentiable_input(op: &CollectiveOp, _index: usize) -> bool {
    match op {
        CollectiveOp::AllReduceSum => true,
        CollectiveOp::AllGather { .. } => false,
    }
}
