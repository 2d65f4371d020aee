//! Supervised fine-tuning on the compiled fine-tune step
//! ([`crate::step::build_finetune_step`], run by [`crate::session::FinetuneSession`]): the
//! host-side per-step data (drop-path masks), the run (`patchmix finetune`: presets,
//! schedule, evaluation of the model and its EMA, the classifier's weights) and the one-step
//! dump that `scripts/replay_finetune_step.py` replays with timm.

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
