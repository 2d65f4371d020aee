//! Shape ops: they move, select or create values without arithmetic (reshapes, transposes,
//! slices, concatenation, splits, padding, broadcasting, gathers and scatters, zeros).

use crate::graph::dtype::{DType, Dim, Shape};
use crate::graph::infer::{Inferred, Operands, broadcast, norm_axis, one};
use crate::graph::lower::{Attribute, Lowering};
use crate::graph::tensor::TensorData;
use crate::graph::{Graph, GraphError, ValueId};
use strum::{EnumDiscriminants, EnumIter};

/// A shape op.
#[derive(Clone, Debug, PartialEq, EnumIter, EnumDiscriminants)]
#[strum_discriminants(name(ShapeKind), derive(Hash))]
pub enum ShapeOp {
    /// Reshape to a target with ONNX semantics (`0` copies, `-1` infers).
    Reshape {
        /// The target shape.
        shape: Vec<i64>,
    },
    /// Axis permutation.
    Transpose {
        /// Output axis `i` is input axis `perm[i]`.
        perm: Vec<usize>,
    },
    /// Strided slice on the given axes (ONNX semantics, steps of 1).
    Slice {
        /// First index per axis.
        starts: Vec<i64>,
        /// One past the last index per axis.
        ends: Vec<i64>,
        /// The sliced axes.
        axes: Vec<i64>,
    },
    /// Concatenation along an axis.
    Concat {
        /// The axis.
        axis: i64,
    },
    /// Split along an axis into parts of the given sizes (one output each).
    Split {
        /// The axis.
        axis: i64,
        /// The size of each part.
        sizes: Vec<i64>,
    },
    /// Constant zero padding; `pads` is ONNX's `[begin…, end…]`.
    Pad {
        /// Padding per axis, begins then ends.
        pads: Vec<i64>,
    },
    /// Broadcast to a shape.
    Expand {
        /// The target shape.
        shape: Vec<i64>,
    },
    /// Insert unit axes.
    Unsqueeze {
        /// Positions of the new axes in the output.
        axes: Vec<i64>,
    },
    /// Gather along an axis with an index tensor (second input, i64).
    Gather {
        /// The axis.
        axis: i64,
    },
    /// `data` with `updates` added at `indices` (ScatterND with `reduction = "add"`).
    ScatterNdAdd,
    /// `ConstantOfShape` of zeros with a static shape.
    Zeros {
        /// The shape.
        shape: Vec<i64>,
        /// The element type.
        dtype: DType,
    },
}

impl ShapeOp {
    /// The ONNX operator type.
    pub fn onnx_type(&self) -> &'static str {
        match self {
            ShapeOp::Reshape { .. } => "Reshape",
            ShapeOp::Transpose { .. } => "Transpose",
            ShapeOp::Slice { .. } => "Slice",
            ShapeOp::Concat { .. } => "Concat",
            ShapeOp::Split { .. } => "Split",
            ShapeOp::Pad { .. } => "Pad",
            ShapeOp::Expand { .. } => "Expand",
            ShapeOp::Unsqueeze { .. } => "Unsqueeze",
            ShapeOp::Gather { .. } => "Gather",
            ShapeOp::ScatterNdAdd => "ScatterND",
            ShapeOp::Zeros { .. } => "ConstantOfShape",
        }
    }

    pub(crate) fn infer(&self, x: &Operands<'_>) -> Inferred {
        match self {
            ShapeOp::Reshape { shape } => {
                x.arity(1)?;
                one(x.dtype(0), reshape(x.shape(0), shape)?)
            }
            ShapeOp::Transpose { perm } => {
                x.arity(1)?;
                let s = x.shape(0);
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..s.rank()).collect::<Vec<_>>() {
                    return Err(GraphError::Shape(format!(
                        "bad transpose perm {perm:?} for {s}"
                    )));
                }
                one(x.dtype(0), Shape(perm.iter().map(|&p| s.0[p]).collect()))
            }
            ShapeOp::Slice { starts, ends, axes } => {
                x.arity(1)?;
                let mut s = x.shape(0).clone();
                for ((&st, &en), &ax) in starts.iter().zip(ends).zip(axes) {
                    let a = norm_axis(ax, s.rank())?;
                    s.0[a] = slice_dim(s.0[a], st, en)?;
                }
                one(x.dtype(0), s)
            }
            ShapeOp::Concat { axis } => concat(x, *axis),
            ShapeOp::Split { axis, sizes } => {
                x.arity(1)?;
                let s = x.shape(0);
                let a = norm_axis(*axis, s.rank())?;
                let n = s.0[a]
                    .as_fixed()
                    .ok_or_else(|| GraphError::Shape("split on batch axis".into()))?;
                if sizes.iter().sum::<i64>() != n as i64 || sizes.len() != x.n_outputs {
                    return Err(GraphError::Shape(format!(
                        "split sizes {sizes:?} do not fit axis {a} of {s}"
                    )));
                }
                Ok(sizes
                    .iter()
                    .map(|&k| {
                        let mut o = s.clone();
                        o.0[a] = Dim::fixed(k as usize);
                        (x.dtype(0), o)
                    })
                    .collect())
            }
            ShapeOp::Pad { pads } => {
                x.arity(1)?;
                one(x.dtype(0), pad(x.shape(0), pads)?)
            }
            ShapeOp::Expand { shape } => {
                x.arity(1)?;
                let target = Shape::fixed(&shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
                one(x.dtype(0), broadcast(x.shape(0), &target)?)
            }
            ShapeOp::Unsqueeze { axes } => {
                x.arity(1)?;
                one(x.dtype(0), unsqueeze(x.shape(0), axes)?)
            }
            ShapeOp::Gather { axis } => {
                x.arity(2)?;
                let (data, idx) = (x.shape(0), x.shape(1));
                let a = norm_axis(*axis, data.rank())?;
                let mut out = data.0[..a].to_vec();
                out.extend_from_slice(&idx.0);
                out.extend_from_slice(&data.0[a + 1..]);
                one(x.dtype(0), Shape(out))
            }
            ShapeOp::ScatterNdAdd => {
                x.arity(3)?;
                one(x.dtype(0), x.shape(0).clone())
            }
            ShapeOp::Zeros { shape, dtype } => {
                x.arity(0)?;
                one(
                    *dtype,
                    Shape::fixed(&shape.iter().map(|&d| d as usize).collect::<Vec<_>>()),
                )
            }
        }
    }

    /// Writes the op's ONNX nodes (see [`Lowering`]).
    pub fn lower(&self, mut l: Lowering<'_>) {
        match self {
            ShapeOp::Reshape { shape } => l.i64_operand("shape", shape),
            ShapeOp::Transpose { perm } => l.attr(
                "perm",
                Attribute::Ints(perm.iter().map(|&p| p as i64).collect()),
            ),
            ShapeOp::Slice { starts, ends, axes } => {
                l.i64_operand("starts", starts);
                l.i64_operand("ends", ends);
                l.i64_operand("axes", axes);
            }
            ShapeOp::Concat { axis } => l.attr("axis", Attribute::Int(*axis)),
            ShapeOp::Split { axis, sizes } => {
                l.attr("axis", Attribute::Int(*axis));
                l.i64_operand("split", sizes);
            }
            ShapeOp::Pad { pads } => l.i64_operand("pads", pads),
            ShapeOp::Expand { shape } => l.i64_operand("shape", shape),
            ShapeOp::Unsqueeze { axes } => l.i64_operand("axes", axes),
            ShapeOp::Gather { axis } => l.attr("axis", Attribute::Int(*axis)),
            ShapeOp::ScatterNdAdd => l.attr("reduction", Attribute::String("add")),
            ShapeOp::Zeros { shape, dtype } => {
                l.i64_operand("shape", shape);
                let zero = match dtype {
                    DType::F64 => TensorData::F64(vec![0.0]),
                    DType::I64 => TensorData::I64(vec![0]),
                    DType::Bool => TensorData::Bool(vec![false]),
                    DType::F32 | DType::F16 | DType::BF16 => TensorData::F32(vec![0.0]),
                };
                l.attr("value", Attribute::Tensor(zero));
            }
        }
        l.emit(self.onnx_type());
    }
}

fn reshape(input: &Shape, target: &[i64]) -> Result<Shape, GraphError> {
    let total = input
        .numel()
        .ok_or_else(|| GraphError::Shape(format!("shape {input} has batch² elements")))?;
    let mut dims = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => dims.push(*input.0.get(i).ok_or_else(|| {
                GraphError::Shape(format!(
                    "reshape {input} to {target:?}: 0 at axis {i} has no source"
                ))
            })?),
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                dims.push(Dim::fixed(1));
            }
            t if t > 0 => dims.push(Dim::fixed(t as usize)),
            _ => {
                return Err(GraphError::Shape(format!(
                    "reshape target {target:?} is invalid"
                )));
            }
        }
    }
    let known = Shape(dims.clone())
        .numel()
        .ok_or_else(|| GraphError::Shape("batch²".into()))?;
    if let Some(i) = infer_at {
        if known.batch && !total.batch || known.n == 0 || total.n % known.n != 0 {
            return Err(GraphError::Shape(format!(
                "cannot reshape {input} to {target:?}"
            )));
        }
        dims[i] = Dim {
            n: total.n / known.n,
            batch: total.batch && !known.batch,
        };
    } else if known != total {
        return Err(GraphError::Shape(format!(
            "cannot reshape {input} to {target:?}"
        )));
    }
    Ok(Shape(dims))
}

fn slice_dim(d: Dim, start: i64, end: i64) -> Result<Dim, GraphError> {
    let n = d
        .as_fixed()
        .ok_or_else(|| GraphError::Shape("slice of a symbolic axis".into()))? as i64;
    let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
    let (s, e) = (clamp(start), clamp(end));
    Ok(Dim::fixed((e - s).max(0) as usize))
}

fn concat(x: &Operands<'_>, axis: i64) -> Inferred {
    let t = x.same_type()?;
    let first = x.shape(0);
    let a = norm_axis(axis, first.rank())?;
    let mut out = first.clone();
    let mut total = 0;
    for (_, s) in x.inputs {
        if s.rank() != first.rank()
            || s.0
                .iter()
                .zip(&first.0)
                .enumerate()
                .any(|(i, (d, e))| i != a && d != e)
        {
            return Err(GraphError::Shape(format!(
                "Concat of {first} and {s} on axis {a}"
            )));
        }
        total += s.0[a]
            .as_fixed()
            .ok_or_else(|| GraphError::Shape("concat on batch axis".into()))?;
    }
    out.0[a] = Dim::fixed(total);
    one(t, out)
}

fn pad(s: &Shape, pads: &[i64]) -> Result<Shape, GraphError> {
    if pads.len() != 2 * s.rank() {
        return Err(GraphError::Shape(format!(
            "pads {pads:?} do not fit rank {}",
            s.rank()
        )));
    }
    let mut out = s.clone();
    for i in 0..s.rank() {
        let extra = pads[i] + pads[i + s.rank()];
        if extra != 0 {
            let n = s.0[i]
                .as_fixed()
                .ok_or_else(|| GraphError::Shape("pad on batch axis".into()))?;
            out.0[i] = Dim::fixed((n as i64 + extra) as usize);
        }
    }
    Ok(out)
}

fn unsqueeze(s: &Shape, axes: &[i64]) -> Result<Shape, GraphError> {
    let rank = s.rank() + axes.len();
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()?;
    let mut src = s.0.iter();
    let out = (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                Dim::fixed(1)
            } else {
                *src.next().unwrap_or(&Dim::fixed(1))
            }
        })
        .collect();
    Ok(Shape(out))
}

impl Graph {
    /// Reshape with ONNX semantics.
    ///
    /// # Errors
    /// Element count mismatch.
    pub fn reshape(&mut self, x: ValueId, shape: &[i64]) -> Result<ValueId, GraphError> {
        self.op1(
            ShapeOp::Reshape {
                shape: shape.to_vec(),
            },
            &[x],
        )
    }

    /// Axis permutation.
    ///
    /// # Errors
    /// Bad permutation.
    pub fn transpose(&mut self, x: ValueId, perm: &[usize]) -> Result<ValueId, GraphError> {
        self.op1(
            ShapeOp::Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }
}
