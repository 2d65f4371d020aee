//! fp16 loss scaling around stages 6 and 7: the backward pass starts from loss·scale, so that
//! small gradients survive in half precision; the gradient is unscaled in f32 before the
//! optimizer, and a step whose gradient overflowed leaves the state as it was.

use crate::autodiff::sum_all;
use patchmix_export::graph::{DType, ElementwiseOp, Graph, GraphError, ValueId};

/// The seed of the backward pass: `loss·scale` (scope `loss_scale`), or the loss itself
/// without loss scaling.
///
/// # Errors
/// A non-scalar scale.
pub(crate) fn scale_loss(
    g: &mut Graph,
    loss: ValueId,
    loss_scale: Option<ValueId>,
) -> Result<ValueId, GraphError> {
    match loss_scale {
        Some(s) => g.scoped("loss_scale", |g| g.mul(loss, s)),
        None => Ok(loss),
    }
}

/// A flat gradient ready for the optimizer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gradient {
    /// The unscaled flat gradient `[P]`.
    pub flat: ValueId,
    /// A bool scalar, true when every gradient is finite (loss scaling only).
    pub finite: Option<ValueId>,
}

/// Divides the flat gradient by the loss scale and checks that it is finite (scope
/// `unscale`); without loss scaling the gradient passes through.
///
/// In: the flat gradient `[P]` from [`super::backward::flat_gradient`]. Out: the unscaled
/// gradient and its finiteness flag.
///
/// # Errors
/// A shape mismatch.
pub(crate) fn unscale(
    g: &mut Graph,
    grad: ValueId,
    loss_scale: Option<ValueId>,
) -> Result<Gradient, GraphError> {
    let Some(s) = loss_scale else {
        return Ok(Gradient {
            flat: grad,
            finite: None,
        });
    };
    g.scoped("unscale", |g| {
        let inv = g.unary(ElementwiseOp::Reciprocal, s)?;
        let unscaled = g.mul(grad, inv)?;
        // Σg − Σg is 0 when every gradient is finite and NaN otherwise (an Inf or NaN
        // anywhere makes the sum Inf or NaN); 1 > NaN is false.
        let sum = sum_all(g, unscaled)?;
        let zero_if_finite = g.sub(sum, sum)?;
        let one = g.scalar_like(sum, 1.0);
        let finite = g.op1(ElementwiseOp::Greater, &[one, zero_if_finite])?;
        Ok(Gradient {
            flat: unscaled,
            finite: Some(finite),
        })
    })
}

/// Keeps `old` where the gradient overflowed (scope `skip_if_overflow`): each of the
/// `updated` values becomes `finite ? updated : old`.
///
/// In: the finiteness flag and (updated, old) pairs. Out: the kept values and the flag as an
/// f32 scalar (the `grads_finite` output).
///
/// # Errors
/// A shape mismatch between an updated value and its old one.
pub(crate) fn skip_if_overflow<const N: usize>(
    g: &mut Graph,
    finite: ValueId,
    pairs: [(ValueId, ValueId); N],
) -> Result<([ValueId; N], ValueId), GraphError> {
    g.scoped("skip_if_overflow", |g| {
        let mut kept = [finite; N];
        for (slot, (updated, old)) in kept.iter_mut().zip(pairs) {
            *slot = g.op1(ElementwiseOp::Where, &[finite, updated, old])?;
        }
        let flag = g.op1(ElementwiseOp::Cast { to: DType::F32 }, &[finite])?;
        Ok((kept, flag))
    })
}
