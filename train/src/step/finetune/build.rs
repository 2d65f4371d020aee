//! Compiles one fine-tuning step into a single graph from the pretraining step's stages:
//! inputs → encoder with drop path → head → soft-target cross-entropy → (fp16: loss
//! scaling) → backward → (several ranks: the gradient's mean over the ranks) → layer-decay
//! AdamW → model EMA → outputs.

use super::super::adamw::AdamInputs;
use super::super::build::Ranks;
use super::super::names;
use super::super::stages::backward::flat_gradient;
use super::super::stages::classifier::{logits, soft_target_ce};
use super::super::stages::ema::model_ema;
use super::super::stages::finetune_inputs::FinetuneInputs;
use super::super::stages::loss_scaling::{scale_loss, unscale};
use super::super::stages::optimizer::{OptimizerState, layer_decay_adamw_update};
use super::config::FinetuneStepConfig;
use super::layout::FinetuneLayout;
use super::names as ft_names;
use patchmix_export::graph::{Compute, Graph, GraphError};

/// A compiled fine-tune step.
#[derive(Clone, Debug)]
pub struct FinetuneGraph {
    /// The graph.
    pub graph: Graph,
    /// The flat parameter layout and its lr scales.
    pub layout: FinetuneLayout,
    /// The configuration it was built for.
    pub config: FinetuneStepConfig,
    /// How its matrix products are computed.
    pub compute: Compute,
    /// The data-parallel ranks it runs on (1: one process; more: its collectives need a
    /// session with [`SessionOptions::collectives`](crate::session::SessionOptions)).
    pub world_size: usize,
    /// Whether the graph holds collectives (always for more than one rank; see [`Ranks`]).
    pub collectives: bool,
}

/// Builds the fine-tune step for a configuration, its half-precision products emulated in
/// f32 kernels when `emulate_half` is set (as [`crate::step::build_step_with`]).
///
/// Inputs: `params`, `exp_avg`, `exp_avg_sq`, `ema_params` `[P]`; `images` [B, 3, H, W]
/// (after Mixup/CutMix); `targets` [B, classes]; the scalars `lr`, `wd`, `step`,
/// `ema_decay` (and `loss_scale` under fp16); `drop_path.images` [2·depth, B, 1, 1] with drop
/// path. Outputs: `params_out`, `exp_avg_out`, `exp_avg_sq_out`, `ema_params_out`, `loss`,
/// `logits` (and `grads_finite` under fp16).
///
/// # Errors
/// [`GraphError`] for an invalid configuration (as a shape error naming it).
///
/// # Examples
/// ```
/// use patchmix_train::step::{FinetuneStepConfig, build_finetune_step};
/// let step = build_finetune_step(&FinetuneStepConfig::tiny(10), false).unwrap();
/// assert_eq!(step.graph.outputs.len(), 6);
/// ```
pub fn build_finetune_step(
    cfg: &FinetuneStepConfig,
    emulate_half: bool,
) -> Result<FinetuneGraph, GraphError> {
    build_finetune_rank_step(cfg, Ranks::of(1), emulate_half)
}

/// Builds one rank's fine-tune step of a data-parallel world of `ranks.world_size` ranks, as
/// DDP runs the original's `main_finetune.py`: `cfg.batch` is the rank's batch (the global
/// batch ÷ W), every rank runs the same graph, and its collectives make the W graphs one
/// global step: the flat gradient is all-reduced and divided by W (DDP's mean) before
/// loss-scale handling and AdamW — so under fp16 the finite flag is the same on every rank and
/// no rank skips a step alone — and the reported loss is averaged over the ranks. The model
/// EMA follows the updated parameters, which are the same on every rank. A ViT classifier
/// has no BatchNorm and no gathered keys, so nothing else crosses ranks: with equal batches
/// per rank, W ranks compute one process's step on the global batch up to rounding. With
/// [`Ranks::of`]`(1)` it is [`build_finetune_step`], collectives-free, byte for byte.
///
/// # Errors
/// As [`build_finetune_step`], and for a world of 0 ranks.
///
/// # Examples
/// ```
/// use patchmix_train::step::{FinetuneStepConfig, Ranks, build_finetune_rank_step};
/// let cfg = FinetuneStepConfig { batch: 4, ..FinetuneStepConfig::tiny(10) };
/// let step = build_finetune_rank_step(&cfg, Ranks::of(2), false).unwrap();
/// assert!(step.collectives && step.world_size == 2);
/// assert!(build_finetune_rank_step(&cfg, Ranks::of(0), false).is_err());
/// ```
pub fn build_finetune_rank_step(
    cfg: &FinetuneStepConfig,
    ranks: Ranks,
    emulate_half: bool,
) -> Result<FinetuneGraph, GraphError> {
    cfg.validate()
        .map_err(|e| GraphError::Shape(e.to_string()))?;
    let world_size = ranks.world_size;
    if world_size == 0 {
        return Err(GraphError::Shape(
            "a data-parallel world needs at least one rank".into(),
        ));
    }
    let compute = cfg.precision.compute(emulate_half);
    let layout = FinetuneLayout::new(cfg);
    let mut g = Graph::new("patchmix_finetune_step");

    let inputs = FinetuneInputs::declare(&mut g, cfg, &layout)?;
    let z = logits(
        &mut g,
        cfg,
        compute,
        &inputs.named,
        inputs.images,
        inputs.drop_path,
    )?;
    let loss = soft_target_ce(&mut g, z, inputs.targets)?;
    let seed = scale_loss(&mut g, loss, inputs.loss_scale)?;
    let mut gradient = flat_gradient(&mut g, &layout.params, &inputs.named, seed)?;
    if ranks.collectives {
        // DDP's gradient mean over the ranks.
        gradient = g.scoped("gradient_mean", |g| {
            let sum = g.all_reduce_sum(gradient)?;
            g.mul_scalar(sum, 1.0 / world_size as f64)
        })?;
    }
    let gradient = unscale(&mut g, gradient, inputs.loss_scale)?;
    let update = layer_decay_adamw_update(
        &mut g,
        OptimizerState {
            params: inputs.params,
            exp_avg: inputs.exp_avg,
            exp_avg_sq: inputs.exp_avg_sq,
        },
        &layout,
        AdamInputs {
            lr: inputs.lr,
            wd: inputs.wd,
            step: inputs.step,
        },
        gradient,
    )?;
    let ema = model_ema(&mut g, inputs.ema_params, update.params, inputs.ema_decay)?;

    g.output(update.params, names::STATE_OUTPUTS[0]);
    g.output(update.exp_avg, names::STATE_OUTPUTS[1]);
    g.output(update.exp_avg_sq, names::STATE_OUTPUTS[2]);
    g.output(ema, ft_names::EMA_PARAMS_OUT);
    // The loss of the global batch: the mean of the ranks' means (equal batches per rank).
    let loss = if ranks.collectives {
        g.scoped("loss_global", |g| {
            let sum = g.all_reduce_sum(loss)?;
            g.mul_scalar(sum, 1.0 / world_size as f64)
        })?
    } else {
        loss
    };
    g.output(loss, names::LOSSES[3]);
    let z = g.stop_gradient(z)?;
    g.output(z, ft_names::LOGITS);
    if let Some(f) = update.grads_finite {
        g.output(f, names::GRADS_FINITE);
    }
    Ok(FinetuneGraph {
        graph: g,
        layout,
        config: cfg.clone(),
        compute,
        world_size,
        collectives: ranks.collectives,
    })
}
