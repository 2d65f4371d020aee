//! Mixed precision: the element type the matrix products of a pass run in (the run's
//! `Precision` is a training notion; it picks a [`Compute`] mode with [`Compute::of`]).
//!
//! Like PyTorch's autocast, only the matrix products (Linear/Gemm and the attention MatMuls)
//! run in half precision; LayerNorm, softmax, BatchNorm, the residual stream, the loss and
//! the optimizer stay f32, and the parameters stay f32 masters that are cast per use. Values
//! inside a half-precision region are *low*; [`Compute::enter`] and [`Compute::exit`] move a
//! value across the border and the product helpers keep their results low.
//!
//! [`Compute::Emulated`] computes the same graph with f32 kernels, rounding every value that
//! would be half precision to that precision (a `Cast` to it and back). It is for execution
//! providers without half-precision kernels (ONNX Runtime's CPU EP has no bf16 MatMul/Gemm):
//! it rounds at the same points as [`Compute::Native`], so the losses match the native run up
//! to the kernels' accumulation order, but it gains no speed. Gradients pass back through the
//! same casts (the `Cast` rule casts the incoming gradient), so they are rounded where the
//! native graph's gradients are low.

use super::dtype::DType;
use super::ops::ElementwiseOp;
use super::{Graph, GraphError, ValueId};

/// How the matrix products of a pass are computed.
///
/// # Examples
/// ```
/// use patchmix_export::graph::{Compute, DType, Graph, Shape};
/// let mut g = Graph::new("lp");
/// let x = g.input("x", DType::F32, Shape::fixed(&[2, 3]));
/// let w = g.input("w", DType::F32, Shape::fixed(&[4, 3]));
/// let c = Compute::Native(DType::BF16);
/// let y = c.linear(&mut g, x, w, None).unwrap();
/// assert_eq!(g.dtype(y), DType::F32);
/// assert_eq!(g.op_histogram()["Cast"], 3); // x and w in, y out
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compute {
    /// f32 kernels, no rounding.
    #[default]
    F32,
    /// Kernels in the given half-precision type.
    Native(DType),
    /// f32 kernels on values rounded to the given half-precision type.
    Emulated(DType),
}

impl Compute {
    /// The compute mode for products in the half-precision type `low` (`None`: f32),
    /// emulated in f32 kernels when `emulate` is set.
    ///
    /// # Examples
    /// ```
    /// use patchmix_export::graph::{Compute, DType};
    /// assert_eq!(Compute::of(Some(DType::BF16), true), Compute::Emulated(DType::BF16));
    /// assert_eq!(Compute::of(Some(DType::F16), false), Compute::Native(DType::F16));
    /// assert_eq!(Compute::of(None, true), Compute::F32);
    /// ```
    pub fn of(low: Option<DType>, emulate: bool) -> Compute {
        match (low, emulate) {
            (None, _) => Compute::F32,
            (Some(dt), false) => Compute::Native(dt),
            (Some(dt), true) => Compute::Emulated(dt),
        }
    }

    fn round(g: &mut Graph, x: ValueId, dt: DType) -> Result<ValueId, GraphError> {
        let low = g.op1(ElementwiseOp::Cast { to: dt }, &[x])?;
        g.op1(ElementwiseOp::Cast { to: DType::F32 }, &[low])
    }

    /// Moves an f32 value into the low region.
    ///
    /// # Errors
    /// Never for a float value.
    pub fn enter(self, g: &mut Graph, x: ValueId) -> Result<ValueId, GraphError> {
        match self {
            Compute::F32 => Ok(x),
            Compute::Native(dt) => g.op1(ElementwiseOp::Cast { to: dt }, &[x]),
            Compute::Emulated(dt) => Self::round(g, x, dt),
        }
    }

    /// Moves a low value back to f32.
    ///
    /// # Errors
    /// Never for a float value.
    pub fn exit(self, g: &mut Graph, x: ValueId) -> Result<ValueId, GraphError> {
        match self {
            Compute::Native(_) => g.op1(ElementwiseOp::Cast { to: DType::F32 }, &[x]),
            Compute::F32 | Compute::Emulated(_) => Ok(x),
        }
    }

    /// Rounds the result of a low op (emulation only).
    fn settle(self, g: &mut Graph, y: ValueId) -> Result<ValueId, GraphError> {
        match self {
            Compute::Emulated(dt) => Self::round(g, y, dt),
            Compute::F32 | Compute::Native(_) => Ok(y),
        }
    }

    /// `x·Wᵀ (+ b)` for a low `x` of shape `[n, in]` and f32 parameters `W` `[out, in]` and
    /// `b` `[out]`; the result is low.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn linear_low(
        self,
        g: &mut Graph,
        x: ValueId,
        w: ValueId,
        b: Option<ValueId>,
    ) -> Result<ValueId, GraphError> {
        let w = self.enter(g, w)?;
        let b = b.map(|b| self.enter(g, b)).transpose()?;
        let y = g.linear(x, w, b)?;
        self.settle(g, y)
    }

    /// `x·Wᵀ (+ b)` from and to f32, with the product in the low type.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn linear(
        self,
        g: &mut Graph,
        x: ValueId,
        w: ValueId,
        b: Option<ValueId>,
    ) -> Result<ValueId, GraphError> {
        let x = self.enter(g, x)?;
        let y = self.linear_low(g, x, w, b)?;
        self.exit(g, y)
    }

    /// The batched product of two low values; the result is low.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn matmul_low(self, g: &mut Graph, a: ValueId, b: ValueId) -> Result<ValueId, GraphError> {
        let y = g.matmul(a, b)?;
        self.settle(g, y)
    }

    /// A low value times a constant; the result is low.
    ///
    /// # Errors
    /// Never in practice (scalars broadcast).
    pub fn mul_scalar_low(self, g: &mut Graph, x: ValueId, c: f64) -> Result<ValueId, GraphError> {
        let y = g.mul_scalar(x, c)?;
        self.settle(g, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;

    fn lp(c: Compute) -> Graph {
        let mut g = Graph::new("lp");
        let x = g.input("x", DType::F32, Shape::fixed(&[2, 3]));
        let w = g.input("w", DType::F32, Shape::fixed(&[4, 3]));
        let b = g.input("b", DType::F32, Shape::fixed(&[4]));
        let y = c.linear(&mut g, x, w, Some(b)).unwrap();
        let y = c.enter(&mut g, y).unwrap();
        let y = c.mul_scalar_low(&mut g, y, 0.5).unwrap();
        let y = c.exit(&mut g, y).unwrap();
        g.output(y, "y");
        g
    }

    #[test]
    fn native_products_run_in_the_low_type_and_come_back_f32() {
        let g = lp(Compute::Native(DType::BF16));
        let gemm = g.nodes.iter().find(|n| n.op.onnx_type() == "Gemm").unwrap();
        assert!(gemm.inputs.iter().all(|&v| g.dtype(v) == DType::BF16));
        // The scalar of the low Mul is a bf16 Cast of an f32 constant.
        let mul = g.nodes.iter().find(|n| n.op.onnx_type() == "Mul").unwrap();
        assert!(mul.inputs.iter().all(|&v| g.dtype(v) == DType::BF16));
        assert_eq!(g.dtype(g.outputs[0]), DType::F32);
    }

    #[test]
    fn emulation_keeps_f32_kernels_and_rounds_at_the_native_casts() {
        let g = lp(Compute::Emulated(DType::F16));
        for n in &g.nodes {
            if n.op.onnx_type() != "Cast" {
                assert!(
                    n.inputs.iter().all(|&v| g.dtype(v) == DType::F32),
                    "{}",
                    n.name
                );
            }
        }
        // x, w, b and the Gemm output, the entered y, and the Mul output: 6 round trips.
        assert_eq!(g.op_histogram()["Cast"], 12);
        let f32_graph = lp(Compute::F32);
        assert!(!f32_graph.op_histogram().contains_key("Cast"));
    }

    #[test]
    fn the_low_type_and_the_emulation_flag_pick_the_mode() {
        assert_eq!(
            Compute::of(Some(DType::BF16), true),
            Compute::Emulated(DType::BF16)
        );
        assert_eq!(
            Compute::of(Some(DType::F16), false),
            Compute::Native(DType::F16)
        );
        assert_eq!(Compute::of(None, true), Compute::F32);
        assert_eq!(Compute::of(None, false), Compute::F32);
    }
}
