//! Stage 6, backward: the gradient of the loss with respect to every parameter, as one flat
//! vector in the layout of the parameters.

use super::super::heads::flatten;
use super::super::layout::Layout;
use crate::autodiff::backward;
use patchmix_export::graph::{Graph, GraphError, ValueId};
use std::collections::BTreeMap;

/// Differentiates `seed` with respect to every parameter view (in the slot order of `layout`) and flattens the
/// gradients (scope `grad_flat`).
///
/// In: the scalar to differentiate (the loss, or the scaled loss of an fp16 step) and the
/// parameter views. Out: the flat gradient `[P]`, still scaled when `seed` was. A data-parallel
/// step all-reduces this value before the optimizer.
///
/// # Errors
/// A missing parameter view, or an op without a gradient rule.
pub(crate) fn flat_gradient(
    g: &mut Graph,
    layout: &Layout,
    params: &BTreeMap<String, ValueId>,
    seed: ValueId,
) -> Result<ValueId, GraphError> {
    let wrt = layout
        .slots
        .iter()
        .map(|s| {
            params
                .get(&s.name)
                .copied()
                .ok_or_else(|| GraphError::Shape(format!("missing parameter view `{}`", s.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let grads = backward(g, seed, &wrt)?;
    g.scoped("grad_flat", |g| flatten(g, &grads))
}
