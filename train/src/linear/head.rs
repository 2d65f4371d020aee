//! The linear classifier `[D → C]` with bias, and the softmax cross-entropy with its gradient
//! written out by hand.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use patchmix_export::knn::class_rank;
use patchmix_export::vit::{RadiusDraw, normal_with};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::LinearError;

/// A linear layer `logits = x · W + b` with `W` `[D, C]` and `b` `[C]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbe {
    /// `[D, C]`.
    pub weight: Array2<f32>,
    /// `[C]`.
    pub bias: Array1<f32>,
}

/// Loss and parameter gradients of one mini-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Rows whose largest logit is the label's.
    pub correct: usize,
    /// `∂loss/∂W`, `[D, C]`.
    pub weight: Array2<f32>,
    /// `∂loss/∂b`, `[C]`.
    pub bias: Array1<f32>,
}

impl LinearProbe {
    /// MoCo v3's initialisation of the classifier: weights `N(0, 0.01²)`, bias 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = patchmix_train::linear::LinearProbe::new(8, 3, 0);
    /// assert_eq!(p.weight.dim(), (8, 3));
    /// assert!(p.weight.iter().all(|w| w.abs() < 0.1));
    /// ```
    pub fn new(dim: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self {
            weight: Array2::from_shape_simple_fn((dim, classes), || {
                normal_with(&mut rng, 0.01, RadiusDraw::Complement) as f32
            }),
            bias: Array1::zeros(classes),
        }
    }

    /// Input width D.
    pub fn dim(&self) -> usize {
        self.weight.nrows()
    }

    /// Number of classes C.
    pub fn classes(&self) -> usize {
        self.weight.ncols()
    }

    /// `x · W + b` for `x` `[B, D]`.
    ///
    /// # Errors
    ///
    /// [`LinearError::Shape`] when `x` does not have D columns.
    pub fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, LinearError> {
        if x.ncols() != self.dim() {
            return Err(LinearError::Shape(format!(
                "features have {} columns, the probe expects {}",
                x.ncols(),
                self.dim()
            )));
        }
        Ok(x.dot(&self.weight) + &self.bias)
    }

    /// Mean cross-entropy of `x` `[B, D]` against `labels` and its gradients
    /// (`∂/∂W = xᵀ·(softmax − onehot)/B`, `∂/∂b = Σ_rows (softmax − onehot)/B`).
    ///
    /// # Errors
    ///
    /// [`LinearError::Shape`] for a width or label-count mismatch, or a label ≥ C.
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::array;
    /// use patchmix_train::linear::LinearProbe;
    ///
    /// let p = LinearProbe { weight: ndarray::Array2::zeros((2, 4)), bias: ndarray::Array1::zeros(4) };
    /// let g = p.loss_and_grad(array![[1.0, 2.0]].view(), &[3])?;
    /// assert!((g.loss - 4f64.ln()).abs() < 1e-6); // uniform over 4 classes
    /// assert!((g.bias[3] + 0.75).abs() < 1e-6);
    /// # Ok::<(), patchmix_train::linear::LinearError>(())
    /// ```
    pub fn loss_and_grad(
        &self,
        x: ArrayView2<'_, f32>,
        labels: &[u32],
    ) -> Result<Gradient, LinearError> {
        let logits = self.logits(x)?;
        let ce = softmax_cross_entropy(logits.view(), labels)?;
        Ok(Gradient {
            loss: ce.loss,
            correct: ce.correct,
            weight: x.t().dot(&ce.grad),
            bias: ce.grad.sum_axis(Axis(0)),
        })
    }
}

/// Result of [`softmax_cross_entropy`].
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy {
    /// Mean over the rows of `−log softmax(z)[y]`.
    pub loss: f64,
    /// `∂loss/∂z = (softmax(z) − onehot(y)) / B`, `[B, C]`.
    pub grad: Array2<f32>,
    /// Rows whose largest logit is the label's (ties broken towards the lower class index).
    pub correct: usize,
}

/// Softmax cross-entropy of `logits` `[B, C]` against `labels`, computed stably (the row
/// maximum is subtracted; sums in f64), with its gradient with respect to the logits.
///
/// # Errors
///
/// [`LinearError::Shape`] when `labels.len() != B`, `B == 0` or a label ≥ C.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_train::linear::softmax_cross_entropy;
///
/// let ce = softmax_cross_entropy(array![[0.0f32, 0.0], [10.0, -10.0]].view(), &[1, 0])?;
/// assert!((ce.loss - 2f64.ln() / 2.0).abs() < 1e-6);
/// assert!((ce.grad[[0, 1]] + 0.25).abs() < 1e-6);
/// assert_eq!(ce.correct, 1); // row 0 is a tie, resolved to class 0
/// # Ok::<(), patchmix_train::linear::LinearError>(())
/// ```
pub fn softmax_cross_entropy(
    logits: ArrayView2<'_, f32>,
    labels: &[u32],
) -> Result<CrossEntropy, LinearError> {
    let (b, c) = logits.dim();
    if b == 0 || labels.len() != b {
        return Err(LinearError::Shape(format!(
            "{b} rows of logits but {} labels",
            labels.len()
        )));
    }
    let mut grad = Array2::<f32>::zeros((b, c));
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    let inv_b = 1.0 / b as f64;
    for ((row, mut g), &y) in logits.outer_iter().zip(grad.outer_iter_mut()).zip(labels) {
        let y = y as usize;
        if y >= c {
            return Err(LinearError::Shape(format!(
                "label {y} is not below the {c} classes"
            )));
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&z| f64::from(z - max).exp()).sum();
        let log_sum = sum.ln();
        loss += log_sum - f64::from(row[y] - max);
        for (j, (&z, gj)) in row.iter().zip(g.iter_mut()).enumerate() {
            let p = (f64::from(z - max).exp() / sum) - if j == y { 1.0 } else { 0.0 };
            *gj = (p * inv_b) as f32;
        }
        if logit_rank(row, y) == 0 {
            correct += 1;
        }
    }
    Ok(CrossEntropy {
        loss: loss * inv_b,
        grad,
        correct,
    })
}

/// The 0-based rank of class `y` in one row of logits ([`class_rank`]: larger logits rank
/// first, ties go to the lower class index, a `NaN` label logit ranks last).
pub(super) fn logit_rank(row: ArrayView1<'_, f32>, y: usize) -> usize {
    match row.as_slice() {
        Some(scores) => class_rank(scores, y),
        None => class_rank(&row.to_vec(), y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A draw from N(0, std²) as the probe's initialisation makes it.
    fn gauss(rng: &mut ChaCha8Rng, std: f64) -> f32 {
        normal_with(rng, std, RadiusDraw::Complement) as f32
    }

    /// Mean cross-entropy of the probe in f64 (the reference for finite differences).
    fn loss64(w: &Array2<f64>, b: &Array1<f64>, x: &Array2<f64>, y: &[u32]) -> f64 {
        let z = x.dot(w) + b;
        let mut total = 0.0;
        for (row, &yi) in z.outer_iter().zip(y) {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
            total += lse - row[yi as usize];
        }
        total / y.len() as f64
    }

    fn random_problem(
        seed: u64,
        b: usize,
        d: usize,
        c: usize,
    ) -> (LinearProbe, Array2<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_simple_fn((b, d), || gauss(&mut rng, 1.0));
        let y = (0..b).map(|i| ((i * 7 + 3) % c) as u32).collect();
        let mut p = LinearProbe::new(d, c, seed + 1);
        p.weight.mapv_inplace(|w| w * 30.0); // logits of order 1, not 0.01
        p.bias = Array1::from_shape_simple_fn(c, || gauss(&mut rng, 0.5));
        (p, x, y)
    }

    #[test]
    fn ce_gradient_matches_finite_differences() {
        for (seed, b, d, c) in [(1, 7, 5, 4), (2, 1, 3, 2), (3, 16, 9, 10)] {
            let (p, x, y) = random_problem(seed, b, d, c);
            let g = p.loss_and_grad(x.view(), &y).unwrap();
            let (w64, b64, x64) = (
                p.weight.mapv(f64::from),
                p.bias.mapv(f64::from),
                x.mapv(f64::from),
            );
            assert!((g.loss - loss64(&w64, &b64, &x64, &y)).abs() < 1e-5);
            let eps = 1e-4;
            let mut max_err = 0.0f64;
            for i in 0..d {
                for j in 0..c {
                    let (mut wp, mut wm) = (w64.clone(), w64.clone());
                    wp[[i, j]] += eps;
                    wm[[i, j]] -= eps;
                    let fd =
                        (loss64(&wp, &b64, &x64, &y) - loss64(&wm, &b64, &x64, &y)) / (2.0 * eps);
                    max_err = max_err.max((fd - f64::from(g.weight[[i, j]])).abs());
                }
            }
            for j in 0..c {
                let (mut bp, mut bm) = (b64.clone(), b64.clone());
                bp[j] += eps;
                bm[j] -= eps;
                let fd = (loss64(&w64, &bp, &x64, &y) - loss64(&w64, &bm, &x64, &y)) / (2.0 * eps);
                max_err = max_err.max((fd - f64::from(g.bias[j])).abs());
            }
            assert!(
                max_err < 1e-5,
                "seed {seed}: max |analytic − FD| = {max_err}"
            );
        }
    }

    #[test]
    fn logit_gradient_rows_sum_to_zero_and_are_stable() {
        // Huge logits must not overflow: the max is subtracted.
        let z = ndarray::array![[1000.0f32, -1000.0, 0.0], [3.0, 3.0, 3.0]];
        let ce = softmax_cross_entropy(z.view(), &[0, 2]).unwrap();
        assert!(ce.loss.is_finite());
        assert!((ce.loss - 3f64.ln() / 2.0).abs() < 1e-6);
        for row in ce.grad.outer_iter() {
            assert!(row.sum().abs() < 1e-6);
        }
        assert_eq!(ce.correct, 1); // the tie in row 1 goes to class 0, not the label 2
    }

    #[test]
    fn bad_labels_and_widths_are_errors() {
        let z = Array2::<f32>::zeros((2, 3));
        assert!(softmax_cross_entropy(z.view(), &[0]).is_err());
        assert!(softmax_cross_entropy(z.view(), &[0, 3]).is_err());
        let p = LinearProbe::new(4, 3, 0);
        assert!(p.logits(Array2::<f32>::zeros((2, 5)).view()).is_err());
    }

    #[test]
    fn logit_rank_breaks_ties_to_the_lower_class_and_ranks_nan_last() {
        let row = ndarray::array![1.0f32, 3.0, 3.0, f32::NAN];
        assert_eq!(logit_rank(row.view(), 1), 0);
        assert_eq!(logit_rank(row.view(), 2), 1);
        assert_eq!(logit_rank(row.view(), 0), 2);
        assert_eq!(logit_rank(row.view(), 3), 4);
        // A strided view (not contiguous) ranks the same.
        let m = ndarray::array![[1.0f32, 9.0], [3.0, 9.0], [3.0, 9.0]];
        assert_eq!(logit_rank(m.column(0), 2), 1);
    }
}
