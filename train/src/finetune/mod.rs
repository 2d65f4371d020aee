//! Supervised fine-tuning on the compiled fine-tune step
//! ([`crate::step::build_finetune_step`], run by [`crate::session::FinetuneSession`]): the
//! host-side per-step data (drop-path masks) and the one-step dump that
//! `scripts/replay_finetune_step.py` replays with timm.

mod dump;
mod error;
mod masks;

pub use dump::{FinetuneDump, write_dump};
pub use error::FinetuneError;
pub use masks::drop_path_masks;
