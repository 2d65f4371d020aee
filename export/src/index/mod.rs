//! The gallery index: what a retrieval service searches.
//!
//! A [`Gallery`] holds the L2-normalised features of a gallery's images, a class label and a
//! unique string id per image (its file path for an ImageFolder, its decimal index in the
//! dataset otherwise), the [fingerprint](ModelFingerprint) of the encoder that embedded them
//! and the preprocessing it used. Queries embedded by another encoder are refused
//! ([`Gallery::check_model`]): their features live in another space, and the neighbours would
//! be wrong without any error.
//!
//! * [`format`](mod@format): the `.pmx` file (safetensors with a `patchmix-gallery` header; why, and the
//!   exact layout, are there);
//! * [`Gallery`]: build, [`add`](Gallery::add), [`remove`](Gallery::remove), atomic
//!   [`save`](Gallery::save), [`load`](Gallery::load);
//! * [`Gallery::search`]: exact blocked cosine search ([`crate::knn::topk_dot`], the ground
//!   truth and the default) or HNSW ([`ann`], feature `hnsw`), optionally among one label.
//!
//! Embedding images is the caller's (the `patchmix` CLI runs the encoder of
//! [`crate::runtime`] with the gallery's [`Gallery::preprocess`]).

pub mod ann;
mod error;
mod fingerprint;
pub mod format;
mod gallery;
mod search;

pub use ann::{HnswParams, Quantization};
pub use error::GalleryError;
pub use fingerprint::ModelFingerprint;
pub use gallery::{AnnLoad, Gallery};
pub use search::{Hit, SearchMethod};

#[cfg(test)]
mod tests;
