//! The operator set of the IR: standard ONNX operators with their attributes held statically,
//! grouped in families. Each family file holds its ops' definitions, their shape and type
//! inference, their ONNX lowering and the [`Graph`](super::Graph) builders for them, so adding an
//! op touches one file here (and its gradient rule in the mirrored family of the autodiff).
//!
//! Constant operands that ONNX passes as inputs since opset 13 (Reshape's shape, Slice's
//! bounds, Pad's pads, Split's sizes, ReduceSum's axes, Expand's shape, Unsqueeze's axes) are
//! attributes here, so that gradient rules can read them; the lowering writes them as
//! initializers. [`ElementwiseOp::GeluErf`] is the one composite: it is differentiated as a
//! whole and written as the exact-erf pattern `0.5·x·(1 + erf(x/√2))`, which ONNX Runtime fuses
//! into its kernel.

mod collective;
mod elementwise;
mod nn;
mod reduce;
mod shape;

pub use collective::{COLLECTIVE_DOMAIN, COLLECTIVE_DOMAIN_VERSION, CollectiveKind, CollectiveOp};
pub use elementwise::{ElementwiseKind, ElementwiseOp};
pub use nn::{NnKind, NnOp};
pub use reduce::{ReduceKind, ReduceOp};
pub use shape::{ShapeKind, ShapeOp};

use super::lower::Lowering;
use strum::IntoEnumIterator;

/// An operator and its static attributes, by family.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Broadcasting binaries, unaries, casts and comparisons.
    Elementwise(ElementwiseOp),
    /// Layout ops: reshapes, slices, concatenation, padding, gathers, constants of a shape.
    Shape(ShapeOp),
    /// Reductions over axes.
    Reduce(ReduceOp),
    /// Neural-network ops: matrix products, softmaxes, layer normalisation.
    Nn(NnOp),
    /// Collectives across data-parallel ranks (custom domain, not standard ONNX).
    Collective(CollectiveOp),
}

/// The kind of an op: its variant without the attributes (for tables and coverage checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// An [`ElementwiseOp`].
    Elementwise(ElementwiseKind),
    /// A [`ShapeOp`].
    Shape(ShapeKind),
    /// A [`ReduceOp`].
    Reduce(ReduceKind),
    /// An [`NnOp`].
    Nn(NnKind),
    /// A [`CollectiveOp`].
    Collective(CollectiveKind),
}

macro_rules! family_conversions {
    ($($family:ident($op:ty, $kind:ty)),*) => {$(
        impl From<$op> for Op {
            fn from(op: $op) -> Op {
                Op::$family(op)
            }
        }
        impl From<$kind> for OpKind {
            fn from(kind: $kind) -> OpKind {
                OpKind::$family(kind)
            }
        }
    )*};
}

family_conversions!(
    Elementwise(ElementwiseOp, ElementwiseKind),
    Shape(ShapeOp, ShapeKind),
    Reduce(ReduceOp, ReduceKind),
    Nn(NnOp, NnKind),
    Collective(CollectiveOp, CollectiveKind)
);

impl Op {
    /// The ONNX operator type written for this op (for the composite
    /// [`ElementwiseOp::GeluErf`], the name of its pattern, `Gelu`). Node names derive from it.
    pub fn onnx_type(&self) -> &'static str {
        match self {
            Op::Elementwise(op) => op.onnx_type(),
            Op::Shape(op) => op.onnx_type(),
            Op::Reduce(op) => op.onnx_type(),
            Op::Nn(op) => op.onnx_type(),
            Op::Collective(op) => op.onnx_type(),
        }
    }

    /// The op's kind (its variant without attributes).
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Elementwise(op) => OpKind::Elementwise(op.into()),
            Op::Shape(op) => OpKind::Shape(op.into()),
            Op::Reduce(op) => OpKind::Reduce(op.into()),
            Op::Nn(op) => OpKind::Nn(op.into()),
            Op::Collective(op) => OpKind::Collective(op.into()),
        }
    }

    /// One op of every kind, with default attributes, derived from the enums themselves so that
    /// a new variant cannot be left out (used by the gradient-coverage test).
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::graph::{ElementwiseOp, Op};
    /// let all = Op::one_of_each_kind();
    /// assert!(all.contains(&Op::Elementwise(ElementwiseOp::Add)));
    /// ```
    pub fn one_of_each_kind() -> Vec<Op> {
        ElementwiseOp::iter()
            .map(Op::from)
            .chain(ShapeOp::iter().map(Op::from))
            .chain(ReduceOp::iter().map(Op::from))
            .chain(NnOp::iter().map(Op::from))
            .chain(CollectiveOp::iter().map(Op::from))
            .collect()
    }

    /// Writes the op's ONNX nodes through `l` (the ONNX writer's [`OnnxSink`](super::OnnxSink)).
    pub fn lower(&self, l: Lowering<'_>) {
        match self {
            Op::Elementwise(op) => op.lower(l),
            Op::Shape(op) => op.lower(l),
            Op::Reduce(op) => op.lower(l),
            Op::Nn(op) => op.lower(l),
            Op::Collective(op) => op.lower(l),
        }
    }
}
