//! One gradient rule per op type, in the style of ONNX Runtime's gradient builders: each rule
//! receives the node and the gradients of its outputs (`None` where an output got no gradient)
//! and returns gradients for the inputs flagged in `needs`, built from standard ONNX ops.
//!
//! The files mirror the op families of the IR (`patchmix_export::graph::ops`): each holds its
//! family's `gradient` and `differentiable_input`, both exhaustive `match`es without a wildcard
//! arm, so adding an op to the IR without deciding its gradient and its non-differentiable
//! inputs is a compile error. This file only dispatches over the families.

mod collective;
mod elementwise;
mod nn;
mod reduce;
mod shape;

use patchmix_export::graph::{Graph, GraphError, Node, Op, ValueId};

/// Output gradients of a node (`None`: no gradient reached that output).
pub type OutGrads<'a> = &'a [Option<ValueId>];
/// Input gradients returned by a rule (`None` where not needed or not defined).
pub type InGrads = Vec<Option<ValueId>>;

/// Returns the gradient of `node`'s inputs, from the rule of its op's family.
///
/// # Errors
/// [`GraphError::NotDifferentiable`] for ops or operands without a gradient.
pub fn gradient(
    g: &mut Graph,
    node: &Node,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    match &node.op {
        Op::Elementwise(op) => elementwise::gradient(g, node, op, dy, needs),
        Op::Shape(op) => shape::gradient(g, node, op, dy, needs),
        Op::Reduce(op) => reduce::gradient(g, node, op, dy, needs),
        Op::Nn(op) => nn::gradient(g, node, op, dy, needs),
        Op::Collective(op) => collective::gradient(g, node, op, dy, needs),
    }
}

/// Whether gradients flow through input `index` of `op` (decided by the op's family).
pub fn differentiable_input(op: &Op, index: usize) -> bool {
    match op {
        Op::Elementwise(op) => elementwise::differentiable_input(op, index),
        Op::Shape(op) => shape::differentiable_input(op, index),
        Op::Reduce(op) => reduce::differentiable_input(op, index),
        Op::Nn(op) => nn::differentiable_input(op, index),
        Op::Collective(op) => collective::differentiable_input(op, index),
    }
}

/// The error for an op that passes no gradient, reached with a needed input (a bug in the
/// caller's graph: `differentiable_input` keeps `backward` from asking).
fn not_differentiable(node: &Node) -> GraphError {
    GraphError::NotDifferentiable(format!("{} (node {})", node.op.onnx_type(), node.name))
}

/// The gradient of output 0, which single-output rules require.
fn dy0(node: &Node, dy: OutGrads<'_>) -> Result<ValueId, GraphError> {
    dy.first()
        .copied()
        .flatten()
        .ok_or_else(|| GraphError::NotDifferentiable(format!("{}: no output gradient", node.name)))
}
