//! Supervised fine-tuning on the compiled fine-tune step
//! ([`crate::step::build_finetune_step`], run by [`crate::session::FinetuneSession`]): the
//! host-side per-step data (drop-path masks), the run (`patchmix finetune`: presets,
//! schedule, evaluation of the model and its EMA, the classifier's weights) and the one-step
//! dump that `scripts/replay_finetune_step.py` replays with timm.
//!
//! # Data-parallel fine-tuning
//!
//! With [`FinetuneOptions::collectives`] (`patchmix finetune --dist`) every rank runs
//! [`run_finetune`], as DDP runs the original's `main_finetune.py`: the ranks agree on the
//! configuration and the starting state; `batch` is the global batch B, and rank r loads its
//! contiguous slice of b = B/W images of each global batch
//! ([`FinetuneLoader::sharded`](crate::data::FinetuneLoader::sharded): augmentation draws
//! depend on the sample's position, not the rank; Mixup/CutMix mixes within the rank's batch,
//! as timm's `Mixup` does under DDP); the drop-path masks are drawn for the global batch and
//! each rank takes its rows ([`rank_masks`]); the step
//! ([`build_finetune_rank_step`](crate::step::build_finetune_rank_step)) averages the
//! gradient and the reported loss over the ranks, so every rank holds the same parameters,
//! moments and EMA. Rank 0 alone writes the run directory (config, metrics, checkpoints,
//! export, summary), shows progress and evaluates; the other ranks skip the evaluation (their
//! state is rank 0's, so evaluating it W times would only cost time) and go on to the next
//! step, whose collectives wait for rank 0. Resuming reads the same checkpoint on every rank
//! (a run directory all ranks see).

mod checkpoint;
mod config;
mod dump;
mod error;
mod masks;
mod run;

pub use config::{FinetuneRunConfig, PRESETS};
pub use dump::{FinetuneDump, write_dump};
pub use error::{FinetuneError, RunError};
pub use masks::{drop_path_masks, rank_masks};
pub use run::{EvalRecord, FinetuneOptions, FinetuneSummary, load_encoder_weights, run_finetune};
