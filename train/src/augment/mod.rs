//! The original PatchMix / MoCo v3 two-view augmentations, one op per module, on 8-bit RGB
//! images as torchvision applies them to PIL images; [`Pipeline`] chains them.
//!
//! Fine-tuning's transforms sit beside them: [`finetune`] (timm's `create_transform` of the
//! original recipe) with [`randaugment`] (its ops in [`affine`], [`tone`], [`sharpness`] and
//! [`jitter`]), [`erasing`], and the batch-level [`mixup`].
//!
//! Randomness comes from a caller's RNG (the loader seeds a `ChaCha8Rng` per sample), so a
//! pipeline run is reproducible byte for byte from a seed.

pub mod affine;
pub mod blur;
pub mod crop;
pub mod erasing;
pub mod finetune;
pub mod flip;
pub mod gray;
pub mod hsv;
pub mod jitter;
pub mod mixup;
pub mod pipeline;
pub mod randaugment;
pub mod random;
pub mod sharpness;
pub mod solarize;
pub mod tone;

pub use jitter::ColorJitter;
pub use pipeline::{AugmentConfig, AugmentError, MultiCrop, Pipeline, ViewImages, ViewSpec};
