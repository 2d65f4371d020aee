//! kNN retrieval on encoder features: a persisted feature index, blocked top-k cosine
//! search and DINO's weighted kNN classifier.
//!
//! * [`FeatureIndex`] holds L2-normalised train features `[N, D]` and their class labels,
//!   and round-trips through a safetensors file (tensors `features` F32 `[N, D]` and
//!   `labels` I64 `[N]`, plus `num_classes` in the metadata; see [`index`]).
//! * [`topk_dot`] / [`FeatureIndex::search`] compute the top-k by dot product (cosine
//!   similarity on normalised rows) as blocked matrix products: `block_rows` queries at a
//!   time against the whole bank, so memory is `O(block_rows × N)` per worker thread and
//!   never `O(queries × N)`. Blocks run in parallel on the rayon pool.
//! * [`knn_report`] runs DINO's weighted vote (`exp(sim / T)`, `T = 0.07`) for several `k`
//!   from one search and returns top-1/top-5 accuracies as a [`KnnReport`], which prints as
//!   a table and serialises to JSON.
//!
//! # Examples
//!
//! ```
//! use ndarray::array;
//! use patchmix_export::knn::{knn_report, FeatureIndex, DINO_TEMPERATURE};
//!
//! let train = FeatureIndex::new(
//!     array![[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]],
//!     vec![0, 0, 1, 1],
//!     None,
//! )?;
//! let test = array![[1.0, 0.05], [0.05, 1.0]];
//! let report = knn_report(&train, test.view(), &[0, 1], &[1, 2], DINO_TEMPERATURE)?;
//! assert_eq!(report.rows[0].top1, 100.0);
//! println!("{report}");
//! # Ok::<(), patchmix_export::knn::KnnError>(())
//! ```

pub mod classify;
pub mod index;
pub mod search;

use std::path::PathBuf;

pub use classify::{
    DEFAULT_KS, DINO_TEMPERATURE, KnnReport, KnnRow, class_rank, knn_predict, knn_report,
    knn_report_with, weighted_votes,
};
pub use index::{FeatureIndex, l2_normalize_rows};
pub use search::{SearchOptions, TopK, topk_dot};

use crate::weights::WeightsError;

/// Errors of the kNN module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnnError {
    /// Reading or writing the index file failed (the message names the file).
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The file is a valid safetensors file but not a valid feature index.
    #[error("{}: not a valid kNN feature index: {reason}", path.display())]
    InvalidIndexFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// Features and labels disagree in length.
    #[error("{what}: {features} feature rows but {labels} labels; they must match one to one")]
    LabelCount {
        /// "train" or "test".
        what: &'static str,
        /// Number of feature rows.
        features: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not below the number of classes.
    #[error(
        "{what} label #{position} is {label}, but there are only {num_classes} classes \
         (labels must be in 0..{num_classes}); check the class-to-index mapping"
    )]
    LabelOutOfRange {
        /// "train" or "test".
        what: &'static str,
        /// Position of the label.
        position: usize,
        /// The label.
        label: u32,
        /// Number of classes.
        num_classes: usize,
    },
    /// A feature row contains NaN or infinity.
    #[error("{what} feature row {row} is not finite (NaN or infinity); check the encoder output")]
    NonFinite {
        /// "train", "test" or "query".
        what: &'static str,
        /// The row.
        row: usize,
    },
    /// Query and bank feature widths differ.
    #[error("feature width mismatch: the index has D = {index_dim}, the queries D = {query_dim}")]
    DimMismatch {
        /// Width of the bank.
        index_dim: usize,
        /// Width of the queries.
        query_dim: usize,
    },
    /// No query/test rows were given.
    #[error("no test features were given; extract features for the test split first")]
    NoQueries,
    /// The bank has no rows.
    #[error("the feature bank is empty; index at least one training feature")]
    EmptyIndex,
    /// A requested `k` is 0, or no `k` was given.
    #[error("invalid k list {0:?}: give at least one k, each at least 1")]
    InvalidK(Vec<usize>),
    /// The temperature is not a positive finite number.
    #[error("invalid temperature {0}: it must be positive and finite (DINO uses 0.07)")]
    InvalidTemperature(f32),
    /// `SearchOptions::block_rows` is 0.
    #[error("block_rows must be at least 1")]
    InvalidBlockRows,
    /// `num_classes` is 0 or does not fit a `u32` label.
    #[error("invalid number of classes {0}: it must be in 1..=2^32")]
    InvalidNumClasses(usize),
}
