//! The trained state on the host, in the step's flat layouts.

use super::scaler::LossScaler;

/// The trained state on the host, in the step's flat layouts.
#[derive(Clone, Debug, PartialEq)]
pub struct HostState {
    /// Flat parameters.
    pub params: Vec<f32>,
    /// AdamW first moments.
    pub exp_avg: Vec<f32>,
    /// AdamW second moments.
    pub exp_avg_sq: Vec<f32>,
    /// BN running statistics.
    pub buffers: Vec<f32>,
    /// Momentum-encoder parameters (empty without one).
    pub momentum: Vec<f32>,
    /// Optimizer steps taken (AdamW's t; fp16 steps skipped for overflow do not count).
    pub step: u64,
    /// The fp16 loss scaler (`None` for fp32/bf16 steps).
    pub scaler: Option<LossScaler>,
}
