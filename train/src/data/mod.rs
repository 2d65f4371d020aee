//! The training data pipeline: a deterministic, shuffled, prefetching loader of augmented
//! two-view batches, and the fine-tuning batches ([`FinetuneLoader`]: one transformed view
//! per image, Mixup/CutMix, soft targets). The datasets themselves live in
//! [`patchmix_export::data`].

mod batch;
mod finetune;
mod loader;
mod seed;

pub use batch::Batch;
pub use finetune::{FinetuneBatch, FinetuneLoader};
pub use loader::{EpochIter, Loader, LoaderConfig, LoaderError, Shard};
pub use seed::{epoch_order, mix_rng, sample_rng, sample_seed};
