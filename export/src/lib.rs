//! patchmix-export: everything a user needs to **ship and serve** a PatchMix encoder, without
//! the training engine — the graph IR and its ONNX writer, the ViT encoder, its weights, the
//! tract/ort runtimes, the datasets to embed and kNN retrieval over the embeddings.
//!
//! Why each module lives here rather than in `patchmix-train`:
//! - [`graph`], [`onnx`]: the IR that both the exported encoder and the training step are built
//!   in, and its writer. The encoder needs them to be exported; the trainer builds on them.
//! - [`vit`]: the timm ViT as IR (config, initialisation, forward, position-embedding resize) —
//!   the model being shipped.
//! - [`weights`]: timm-named safetensors in and out, so a trained encoder (or one from the
//!   original PyTorch code) becomes an ONNX model here.
//! - [`runtime`]: running the exported encoder with tract or ONNX Runtime, and provisioning ONNX
//!   Runtime's CPU library (the trainer reuses it and adds the CUDA build in its `device`).
//! - [`data`]: dataset readers (MNIST, CIFAR, ImageFolder, synthetic) and evaluation
//!   preprocessing. They live here because serving needs them too: `embed` and `knn` read
//!   a gallery and queries without the training crate; training augmentations stay in
//!   `patchmix-train`.
//! - [`knn`]: the feature index and weighted kNN — the retrieval that the shipped encoder serves,
//!   and the evaluation the trainer's monitor reuses.
//! - [`index`]: the gallery index (features, labels, ids, the encoder's fingerprint, an
//!   optional HNSW graph) that retrieval serves, and its exact and approximate search.
//! - [`classifier`]: the encoder plus a linear head as `classifier.onnx`/`classifier.safetensors`,
//!   and the top-1/top-5/confusion scoring of its logits — the shipped classifier.
//! - [`atomic`]: the one atomic file writer used by every file this workspace writes.
#![forbid(unsafe_code)]

pub mod atomic;
#[cfg(feature = "onnx")]
pub mod classifier;
pub mod data;
pub mod graph;
pub mod index;
pub mod knn;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "onnx")]
pub mod runtime;
pub mod vit;
pub mod weights;
