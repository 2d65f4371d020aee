//! The training schedules, one value per call (as the core computes them).

use crate::errors::{core_error, non_negative};
use pyo3::prelude::*;

/// The original's cosine schedule at step `iter`: linear warm-up from `start_warmup` to `base`
/// over `warmup_iters` steps, then cosine from `base` to `final_value` at `total_iters`.
///
/// >>> import patchmix_core as pc
/// >>> pc.cosine_schedule(1.0, 0.0, 10, 0, 0.0, 0)
/// 1.0
#[pyfunction]
pub(crate) fn cosine_schedule(
    base: f64,
    final_value: f64,
    total_iters: i64,
    warmup_iters: i64,
    start_warmup: f64,
    iter: i64,
) -> PyResult<f64> {
    patchmix_core::cosine_schedule(
        base,
        final_value,
        non_negative("total_iters", total_iters)? as u64,
        non_negative("warmup_iters", warmup_iters)? as u64,
        start_warmup,
        non_negative("iter", iter)? as u64,
    )
    .map_err(|e| core_error("iter", e))
}

/// The momentum encoder's momentum at (fractional) `epoch` of `total_epochs`, rising from
/// `base_momentum` to 1.
///
/// >>> import patchmix_core as pc
/// >>> pc.momentum_schedule(0.99, 100.0, 100.0)
/// 1.0
#[pyfunction]
pub(crate) fn momentum_schedule(
    base_momentum: f64,
    epoch: f64,
    total_epochs: f64,
) -> PyResult<f64> {
    patchmix_core::momentum_schedule(base_momentum, epoch, total_epochs)
        .map_err(|e| core_error("epoch", e))
}

/// The contrastive temperature at `epoch`: linear from `warmup_temp` to `temp` over
/// `warmup_epochs`, then `temp`.
///
/// >>> import patchmix_core as pc
/// >>> pc.temperature_schedule(0.1, 0.2, 10, 20)
/// 0.2
#[pyfunction]
pub(crate) fn temperature_schedule(
    warmup_temp: f64,
    temp: f64,
    warmup_epochs: i64,
    epoch: i64,
) -> PyResult<f64> {
    patchmix_core::temperature_schedule(
        warmup_temp,
        temp,
        non_negative("warmup_epochs", warmup_epochs)? as u64,
        non_negative("epoch", epoch)? as u64,
    )
    .map_err(|e| core_error("epoch", e))
}
