//! Graph input and output names of the compiled step.

/// Flat parameters `[P]`.
pub const PARAMS: &str = "params";
/// AdamW first moments `[P]`.
pub const EXP_AVG: &str = "exp_avg";
/// AdamW second moments `[P]`.
pub const EXP_AVG_SQ: &str = "exp_avg_sq";
/// BN running statistics `[Q]`.
pub const BUFFERS: &str = "buffers";
/// Momentum-encoder parameters `[Pm]` (momentum frame).
pub const MOMENTUM_PARAMS: &str = "momentum_params";
/// Image inputs [B, 3, H, W].
pub const IMAGES: [&str; 4] = ["view1", "view2", "mix1", "mix2"];
/// Soft targets [B, N].
pub const TARGETS: [&str; 3] = ["target_src", "target_mix", "target_mix2"];
/// Scalars.
pub const LR: &str = "lr";
/// Weight decay scalar.
pub const WD: &str = "wd";
/// AdamW step t (f32 scalar).
pub const STEP: &str = "step";
/// Loss temperature τ.
pub const TEMPERATURE: &str = "temperature";
/// EMA momentum μ (momentum frame).
pub const MOMENTUM: &str = "momentum";
/// The loss scale (fp16 steps).
pub const LOSS_SCALE: &str = "loss_scale";
/// 1 when every gradient was finite and AdamW was applied, 0 when the step was skipped
/// (fp16 steps; f32 scalar).
pub const GRADS_FINITE: &str = "grads_finite";
/// Drop-path masks of a base pass: `drop_path.<pass>` [2·depth, B, 1, 1].
pub const DROP_PATH_PREFIX: &str = "drop_path.";
/// Outputs: updated state then the losses.
pub const STATE_OUTPUTS: [&str; 5] = [
    "params_out",
    "exp_avg_out",
    "exp_avg_sq_out",
    "buffers_out",
    "momentum_params_out",
];
/// Loss outputs.
pub const LOSSES: [&str; 4] = ["loss_src", "loss_mix", "loss_mix2", "loss"];
/// Multi-crop inputs: the local crops and their PatchMix [n·B, 3, l, l] (crop-major).
pub const LOCAL_IMAGES: [&str; 2] = ["local", "local_mix"];
/// Multi-crop loss outputs.
pub const LOSS_MULTI: [&str; 2] = ["loss_multi", "loss_multi_mix"];
