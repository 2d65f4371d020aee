//! The error type of the gallery index.

use std::io;
use std::path::PathBuf;

use crate::knn::KnnError;

/// Errors of the [gallery index](super). Every variant caused by a file names that file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GalleryError {
    /// Reading, writing, syncing or renaming a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename into place", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not a gallery index: truncated, corrupt, or some other file.
    #[error("{}: not a patchmix gallery index (.pmx): {reason}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// The file is a gallery index of a format version this build cannot read.
    #[error(
        "{}: gallery format version {found} is not supported (this build reads version \
         {expected}); rebuild it with `patchmix index build`",
        path.display()
    )]
    Version {
        /// The file concerned.
        path: PathBuf,
        /// The version in the file.
        found: String,
        /// The version this build reads and writes.
        expected: &'static str,
    },
    /// The encoder is not the one the gallery was embedded with: its features would be
    /// compared with features of another space.
    #[error(
        "the model {} (sha256 {model}) is not the encoder gallery {} was built with (sha256 \
         {gallery}); use that encoder, or rebuild the gallery with this one",
        model_path.display(), gallery_path.display()
    )]
    FingerprintMismatch {
        /// The gallery file.
        gallery_path: PathBuf,
        /// The fingerprint stored in the gallery (hex).
        gallery: String,
        /// The model file.
        model_path: PathBuf,
        /// The model's fingerprint (hex).
        model: String,
    },
    /// An id to add is already in the gallery (or twice in the batch added).
    #[error(
        "id {0:?} is already in the gallery; ids must be unique (remove it first, or use --id-prefix)"
    )]
    DuplicateId(String),
    /// An id to remove is not in the gallery.
    #[error("id {0:?} is not in the gallery")]
    UnknownId(String),
    /// The operation would leave the gallery without items.
    #[error("removing these ids would leave the gallery empty; delete the file instead")]
    WouldBeEmpty,
    /// `k` is 0 or larger than the number of candidates.
    #[error("k = {k}: {reason}")]
    InvalidK {
        /// The `k` asked for.
        k: usize,
        /// Why it is invalid.
        reason: String,
    },
    /// A label filter names no class of the gallery.
    #[error("unknown label {label:?}: the gallery's classes are {classes}")]
    UnknownLabel {
        /// The label asked for.
        label: String,
        /// The known class names (abbreviated).
        classes: String,
    },
    /// Items to add disagree with each other or with the gallery.
    #[error("cannot add to the gallery: {0}")]
    InvalidItems(String),
    /// A query does not fit the gallery.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// An error of the exact search (dimension, non-finite values).
    #[error(transparent)]
    Knn(#[from] KnnError),
    /// The approximate (HNSW) search was asked for, but the gallery has no HNSW graph.
    #[error(
        "{}: the gallery has no HNSW graph; search it exactly, or rebuild it with --ann hnsw",
        path.display()
    )]
    NoAnn {
        /// The gallery file.
        path: PathBuf,
    },
    /// The HNSW graph file is missing, unreadable or does not match the gallery.
    #[error("{}: HNSW graph: {reason}", path.display())]
    Ann {
        /// The graph file (or the gallery, for a graph still in memory).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl GalleryError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<crate::atomic::AtomicWriteError> for GalleryError {
    fn from(e: crate::atomic::AtomicWriteError) -> Self {
        Self::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
