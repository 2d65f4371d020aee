//! Elementwise ops: numpy-broadcasting binaries, unaries, the exact-erf GELU composite, casts
//! and the gradient barrier.

use crate::graph::dtype::DType;
use crate::graph::infer::{Inferred, Operands, broadcast, one};
use crate::graph::lower::{Attribute, Lowering};
use crate::graph::{Graph, GraphError, ValueId};
use strum::{EnumDiscriminants, EnumIter};

/// An elementwise op.
#[derive(Clone, Debug, PartialEq, EnumIter, EnumDiscriminants)]
#[strum_discriminants(name(ElementwiseKind), derive(Hash))]
pub enum ElementwiseOp {
    // --- broadcasting binaries (numpy rules) ---
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
    // --- unaries ---
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
    /// The logistic function `1/(1 + e^(−x))`.
    Sigmoid,
    /// Exact GELU, written as the erf pattern `0.5·x·(1 + erf(x/√2))` that ONNX Runtime fuses
    /// (a composite: one IR node, five ONNX nodes).
    GeluErf,
    /// Copy.
    Identity,
    /// Identity in the forward pass that blocks gradients (PyTorch's `detach`).
    StopGradient,
    /// Element type conversion.
    Cast {
        /// The target type.
        to: DType,
    },
}

impl ElementwiseOp {
    /// The ONNX operator type (`Gelu` names the GeluErf pattern).
    pub fn onnx_type(&self) -> &'static str {
        match self {
            ElementwiseOp::Add => "Add",
            ElementwiseOp::Sub => "Sub",
            ElementwiseOp::Mul => "Mul",
            ElementwiseOp::Div => "Div",
            ElementwiseOp::Pow => "Pow",
            ElementwiseOp::Max => "Max",
            ElementwiseOp::Greater => "Greater",
            ElementwiseOp::Where => "Where",
            ElementwiseOp::Neg => "Neg",
            ElementwiseOp::Sqrt => "Sqrt",
            ElementwiseOp::Exp => "Exp",
            ElementwiseOp::Log => "Log",
            ElementwiseOp::Erf => "Erf",
            ElementwiseOp::Relu => "Relu",
            ElementwiseOp::Reciprocal => "Reciprocal",
            ElementwiseOp::Sigmoid => "Sigmoid",
            ElementwiseOp::GeluErf => "Gelu",
            ElementwiseOp::Identity | ElementwiseOp::StopGradient => "Identity",
            ElementwiseOp::Cast { .. } => "Cast",
        }
    }

    pub(crate) fn infer(&self, x: &Operands<'_>) -> Inferred {
        match self {
            ElementwiseOp::Add
            | ElementwiseOp::Sub
            | ElementwiseOp::Mul
            | ElementwiseOp::Div
            | ElementwiseOp::Max => {
                x.arity(2)?;
                let t = x.same_type()?;
                one(t, broadcast(x.shape(0), x.shape(1))?)
            }
            ElementwiseOp::Pow => {
                x.arity(2)?;
                one(x.dtype(0), broadcast(x.shape(0), x.shape(1))?)
            }
            ElementwiseOp::Greater => {
                x.arity(2)?;
                x.same_type()?;
                one(DType::Bool, broadcast(x.shape(0), x.shape(1))?)
            }
            ElementwiseOp::Where => {
                x.arity(3)?;
                let s = broadcast(x.shape(0), &broadcast(x.shape(1), x.shape(2))?)?;
                one(x.dtype(1), s)
            }
            ElementwiseOp::Neg
            | ElementwiseOp::Sqrt
            | ElementwiseOp::Exp
            | ElementwiseOp::Log
            | ElementwiseOp::Erf
            | ElementwiseOp::Relu
            | ElementwiseOp::Reciprocal
            | ElementwiseOp::Sigmoid
            | ElementwiseOp::GeluErf
            | ElementwiseOp::Identity
            | ElementwiseOp::StopGradient => {
                x.arity(1)?;
                one(x.dtype(0), x.shape(0).clone())
            }
            ElementwiseOp::Cast { to } => {
                x.arity(1)?;
                one(*to, x.shape(0).clone())
            }
        }
    }

    /// Writes the op's ONNX nodes (see [`Lowering`]).
    pub fn lower(&self, mut l: Lowering<'_>) {
        match self {
            ElementwiseOp::GeluErf => {
                // Exact GELU in the pattern ONNX Runtime fuses: x·0.5·(1 + erf(x/√2)).
                let dt = l.input_dtypes[0];
                let sqrt2 = l.scalar("sqrt2", dt, std::f64::consts::SQRT_2);
                let one = l.scalar("one", dt, 1.0);
                let half = l.scalar("half", dt, 0.5);
                let x = l.inputs[0].clone();
                let d = l.helper("div", "Div", vec![x.clone(), sqrt2]);
                let f = l.helper("erf", "Erf", vec![d]);
                let a = l.helper("add", "Add", vec![f, one]);
                let m = l.helper("mul", "Mul", vec![x, a]);
                l.inputs = vec![m, half];
                l.emit("Mul");
            }
            ElementwiseOp::Cast { to } => {
                l.attr("to", Attribute::Int(to.onnx_code() as i64));
                l.emit(self.onnx_type());
            }
            ElementwiseOp::Add
            | ElementwiseOp::Sub
            | ElementwiseOp::Mul
            | ElementwiseOp::Div
            | ElementwiseOp::Pow
            | ElementwiseOp::Max
            | ElementwiseOp::Greater
            | ElementwiseOp::Where
            | ElementwiseOp::Neg
            | ElementwiseOp::Sqrt
            | ElementwiseOp::Exp
            | ElementwiseOp::Log
            | ElementwiseOp::Erf
            | ElementwiseOp::Relu
            | ElementwiseOp::Reciprocal
            | ElementwiseOp::Sigmoid
            | ElementwiseOp::Identity
            | ElementwiseOp::StopGradient => l.emit(self.onnx_type()),
        }
    }
}

impl Graph {
    /// `a + b`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, GraphError> {
        self.op1(ElementwiseOp::Add, &[a, b])
    }

    /// `a − b`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn sub(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, GraphError> {
        self.op1(ElementwiseOp::Sub, &[a, b])
    }

    /// `a · b`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn mul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, GraphError> {
        self.op1(ElementwiseOp::Mul, &[a, b])
    }

    /// `a / b`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn div(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, GraphError> {
        self.op1(ElementwiseOp::Div, &[a, b])
    }

    /// `a · c` for a scalar constant `c`.
    ///
    /// # Errors
    /// Never in practice (scalars broadcast).
    pub fn mul_scalar(&mut self, a: ValueId, c: f64) -> Result<ValueId, GraphError> {
        let s = self.scalar_like(a, c);
        self.mul(a, s)
    }

    /// `a + c` for a scalar constant `c`.
    ///
    /// # Errors
    /// Never in practice (scalars broadcast).
    pub fn add_scalar(&mut self, a: ValueId, c: f64) -> Result<ValueId, GraphError> {
        let s = self.scalar_like(a, c);
        self.add(a, s)
    }

    /// The logistic function `1/(1 + e^(−x))`.
    ///
    /// # Errors
    /// Never.
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::graph::{DType, Graph, Shape};
    /// let mut g = Graph::new("gate");
    /// let x = g.input("x", DType::F32, Shape::fixed(&[2, 3]));
    /// let y = g.sigmoid(x).unwrap();
    /// assert_eq!(g.op_histogram()["Sigmoid"], 1);
    /// assert_eq!(g.fixed_shape(y).unwrap(), vec![2, 3]);
    /// ```
    pub fn sigmoid(&mut self, x: ValueId) -> Result<ValueId, GraphError> {
        self.op1(ElementwiseOp::Sigmoid, &[x])
    }

    /// Unary op helper.
    ///
    /// # Errors
    /// Never for unary elementwise ops.
    pub fn unary(&mut self, op: ElementwiseOp, x: ValueId) -> Result<ValueId, GraphError> {
        self.op1(op, &[x])
    }

    /// Identity that blocks gradients.
    ///
    /// # Errors
    /// Never.
    pub fn stop_gradient(&mut self, x: ValueId) -> Result<ValueId, GraphError> {
        self.op1(ElementwiseOp::StopGradient, &[x])
    }
}
