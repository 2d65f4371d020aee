//! Gradients of shape ops: each maps the output gradient back onto the input layout.

use super::{InGrads, OutGrads, dy0, not_differentiable};
use crate::autodiff::{unbroadcast, zeros_like};
use patchmix_export::graph::{Graph, GraphError, Node, ShapeOp, norm_axis};

/// The gradient of a shape node.
///
/// # Errors
/// [`GraphError::NotDifferentiable`] for ScatterNdAdd and Zeros, which pass none, and for the
/// operands a rule does not support (negative pads, Gather off axis 0).
pub fn gradient(
    g: &mut Graph,
    n: &Node,
    op: &ShapeOp,
    dy: OutGrads<'_>,
    _needs: &[bool],
) -> Result<InGrads, GraphError> {
    match op {
        ShapeOp::Reshape { .. } | ShapeOp::Unsqueeze { .. } => reshape_back(g, n, dy),
        ShapeOp::Transpose { perm } => transpose(g, perm, dy),
        ShapeOp::Slice { starts, ends, axes } => slice(g, n, starts, ends, axes, dy),
        ShapeOp::Concat { axis } => concat(g, n, *axis, dy),
        ShapeOp::Split { axis, .. } => split(g, n, *axis, dy),
        ShapeOp::Pad { pads } => pad(g, n, pads, dy),
        ShapeOp::Expand { .. } => expand(g, n, dy),
        ShapeOp::Gather { axis } => gather(g, n, *axis, dy),
        ShapeOp::ScatterNdAdd | ShapeOp::Zeros { .. } => Err(not_differentiable(n)),
    }
}

/// Whether gradients flow through input `index` of a shape op.
pub fn differentiable_input(op: &ShapeOp, index: usize) -> bool {
    match op {
        ShapeOp::ScatterNdAdd | ShapeOp::Zeros { .. } => false,
        // The indices are integers.
        ShapeOp::Gather { .. } => index == 0,
        ShapeOp::Reshape { .. }
        | ShapeOp::Transpose { .. }
        | ShapeOp::Slice { .. }
        | ShapeOp::Concat { .. }
        | ShapeOp::Split { .. }
        | ShapeOp::Pad { .. }
        | ShapeOp::Expand { .. }
        | ShapeOp::Unsqueeze { .. } => true,
    }
}

fn fixed_i64(g: &Graph, v: patchmix_export::graph::ValueId) -> Result<Vec<i64>, GraphError> {
    Ok(g.fixed_shape(v)?.iter().map(|&d| d as i64).collect())
}

/// Reshape and Unsqueeze: reshape the gradient to the input's shape.
pub fn reshape_back(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let shape = fixed_i64(g, n.inputs[0])?;
    Ok(vec![Some(g.reshape(d, &shape)?)])
}

/// Transpose by the inverse permutation.
pub fn transpose(g: &mut Graph, perm: &[usize], dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| GraphError::NotDifferentiable("Transpose: no output gradient".into()))?;
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Ok(vec![Some(g.transpose(d, &inv)?)])
}

/// Slice: zero-pad the gradient back to the input's extent.
pub fn slice(
    g: &mut Graph,
    n: &Node,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    dy: OutGrads<'_>,
) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let shape = g.fixed_shape(n.inputs[0])?;
    let rank = shape.len();
    let mut pads = vec![0i64; 2 * rank];
    for ((&s, &e), &a) in starts.iter().zip(ends).zip(axes) {
        let a = norm_axis(a, rank)?;
        let dim = shape[a] as i64;
        let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
        let (s, e) = (clamp(s), clamp(e).max(clamp(s)));
        pads[a] = s;
        pads[a + rank] = dim - e;
    }
    Ok(vec![Some(g.op1(ShapeOp::Pad { pads }, &[d])?)])
}

/// Concat: slice each input's part out of the gradient.
pub fn concat(g: &mut Graph, n: &Node, axis: i64, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let rank = g.shape(d).rank();
    let a = norm_axis(axis, rank)?;
    let mut offset = 0i64;
    let mut out = Vec::with_capacity(n.inputs.len());
    for &x in &n.inputs {
        let len = g.fixed_shape(x)?[a] as i64;
        out.push(Some(g.op1(
            ShapeOp::Slice {
                starts: vec![offset],
                ends: vec![offset + len],
                axes: vec![a as i64],
            },
            &[d],
        )?));
        offset += len;
    }
    Ok(out)
}

/// Split: concatenate the parts' gradients (zeros for parts without one).
pub fn split(g: &mut Graph, n: &Node, axis: i64, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let mut parts = Vec::with_capacity(dy.len());
    for (i, d) in dy.iter().enumerate() {
        parts.push(match d {
            Some(d) => *d,
            None => zeros_like(g, n.outputs[i])?,
        });
    }
    Ok(vec![Some(g.op1(ShapeOp::Concat { axis }, &parts)?)])
}

/// Pad (non-negative pads): slice the gradient back.
pub fn pad(g: &mut Graph, n: &Node, pads: &[i64], dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    if pads.iter().any(|&p| p < 0) {
        return Err(GraphError::NotDifferentiable(format!(
            "Pad with negative pads {pads:?}"
        )));
    }
    let shape = g.fixed_shape(n.inputs[0])?;
    let rank = shape.len();
    let (mut starts, mut ends, mut axes) = (Vec::new(), Vec::new(), Vec::new());
    for a in 0..rank {
        if pads[a] != 0 || pads[a + rank] != 0 {
            starts.push(pads[a]);
            ends.push(pads[a] + shape[a] as i64);
            axes.push(a as i64);
        }
    }
    if axes.is_empty() {
        return Ok(vec![Some(d)]);
    }
    Ok(vec![Some(
        g.op1(ShapeOp::Slice { starts, ends, axes }, &[d])?,
    )])
}

/// Expand: sum the gradient over the broadcast axes.
pub fn expand(g: &mut Graph, n: &Node, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    Ok(vec![Some(unbroadcast(g, d, n.inputs[0])?)])
}

/// Gather on axis 0: scatter-add the gradient rows into zeros of the data's shape, so repeated
/// indices accumulate. Other axes are not supported (not used by the step).
pub fn gather(g: &mut Graph, n: &Node, axis: i64, dy: OutGrads<'_>) -> Result<InGrads, GraphError> {
    let d = dy0(n, dy)?;
    let (data, idx) = (n.inputs[0], n.inputs[1]);
    if norm_axis(axis, g.shape(data).rank())? != 0 {
        return Err(GraphError::NotDifferentiable(format!(
            "Gather on axis {axis} (only axis 0 has a rule)"
        )));
    }
    let mut ishape = fixed_i64(g, idx)?;
    ishape.push(1);
    let idx = g.reshape(idx, &ishape)?;
    let zeros = zeros_like(g, data)?;
    Ok(vec![
        Some(g.op1(ShapeOp::ScatterNdAdd, &[zeros, idx, d])?),
        None,
    ])
}
