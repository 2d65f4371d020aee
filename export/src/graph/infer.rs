//! The generic half of shape and type inference: broadcasting, axis normalisation and the
//! operand checks every rule shares. Each op family infers its own ops (`graph/ops/`).

use super::GraphError;
use super::dtype::{DType, Dim, Shape};
use super::ops::Op;

/// Normalises a possibly negative axis against a rank.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, GraphError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(GraphError::Shape(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    let rank = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.rank() >= rank {
            a.0[i + a.rank() - rank]
        } else {
            Dim::fixed(1)
        };
        let db = if i + b.rank() >= rank {
            b.0[i + b.rank() - rank]
        } else {
            Dim::fixed(1)
        };
        let d = if da == db || db == Dim::fixed(1) {
            da
        } else if da == Dim::fixed(1) {
            db
        } else {
            return Err(GraphError::Shape(format!("cannot broadcast {a} with {b}")));
        };
        out.push(d);
    }
    Ok(Shape(out))
}

/// The operands of a node under inference, with the checks rules share.
pub(crate) struct Operands<'a> {
    op: &'static str,
    /// Element type and shape of each input, in ONNX order.
    pub inputs: &'a [(DType, &'a Shape)],
    /// How many outputs the node asks for.
    pub n_outputs: usize,
}

/// The inferred element type and shape of each output.
pub(crate) type Inferred = Result<Vec<(DType, Shape)>, GraphError>;

impl Operands<'_> {
    /// Fails unless there are exactly `n` inputs.
    pub fn arity(&self, n: usize) -> Result<(), GraphError> {
        if self.inputs.len() == n {
            Ok(())
        } else {
            Err(GraphError::Shape(format!(
                "{} takes {n} inputs, got {}",
                self.op,
                self.inputs.len()
            )))
        }
    }

    /// The common element type of all inputs.
    pub fn same_type(&self) -> Result<DType, GraphError> {
        let t = self.inputs[0].0;
        if self.inputs.iter().any(|(d, _)| *d != t) {
            return Err(GraphError::Shape(format!(
                "{} inputs differ in type",
                self.op
            )));
        }
        Ok(t)
    }

    /// Element type of input `i`.
    pub fn dtype(&self, i: usize) -> DType {
        self.inputs[i].0
    }

    /// Shape of input `i`.
    pub fn shape(&self, i: usize) -> &Shape {
        self.inputs[i].1
    }
}

/// A single output.
pub(crate) fn one(dtype: DType, shape: Shape) -> Inferred {
    Ok(vec![(dtype, shape)])
}

/// Infers the output types and shapes of `op` applied to inputs of the given types and shapes.
///
/// # Errors
/// [`GraphError::Shape`] when the inputs do not fit the op.
pub(crate) fn infer(op: &Op, inputs: &[(DType, &Shape)], n_outputs: usize) -> Inferred {
    let operands = Operands {
        op: op.onnx_type(),
        inputs,
        n_outputs,
    };
    match op {
        Op::Elementwise(op) => op.infer(&operands),
        Op::Shape(op) => op.infer(&operands),
        Op::Reduce(op) => op.infer(&operands),
        Op::Nn(op) => op.infer(&operands),
        Op::Collective(op) => op.infer(&operands),
    }
}
