//! Smoothing of the loss curves: TensorBoard's debiased EMA, its zero-lag (forward and
//! backward) form, and the default factor for a run's length.

/// The EMA factor [`plot_run`] uses for `n` steps when none is given: `1 − 1/w` with a window
/// `w = n / 30` clamped to `[1, 300]` (no smoothing below 60 steps, 0.99 around 3 000).
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::auto_smoothing;
///
/// assert_eq!(auto_smoothing(10), 0.0);
/// assert!((auto_smoothing(3000) - 0.99).abs() < 1e-12);
/// ```
pub fn auto_smoothing(n: usize) -> f64 {
    let window = (n as f64 / 30.0).clamp(1.0, 300.0);
    1.0 - 1.0 / window
}

/// TensorBoard's debiased exponential moving average: `m ← s·m + (1 − s)·x`, reported as
/// `m / (1 − sᵗ)`; non-finite inputs give `NaN` there and leave the average unchanged.
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::ema;
///
/// let e = ema(&[1.0, 3.0, f64::NAN, 3.0], 0.5);
/// assert_eq!(e[0], 1.0); // debiased: the first value is kept
/// assert!((e[1] - 7.0 / 3.0).abs() < 1e-12);
/// assert!(e[2].is_nan());
/// ```
pub fn ema(values: &[f64], smoothing: f64) -> Vec<f64> {
    let s = smoothing.clamp(0.0, 1.0 - 1e-9);
    let (mut m, mut w) = (0.0f64, 0.0f64);
    values
        .iter()
        .map(|&x| {
            if !x.is_finite() {
                return f64::NAN;
            }
            m = s * m + (1.0 - s) * x;
            w = s * w + (1.0 - s);
            m / w
        })
        .collect()
}

/// The EMA run forward and then backward over the result (as `filtfilt`): the same smoothing
/// with no lag, so the smoothed curve stays centred on the raw one instead of trailing it.
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::ema_zero_lag;
///
/// // A straight line is kept (a plain EMA would trail it by about 1/(1 − s) points).
/// let line: Vec<f64> = (0..200).map(f64::from).collect();
/// let s = ema_zero_lag(&line, 0.9);
/// assert!((s[100] - 100.0).abs() < 0.01);
/// assert!((patchmix_train::plot::ema(&line, 0.9)[100] - 91.0).abs() < 0.01);
/// ```
pub fn ema_zero_lag(values: &[f64], smoothing: f64) -> Vec<f64> {
    let mut fwd = ema(values, smoothing);
    fwd.reverse();
    let mut out = ema(&fwd, smoothing);
    out.reverse();
    out
}
