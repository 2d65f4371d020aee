//! Neural-network ops: matrix products, softmaxes and layer normalisation.

use crate::graph::dtype::{DType, Dim, Shape};
use crate::graph::infer::{Inferred, Operands, broadcast, norm_axis, one};
use crate::graph::lower::{Attribute, Lowering};
use crate::graph::{Graph, GraphError, ValueId};
use strum::{EnumDiscriminants, EnumIter};

/// A neural-network op.
#[derive(Clone, Debug, PartialEq, EnumIter, EnumDiscriminants)]
#[strum_discriminants(name(NnKind), derive(Hash))]
pub enum NnOp {
    /// Batched matrix product with broadcasting.
    MatMul,
    /// `alpha·op(A)·op(B) + beta·C` on 2-D operands; `C` optional.
    Gemm {
        /// Whether `A` is transposed.
        trans_a: bool,
        /// Whether `B` is transposed.
        trans_b: bool,
        /// Scale of the product.
        alpha: f32,
        /// Scale of `C`.
        beta: f32,
    },
    /// Softmax along an axis.
    Softmax {
        /// The axis.
        axis: i64,
    },
    /// Log-softmax along an axis.
    LogSoftmax {
        /// The axis.
        axis: i64,
    },
    /// Layer normalisation over the trailing axes from `axis`; outputs `Y` and, optionally,
    /// `Mean` and `InvStdDev` (kept for the compact backward).
    LayerNorm {
        /// The first normalised axis.
        axis: i64,
        /// Added to the variance.
        epsilon: f32,
    },
}

impl NnOp {
    /// The ONNX operator type.
    pub fn onnx_type(&self) -> &'static str {
        match self {
            NnOp::MatMul => "MatMul",
            NnOp::Gemm { .. } => "Gemm",
            NnOp::Softmax { .. } => "Softmax",
            NnOp::LogSoftmax { .. } => "LogSoftmax",
            NnOp::LayerNorm { .. } => "LayerNormalization",
        }
    }

    pub(crate) fn infer(&self, x: &Operands<'_>) -> Inferred {
        match self {
            NnOp::MatMul => {
                x.arity(2)?;
                let t = x.same_type()?;
                one(t, matmul(x.shape(0), x.shape(1))?)
            }
            NnOp::Gemm {
                trans_a, trans_b, ..
            } => gemm(x, *trans_a, *trans_b),
            NnOp::Softmax { axis } | NnOp::LogSoftmax { axis } => {
                x.arity(1)?;
                norm_axis(*axis, x.shape(0).rank())?;
                one(x.dtype(0), x.shape(0).clone())
            }
            NnOp::LayerNorm { axis, .. } => {
                x.arity(3)?;
                let s = x.shape(0);
                let a = norm_axis(*axis, s.rank())?;
                let mut stat = s.clone();
                for d in stat.0.iter_mut().skip(a) {
                    *d = Dim::fixed(1);
                }
                let mut outs = vec![(x.dtype(0), s.clone())];
                for _ in 1..x.n_outputs.min(3) {
                    // `stash_type` 1: ORT keeps the statistics in f32 whatever the input type.
                    outs.push((DType::F32, stat.clone()));
                }
                Ok(outs)
            }
        }
    }

    /// Writes the op's ONNX nodes (see [`Lowering`]).
    pub fn lower(&self, mut l: Lowering<'_>) {
        match self {
            NnOp::MatMul => {}
            NnOp::Gemm {
                trans_a,
                trans_b,
                alpha,
                beta,
            } => {
                if *trans_a {
                    l.attr("transA", Attribute::Int(1));
                }
                if *trans_b {
                    l.attr("transB", Attribute::Int(1));
                }
                if *alpha != 1.0 {
                    l.attr("alpha", Attribute::Float(*alpha));
                }
                if *beta != 1.0 {
                    l.attr("beta", Attribute::Float(*beta));
                }
            }
            NnOp::Softmax { axis } | NnOp::LogSoftmax { axis } => {
                l.attr("axis", Attribute::Int(*axis))
            }
            NnOp::LayerNorm { axis, epsilon } => {
                l.attr("axis", Attribute::Int(*axis));
                l.attr("epsilon", Attribute::Float(*epsilon));
            }
        }
        l.emit(self.onnx_type());
    }
}

fn matmul(a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    if a.rank() < 2 || b.rank() < 2 {
        return Err(GraphError::Shape(format!(
            "MatMul needs rank ≥ 2, got {a} and {b}"
        )));
    }
    let (m, ka) = (a.0[a.rank() - 2], a.0[a.rank() - 1]);
    let (kb, n) = (b.0[b.rank() - 2], b.0[b.rank() - 1]);
    if ka != kb {
        return Err(GraphError::Shape(format!(
            "MatMul inner dimensions differ: {a} × {b}"
        )));
    }
    let batch = broadcast(
        &Shape(a.0[..a.rank() - 2].to_vec()),
        &Shape(b.0[..b.rank() - 2].to_vec()),
    )?;
    let mut out = batch.0;
    out.push(m);
    out.push(n);
    Ok(Shape(out))
}

fn gemm(x: &Operands<'_>, trans_a: bool, trans_b: bool) -> Inferred {
    if x.inputs.len() != 2 && x.inputs.len() != 3 {
        return Err(GraphError::Shape("Gemm takes 2 or 3 inputs".into()));
    }
    let t = x.same_type()?;
    let (a, b) = (x.shape(0), x.shape(1));
    if a.rank() != 2 || b.rank() != 2 {
        return Err(GraphError::Shape(format!(
            "Gemm needs 2-D operands, got {a} and {b}"
        )));
    }
    let (m, ka) = if trans_a {
        (a.0[1], a.0[0])
    } else {
        (a.0[0], a.0[1])
    };
    let (kb, n) = if trans_b {
        (b.0[1], b.0[0])
    } else {
        (b.0[0], b.0[1])
    };
    if ka != kb {
        return Err(GraphError::Shape(format!(
            "Gemm inner dimensions differ: {a} × {b}"
        )));
    }
    let out = Shape(vec![m, n]);
    if x.inputs.len() == 3 {
        let c = broadcast(x.shape(2), &out)?;
        if c != out {
            return Err(GraphError::Shape(format!(
                "Gemm bias {} does not fit {out}",
                x.shape(2)
            )));
        }
    }
    one(t, out)
}

impl Graph {
    /// Batched matrix product.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn matmul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, GraphError> {
        self.op1(NnOp::MatMul, &[a, b])
    }

    /// `x·Wᵀ (+ b)` for 2-D `x` [n, in] and a PyTorch-layout weight `W` [out, in].
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn linear(
        &mut self,
        x: ValueId,
        w: ValueId,
        b: Option<ValueId>,
    ) -> Result<ValueId, GraphError> {
        let op = NnOp::Gemm {
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 1.0,
        };
        match b {
            Some(b) => self.op1(op, &[x, w, b]),
            None => self.op1(op, &[x, w]),
        }
    }
}
