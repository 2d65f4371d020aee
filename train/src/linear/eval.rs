//! Top-1/top-5 accuracy of a probe, and the checks on features and labels before training.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::LinearError;
use super::head::{LinearProbe, logit_rank};

/// Top-1 and top-5 accuracy in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    /// Top-1 accuracy (%).
    pub top1: f64,
    /// Top-5 accuracy (%); 100 when there are at most 5 classes.
    pub top5: f64,
}

/// Top-1/top-5 accuracy of the probe on `features` `[N, D]`, in chunks of 4096 rows.
///
/// # Errors
///
/// [`LinearError::Shape`] for a width or label-count mismatch or no rows.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_train::linear::{LinearProbe, evaluate};
///
/// let p = LinearProbe { weight: array![[1.0, -1.0]], bias: ndarray::Array1::zeros(2) };
/// let acc = evaluate(&p, array![[2.0], [-1.0], [3.0]].view(), &[0, 1, 1])?;
/// assert!((acc.top1 - 200.0 / 3.0).abs() < 1e-9);
/// assert_eq!(acc.top5, 100.0);
/// # Ok::<(), patchmix_train::linear::LinearError>(())
/// ```
pub fn evaluate(
    probe: &LinearProbe,
    features: ArrayView2<'_, f32>,
    labels: &[u32],
) -> Result<TopK, LinearError> {
    let n = features.nrows();
    if n == 0 || labels.len() != n {
        return Err(LinearError::Shape(format!(
            "{n} feature rows but {} labels",
            labels.len()
        )));
    }
    let (mut c1, mut c5) = (0usize, 0usize);
    for start in (0..n).step_by(4096) {
        let end = (start + 4096).min(n);
        let logits = probe
            .logits(features.slice_axis(ndarray::Axis(0), ndarray::Slice::from(start..end)))?;
        for (row, &y) in logits.outer_iter().zip(&labels[start..end]) {
            let y = y as usize;
            if y >= probe.classes() {
                return Err(LinearError::Shape(format!(
                    "label {y} is not below the {} classes",
                    probe.classes()
                )));
            }
            let r = logit_rank(row, y);
            c1 += usize::from(r < 1);
            c5 += usize::from(r < 5);
        }
    }
    Ok(TopK {
        top1: 100.0 * c1 as f64 / n as f64,
        top5: 100.0 * c5 as f64 / n as f64,
    })
}

/// Checks rows against labels, labels against `classes`, and that every feature is finite.
///
/// # Errors
///
/// [`LinearError::Shape`] or [`LinearError::NonFinite`], naming `what` (train/test).
pub fn check_features(
    features: ArrayView2<'_, f32>,
    labels: &[u32],
    classes: usize,
    what: &'static str,
) -> Result<(), LinearError> {
    if features.nrows() == 0 || features.nrows() != labels.len() {
        return Err(LinearError::Shape(format!(
            "{what}: {} feature rows but {} labels",
            features.nrows(),
            labels.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(LinearError::Shape(format!(
            "{what}: label {bad} is not below the {classes} classes"
        )));
    }
    if let Some(pos) = features.iter().position(|v| !v.is_finite()) {
        return Err(LinearError::NonFinite {
            what,
            row: pos / features.ncols().max(1),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn bad_labels_and_non_finite_features_are_errors() {
        let x = Array2::<f32>::zeros((2, 4));
        assert!(matches!(
            check_features(x.view(), &[0, 5], 3, "train"),
            Err(LinearError::Shape(_))
        ));
        let mut nan = x.clone();
        nan[[1, 2]] = f32::NAN;
        assert!(matches!(
            check_features(nan.view(), &[0, 1], 3, "test"),
            Err(LinearError::NonFinite {
                what: "test",
                row: 1
            })
        ));
    }
}
