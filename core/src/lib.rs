//! # patchmix-core
//!
//! The exact index algebra of PatchMix (Shen et al., *Inter-Instance Similarity Modeling for
//! Contrastive Learning*, arXiv 2306.12243) as pure functions over caller-provided slices:
//! the shuffle → group mix → unshuffle gather, its application to patch or NCHW image buffers,
//! the soft contrastive targets, and the training schedules. Meant to be embedded in other
//! runtimes, so that they can reproduce (or check) a plan exactly.
//!
//! * [`plan`]: [`MixGeometry`], [`fill_inverse`], [`fill_source`] (and `MixPlan` with `alloc`);
//! * [`rng`]: [`SplitMix64`] and [`fill_permutation`], the documented seeded permutation;
//! * [`apply`]: [`apply_nchw`], [`apply_patches`], [`patchify`], [`unpatchify`] for any `Copy`
//!   element type;
//! * [`labels`]: [`LabelSpec`], [`fill_origin_targets`], [`fill_mix_to_origin_targets`],
//!   [`fill_mix_to_mix_targets`];
//! * [`schedule`]: [`cosine_schedule`], [`momentum_schedule`], [`temperature_schedule`];
//! * [`Error`]: every invalid parameter is reported as a typed error, never a panic;
//! * `ffi` (feature `ffi`): the C ABI of `core/include/patchmix.h`.
//!
//! ## Features
//!
//! * no default feature: `no_std`, no allocation; everything works on caller slices;
//! * `alloc`: owned conveniences (`MixPlan`, `Vec`-returning label helpers);
//! * `std` (default): implies `alloc`;
//! * `ffi`: the C ABI (implies `std`).
//!
//! ## Safety policy
//!
//! Without `ffi` the crate is `#![forbid(unsafe_code)]`. With `ffi` it is
//! `#![deny(unsafe_code)]`, and the single module `ffi` carries `#[allow(unsafe_code)]`: it is the
//! only place where raw pointers from C become slices.
//!
//! ## Example: one training step's plan and targets
//!
//! ```
//! use patchmix_core::{
//!     ImageShape, LabelSpec, MixGeometry, apply_nchw, fill_mix_to_mix_targets,
//!     fill_mix_to_origin_targets, fill_permutation, fill_source,
//! };
//!
//! let (batch, grid, mix) = (4, 4, 2);
//! let geometry = MixGeometry::new(batch, grid, mix)?;
//! let mut perm = [0u32; 16];
//! fill_permutation(1234, &mut perm)?; // or any caller-supplied permutation
//! let mut source = [0u32; 4 * 16];
//! fill_source(&geometry, &perm, &mut source)?;
//!
//! let shape = ImageShape::square(3, 8); // 3×8×8 images, 2×2 patches
//! let images = [0.5f32; 4 * 3 * 8 * 8];
//! let mut mixed = [0.0f32; 4 * 3 * 8 * 8];
//! apply_nchw(&geometry, &source, shape, &images, &mut mixed)?;
//!
//! let spec = LabelSpec::single(batch, 0.1)?;
//! let mut soft_target = [0.0f32; 16];
//! let mut soft_mix_target = [0.0f32; 16];
//! fill_mix_to_origin_targets(&spec, mix, &mut soft_target)?;
//! fill_mix_to_mix_targets(&spec, mix, &mut soft_mix_target)?;
//! let row_sum: f32 = soft_mix_target[..4].iter().sum();
//! assert!((row_sum - 1.0).abs() < 1e-6);
//! # Ok::<(), patchmix_core::Error>(())
//! ```
#![no_std]
#![cfg_attr(not(feature = "ffi"), forbid(unsafe_code))]
#![cfg_attr(feature = "ffi", deny(unsafe_code))]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod apply;
mod error;
pub mod labels;
mod num;
pub mod plan;
pub mod rng;
pub mod schedule;

#[cfg(feature = "ffi")]
#[allow(unsafe_code)]
pub mod ffi;

pub use apply::{ImageShape, apply_nchw, apply_patches, patchify, unpatchify};
pub use error::{Error, Result, STATUS_OK, status_message};
pub use labels::{
    LabelSpec, fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets,
};
#[cfg(feature = "alloc")]
pub use labels::{mix_to_mix_targets, mix_to_origin_targets, origin_targets};
pub use num::{IndexInt, LabelFloat};
#[cfg(feature = "alloc")]
pub use plan::MixPlan;
pub use plan::{MixGeometry, fill_inverse, fill_source};
pub use rng::{SplitMix64, fill_permutation};
pub use schedule::{cosine_schedule, momentum_schedule, temperature_schedule};
