//! Stage 1 of a fine-tune step: its graph inputs and the unpacked parameters.

use super::super::finetune::names as ft_names;
use super::super::finetune::{FinetuneLayout, FinetuneStepConfig};
use super::super::heads::unflatten;
use super::super::names;
use super::inputs::scalar_input;
use patchmix_export::graph::{DType, Graph, GraphError, Shape, ValueId};
use std::collections::BTreeMap;

/// The graph inputs of a fine-tune step, as declared by [`FinetuneInputs::declare`].
#[derive(Clone, Debug)]
pub(crate) struct FinetuneInputs {
    /// Flat parameters `[P]`.
    pub params: ValueId,
    /// AdamW first moments `[P]`.
    pub exp_avg: ValueId,
    /// AdamW second moments `[P]`.
    pub exp_avg_sq: ValueId,
    /// The model EMA `[P]`.
    pub ema_params: ValueId,
    /// Mixed images [B, 3, H, W].
    pub images: ValueId,
    /// Soft targets [B, classes].
    pub targets: ValueId,
    /// Learning rate (scalar).
    pub lr: ValueId,
    /// Weight decay (scalar).
    pub wd: ValueId,
    /// AdamW step t (scalar).
    pub step: ValueId,
    /// EMA decay (scalar).
    pub ema_decay: ValueId,
    /// The loss scale (fp16; scalar).
    pub loss_scale: Option<ValueId>,
    /// Drop-path masks [2·depth, B, 1, 1] (drop path on).
    pub drop_path: Option<ValueId>,
    /// state_dict name → parameter view (scope `params`).
    pub named: BTreeMap<String, ValueId>,
}

fn f32_input(g: &mut Graph, name: &str, dims: &[usize]) -> ValueId {
    g.input(name, DType::F32, Shape::fixed(dims))
}

impl FinetuneInputs {
    /// Declares the inputs in their fixed order (state, images, targets, scalars, drop-path
    /// masks) and unpacks the flat parameters per slot.
    ///
    /// # Errors
    /// Never for a consistent layout.
    pub(crate) fn declare(
        g: &mut Graph,
        cfg: &FinetuneStepConfig,
        layout: &FinetuneLayout,
    ) -> Result<Self, GraphError> {
        let (b, img, p) = (cfg.batch, cfg.vit.img, layout.params.len());
        let params = f32_input(g, names::PARAMS, &[p]);
        let exp_avg = f32_input(g, names::EXP_AVG, &[p]);
        let exp_avg_sq = f32_input(g, names::EXP_AVG_SQ, &[p]);
        let ema_params = f32_input(g, ft_names::EMA_PARAMS, &[p]);
        let images = f32_input(g, ft_names::IMAGES, &[b, 3, img, img]);
        let targets = f32_input(g, ft_names::TARGETS, &[b, cfg.classes]);
        let lr = scalar_input(g, names::LR);
        let wd = scalar_input(g, names::WD);
        let step = scalar_input(g, names::STEP);
        let ema_decay = scalar_input(g, ft_names::EMA_DECAY);
        let loss_scale = cfg
            .scales_loss()
            .then(|| scalar_input(g, names::LOSS_SCALE));
        let drop_path = cfg
            .has_drop_path()
            .then(|| f32_input(g, ft_names::DROP_PATH, &[2 * cfg.vit.depth, b, 1, 1]));
        let named = g.scoped("params", |g| unflatten(g, params, &layout.params.slots))?;
        Ok(FinetuneInputs {
            params,
            exp_avg,
            exp_avg_sq,
            ema_params,
            images,
            targets,
            lr,
            wd,
            step,
            ema_decay,
            loss_scale,
            drop_path,
            named,
        })
    }
}
