//! Training schedules as pure functions of the step (using `libm`, so identical on every target).
//!
//! They reproduce the original's `cosine_scheduler` (learning rate and weight decay, per
//! iteration), `adjust_moco_momentum` (momentum, per fractional epoch) and the temperature
//! warm-up (per epoch), element by element, including `numpy.linspace` semantics for warm-ups
//! (both end points included, the last one exact).

use crate::{Error, Result};
use core::f64::consts::PI;

fn finite(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::InvalidScheduleValue { name, value })
    }
}

/// Element `i` of `numpy.linspace(start, stop, n)` for `i < n`.
fn linspace(start: f64, stop: f64, n: u64, i: u64) -> f64 {
    if n > 1 && i == n - 1 {
        return stop;
    }
    let div = n.saturating_sub(1).max(1) as f64;
    start + i as f64 * ((stop - start) / div)
}

/// Cosine schedule with linear warm-up, value at iteration `iter` of `total_iters`
/// (the original's `cosine_scheduler(base, final, epochs, niter_per_ep, warmup_epochs,
/// start_warmup_value)[iter]` with `total_iters = epochs·niter_per_ep` and
/// `warmup_iters = warmup_epochs·niter_per_ep`).
///
/// * `iter < warmup_iters`: `linspace(start_warmup, base, warmup_iters)[iter]`, i.e. linear from
///   `start_warmup` to `base`, both included;
/// * otherwise, with `i = iter − warmup_iters` and `n = total_iters − warmup_iters`:
///   `final + ½(base − final)(1 + cos(π·i/n))`, which starts at `base` and approaches `final`
///   (reached at `i = n`, one step past the end, as in the original).
///
/// # Errors
///
/// [`Error::InvalidScheduleValue`] for a non-finite value,
/// [`Error::WarmupExceedsTotal`] if `warmup_iters > total_iters`,
/// [`Error::ScheduleIndexOutOfRange`] if `iter ≥ total_iters`, and [`Error::ScheduleOverflow`]
/// if the finite parameters are so far apart that the value overflows `f64`.
///
/// # Examples
///
/// ```
/// use patchmix_core::cosine_schedule;
///
/// // lr: 10 iterations, 2 of warm-up from 0 to 1e-3, then cosine down towards 1e-5.
/// assert_eq!(cosine_schedule(1e-3, 1e-5, 10, 2, 0.0, 0)?, 0.0);
/// assert_eq!(cosine_schedule(1e-3, 1e-5, 10, 2, 0.0, 1)?, 1e-3);
/// assert_eq!(cosine_schedule(1e-3, 1e-5, 10, 2, 0.0, 2)?, 1e-3);
/// assert!(cosine_schedule(1e-3, 1e-5, 10, 2, 0.0, 9)? < 1e-4);
/// assert!(cosine_schedule(1e-3, 1e-5, 10, 2, 0.0, 10).is_err());
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn cosine_schedule(
    base: f64,
    final_value: f64,
    total_iters: u64,
    warmup_iters: u64,
    start_warmup: f64,
    iter: u64,
) -> Result<f64> {
    let base = finite("base", base)?;
    let final_value = finite("final_value", final_value)?;
    let start_warmup = finite("start_warmup", start_warmup)?;
    if warmup_iters > total_iters {
        return Err(Error::WarmupExceedsTotal {
            warmup: warmup_iters,
            total: total_iters,
        });
    }
    if iter >= total_iters {
        return Err(Error::ScheduleIndexOutOfRange {
            index: iter,
            len: total_iters,
        });
    }
    let value = if iter < warmup_iters {
        linspace(start_warmup, base, warmup_iters, iter)
    } else {
        let i = (iter - warmup_iters) as f64;
        let n = (total_iters - warmup_iters) as f64; // ≥ 1 since iter < total_iters
        final_value + 0.5 * (base - final_value) * (1.0 + libm::cos(PI * i / n))
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::ScheduleOverflow { value })
    }
}

/// Momentum of the momentum encoder at (fractional) epoch `epoch` of `total_epochs`:
/// `1 − ½(1 + cos(π·e/E))(1 − m₀)` (the original's `adjust_moco_momentum`, called with
/// `epoch + i/iters_per_epoch`). It rises from `m₀` at `e = 0` to `1` at `e = E`.
///
/// # Errors
///
/// [`Error::InvalidMomentum`] unless `0 ≤ m₀ ≤ 1`, [`Error::EpochOutOfRange`] unless
/// `E > 0` (finite) and `0 ≤ e ≤ E`.
///
/// # Examples
///
/// ```
/// use patchmix_core::momentum_schedule;
///
/// assert_eq!(momentum_schedule(0.99, 0.0, 100.0)?, 0.99);
/// assert_eq!(momentum_schedule(0.99, 100.0, 100.0)?, 1.0);
/// assert!((momentum_schedule(0.99, 50.0, 100.0)? - 0.995).abs() < 1e-12);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn momentum_schedule(base_momentum: f64, epoch: f64, total_epochs: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&base_momentum) {
        return Err(Error::InvalidMomentum {
            momentum: base_momentum,
        });
    }
    if !(total_epochs.is_finite() && total_epochs > 0.0 && (0.0..=total_epochs).contains(&epoch)) {
        return Err(Error::EpochOutOfRange {
            epoch,
            total: total_epochs,
        });
    }
    // (π·e)/E as in the original; π·(e/E) when π·e overflows (e near f64::MAX).
    let angle = PI * epoch / total_epochs;
    let angle = if angle.is_finite() {
        angle
    } else {
        PI * (epoch / total_epochs)
    };
    Ok(1.0 - 0.5 * (1.0 + libm::cos(angle)) * (1.0 - base_momentum))
}

/// Temperature at epoch `epoch`: `linspace(warmup_temp, temp, warmup_epochs)[epoch]` during
/// the warm-up (linear, both ends included), then constant `temp` (the original's
/// `temp_schedule`; past the last epoch it stays at `temp`).
///
/// # Errors
///
/// [`Error::InvalidScheduleValue`] unless both temperatures are finite and positive.
///
/// # Examples
///
/// ```
/// use patchmix_core::temperature_schedule;
///
/// assert_eq!(temperature_schedule(0.1, 0.2, 3, 0)?, 0.1);
/// assert!((temperature_schedule(0.1, 0.2, 3, 1)? - 0.15).abs() < 1e-15);
/// assert_eq!(temperature_schedule(0.1, 0.2, 3, 2)?, 0.2);
/// assert_eq!(temperature_schedule(0.1, 0.2, 3, 50)?, 0.2);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn temperature_schedule(
    warmup_temp: f64,
    temp: f64,
    warmup_epochs: u64,
    epoch: u64,
) -> Result<f64> {
    for (name, value) in [("warmup_temp", warmup_temp), ("temp", temp)] {
        if !(value.is_finite() && value > 0.0) {
            return Err(Error::InvalidScheduleValue { name, value });
        }
    }
    if epoch < warmup_epochs {
        Ok(linspace(warmup_temp, temp, warmup_epochs, epoch))
    } else {
        Ok(temp)
    }
}
