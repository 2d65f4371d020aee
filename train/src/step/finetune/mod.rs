//! Supervised fine-tuning as one more compiled step: the encoder with drop path and a new
//! `Linear(D, classes)` head, soft-target cross-entropy, AdamW with timm's layer-wise lr
//! decay and the model EMA (the original's `main_finetune.py` with timm), built from the
//! pretraining step's stages.

mod build;
mod config;
mod layout;
pub mod names;
mod state;

pub use build::{FinetuneGraph, build_finetune_rank_step, build_finetune_step};
pub use config::{FinetuneStepConfig, FinetuneStepConfigError};
pub use layout::{FinetuneLayout, HEAD_BIAS, HEAD_WEIGHT, ScaleRun, is_decayed, layer_id};
pub use state::{EncoderWeightsError, classifier_weights, finetune_state, head_init};
