//! Reductions over axes.

use crate::graph::dtype::{Dim, Shape};
use crate::graph::infer::{Inferred, Operands, norm_axis, one};
use crate::graph::lower::{Attribute, Lowering};
use crate::graph::{Graph, GraphError, ValueId};
use strum::{EnumDiscriminants, EnumIter};

/// A reduction.
#[derive(Clone, Debug, PartialEq, EnumIter, EnumDiscriminants)]
#[strum_discriminants(name(ReduceKind), derive(Hash))]
pub enum ReduceOp {
    /// Sum over axes.
    ReduceSum {
        /// The reduced axes.
        axes: Vec<i64>,
        /// Whether reduced axes stay as size 1.
        keepdims: bool,
    },
    /// Mean over axes.
    ReduceMean {
        /// The reduced axes.
        axes: Vec<i64>,
        /// Whether reduced axes stay as size 1.
        keepdims: bool,
    },
}

impl ReduceOp {
    /// The ONNX operator type.
    pub fn onnx_type(&self) -> &'static str {
        match self {
            ReduceOp::ReduceSum { .. } => "ReduceSum",
            ReduceOp::ReduceMean { .. } => "ReduceMean",
        }
    }

    pub(crate) fn infer(&self, x: &Operands<'_>) -> Inferred {
        match self {
            ReduceOp::ReduceSum { axes, keepdims } | ReduceOp::ReduceMean { axes, keepdims } => {
                x.arity(1)?;
                one(x.dtype(0), reduce(x.shape(0), axes, *keepdims)?)
            }
        }
    }

    /// Writes the op's ONNX nodes (see [`Lowering`]).
    pub fn lower(&self, mut l: Lowering<'_>) {
        match self {
            // Opset 13 moved ReduceSum's axes to an input; ReduceMean keeps the attribute
            // until opset 18.
            ReduceOp::ReduceSum { axes, keepdims } => {
                l.i64_operand("axes", axes);
                l.attr("keepdims", Attribute::Int(*keepdims as i64));
            }
            ReduceOp::ReduceMean { axes, keepdims } => {
                l.attr("axes", Attribute::Ints(axes.clone()));
                l.attr("keepdims", Attribute::Int(*keepdims as i64));
            }
        }
        l.emit(self.onnx_type());
    }
}

fn reduce(input: &Shape, axes: &[i64], keepdims: bool) -> Result<Shape, GraphError> {
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, input.rank()))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, d) in input.0.iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                out.push(Dim::fixed(1));
            }
        } else {
            out.push(*d);
        }
    }
    Ok(Shape(out))
}

impl Graph {
    /// Sum over axes.
    ///
    /// # Errors
    /// Bad axis.
    pub fn reduce_sum(
        &mut self,
        x: ValueId,
        axes: &[i64],
        keepdims: bool,
    ) -> Result<ValueId, GraphError> {
        self.op1(
            ReduceOp::ReduceSum {
                axes: axes.to_vec(),
                keepdims,
            },
            &[x],
        )
    }

    /// Mean over axes.
    ///
    /// # Errors
    /// Bad axis.
    pub fn reduce_mean(
        &mut self,
        x: ValueId,
        axes: &[i64],
        keepdims: bool,
    ) -> Result<ValueId, GraphError> {
        self.op1(
            ReduceOp::ReduceMean {
                axes: axes.to_vec(),
                keepdims,
            },
            &[x],
        )
    }
}
