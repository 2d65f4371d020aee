//! patchmix-export: graph IR, ONNX writing, the ViT encoder, weights, runtimes and kNN.
#![forbid(unsafe_code)]

pub mod data;
pub mod knn;
pub mod weights;
