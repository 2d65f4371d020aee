//! The classifier of a fine-tune step: the encoder in training mode with drop path, the
//! `Linear(D, classes)` head on the final-normed CLS token (timm's `global_pool='token'`, no
//! `fc_norm`), and the soft-target cross-entropy.

use super::super::finetune::{FinetuneStepConfig, HEAD_BIAS, HEAD_WEIGHT};
use super::encoder_pass::split_drop_path;
use patchmix_export::graph::{Compute, Graph, GraphError, NnOp, ValueId};
use patchmix_export::vit::{ForwardOptions, encoder_forward};
use std::collections::BTreeMap;

/// The logits `[B, classes]` of images `x` [B, 3, H, W]: the encoder (scope `encoder`, with
/// the drop-path `masks` [2·depth, B, 1, 1] when given) and the head (scope `head`), their
/// products in `compute`'s precision.
///
/// # Errors
/// A missing parameter or a shape mismatch.
pub(crate) fn logits(
    g: &mut Graph,
    cfg: &FinetuneStepConfig,
    compute: Compute,
    params: &BTreeMap<String, ValueId>,
    x: ValueId,
    masks: Option<ValueId>,
) -> Result<ValueId, GraphError> {
    let drop_path = masks
        .map(|m| split_drop_path(g, m, cfg.vit.depth, cfg.batch))
        .transpose()?;
    let opts = ForwardOptions {
        drop_path,
        tokens: false,
        training: true,
        compute,
    };
    let cls = g
        .scoped("encoder", |g| {
            encoder_forward(g, &cfg.vit, params, x, &opts)
        })?
        .cls;
    let p = |n: &str| {
        params
            .get(n)
            .copied()
            .ok_or_else(|| GraphError::Shape(format!("missing parameter `{n}`")))
    };
    let (w, b) = (p(HEAD_WEIGHT)?, p(HEAD_BIAS)?);
    g.scoped("head", |g| compute.linear(g, cls, w, Some(b)))
}

/// timm's `SoftTargetCrossEntropy`: `mean over rows of Σ −t·log_softmax(z)` (scope `loss`).
///
/// In: logits and soft targets [B, classes]. Out: the scalar loss.
///
/// # Errors
/// Shape mismatch.
pub(crate) fn soft_target_ce(
    g: &mut Graph,
    logits: ValueId,
    targets: ValueId,
) -> Result<ValueId, GraphError> {
    g.scoped("loss", |g| {
        let rows = g.fixed_shape(logits)?[0];
        let lsm = g.op1(NnOp::LogSoftmax { axis: 1 }, &[logits])?;
        let t = g.mul(targets, lsm)?;
        let s = g.reduce_sum(t, &[0, 1], false)?;
        g.mul_scalar(s, -1.0 / rows as f64)
    })
}
