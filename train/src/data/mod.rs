//! The training data pipeline: a deterministic, shuffled, prefetching loader of augmented
//! two-view batches (the datasets themselves live in [`patchmix_export::data`]).

mod batch;
mod loader;
mod seed;

pub use batch::Batch;
pub use loader::{EpochIter, Loader, LoaderConfig, LoaderError};
pub use seed::{epoch_order, mix_rng, sample_rng, sample_seed};
