//! Gradients of the neural-network ops: MatMul, Gemm, Softmax, LogSoftmax and LayerNorm.

use super::{InGrads, OutGrads, dy0};
use crate::autodiff::unbroadcast;
use patchmix_export::graph::{ElementwiseOp, Graph, GraphError, NnOp, Node, ValueId, norm_axis};

/// The gradient of a neural-network node.
///
/// # Errors
/// [`GraphError::NotDifferentiable`] when no output gradient reached the node, or
/// [`GraphError::Shape`] when a shape a rule needs is symbolic.
pub fn gradient(
    g: &mut Graph,
    n: &Node,
    op: &NnOp,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    match op {
        NnOp::MatMul => matmul(g, n, dy, needs),
        NnOp::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => gemm(g, n, (*trans_a, *trans_b, *alpha, *beta), dy, needs),
        NnOp::Softmax { axis } => softmax(g, n, *axis, dy),
        NnOp::LogSoftmax { axis } => log_softmax(g, n, *axis, dy),
        NnOp::LayerNorm { axis, epsilon } => layer_norm(g, n, *axis, *epsilon, dy, needs),
    }
}

/// Whether gradients flow through input `index` of a neural-network op (always).
pub fn differentiable_input(op: &NnOp, _index: usize) -> bool {
    match op {
        NnOp::MatMul
        | NnOp::Gemm { .. }
        | NnOp::Softmax { .. }
        | NnOp::LogSoftmax { .. }
        | NnOp::LayerNorm { .. } => true,
    }
}

fn swap_last_two(g: &mut Graph, x: ValueId) -> Result<ValueId, GraphError> {
    let r = g.shape(x).rank();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    g.transpose(x, &perm)
}

/// `Y = A·B`: `dA = dY·Bᵀ`, `dB = Aᵀ·dY`, reduced over broadcast batch axes.
pub fn matmul(
    g: &mut Graph,
    n: &Node,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (a, b) = (n.inputs[0], n.inputs[1]);
    let da = if needs[0] {
        let bt = swap_last_two(g, b)?;
        let t = g.matmul(d, bt)?;
        Some(unbroadcast(g, t, a)?)
    } else {
        None
    };
    let db = if needs[1] {
        let at = swap_last_two(g, a)?;
        let t = g.matmul(at, d)?;
        Some(unbroadcast(g, t, b)?)
    } else {
        None
    };
    Ok(vec![da, db])
}

fn gemm2(
    g: &mut Graph,
    x: ValueId,
    y: ValueId,
    ta: bool,
    tb: bool,
    alpha: f32,
) -> Result<ValueId, GraphError> {
    g.op1(
        NnOp::Gemm {
            trans_a: ta,
            trans_b: tb,
            alpha,
            beta: 1.0,
        },
        &[x, y],
    )
}

/// `Y = α·op(A)·op(B) + β·C`, all four transpose cases, each gradient one `Gemm`.
pub fn gemm(
    g: &mut Graph,
    n: &Node,
    (ta, tb, alpha, beta): (bool, bool, f32, f32),
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (a, b) = (n.inputs[0], n.inputs[1]);
    let da = if needs[0] {
        Some(match (ta, tb) {
            (false, false) => gemm2(g, d, b, false, true, alpha)?,
            (false, true) => gemm2(g, d, b, false, false, alpha)?,
            (true, false) => gemm2(g, b, d, false, true, alpha)?,
            (true, true) => gemm2(g, b, d, true, true, alpha)?,
        })
    } else {
        None
    };
    let db = if needs[1] {
        Some(match (ta, tb) {
            (false, false) => gemm2(g, a, d, true, false, alpha)?,
            (false, true) => gemm2(g, d, a, true, false, alpha)?,
            (true, false) => gemm2(g, a, d, false, false, alpha)?,
            (true, true) => gemm2(g, d, a, true, true, alpha)?,
        })
    } else {
        None
    };
    let mut out = vec![da, db];
    if n.inputs.len() == 3 {
        out.push(if needs.get(2).copied().unwrap_or(false) {
            let t = if beta == 1.0 {
                d
            } else {
                g.mul_scalar(d, beta as f64)?
            };
            Some(unbroadcast(g, t, n.inputs[2])?)
        } else {
            None
        });
    }
    Ok(out)
}

/// `dx = y·(dy − Σ dy·y)`.
pub fn softmax(
    g: &mut Graph,
    n: &Node,
    axis: i64,
    dy: OutGrads<'_>,
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let y = n.outputs[0];
    let dyy = g.mul(d, y)?;
    let s = g.reduce_sum(dyy, &[axis], true)?;
    let t = g.sub(d, s)?;
    Ok(vec![Some(g.mul(y, t)?)])
}

/// `dx = dy − softmax·Σ dy`, with softmax = e^y.
pub fn log_softmax(
    g: &mut Graph,
    n: &Node,
    axis: i64,
    dy: OutGrads<'_>,
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let sm = g.unary(ElementwiseOp::Exp, n.outputs[0])?;
    let s = g.reduce_sum(d, &[axis], true)?;
    let t = g.mul(sm, s)?;
    Ok(vec![Some(g.sub(d, t)?)])
}

/// Compact LayerNorm backward, reusing the forward's `Mean`/`InvStdDev` outputs when present:
/// `x̂ = (x − μ)·r`, `g = dy·γ`, `dx = r·(g − mean(g) − x̂·mean(g·x̂))`,
/// `dγ = Σ dy·x̂`, `dβ = Σ dy` over the leading axes.
pub fn layer_norm(
    g: &mut Graph,
    n: &Node,
    axis: i64,
    eps: f32,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (x, w) = (n.inputs[0], n.inputs[1]);
    let rank = g.shape(x).rank();
    let a = norm_axis(axis, rank)?;
    let norm_axes: Vec<i64> = (a as i64..rank as i64).collect();
    let (mean, inv) = if n.outputs.len() == 3 {
        // The statistics are f32 (stash_type 1); bring them to the input's type.
        let xt = g.dtype(x);
        let cast = |g: &mut Graph, v: ValueId| -> Result<ValueId, GraphError> {
            if g.dtype(v) == xt {
                Ok(v)
            } else {
                g.op1(ElementwiseOp::Cast { to: xt }, &[v])
            }
        };
        (cast(g, n.outputs[1])?, cast(g, n.outputs[2])?)
    } else {
        let mean = g.reduce_mean(x, &norm_axes, true)?;
        let xc = g.sub(x, mean)?;
        let sq = g.mul(xc, xc)?;
        let var = g.reduce_mean(sq, &norm_axes, true)?;
        let ve = g.add_scalar(var, eps as f64)?;
        let sd = g.unary(ElementwiseOp::Sqrt, ve)?;
        (mean, g.unary(ElementwiseOp::Reciprocal, sd)?)
    };
    let xc = g.sub(x, mean)?;
    let xhat = g.mul(xc, inv)?;
    let dx = if needs[0] {
        let gx = g.mul(d, w)?;
        let m1 = g.reduce_mean(gx, &norm_axes, true)?;
        let gxh = g.mul(gx, xhat)?;
        let m2 = g.reduce_mean(gxh, &norm_axes, true)?;
        let t = g.sub(gx, m1)?;
        let u = g.mul(xhat, m2)?;
        let t = g.sub(t, u)?;
        Some(g.mul(t, inv)?)
    } else {
        None
    };
    // Σ over the leading axes, back to the shape of the scale and the bias.
    let dw = if needs[1] {
        let t = g.mul(d, xhat)?;
        Some(unbroadcast(g, t, w)?)
    } else {
        None
    };
    let db = match n.inputs.get(2) {
        Some(&b) if needs.get(2).copied().unwrap_or(false) => Some(unbroadcast(g, d, b)?),
        _ => None,
    };
    Ok(vec![dx, dw, db])
}
