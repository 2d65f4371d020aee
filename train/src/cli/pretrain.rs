//! `patchmix pretrain`: PatchMix pretraining from a preset, a TOML config and flags.

use patchmix_train::dist::{DistMode, DistWorld, start};
use patchmix_train::pretrain::dump::dump_step;
use patchmix_train::pretrain::eval_data::{GivenData, follow_training_data};
use patchmix_train::pretrain::{PretrainConfig, RunOptions, Trainer, run_pretrain};
use std::path::PathBuf;

/// Pretrain a ViT with PatchMix (see `--preset` for the original recipes).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A recipe: demo, cifar10-vit-tiny, cifar100-vit-tiny, cifar10-vit-small, cifar10-vit-base,
    /// imagenet-vit-small, imagenet-vit-base, tiny-test.
    #[arg(long, default_value = "demo")]
    pub preset: String,
    /// A TOML file naming a `preset` and overriding any of its fields (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Training data: PATH[:train|:test] (MNIST IDX, CIFAR binary, ImageFolder) or synthetic:N.
    #[arg(long)]
    pub data: Option<String>,
    /// Held-out data for the kNN monitor and the final evaluation. Default: the config's; with
    /// --data (or a config file's `data`) and no eval data given, the same dataset's test
    /// split where it has one, else none.
    #[arg(long)]
    pub eval_data: Option<String>,
    /// Run directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Images per step.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Run seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many steps in total (writes a checkpoint there).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// ORT intra-op threads (0: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Continue from a checkpoint directory, a run directory, or `auto` (this run's last).
    #[arg(long)]
    pub resume: Option<String>,
    /// Run one step and write before/after state, inputs and losses into this directory.
    #[arg(long)]
    pub dump_step: Option<PathBuf>,
    /// Write an ONNX Runtime profile into the run directory.
    #[arg(long)]
    pub profile: bool,
    /// Execution device: `cpu`, `cuda[:N]` (an error naming what is missing if CUDA cannot
    /// load; never a silent fallback) or `auto` (CUDA if it loads, else CPU, saying which).
    /// Default: the config's (`cpu`).
    #[arg(long)]
    pub device: Option<String>,
    /// ORT's CUDA graph capture (CUDA only): a step becomes one graph replay.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Precision of the matrix products: `fp32`, `bf16` or `fp16` (with dynamic loss
    /// scaling); master weights and optimizer state stay f32. bf16 on the CPU is emulated.
    /// Default: the config's (`fp32`).
    #[arg(long)]
    pub precision: Option<String>,
    /// Emulate W data-parallel ranks in this one process (the original's recipe on W GPUs):
    /// the batch (the global batch) is cut into W groups of batch/W images, each PatchMixed
    /// within itself with rank-offset targets; BatchNorm statistics and the keys span the
    /// whole batch (SyncBatchNorm, gathered keys). batch must be a multiple of W, with at
    /// least m images per group. Default: the config's `virtual_ranks` (1).
    #[arg(long, value_name = "W")]
    pub virtual_ranks: Option<usize>,
    /// Data-parallel ranks: `none` (one process), `mpi` (the ranks of `mpirun -np N`,
    /// collectives over Open MPI; needs a build with `--features mpi`), `nccl` (GPUs: NCCL on
    /// ORT's CUDA stream, with `--device cuda`; needs `--features nccl`, plus `mpi` for several
    /// ranks, and `pip install nvidia-nccl-cu13`) or `auto` (`mpi` when an MPI launcher started
    /// this process, else `none`).
    /// `--batch` stays the global batch, split evenly over the ranks; rank 0 alone writes the
    /// run directory.
    #[arg(long, default_value = "auto", value_name = "none|mpi|nccl|auto")]
    pub dist: String,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Resolves the configuration from the preset, the file and the flags.
///
/// # Errors
/// Unknown presets or fields, invalid values.
pub fn resolve(a: &Args) -> anyhow::Result<PretrainConfig> {
    let (mut c, file_fields) = match &a.config {
        Some(p) => PretrainConfig::from_toml_file_with_fields(p).map_err(anyhow::Error::msg)?,
        None => (
            PretrainConfig::preset(&a.preset).map_err(anyhow::Error::msg)?,
            Vec::new(),
        ),
    };
    let in_file = |f: &str| file_fields.iter().any(|k| k == f);
    let given = GivenData {
        data: a.data.is_some() || in_file("data"),
        eval_data: a.eval_data.is_some() || in_file("eval_data"),
    };
    if let Some(v) = &a.data {
        c.data = v.clone();
    }
    if let Some(v) = &a.eval_data {
        c.eval_data = Some(v.clone());
    }
    if let Some(v) = &a.out {
        c.out_dir = v.clone();
    }
    if let Some(v) = a.epochs {
        c.epochs = v;
        c.warmup_epochs = c.warmup_epochs.min(v);
    }
    if let Some(v) = a.batch {
        c.batch = v;
    }
    if let Some(v) = a.seed {
        c.seed = v;
    }
    if let Some(v) = a.virtual_ranks {
        c.virtual_ranks = v;
    }
    if let Some(v) = a.max_steps {
        c.max_steps = Some(v);
    }
    if let Some(v) = a.threads {
        c.threads = v;
    }
    if let Some(d) = &a.device {
        c.device = d
            .parse()
            .map_err(|e| anyhow::anyhow!("--device {d}: {e}"))?;
    }
    if a.cuda_graph {
        c.cuda_graph = true;
    }
    if let Some(p) = &a.precision {
        c.precision = p
            .parse()
            .map_err(|e| anyhow::anyhow!("--precision {p}: {e}"))?;
    }
    c.validate().map_err(anyhow::Error::msg)?;
    follow_training_data(&mut c, given);
    Ok(c)
}

/// Runs the subcommand.
///
/// # Errors
/// Any problem as a one-line message.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mode: DistMode = a.dist.parse().map_err(anyhow::Error::msg)?;
    let world = start(mode).map_err(anyhow::Error::msg)?;
    let result = run_in(a, &world);
    if let Err(e) = &result
        && world.world_size() > 1
    {
        // The other ranks may be waiting in a collective for this one: end them all (mpirun
        // names this rank) rather than leave them hanging.
        eprintln!("error: rank {}: {e:#}", world.rank());
        world.abort(1);
    }
    result
}

fn run_in(a: Args, world: &DistWorld) -> anyhow::Result<()> {
    let cfg = resolve(&a)?;
    let opts = RunOptions {
        resume: a.resume.clone(),
        progress: !a.quiet,
        profile: a.profile,
        collectives: world.collectives().cloned(),
    };
    if let Some(dir) = &a.dump_step {
        if world.world_size() > 1 {
            anyhow::bail!(
                "--dump-step runs one process; dump the one-process emulation instead (--virtual-ranks {} without mpirun)",
                world.world_size()
            );
        }
        let mut t = Trainer::new(&cfg, &opts).map_err(anyhow::Error::msg)?;
        let l = dump_step(&mut t, dir).map_err(anyhow::Error::msg)?;
        println!(
            "dumped one step into {}: loss {} (src {}, mix {}, mix2 {})",
            dir.display(),
            l.total,
            l.src,
            l.mix,
            l.mix2
        );
        return Ok(());
    }
    let s = run_pretrain(&cfg, &opts).map_err(anyhow::Error::msg)?;
    if world.rank() > 0 {
        return Ok(());
    }
    println!(
        "pretraining finished after {} steps; run directory {}",
        s.global_step,
        s.run_dir.display()
    );
    if let Some(r) = s.knn {
        println!("{r}");
    }
    Ok(())
}
