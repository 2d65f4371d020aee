//! The training-step compiler: one PatchMix step (all encoder passes, heads, loss, backward,
//! AdamW, EMA) as one standard-op ONNX graph, compiled stage by stage (`stages`), and the
//! run's [`Precision`].

mod adamw;
mod batch;
mod build;
mod config;
pub mod finetune;
mod heads;
mod init;
mod inputs;
mod layout;
mod loss;
pub mod names;
mod outputs;
mod precision;
pub mod ranks;
mod scaler;
mod stages;
mod state;

pub use adamw::{AdamInputs, BETA1, BETA2, EPS, GroupScales, adamw, adamw_grouped};
pub use batch::{
    BatchError, PreparedBatch, TargetSmoothing, prepare_batch, prepare_batch_on_ranks,
    prepare_batch_with_local,
};
pub use build::{
    Ranks, StepGraph, build_data_parallel_step, build_rank_step, build_step, build_step_with,
};
pub use config::{Frame, LocalCrops, StepConfig, StepConfigError};
pub use finetune::{
    FinetuneGraph, FinetuneLayout, FinetuneStepConfig, build_finetune_rank_step,
    build_finetune_step, layer_id,
};
pub use heads::{
    BN_EPS, BN_MOMENTUM, HeadCompute, RunningStats, batch_norm_train, flatten, mlp_head, unflatten,
};
pub use init::{from_named, init_state, momentum_from_params, to_named};
pub use inputs::StepInputs;
pub use layout::{Layout, Slot, StateLayout, is_decayed, predictor_layers, projector_layers};
pub use loss::{l2_normalize, soft_ce};
pub use outputs::Losses;
pub use precision::{Precision, UnknownPrecision};
pub use ranks::{RankSplitError, VirtualRanks, prepare_rank_batch, rank_targets};
pub use scaler::{BACKOFF_FACTOR, GROWTH_FACTOR, GROWTH_INTERVAL, INIT_SCALE, LossScaler};
pub use state::HostState;
