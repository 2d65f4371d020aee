//! Datasets: MNIST (IDX, gzip or raw), CIFAR-10/100 (binary), ImageFolder (JPEG/PNG class
//! folders) and a synthetic generator; format detection from a path; preprocessing for evaluation.
//!
//! Everything here needs only `std`, `flate2`, `image`, `rayon`, `ndarray`, `serde` and
//! `thiserror`, so it builds without the `onnx` feature.
//!
//! # Examples
//!
//! ```no_run
//! use patchmix_export::data::{Dataset, DatasetRef};
//!
//! let train = Dataset::open(&"data/mnist10k:train".parse::<DatasetRef>()?)?;
//! let first = train.image(0)?; // RgbImage, 28×28, grey replicated to 3 channels
//! println!("{train}: label of image 0 is {}", train.label(0));
//! # Ok::<(), patchmix_export::data::DataError>(())
//! ```

mod cifar;
mod dataset;
mod detect;
mod error;
mod folder;
mod held_out;
mod memory;
mod mnist;
pub mod preprocess;
mod sizes;
mod spec;
mod stream;
mod synthetic;

pub use dataset::{Dataset, DatasetKind};
pub use error::DataError;
pub use preprocess::Preprocess;
pub use sizes::{ImageSizes, SizedImage};
pub use spec::{DatasetRef, Split};
pub use synthetic::{SyntheticSpec, mix_seed};

#[cfg(test)]
mod tests;
