//! `patchmix finetune`: supervised fine-tuning of a pretrained encoder with the original's
//! recipe, from a preset and flags.

use patchmix_export::weights::EncoderSource;
use patchmix_train::dist::{DistMode, DistWorld, start};
use patchmix_train::finetune::{FinetuneOptions, FinetuneRunConfig, run_finetune};
use std::path::PathBuf;

/// Fine-tune a pretrained encoder with a new classifier head (see `--preset`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encoder weights: a pretraining run's encoder.safetensors (timm names) or a
    /// training checkpoint with base/momentum encoders.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Which encoder of a two-encoder checkpoint: `base` or `momentum` (default: momentum
    /// where there is one, as the original).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Start from a random encoder of the same architecture instead (the baseline).
    #[arg(long)]
    pub random_init: bool,
    /// A recipe: demo-ft, cifar10-vit-tiny-ft, cifar100-vit-tiny-ft, cifar10-vit-small-ft,
    /// imagenet-vit-small-ft.
    #[arg(long, default_value = "demo-ft")]
    pub preset: String,
    /// Training data: PATH[:train] (MNIST IDX, CIFAR binary, ImageFolder) or synthetic:N.
    #[arg(long)]
    pub data: Option<String>,
    /// Evaluation data (default: the training data's test split).
    #[arg(long)]
    pub eval_data: Option<String>,
    /// Run directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Warm-up epochs.
    #[arg(long)]
    pub warmup_epochs: Option<u64>,
    /// Images per step: the global batch, split evenly over the ranks of --dist (even per
    /// rank).
    #[arg(long)]
    pub batch: Option<usize>,
    /// The peak learning rate at batch 256 (scaled by batch/256, as the original).
    #[arg(long)]
    pub base_lr: Option<f64>,
    /// Run seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Turn Mixup/CutMix off (label-smoothing cross-entropy instead).
    #[arg(long)]
    pub no_mixup: bool,
    /// Stop after this many steps in total (writes a checkpoint there).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Continue the run in --out from its checkpoint (same preset and flags), bit-exactly.
    #[arg(long)]
    pub resume: bool,
    /// ORT intra-op threads (0: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run one step and write before/after state, inputs and the loss into this directory
    /// (for scripts/replay_finetune_step.py).
    #[arg(long)]
    pub dump_step: Option<PathBuf>,
    /// Execution device: `cpu`, `cuda[:N]` (an error naming what is missing if CUDA cannot
    /// load) or `auto` (CUDA if it loads, else CPU, saying which).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Precision of the matrix products: `fp32`, `bf16` or `fp16` (dynamic loss scaling);
    /// master weights, optimizer state and the EMA stay f32. On the CPU half precision is
    /// emulated. Default: the preset's (`fp32`).
    #[arg(long)]
    pub precision: Option<String>,
    /// Data-parallel ranks: `none` (one process), `mpi` (the ranks of `mpirun -np N`,
    /// collectives over Open MPI; needs a build with `--features mpi`), `nccl` (GPUs; needs
    /// `--features nccl`) or `auto` (`mpi` when an MPI launcher started this process, else
    /// `none`). `--batch` stays the global batch, split evenly over the ranks; each rank
    /// mixes (Mixup/CutMix) its own share; rank 0 alone writes the run directory and
    /// evaluates.
    #[arg(long, default_value = "auto", value_name = "none|mpi|nccl|auto")]
    pub dist: String,
    /// No per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the subcommand (on every rank of `--dist`).
///
/// # Errors
/// Any problem as a one-line message; in a world of several ranks it is also printed as
/// `error: rank R: …` and the launch is aborted, so that no rank waits for this one forever.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mode: DistMode = a.dist.parse().map_err(anyhow::Error::msg)?;
    let world = start(mode).map_err(anyhow::Error::msg)?;
    let result = run_in(a, &world);
    if let Err(e) = &result
        && world.world_size() > 1
    {
        eprintln!("error: rank {}: {e:#}", world.rank());
        world.abort(1);
    }
    result
}

fn run_in(a: Args, world: &DistWorld) -> anyhow::Result<()> {
    let mut c = FinetuneRunConfig::preset(&a.preset).map_err(anyhow::Error::msg)?;
    if let Some(v) = &a.data {
        c.data = v.clone();
        if a.eval_data.is_none() {
            c.eval_data = None;
        }
    }
    if let Some(v) = &a.eval_data {
        c.eval_data = Some(v.clone());
    }
    if let Some(v) = &a.out {
        c.out_dir = v.clone();
    }
    if let Some(v) = a.epochs {
        c.epochs = v;
    }
    if let Some(v) = a.warmup_epochs {
        c.warmup_epochs = v;
    }
    if let Some(v) = a.batch {
        c.batch = v;
    }
    if let Some(v) = a.base_lr {
        c.base_lr = v;
    }
    if let Some(v) = a.seed {
        c.seed = v;
    }
    if a.no_mixup {
        c.mixup = false;
    }
    if let Some(p) = &a.precision {
        c.precision = p
            .parse()
            .map_err(|e| anyhow::anyhow!("--precision {p}: {e}"))?;
    }
    let device = a
        .device
        .parse()
        .map_err(|e| anyhow::anyhow!("--device {}: {e}", a.device))?;
    let encoder = match a.encoder.as_deref() {
        None => None,
        Some("base") => Some(EncoderSource::Base),
        Some("momentum") => Some(EncoderSource::Momentum),
        Some(other) => anyhow::bail!("--encoder: `{other}` is not `base` or `momentum`"),
    };
    let opts = FinetuneOptions {
        weights: a.weights.clone(),
        encoder,
        random_init: a.random_init,
        max_steps: a.max_steps,
        resume: a.resume,
        dump_step: a.dump_step.clone(),
        threads: a.threads,
        quiet: a.quiet,
        device,
        collectives: world.collectives().cloned(),
    };
    let s = run_finetune(&c, &opts).map_err(anyhow::Error::msg)?;
    if world.rank() > 0 {
        return Ok(());
    }
    if let Some(dir) = &a.dump_step {
        println!("dumped one step into {}", dir.display());
        return Ok(());
    }
    match s.evals.last() {
        Some(r) => println!(
            "fine-tuning finished after {} steps ({:.0} s); run directory {}: top-1 {:.2} top-5 {:.2}, EMA top-1 {:.2} top-5 {:.2}",
            s.steps,
            s.seconds,
            c.out_dir.display(),
            r.top1,
            r.top5,
            r.ema_top1,
            r.ema_top5
        ),
        None => println!(
            "fine-tuning stopped after {} steps; run directory {}",
            s.steps,
            c.out_dir.display()
        ),
    }
    Ok(())
}
