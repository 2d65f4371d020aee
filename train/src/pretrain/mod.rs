//! `patchmix pretrain`: configuration and presets, the training loop, checkpoints and resume,
//! metrics, and the online kNN monitor.

pub mod checkpoint;
pub mod config;
pub mod dump;
pub mod error;
pub mod eval_data;
pub mod metrics;
pub mod monitor;
pub mod run;

pub use config::{ConfigError, PRESETS, PretrainConfig};
pub use error::{PretrainError, StateDictError};
pub use run::{RunOptions, RunSummary, Trainer, run_pretrain};
