//! One gradient rule per op type, in the style of ONNX Runtime's gradient builders: each rule
//! receives the node and the gradients of its outputs (`None` where an output got no gradient)
//! and returns gradients for the inputs flagged in `needs`, built from standard ONNX ops.
//!
//! The dispatch below is an exhaustive `match` (no wildcard arm), so adding an op to the IR
//! without deciding its gradient is a compile error.

mod elementwise;
mod nn;
mod reduce;
mod shape;

use patchmix_export::graph::{Graph, GraphError, Node, Op, ValueId};

/// Output gradients of a node (`None`: no gradient reached that output).
pub type OutGrads<'a> = &'a [Option<ValueId>];
/// Input gradients returned by a rule (`None` where not needed or not defined).
pub type InGrads = Vec<Option<ValueId>>;

/// Returns the gradient of `node`'s inputs.
///
/// # Errors
/// [`GraphError::NotDifferentiable`] for ops or operands without a gradient.
pub fn gradient(
    g: &mut Graph,
    node: &Node,
    dy: OutGrads<'_>,
    needs: &[bool],
) -> Result<InGrads, GraphError> {
    let not_diff =
        || GraphError::NotDifferentiable(format!("{} (node {})", node.op.onnx_type(), node.name));
    match &node.op {
        Op::Add => elementwise::add(g, node, dy),
        Op::Sub => elementwise::sub(g, node, dy),
        Op::Mul => elementwise::mul(g, node, dy, needs),
        Op::Div => elementwise::div(g, node, dy, needs),
        Op::Pow => elementwise::pow(g, node, dy),
        Op::Max => elementwise::max(g, node, dy),
        Op::Where => elementwise::where_(g, node, dy),
        Op::Neg => elementwise::neg(g, node, dy),
        Op::Sqrt => elementwise::sqrt(g, node, dy),
        Op::Exp => elementwise::exp(g, node, dy),
        Op::Log => elementwise::log(g, node, dy),
        Op::Erf => elementwise::erf(g, node, dy),
        Op::Relu => elementwise::relu(g, node, dy),
        Op::Reciprocal => elementwise::reciprocal(g, node, dy),
        Op::Gelu => elementwise::gelu(g, node, dy),
        Op::Identity => Ok(vec![dy[0]]),
        Op::Cast { .. } => elementwise::cast(g, node, dy),
        Op::Reshape { .. } | Op::Unsqueeze { .. } => shape::reshape_back(g, node, dy),
        Op::Transpose { perm } => shape::transpose(g, perm, dy),
        Op::Slice { starts, ends, axes } => shape::slice(g, node, starts, ends, axes, dy),
        Op::Concat { axis } => shape::concat(g, node, *axis, dy),
        Op::Split { axis, .. } => shape::split(g, node, *axis, dy),
        Op::Pad { pads } => shape::pad(g, node, pads, dy),
        Op::Expand { .. } => shape::expand(g, node, dy),
        Op::Gather { axis } => shape::gather(g, node, *axis, dy),
        Op::ReduceSum { axes, keepdims } => reduce::reduce(g, node, axes, *keepdims, false, dy),
        Op::ReduceMean { axes, keepdims } => reduce::reduce(g, node, axes, *keepdims, true, dy),
        Op::MatMul => nn::matmul(g, node, dy, needs),
        Op::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => nn::gemm(g, node, (*trans_a, *trans_b, *alpha, *beta), dy, needs),
        Op::Softmax { axis } => nn::softmax(g, node, *axis, dy),
        Op::LogSoftmax { axis } => nn::log_softmax(g, node, *axis, dy),
        Op::LayerNorm { axis, epsilon } => nn::layer_norm(g, node, *axis, *epsilon, dy, needs),
        // No gradient flows through these (see `differentiable_input`); reaching them with a
        // needed input is a bug in the caller's graph.
        Op::StopGradient | Op::Greater | Op::Zeros { .. } | Op::ScatterNdAdd => Err(not_diff()),
    }
}

/// The gradient of output 0, which single-output rules require.
fn dy0(node: &Node, dy: OutGrads<'_>) -> Result<ValueId, GraphError> {
    dy.first()
        .copied()
        .flatten()
        .ok_or_else(|| GraphError::NotDifferentiable(format!("{}: no output gradient", node.name)))
}
