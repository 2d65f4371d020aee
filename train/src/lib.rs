//! patchmix-train: autodiff, the step compiler, the optimizer, the data pipeline and the ORT session.
#![forbid(unsafe_code)]
