//! The operator set of the IR: standard ONNX operators with their attributes held statically.
//!
//! Constant operands that ONNX passes as inputs since opset 13 (Reshape's shape, Slice's
//! bounds, Pad's pads, Split's sizes, ReduceSum's axes, Expand's shape, Unsqueeze's axes) are
//! attributes here, so that gradient rules can read them; the ONNX writer lowers them to
//! initializers. [`Op::Gelu`] is the one composite: it is differentiated as a whole and written
//! as the exact-erf pattern `0.5·x·(1 + erf(x/√2))`, which ONNX Runtime fuses into its kernel.

use super::dtype::DType;

/// An operator and its static attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // --- elementwise, broadcasting (numpy rules) ---
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a ^ b` (the gradient needs `b` constant).
    Pow,
    /// Elementwise maximum of two tensors.
    Max,
    /// `a > b` (boolean).
    Greater,
    /// `cond ? a : b`.
    Where,
    // --- elementwise, unary ---
    /// `−x`.
    Neg,
    /// `√x`.
    Sqrt,
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// The error function.
    Erf,
    /// `max(x, 0)`.
    Relu,
    /// `1/x`.
    Reciprocal,
    /// Exact GELU `0.5·x·(1 + erf(x/√2))` (composite; see the module docs).
    Gelu,
    /// Copy.
    Identity,
    /// Identity in the forward pass that blocks gradients (PyTorch's `detach`).
    StopGradient,
    /// Element type conversion.
    Cast { to: DType },
    // --- shape ---
    /// Reshape to a target with ONNX semantics (`0` copies, `-1` infers).
    Reshape { shape: Vec<i64> },
    /// Axis permutation.
    Transpose { perm: Vec<usize> },
    /// Strided slice on the given axes (ONNX semantics, steps of 1).
    Slice {
        starts: Vec<i64>,
        ends: Vec<i64>,
        axes: Vec<i64>,
    },
    /// Concatenation along an axis.
    Concat { axis: i64 },
    /// Split along an axis into parts of the given sizes (one output each).
    Split { axis: i64, sizes: Vec<i64> },
    /// Constant zero padding; `pads` is ONNX's `[begin…, end…]`.
    Pad { pads: Vec<i64> },
    /// Broadcast to a shape.
    Expand { shape: Vec<i64> },
    /// Insert unit axes.
    Unsqueeze { axes: Vec<i64> },
    /// Gather along an axis with an index tensor (second input, i64).
    Gather { axis: i64 },
    /// `data` with `updates` added at `indices` (ScatterND with `reduction = "add"`).
    ScatterNdAdd,
    // --- reductions ---
    /// Sum over axes.
    ReduceSum { axes: Vec<i64>, keepdims: bool },
    /// Mean over axes.
    ReduceMean { axes: Vec<i64>, keepdims: bool },
    // --- neural network ---
    /// Batched matrix product with broadcasting.
    MatMul,
    /// `alpha·op(A)·op(B) + beta·C` on 2-D operands; `C` optional.
    Gemm {
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    },
    /// Softmax along an axis.
    Softmax { axis: i64 },
    /// Log-softmax along an axis.
    LogSoftmax { axis: i64 },
    /// Layer normalisation over the trailing axes from `axis`; outputs `Y` and, optionally,
    /// `Mean` and `InvStdDev` (kept for the compact backward).
    LayerNorm { axis: i64, epsilon: f32 },
    /// `ConstantOfShape` of zeros with a static shape.
    Zeros { shape: Vec<i64>, dtype: DType },
}

impl Op {
    /// The ONNX operator type written for this op.
    pub fn onnx_type(&self) -> &'static str {
        match self {
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Pow => "Pow",
            Op::Max => "Max",
            Op::Greater => "Greater",
            Op::Where => "Where",
            Op::Neg => "Neg",
            Op::Sqrt => "Sqrt",
            Op::Exp => "Exp",
            Op::Log => "Log",
            Op::Erf => "Erf",
            Op::Relu => "Relu",
            Op::Reciprocal => "Reciprocal",
            Op::Gelu => "Gelu",
            Op::Identity | Op::StopGradient => "Identity",
            Op::Cast { .. } => "Cast",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Slice { .. } => "Slice",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Pad { .. } => "Pad",
            Op::Expand { .. } => "Expand",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Gather { .. } => "Gather",
            Op::ScatterNdAdd => "ScatterND",
            Op::ReduceSum { .. } => "ReduceSum",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::MatMul => "MatMul",
            Op::Gemm { .. } => "Gemm",
            Op::Softmax { .. } => "Softmax",
            Op::LogSoftmax { .. } => "LogSoftmax",
            Op::LayerNorm { .. } => "LayerNormalization",
            Op::Zeros { .. } => "ConstantOfShape",
        }
    }

    /// Whether the op is an elementwise binary op with numpy broadcasting.
    pub fn is_elementwise_binary(&self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Max | Op::Greater
        )
    }
}
