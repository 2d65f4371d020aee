//! Gradients of elementwise ops (broadcasting binaries reduce back with `unbroadcast`).

use super::{InGrads, OutGrads, dy0, not_differentiable};
use crate::autodiff::unbroadcast;
use patchmix_export::graph::{ElementwiseOp, Graph, GraphError, Node};

/// The gradient of an elementwise node.
///
/// # Errors
/// [`GraphError::NotDifferentiable`] for Greater and StopGradient, which pass none.
pub fn gradient(
    g: &mut Graph,
    n: &Node,
    op: &ElementwiseOp,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    match op {
        ElementwiseOp::Add => add(g, n, dy),
        ElementwiseOp::Sub => sub(g, n, dy),
        ElementwiseOp::Mul => mul(g, n, dy, needs),
        ElementwiseOp::Div => div(g, n, dy, needs),
        ElementwiseOp::Pow => pow(g, n, dy),
        ElementwiseOp::Max => max(g, n, dy),
        ElementwiseOp::Where => where_(g, n, dy),
        ElementwiseOp::Neg => neg(g, n, dy),
        ElementwiseOp::Sqrt => sqrt(g, n, dy),
        ElementwiseOp::Exp => exp(g, n, dy),
        ElementwiseOp::Log => log(g, n, dy),
        ElementwiseOp::Erf => erf(g, n, dy),
        ElementwiseOp::Relu => relu(g, n, dy),
        ElementwiseOp::Reciprocal => reciprocal(g, n, dy),
        ElementwiseOp::Sigmoid => sigmoid(g, n, dy),
        ElementwiseOp::GeluErf => gelu_erf(g, n, dy),
        ElementwiseOp::Identity => Ok(vec![dy[0]]),
        ElementwiseOp::Cast { .. } => cast(g, n, dy),
        ElementwiseOp::Greater | ElementwiseOp::StopGradient => Err(not_differentiable(n)),
    }
}

/// Whether gradients flow through input `index` of an elementwise op.
pub fn differentiable_input(op: &ElementwiseOp, index: usize) -> bool {
    match op {
        ElementwiseOp::Greater | ElementwiseOp::StopGradient => false,
        // The condition is boolean; the exponent's gradient is not implemented.
        ElementwiseOp::Where => index > 0,
        ElementwiseOp::Pow => index == 0,
        ElementwiseOp::Cast { to } => to.is_float(),
        ElementwiseOp::Add
        | ElementwiseOp::Sub
        | ElementwiseOp::Mul
        | ElementwiseOp::Div
        | ElementwiseOp::Max
        | ElementwiseOp::Neg
        | ElementwiseOp::Sqrt
        | ElementwiseOp::Exp
        | ElementwiseOp::Log
        | ElementwiseOp::Erf
        | ElementwiseOp::Relu
        | ElementwiseOp::Reciprocal
        | ElementwiseOp::Sigmoid
        | ElementwiseOp::GeluErf
        | ElementwiseOp::Identity => true,
    }
}

pub fn add(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    Ok(vec![
        Some(unbroadcast(g, d, n.inputs[0])?),
        Some(unbroadcast(g, d, n.inputs[1])?),
    ])
}

pub fn sub(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let nd = g.unary(ElementwiseOp::Neg, d)?;
    Ok(vec![
        Some(unbroadcast(g, d, n.inputs[0])?),
        Some(unbroadcast(g, nd, n.inputs[1])?),
    ])
}

pub fn mul(
    g: &mut Graph,
    n: &Node,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (a, b) = (n.inputs[0], n.inputs[1]);
    let da = if needs[0] {
        let t = g.mul(d, b)?;
        Some(unbroadcast(g, t, a)?)
    } else {
        None
    };
    let db = if needs[1] {
        let t = g.mul(d, a)?;
        Some(unbroadcast(g, t, b)?)
    } else {
        None
    };
    Ok(vec![da, db])
}

pub fn div(
    g: &mut Graph,
    n: &Node,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (a, b, y) = (n.inputs[0], n.inputs[1], n.outputs[0]);
    let da = if needs[0] {
        let t = g.div(d, b)?;
        Some(unbroadcast(g, t, a)?)
    } else {
        None
    };
    let db = if needs[1] {
        // d(a/b)/db = −y/b
        let t = g.mul(d, y)?;
        let t = g.div(t, b)?;
        let t = g.unary(ElementwiseOp::Neg, t)?;
        Some(unbroadcast(g, t, b)?)
    } else {
        None
    };
    Ok(vec![da, db])
}

/// `a^b` with a constant exponent: `b·a^(b−1)`.
pub fn pow(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (a, b) = (n.inputs[0], n.inputs[1]);
    let one = g.scalar_like(b, 1.0);
    let bm1 = g.sub(b, one)?;
    let p = g.op1(ElementwiseOp::Pow, &[a, bm1])?;
    let t = g.mul(p, b)?;
    let t = g.mul(d, t)?;
    Ok(vec![Some(unbroadcast(g, t, a)?), None])
}

/// `max(a, b)`: the gradient goes to `a` where `a ≥ b`, else to `b` (clamp's convention).
pub fn max(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (a, b) = (n.inputs[0], n.inputs[1]);
    let b_wins = g.op1(ElementwiseOp::Greater, &[b, a])?;
    let zero = g.scalar_like(d, 0.0);
    let da = g.op1(ElementwiseOp::Where, &[b_wins, zero, d])?;
    let db = g.op1(ElementwiseOp::Where, &[b_wins, d, zero])?;
    Ok(vec![
        Some(unbroadcast(g, da, a)?),
        Some(unbroadcast(g, db, b)?),
    ])
}

pub fn where_(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (c, a, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
    let zero = g.scalar_like(d, 0.0);
    let da = g.op1(ElementwiseOp::Where, &[c, d, zero])?;
    let db = g.op1(ElementwiseOp::Where, &[c, zero, d])?;
    Ok(vec![
        None,
        Some(unbroadcast(g, da, a)?),
        Some(unbroadcast(g, db, b)?),
    ])
}

pub fn neg(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    Ok(vec![Some(g.unary(ElementwiseOp::Neg, d)?)])
}

/// `d√x = dy · 0.5 / y`.
pub fn sqrt(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let half = g.scalar_like(d, 0.5);
    let r = g.div(half, n.outputs[0])?;
    Ok(vec![Some(g.mul(d, r)?)])
}

pub fn exp(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    Ok(vec![Some(g.mul(d, n.outputs[0])?)])
}

pub fn log(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    Ok(vec![Some(g.div(d, n.inputs[0])?)])
}

/// `d erf(x) = 2/√π · e^(−x²)`.
pub fn erf(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let x = n.inputs[0];
    let x2 = g.mul(x, x)?;
    let nx2 = g.unary(ElementwiseOp::Neg, x2)?;
    let e = g.unary(ElementwiseOp::Exp, nx2)?;
    let e = g.mul_scalar(e, 2.0 / std::f64::consts::PI.sqrt())?;
    Ok(vec![Some(g.mul(d, e)?)])
}

pub fn relu(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let zero = g.scalar_like(d, 0.0);
    let pos = g.op1(ElementwiseOp::Greater, &[n.outputs[0], zero])?;
    Ok(vec![Some(g.op1(ElementwiseOp::Where, &[pos, d, zero])?)])
}

/// `d(1/x) = −y²`.
pub fn reciprocal(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let y = n.outputs[0];
    let y2 = g.mul(y, y)?;
    let t = g.mul(d, y2)?;
    Ok(vec![Some(g.unary(ElementwiseOp::Neg, t)?)])
}

/// `dσ(x) = σ(x)·(1 − σ(x))`, from the output.
pub fn sigmoid(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let y = n.outputs[0];
    let one = g.scalar_like(y, 1.0);
    let one_minus_y = g.sub(one, y)?;
    let slope = g.mul(y, one_minus_y)?;
    Ok(vec![Some(g.mul(d, slope)?)])
}

/// Exact GELU: `d/dx [x·Φ(x)] = Φ(x) + x·φ(x)`, with Φ(x) = ½(1 + erf(x/√2)) and
/// φ(x) = e^(−x²/2)/√(2π).
pub fn gelu_erf(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let x = n.inputs[0];
    let t = g.mul_scalar(x, std::f64::consts::FRAC_1_SQRT_2)?;
    let e = g.unary(ElementwiseOp::Erf, t)?;
    let e1 = g.add_scalar(e, 1.0)?;
    let cdf = g.mul_scalar(e1, 0.5)?;
    let x2 = g.mul(x, x)?;
    let h = g.mul_scalar(x2, -0.5)?;
    let ex = g.unary(ElementwiseOp::Exp, h)?;
    let xe = g.mul(x, ex)?;
    let pdf_x = g.mul_scalar(xe, 1.0 / (2.0 * std::f64::consts::PI).sqrt())?;
    let s = g.add(cdf, pdf_x)?;
    Ok(vec![Some(g.mul(d, s)?)])
}

pub fn cast(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let to = g.dtype(n.inputs[0]);
    Ok(vec![Some(g.op1(ElementwiseOp::Cast { to }, &[d])?)])
}
