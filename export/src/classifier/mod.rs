//! The exported classifier: the ViT encoder plus a `Linear(D, classes)` head, as an ONNX model
//! (`classifier.onnx`, input `images` [batch, 3, H, W], output `logits` [batch, classes]) and as
//! timm-named weights (`classifier.safetensors`, the encoder's keys plus `head.weight`
//! [classes, D] and `head.bias` [classes]).
//!
//! The head reads the CLS token after the final LayerNorm, as timm's `VisionTransformer` with
//! `global_pool='token'` (its default, and what the original PatchMix fine-tunes): `fc_norm` is
//! then an identity without parameters, so the safetensors file loads into
//! `VisionTransformer(num_classes=classes, global_pool='token', …)` with `strict=True`.
//!
//! * `head`: the head's weights ([`ClassifierHead`]) and their checks;
//! * `graph`: the inference graph ([`classifier_graph`]);
//! * `files`: writing both files ([`export_classifier`]);
//! * `model`: what an ONNX classifier declares ([`ClassifierModel`]), read before running it;
//! * `metrics`: top-1/top-5 and the confusion matrix of a stream of logits ([`Confusion`]).

mod files;
mod graph;
mod head;
mod metrics;
mod model;

pub use files::{
    CLASSES_KEY, CLASSIFIER_ONNX, CLASSIFIER_SAFETENSORS, ClassifierFiles, VIT_KEY,
    classifier_state_dict, export_classifier,
};
pub use graph::classifier_graph;
pub use head::{ClassifierHead, HEAD_BIAS, HEAD_WEIGHT};
pub use metrics::{Confusion, top5_k};
pub use model::ClassifierModel;

use std::path::PathBuf;

/// Errors of building, writing, reading and scoring a classifier; each displays as one line
/// naming the file or field concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassifierError {
    /// The head does not fit the encoder or the class list.
    #[error("classifier head: {0}")]
    Head(String),
    /// The encoder weights or the architecture cannot be built into a graph.
    #[error("classifier graph: {0}")]
    Graph(#[from] crate::graph::GraphError),
    /// Writing `classifier.safetensors` failed.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    /// A file or folder could not be created or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An ONNX file that is not a classifier `[batch, 3, H, W] → [batch, classes]`.
    #[error("{}: {reason}", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// Logits or labels that cannot be scored.
    #[error("{0}")]
    Scores(String),
}
