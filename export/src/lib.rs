//! patchmix-export: graph IR, ONNX writing, the ViT encoder, weights, runtimes and kNN.
#![forbid(unsafe_code)]

pub mod atomic;
pub mod data;
pub mod graph;
pub mod knn;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "onnx")]
pub mod runtime;
pub mod vit;
pub mod weights;
