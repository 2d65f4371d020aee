//! Compiles one whole PatchMix training step into a single graph: every encoder pass, the
//! heads, the loss, the backward pass, AdamW and (momentum frame) the EMA update, as the
//! recipe of [`stages`](super::stages).

use super::config::StepConfig;
use super::layout::StateLayout;
use super::stages::backward::flat_gradient;
use super::stages::ema::ema_update;
use super::stages::encoder_pass::Encoders;
use super::stages::heads::Heads;
use super::stages::inputs::{GraphInputs, UnpackedState};
use super::stages::loss_scaling::{scale_loss, unscale};
use super::stages::losses::{averaged_over_ranks, patchmix_losses};
use super::stages::optimizer::adamw_update;
use super::stages::outputs::declare_outputs;
use super::stages::passes::Passes;
use patchmix_export::graph::{Compute, Graph, GraphError};

/// A compiled step.
#[derive(Clone, Debug)]
pub struct StepGraph {
    /// The graph.
    pub graph: Graph,
    /// The flat layouts of the state.
    pub layout: StateLayout,
    /// The configuration it was built for.
    pub config: StepConfig,
    /// How its matrix products are computed (native or emulated half precision).
    pub compute: Compute,
    /// The data-parallel ranks it runs on (1: one process; more: its collectives need a
    /// session with [`SessionOptions::collectives`](crate::session::SessionOptions)).
    pub world_size: usize,
    /// Whether the graph holds collectives (always for more than one rank; see [`Ranks`]).
    pub collectives: bool,
}

/// The data-parallel ranks a step spans, and whether its graph holds collectives.
///
/// # Examples
/// ```
/// use patchmix_train::step::Ranks;
/// assert!(!Ranks::of(1).collectives);
/// assert!(Ranks::of(2).collectives);
/// assert!(Ranks::through_collectives(1).collectives);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranks {
    /// The number of ranks.
    pub world_size: usize,
    /// Whether the graph holds collectives: always for more than one rank; for one rank only
    /// when asked for, to run the collective kernels in a world of one (the GPU check runs
    /// NCCL's kernels on ORT's stream this way). Through collectives, one rank computes the
    /// same step as without them up to rounding: BatchNorm takes its mean as a sum times
    /// 1/B instead of ORT's ReduceMean.
    pub collectives: bool,
}

impl Ranks {
    /// `world_size` ranks, with collectives when there are several.
    pub fn of(world_size: usize) -> Ranks {
        Ranks {
            world_size,
            collectives: world_size > 1,
        }
    }

    /// `world_size` ranks, with collectives even for one.
    pub fn through_collectives(world_size: usize) -> Ranks {
        Ranks {
            world_size,
            collectives: true,
        }
    }
}

/// Builds the training step for a configuration.
///
/// # Errors
/// [`GraphError`] for an invalid configuration (as a shape error naming it).
///
/// # Examples
/// ```
/// use patchmix_export::vit::VitConfig;
/// use patchmix_train::step::{build_step, Frame, StepConfig};
/// let cfg = StepConfig {
///     vit: VitConfig { img: 8, patch: 4, dim: 8, depth: 1, heads: 2 },
///     hidden: 16, out: 8, batch: 4, mix: 2, frame: Frame::NoMomentum, drop_path: 0.0,
///     local: None, precision: Default::default(),
/// };
/// let step = build_step(&cfg).unwrap();
/// assert_eq!(step.graph.outputs.len(), 8);
/// ```
pub fn build_step(cfg: &StepConfig) -> Result<StepGraph, GraphError> {
    build_step_with(cfg, false)
}

/// Builds the training step, with its half-precision products emulated in f32 kernels when
/// `emulate_half` is set ([`Compute::Emulated`]: for execution providers without bf16
/// kernels, such as ONNX Runtime's CPU EP). Without it, half-precision products are native.
///
/// # Errors
/// As [`build_step`].
pub fn build_step_with(cfg: &StepConfig, emulate_half: bool) -> Result<StepGraph, GraphError> {
    build_data_parallel_step(cfg, 1, emulate_half)
}

/// Builds one rank's step of a data-parallel world of `world_size` ranks; `cfg.batch` is the
/// rank's batch (the global batch ÷ W). Every rank runs the same graph; what makes the W graphs
/// one global step are its collectives: SyncBatchNorm statistics in the heads, the keys of all
/// ranks gathered before the logits (targets [B, B·W]), the flat gradient all-reduced and
/// divided by W (DDP's mean) before loss-scale handling and AdamW — so under fp16 the finite
/// flag, computed from the all-reduced gradient, is the same on every rank and no rank skips a
/// step alone — and the reported losses averaged over the ranks. With `world_size` 1 it is
/// [`build_step_with`], collectives-free.
///
/// # Errors
/// As [`build_step`], and for a world of 0 ranks.
pub fn build_data_parallel_step(
    cfg: &StepConfig,
    world_size: usize,
    emulate_half: bool,
) -> Result<StepGraph, GraphError> {
    build_rank_step(cfg, Ranks::of(world_size), emulate_half)
}

/// As [`build_data_parallel_step`], with the collectives [`Ranks`] asks for (also in a world
/// of one).
///
/// # Errors
/// As [`build_data_parallel_step`].
pub fn build_rank_step(
    cfg: &StepConfig,
    ranks: Ranks,
    emulate_half: bool,
) -> Result<StepGraph, GraphError> {
    let world_size = ranks.world_size;
    cfg.validate()
        .map_err(|e| GraphError::Shape(e.to_string()))?;
    if world_size == 0 {
        return Err(GraphError::Shape(
            "a data-parallel world needs at least one rank".into(),
        ));
    }
    let compute = cfg.precision.compute(emulate_half);
    let layout = StateLayout::new(cfg);
    let mut g = Graph::new("patchmix_train_step");

    // Inputs: the state, the images, targets and scalars; the state unpacked per slot.
    let inputs = GraphInputs::declare(&mut g, cfg, &layout, world_size);
    let UnpackedState { params, mut stats } =
        UnpackedState::unpack(&mut g, &layout, inputs.params, inputs.buffers)?;
    // EMA: the momentum encoder follows the base encoder and projector, before the step.
    let momentum = match (inputs.momentum_params, inputs.momentum) {
        (Some(flat), Some(mu)) => Some(ema_update(&mut g, &layout, inputs.params, flat, mu)?),
        _ => None,
    };
    // Encoder passes and heads, in the PatchMix order.
    let encoders = Encoders::new(
        &mut g,
        cfg,
        compute,
        &params,
        momentum.as_ref().map(|m| &m.named),
        &inputs.drop_path,
    )?;
    let heads = Heads::new(cfg, compute, ranks);
    let passes = Passes {
        encoders: &encoders,
        heads: &heads,
        params: &params,
        momentum: momentum.as_ref().map(|m| &m.named),
    };
    let embeddings = passes.run(&mut g, &inputs, &mut stats)?;
    // Losses, backward (fp16: from the scaled loss), optimizer.
    let losses = patchmix_losses(
        &mut g,
        &embeddings,
        inputs.targets,
        inputs.temperature,
        ranks,
    )?;
    let seed = scale_loss(&mut g, losses.total, inputs.loss_scale)?;
    let mut gradient = flat_gradient(&mut g, &layout.params, &params, seed)?;
    if ranks.collectives {
        // DDP's gradient mean over the ranks.
        gradient = g.scoped("gradient_mean", |g| {
            let sum = g.all_reduce_sum(gradient)?;
            g.mul_scalar(sum, 1.0 / world_size as f64)
        })?;
    }
    let gradient = unscale(&mut g, gradient, inputs.loss_scale)?;
    let update = adamw_update(&mut g, &inputs, &layout, gradient)?;
    // Outputs: the losses of the global batch.
    let reported = averaged_over_ranks(&mut g, &losses, ranks)?;
    declare_outputs(
        &mut g,
        &layout,
        &stats,
        &update,
        momentum.as_ref(),
        &reported,
    )?;
    Ok(StepGraph {
        graph: g,
        layout,
        config: cfg.clone(),
        compute,
        world_size,
        collectives: ranks.collectives,
    })
}
