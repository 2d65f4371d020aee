//! Linear evaluation of a frozen encoder (the MoCo v3 / PatchMix protocol): a linear classifier
//! `[D → C]` with bias on the encoder's CLS features, trained with softmax cross-entropy and
//! SGD (momentum 0.9, weight decay 0, learning rate `0.05 · batch / 256` on a per-epoch cosine
//! schedule, batch 256). The classifier starts from `N(0, 0.01²)` weights and zero bias.
//!
//! The features are the encoder's raw CLS output (after its final LayerNorm): no extra
//! normalisation and no BatchNorm in front of the classifier, as MoCo v3's ViT linear
//! evaluation.
//!
//! * `config`: the hyper-parameters ([`ProbeConfig`]) and the cosine learning-rate schedule;
//! * `head`: the classifier ([`LinearProbe`]), the cross-entropy and its hand-written gradient;
//! * `train`: the SGD trainer ([`ProbeTrainer`]) and [`train_probe`] for fixed features
//!   (`patchmix linear --fast`);
//! * `eval`: top-1/top-5 accuracy ([`evaluate`]) and the checks on features and labels;
//! * [`features`]: the training-time augmentation of `--augment` mode (RandomResizedCrop with
//!   scale (0.08, 1) + horizontal flip, reusing [`crate::augment`]) and the feature cache of
//!   `--cache`.
//!
//! # Examples
//!
//! ```
//! use ndarray::array;
//! use patchmix_train::linear::{ProbeConfig, train_probe};
//!
//! let x = array![[2.0f32, 0.0], [0.0, 2.0]];
//! let cfg = ProbeConfig { epochs: 10, batch: 2, base_lr: 100.0, ..ProbeConfig::default() };
//! let report = train_probe(x.view(), &[0, 1], x.view(), &[0, 1], 2, cfg, |_| {})?;
//! assert_eq!(report.last.test_top1, 100.0);
//! # Ok::<(), patchmix_train::linear::LinearError>(())
//! ```

mod config;
mod eval;
pub mod features;
mod head;
mod train;

pub use config::ProbeConfig;
pub use eval::{TopK, check_features, evaluate};
pub use features::{CachedSplit, FeatureCache, TrainAugment};
pub use head::{CrossEntropy, Gradient, LinearProbe, softmax_cross_entropy};
pub use train::{
    EpochStats, EpochTrain, ProbeReport, ProbeTrainer, train_probe, train_probe_keeping,
};

/// Errors of the linear probe; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum LinearError {
    /// Unusable settings.
    #[error("{0}")]
    Config(String),
    /// Features, labels or classes that do not fit together.
    #[error("{0}")]
    Shape(String),
    /// A feature is NaN or infinite.
    #[error(
        "{what} features: row {row} is not finite (NaN or infinite); the encoder output is unusable"
    )]
    NonFinite {
        /// `train` or `test`.
        what: &'static str,
        /// The first bad row.
        row: usize,
    },
    /// The loss became NaN or infinite.
    #[error("the loss became non-finite in epoch {epoch} (lr {lr}); lower --lr")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// Its learning rate.
        lr: f64,
    },
    /// The feature cache could not be read or written.
    #[error("feature cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: String,
        /// What went wrong.
        message: String,
    },
}
