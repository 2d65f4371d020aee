//! Axis arithmetic of the charts: tick labels, value ranges that ignore early spikes, and
//! curves split at gaps.

/// Tick labels: short, with an exponent for very small or large values.
pub(super) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a < 1e-12 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.4}"))
    }
}

/// Step tick labels: `950`, `1.5k`, `12k`, `1.2M`; none for fractional steps below 1000 (a
/// short run's axis would otherwise repeat rounded labels).
pub(super) fn fmt_step(v: f64) -> String {
    let a = v.abs();
    if a < 1e3 && (v - v.round()).abs() > 1e-6 {
        String::new()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6).replace(".0M", "M")
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else {
        format!("{v:.0}")
    }
}

/// `q`-quantile of the finite values (linear interpolation); `None` when there are none.
pub(super) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// A padded `[lo, hi]` for finite values, ignoring the outer 1 % of `raw` (early spikes) but
/// always covering `keep` (the smoothed curve).
pub(super) fn y_range(raw: &[f64], keep: &[f64]) -> Option<(f64, f64)> {
    let mut lo = quantile(raw, 0.01);
    let mut hi = quantile(raw, 0.99);
    for &x in keep.iter().filter(|x| x.is_finite()) {
        lo = Some(lo.map_or(x, |l| l.min(x)));
        hi = Some(hi.map_or(x, |h| h.max(x)));
    }
    let (lo, hi) = (lo?, hi?);
    Some(pad(lo, hi, 0.06))
}

pub(super) fn pad(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
        (lo - frac * span, hi + frac * span)
    } else {
        let d = if lo.abs() > 1e-12 {
            lo.abs() * 0.05
        } else {
            1.0
        };
        (lo - d, hi + d)
    }
}

/// Splits `(x, y)` into runs of finite points (a `NaN` is a gap), clamping `y` to `[lo, hi]`.
pub(super) fn segments(xs: &[f64], ys: &[f64], (lo, hi): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for (&x, &y) in xs.iter().zip(ys) {
        if x.is_finite() && y.is_finite() {
            cur.push((x, y.clamp(lo, hi)));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub(super) fn x_range(xs: &[f64]) -> (f64, f64) {
    let lo = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::INFINITY, f64::min);
    let hi = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ticks() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.5e-4), "1.5e-4");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(150.0), "150");
        assert_eq!(fmt_step(950.0), "950");
        assert_eq!(fmt_step(1.5), "");
        assert_eq!(fmt_step(1500.0), "1.5k");
        assert_eq!(fmt_step(2000.0), "2k");
        assert_eq!(fmt_step(12_000.0), "12k");
    }

    #[test]
    fn quantiles_and_ranges() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&[f64::NAN], 0.5), None);
        let (lo, hi) = y_range(&v, &[]).unwrap();
        assert!(lo < 1.0 && hi > 99.0 && hi < 106.0);
        // A flat series still gets a non-empty range.
        let (lo, hi) = y_range(&[0.3, 0.3], &[]).unwrap();
        assert!(lo < 0.3 && hi > 0.3);
        let (lo, hi) = y_range(&[0.0, 0.0], &[]).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
    }

    #[test]
    fn segments_split_at_gaps() {
        let s = segments(
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            &[1.0, f64::NAN, 3.0, 9.0, f64::INFINITY],
            (0.0, 5.0),
        );
        assert_eq!(s, vec![vec![(1.0, 1.0)], vec![(3.0, 3.0), (4.0, 5.0)]]);
    }
}
