//! Stage 1, inputs: declares every graph input of the step and unpacks the flat state.

use super::super::config::{Frame, StepConfig};
use super::super::heads::{RunningStats, unflatten};
use super::super::layout::StateLayout;
use super::super::names;
use patchmix_export::graph::{DType, Graph, GraphError, Shape, ValueId};
use std::collections::BTreeMap;

/// The graph inputs of a step, as declared by [`GraphInputs::declare`].
#[derive(Clone, Debug)]
pub(crate) struct GraphInputs {
    /// Flat parameters `[P]` ([`names::PARAMS`]).
    pub params: ValueId,
    /// AdamW first moments `[P]`.
    pub exp_avg: ValueId,
    /// AdamW second moments `[P]`.
    pub exp_avg_sq: ValueId,
    /// BN running statistics `[Q]`.
    pub buffers: ValueId,
    /// Momentum-encoder parameters `[Pm]` (momentum frame).
    pub momentum_params: Option<ValueId>,
    /// view1, view2, mix1, mix2 [B, 3, H, W].
    pub images: [ValueId; 4],
    /// The soft targets of the three loss terms [B, B·W] (W ranks: this rank's B rows against
    /// the keys of all ranks).
    pub targets: [ValueId; 3],
    /// The local crops and their PatchMix (multi-crop).
    pub locals: Option<LocalImages>,
    /// Learning rate (scalar).
    pub lr: ValueId,
    /// Weight decay (scalar).
    pub wd: ValueId,
    /// AdamW step t (scalar).
    pub step: ValueId,
    /// Loss temperature τ (scalar).
    pub temperature: ValueId,
    /// EMA momentum μ (momentum frame; scalar).
    pub momentum: Option<ValueId>,
    /// The loss scale (fp16; scalar).
    pub loss_scale: Option<ValueId>,
    /// Drop-path masks [2·depth, rows, 1, 1] per base pass (drop path on).
    pub drop_path: BTreeMap<&'static str, ValueId>,
}

/// The multi-crop image inputs, [n·B, 3, l, l] each (crop-major).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalImages {
    /// The local crops ([`names::LOCAL_IMAGES`]`[0]`).
    pub crops: ValueId,
    /// Their PatchMix ([`names::LOCAL_IMAGES`]`[1]`).
    pub mixed: ValueId,
    /// Crops per image n.
    pub count: usize,
}

/// A scalar f32 graph input.
pub(crate) fn scalar_input(g: &mut Graph, name: &str) -> ValueId {
    g.input(name, DType::F32, Shape(vec![]))
}

fn f32_input(g: &mut Graph, name: &str, dims: &[usize]) -> ValueId {
    g.input(name, DType::F32, Shape::fixed(dims))
}

impl GraphInputs {
    /// Declares the inputs of the step for `cfg` in their fixed order: the state, the images,
    /// the targets, the local crops, the scalars, then the drop-path masks.
    ///
    /// In: the configuration (its batch is this rank's), its state layout and the number of
    /// data-parallel ranks. Out: the graph inputs, no nodes.
    pub(crate) fn declare(
        g: &mut Graph,
        cfg: &StepConfig,
        layout: &StateLayout,
        world_size: usize,
    ) -> Self {
        let (b, img) = (cfg.batch, cfg.vit.img);
        let momentum_frame = cfg.frame == Frame::Momentum;
        let params = f32_input(g, names::PARAMS, &[layout.params.len()]);
        let exp_avg = f32_input(g, names::EXP_AVG, &[layout.params.len()]);
        let exp_avg_sq = f32_input(g, names::EXP_AVG_SQ, &[layout.params.len()]);
        let buffers = f32_input(g, names::BUFFERS, &[layout.buffers.len()]);
        let momentum_params =
            momentum_frame.then(|| f32_input(g, names::MOMENTUM_PARAMS, &[layout.momentum.len()]));
        let images = names::IMAGES.map(|n| f32_input(g, n, &[b, 3, img, img]));
        let targets = names::TARGETS.map(|n| f32_input(g, n, &[b, b * world_size]));
        let locals = cfg.local.map(|l| {
            let [crops, mixed] =
                names::LOCAL_IMAGES.map(|n| f32_input(g, n, &[l.count * b, 3, l.img, l.img]));
            LocalImages {
                crops,
                mixed,
                count: l.count,
            }
        });
        let lr = scalar_input(g, names::LR);
        let wd = scalar_input(g, names::WD);
        let step = scalar_input(g, names::STEP);
        let temperature = scalar_input(g, names::TEMPERATURE);
        let momentum = momentum_frame.then(|| scalar_input(g, names::MOMENTUM));
        let loss_scale = cfg
            .scales_loss()
            .then(|| scalar_input(g, names::LOSS_SCALE));
        let mut drop_path = BTreeMap::new();
        if cfg.has_drop_path() {
            for pass in cfg.base_passes() {
                let v = f32_input(
                    g,
                    &format!("{}{pass}", names::DROP_PATH_PREFIX),
                    &[2 * cfg.vit.depth, cfg.pass_rows(pass), 1, 1],
                );
                drop_path.insert(pass, v);
            }
        }
        GraphInputs {
            params,
            exp_avg,
            exp_avg_sq,
            buffers,
            momentum_params,
            images,
            targets,
            locals,
            lr,
            wd,
            step,
            temperature,
            momentum,
            loss_scale,
            drop_path,
        }
    }
}

/// The flat state unpacked into one value per parameter and BN buffer.
#[derive(Clone, Debug)]
pub(crate) struct UnpackedState {
    /// state_dict name → parameter view (scope `params`).
    pub params: BTreeMap<String, ValueId>,
    /// The BN running statistics, threaded through the passes (scope `buffers`).
    pub stats: RunningStats,
}

impl UnpackedState {
    /// Slices the flat parameters and buffers into their slots.
    ///
    /// In: the flat `params` `[P]` and `buffers` `[Q]`. Out: a value per slot.
    ///
    /// # Errors
    /// Never for a consistent layout.
    pub(crate) fn unpack(
        g: &mut Graph,
        layout: &StateLayout,
        params: ValueId,
        buffers: ValueId,
    ) -> Result<Self, GraphError> {
        let params = g.scoped("params", |g| unflatten(g, params, &layout.params.slots))?;
        let current = g.scoped("buffers", |g| unflatten(g, buffers, &layout.buffers.slots))?;
        Ok(UnpackedState {
            params,
            stats: RunningStats { current },
        })
    }
}
