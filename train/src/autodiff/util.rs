//! Helpers shared by the gradient rules.

use patchmix_export::graph::{Graph, GraphError, Op, ValueId};

/// Sums a list of gradient contributions (`None` for an empty list).
///
/// # Errors
/// Shape mismatch between contributions.
pub fn sum_grads(g: &mut Graph, list: &[ValueId]) -> Result<Option<ValueId>, GraphError> {
    let mut it = list.iter();
    let Some(&first) = it.next() else {
        return Ok(None);
    };
    let mut acc = first;
    for &v in it {
        acc = g.add(acc, v)?;
    }
    Ok(Some(acc))
}

/// Zeros with the shape and type of `like` (static shapes only).
///
/// # Errors
/// A symbolic shape.
pub fn zeros_like(g: &mut Graph, like: ValueId) -> Result<ValueId, GraphError> {
    let shape: Vec<i64> = g.fixed_shape(like)?.iter().map(|&d| d as i64).collect();
    let dtype = g.dtype(like);
    g.op1(Op::Zeros { shape, dtype }, &[])
}

/// Reduces a broadcast gradient back to the shape of `target`: sums over the leading axes the
/// broadcast added and over the axes where `target` has size 1, then reshapes.
///
/// # Errors
/// A symbolic shape.
pub fn unbroadcast(g: &mut Graph, grad: ValueId, target: ValueId) -> Result<ValueId, GraphError> {
    let gs = g.fixed_shape(grad)?;
    let ts = g.fixed_shape(target)?;
    if gs == ts {
        return Ok(grad);
    }
    let lead = gs.len() - ts.len();
    let mut axes: Vec<i64> = (0..lead as i64).collect();
    for (i, &t) in ts.iter().enumerate() {
        if t == 1 && gs[lead + i] != 1 {
            axes.push((lead + i) as i64);
        }
    }
    let reduced = if axes.is_empty() {
        grad
    } else {
        g.reduce_sum(grad, &axes, true)?
    };
    if g.fixed_shape(reduced)? == ts {
        return Ok(reduced);
    }
    let shape: Vec<i64> = ts.iter().map(|&d| d as i64).collect();
    g.reshape(reduced, &shape)
}

/// The sum of all elements, as a scalar.
///
/// # Errors
/// Never for a valid value.
pub fn sum_all(g: &mut Graph, x: ValueId) -> Result<ValueId, GraphError> {
    let axes: Vec<i64> = (0..g.shape(x).rank() as i64).collect();
    if axes.is_empty() {
        return Ok(x);
    }
    g.reduce_sum(x, &axes, false)
}
