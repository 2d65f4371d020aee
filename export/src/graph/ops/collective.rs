//! Collectives across data-parallel ranks: the ops through which the step graphs of W ranks add
//! up to one global step (gradient averaging, SyncBatchNorm statistics, gathered keys).
//!
//! They are not ONNX operators. They lower to nodes of the custom domain [`COLLECTIVE_DOMAIN`],
//! whose kernels the trainer registers with ONNX Runtime as custom operators (MPI between CPU
//! processes, NCCL on CUDA). A graph built for one process holds none, so its ONNX bytes stay
//! those of a standard-op graph.

use crate::graph::dtype::{DType, Dim, Shape};
use crate::graph::infer::{Inferred, Operands, one};
use crate::graph::lower::{Attribute, Lowering};
use crate::graph::{Graph, GraphError, ValueId};
use strum::{EnumDiscriminants, EnumIter};

/// The ONNX domain of the collective ops.
pub const COLLECTIVE_DOMAIN: &str = "ai.patchmix.dist";
/// The version of [`COLLECTIVE_DOMAIN`] the writer imports.
pub const COLLECTIVE_DOMAIN_VERSION: i64 = 1;

/// A collective over the ranks of a data-parallel world. Every rank runs the same node with a
/// tensor of the same shape; the node returns on every rank only once all ranks reached it.
#[derive(Clone, Debug, PartialEq, EnumIter, EnumDiscriminants)]
#[strum_discriminants(name(CollectiveKind), derive(Hash))]
pub enum CollectiveOp {
    /// The elementwise sum of the input over all ranks (MPI/NCCL all-reduce with sum); every
    /// rank gets the sum. Float32 only.
    AllReduceSum,
    /// The inputs of all ranks concatenated along axis 0 in rank order (all-gather); the
    /// output's axis 0 is `world_size` times the input's. Float32 only.
    AllGather {
        /// The number of ranks, which fixes the output shape (the kernel checks it against
        /// the communicator it runs on).
        world_size: usize,
    },
}

impl CollectiveOp {
    /// The operator type written in [`COLLECTIVE_DOMAIN`].
    pub fn onnx_type(&self) -> &'static str {
        match self {
            CollectiveOp::AllReduceSum => "AllReduceSum",
            CollectiveOp::AllGather { .. } => "AllGather",
        }
    }

    pub(crate) fn infer(&self, x: &Operands<'_>) -> Inferred {
        x.arity(1)?;
        if x.dtype(0) != DType::F32 {
            return Err(GraphError::Shape(format!(
                "{} takes float32, got {:?}",
                self.onnx_type(),
                x.dtype(0)
            )));
        }
        match self {
            CollectiveOp::AllReduceSum => one(DType::F32, x.shape(0).clone()),
            CollectiveOp::AllGather { world_size } => {
                let shape = x.shape(0);
                let first = shape.0.first().and_then(|d| d.as_fixed()).ok_or_else(|| {
                    GraphError::Shape(format!("AllGather needs a fixed axis 0, got shape {shape}"))
                })?;
                if *world_size == 0 {
                    return Err(GraphError::Shape("AllGather over 0 ranks".into()));
                }
                let mut out = shape.0.clone();
                out[0] = Dim::fixed(first * world_size);
                one(DType::F32, Shape(out))
            }
        }
    }

    /// Writes the op as one node of [`COLLECTIVE_DOMAIN`] (see [`Lowering`]).
    pub fn lower(&self, mut l: Lowering<'_>) {
        if let CollectiveOp::AllGather { world_size } = self {
            l.attr("world_size", Attribute::Int(*world_size as i64));
        }
        l.emit_in_domain(COLLECTIVE_DOMAIN, self.onnx_type());
    }
}

impl Graph {
    /// The sum of `x` over all ranks (see [`CollectiveOp::AllReduceSum`]).
    ///
    /// # Errors
    /// [`GraphError::Shape`] unless `x` is float32.
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::graph::{DType, Graph, Shape};
    /// let mut g = Graph::new("dp");
    /// let x = g.input("grads", DType::F32, Shape::fixed(&[10]));
    /// let sum = g.all_reduce_sum(x)?;
    /// assert_eq!(g.fixed_shape(sum)?, vec![10]);
    /// # Ok::<(), patchmix_export::graph::GraphError>(())
    /// ```
    pub fn all_reduce_sum(&mut self, x: ValueId) -> Result<ValueId, GraphError> {
        self.op1(CollectiveOp::AllReduceSum, &[x])
    }

    /// The `x` of all `world_size` ranks concatenated along axis 0 (see
    /// [`CollectiveOp::AllGather`]). Not differentiable: gathered values are detached.
    ///
    /// # Errors
    /// [`GraphError::Shape`] unless `x` is float32 with a fixed axis 0, or for 0 ranks.
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::graph::{DType, Graph, Shape};
    /// let mut g = Graph::new("dp");
    /// let keys = g.input("keys", DType::F32, Shape::fixed(&[32, 128]));
    /// let all = g.all_gather(keys, 4)?;
    /// assert_eq!(g.fixed_shape(all)?, vec![128, 128]);
    /// # Ok::<(), patchmix_export::graph::GraphError>(())
    /// ```
    pub fn all_gather(&mut self, x: ValueId, world_size: usize) -> Result<ValueId, GraphError> {
        self.op1(CollectiveOp::AllGather { world_size }, &[x])
    }
}
