//! patchmix-train: autodiff, the step compiler, the optimizer, the data pipeline and the ORT session.
#![forbid(unsafe_code)]

pub mod augment;
pub mod data;
pub mod device;

pub mod autodiff;
pub mod linear;
pub mod plot;
pub mod pretrain;
pub mod session;
pub mod step;
