//! patchmix-train: everything that **trains** — the autodiff, the compiler of one PatchMix step
//! into one standard-op ONNX graph, the ONNX Runtime session that runs it on the CPU or CUDA,
//! the input pipeline, the pretraining loop and the evaluation tools, and the `patchmix` CLI.
//! It builds on `patchmix-core` (the mixing index algebra and targets) and `patchmix-export`
//! (the IR, the encoder, weights, datasets and kNN).
//!
//! - [`autodiff`]: reverse-mode gradients on the IR, one rule per op family.
//! - [`step`]: the step compiler in named stages (inputs, EMA, encoder passes, heads, losses,
//!   backward, optimizer), its state layout and host types, and the per-step batch preparation.
//! - [`session`]: running a compiled step in ONNX Runtime (plain or IoBinding), one file per job.
//! - [`device`]: where a step runs — device parsing, which ORT build loads, the CUDA provider and
//!   its preflight.
//! - [`augment`], [`data`]: the original's two-view augmentations and the deterministic loader.
//! - [`pretrain`]: configuration and presets, the loop, checkpoints, metrics, the kNN monitor.
//! - [`linear`]: the linear probe on a frozen ONNX encoder.
//! - [`plot`]: the run's curves from `metrics.jsonl`.
//! - [`query`]: query images for retrieval (decoding under limits, the gallery's preprocessing).
//! - `serve` (feature `serve`): the HTTP retrieval service behind `patchmix serve`.
// Without `nccl` the crate forbids `unsafe`; with it, `unsafe` is denied everywhere but in
// the one FFI module `dist::nccl::ffi` (NCCL's C API), which allows it and says why it is sound.
#![cfg_attr(not(feature = "nccl"), forbid(unsafe_code))]
#![cfg_attr(feature = "nccl", deny(unsafe_code))]

pub mod augment;
pub mod data;
pub mod device;
pub mod dist;
pub mod finetune;

pub mod autodiff;
pub mod linear;
pub mod plot;
pub mod pretrain;
pub mod query;
#[cfg(feature = "serve")]
pub mod serve;
pub mod session;
pub mod step;
