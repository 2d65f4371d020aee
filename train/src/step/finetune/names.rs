//! Graph input and output names of the compiled fine-tune step. The optimizer state, the
//! scalars and the loss share the pretraining step's names ([`crate::step::names`]).

/// The model EMA's flat parameters `[P]` (timm's `ModelEma`).
pub const EMA_PARAMS: &str = "ema_params";
/// The updated model EMA `[P]`.
pub const EMA_PARAMS_OUT: &str = "ema_params_out";
/// The EMA decay (scalar).
pub const EMA_DECAY: &str = "ema_decay";
/// The images after host-side Mixup/CutMix [B, 3, H, W].
pub const IMAGES: &str = "images";
/// The soft targets [B, classes].
pub const TARGETS: &str = "targets";
/// The drop-path masks [2·depth, B, 1, 1].
pub const DROP_PATH: &str = "drop_path.images";
/// The logits of the step's batch [B, classes] (before the update).
pub const LOGITS: &str = "logits";
