//! The soft-target contrastive loss.

use patchmix_export::graph::{ElementwiseOp, Graph, GraphError, NnOp, ValueId};

/// `F.normalize(x, dim=1)`: `x / max(‖x‖₂, 1e-12)` row-wise.
///
/// # Errors
/// Shape mismatch.
pub fn l2_normalize(g: &mut Graph, x: ValueId) -> Result<ValueId, GraphError> {
    let sq = g.mul(x, x)?;
    let s = g.reduce_sum(sq, &[1], true)?;
    let n = g.unary(ElementwiseOp::Sqrt, s)?;
    let eps = g.scalar_like(x, 1e-12);
    let n = g.op1(ElementwiseOp::Max, &[n, eps])?;
    g.div(x, n)
}

/// `CE(q, k, T) = mean over rows of −Σ T·log_softmax(normalize(q)·normalize(k)ᵀ/τ)`.
///
/// # Errors
/// Shape mismatch.
pub fn soft_ce(
    g: &mut Graph,
    q: ValueId,
    k: ValueId,
    target: ValueId,
    tau: ValueId,
) -> Result<ValueId, GraphError> {
    let rows = g.fixed_shape(q)?[0];
    let qn = l2_normalize(g, q)?;
    let kn = l2_normalize(g, k)?;
    let sim = g.op1(
        NnOp::Gemm {
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 1.0,
        },
        &[qn, kn],
    )?;
    let logits = g.div(sim, tau)?;
    let lsm = g.op1(NnOp::LogSoftmax { axis: 1 }, &[logits])?;
    let t = g.mul(target, lsm)?;
    let s = g.reduce_sum(t, &[0, 1], false)?;
    g.mul_scalar(s, -1.0 / rows as f64)
}
