//! Gradients of reductions: broadcast the output gradient back over the reduced axes.

use super::{InGrads, OutGrads, dy0};
use patchmix_export::graph::{Graph, GraphError, Node, ReduceOp, ShapeOp, norm_axis};

/// The gradient of a reduction.
///
/// # Errors
/// [`GraphError::Shape`] when the input's shape is symbolic.
pub fn gradient(
    g: &mut Graph,
    n: &Node,
    op: &ReduceOp,
    dy: OutGrads<'_>,
    _needs: &[bool],
) -> Result<InGrads, GraphError> {
    match op {
        ReduceOp::ReduceSum { axes, keepdims } => reduce(g, n, axes, *keepdims, false, dy),
        ReduceOp::ReduceMean { axes, keepdims } => reduce(g, n, axes, *keepdims, true, dy),
    }
}

/// Whether gradients flow through input `index` of a reduction (always: it has one input).
pub fn differentiable_input(op: &ReduceOp, _index: usize) -> bool {
    match op {
        ReduceOp::ReduceSum { .. } | ReduceOp::ReduceMean { .. } => true,
    }
}

pub fn reduce(
    g: &mut Graph,
    n: &Node,
    axes: &[i64],
    keepdims: bool,
    mean: bool,
    dy: OutGrads<'_>,
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let shape = g.fixed_shape(n.inputs[0])?;
    let rank = shape.len();
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()?;
    let kept: Vec<i64> = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| if axes.contains(&i) { 1 } else { s as i64 })
        .collect();
    let d = if keepdims || g.fixed_shape(d)? == kept.iter().map(|&k| k as usize).collect::<Vec<_>>()
    {
        d
    } else {
        g.reshape(d, &kept)?
    };
    let d = if mean {
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        g.mul_scalar(d, 1.0 / count as f64)?
    } else {
        d
    };
    let full: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
    Ok(vec![Some(g.op1(ShapeOp::Expand { shape: full }, &[d])?)])
}
