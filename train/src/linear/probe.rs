//! The linear classifier `[D → C]` with bias, softmax cross-entropy with its gradient written
//! out by hand, SGD with momentum (PyTorch's update) and the cosine learning-rate schedule of
//! the MoCo v3 linear evaluation (one value per epoch, no warm-up).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::epoch_order;

use super::LinearError;

/// Hyper-parameters of the linear probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Base learning rate; the rate used is `base_lr · batch / 256` ([`ProbeConfig::lr`]).
    pub base_lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay (on the weight and the bias, as PyTorch's SGD applies it).
    pub weight_decay: f64,
    /// Seed of the initialisation and of the per-epoch shuffles.
    pub seed: u64,
}

impl Default for ProbeConfig {
    /// MoCo v3 / PatchMix linear evaluation: 100 epochs, batch 256, lr 0.05, momentum 0.9,
    /// no weight decay.
    fn default() -> Self {
        Self {
            epochs: 100,
            batch: 256,
            base_lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

impl ProbeConfig {
    /// The peak learning rate: `base_lr · batch / 256` (the linear scaling rule).
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::linear::ProbeConfig;
    ///
    /// let cfg = ProbeConfig { batch: 1024, ..ProbeConfig::default() };
    /// assert!((cfg.lr() - 0.2).abs() < 1e-12);
    /// ```
    pub fn lr(&self) -> f64 {
        self.base_lr * self.batch as f64 / 256.0
    }

    /// The learning rate of `epoch` (0-based): `lr · ½(1 + cos(π·epoch/epochs))`, as MoCo v3's
    /// `adjust_learning_rate` (via [`patchmix_core::cosine_schedule`]).
    ///
    /// # Errors
    ///
    /// [`LinearError::Config`] when `epoch >= epochs` or the value is not finite.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::linear::ProbeConfig;
    ///
    /// let cfg = ProbeConfig { epochs: 4, ..ProbeConfig::default() };
    /// assert!((cfg.lr_at(0)? - 0.05).abs() < 1e-12);
    /// assert!((cfg.lr_at(2)? - 0.025).abs() < 1e-12);
    /// # Ok::<(), patchmix_train::linear::LinearError>(())
    /// ```
    pub fn lr_at(&self, epoch: usize) -> Result<f64, LinearError> {
        patchmix_core::cosine_schedule(self.lr(), 0.0, self.epochs as u64, 0, 0.0, epoch as u64)
            .map_err(|e| LinearError::Config(format!("learning-rate schedule: {e}")))
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`LinearError::Config`] naming the first bad value: epochs or batch 0, a learning rate
    /// that is not positive and finite, momentum outside `[0, 1)`, negative weight decay.
    pub fn validate(&self) -> Result<(), LinearError> {
        let bad = |m: String| Err(LinearError::Config(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch == 0 {
            return bad("--batch must be at least 1".into());
        }
        if !(self.base_lr.is_finite() && self.base_lr > 0.0) {
            return bad(format!(
                "--lr {}: must be positive and finite",
                self.base_lr
            ));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad(format!("--momentum {}: must be in [0, 1)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "--wd {}: must be non-negative and finite",
                self.weight_decay
            ));
        }
        Ok(())
    }
}

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

/// Draws from `N(0, std²)` with Box–Muller (no extra dependency).
fn normal(rng: &mut ChaCha8Rng, std: f64) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
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
            weight: Array2::from_shape_simple_fn((dim, classes), || normal(&mut rng, 0.01)),
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
        if rank_of(row, y) == 0 {
            correct += 1;
        }
    }
    Ok(CrossEntropy {
        loss: loss * inv_b,
        grad,
        correct,
    })
}

/// How many classes rank before `y` (larger logit, or equal with a lower index); a `NaN` label
/// logit ranks last.
fn rank_of(row: ndarray::ArrayView1<'_, f32>, y: usize) -> usize {
    let zy = row[y];
    if zy.is_nan() {
        return row.len();
    }
    row.iter()
        .enumerate()
        .filter(|&(j, &z)| z > zy || (z == zy && j < y))
        .count()
}

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
            let r = rank_of(row, y);
            c1 += usize::from(r < 1);
            c5 += usize::from(r < 5);
        }
    }
    Ok(TopK {
        top1: 100.0 * c1 as f64 / n as f64,
        top5: 100.0 * c5 as f64 / n as f64,
    })
}

/// Loss and accuracy of one training epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochTrain {
    /// The learning rate used.
    pub lr: f64,
    /// Mean of the mini-batch losses, weighted by batch size.
    pub loss: f64,
    /// Top-1 (%) of the mini-batch predictions before each update.
    pub top1: f64,
}

/// SGD with momentum on a [`LinearProbe`], PyTorch's update: `v ← μ·v + (g + λ·θ)`,
/// `θ ← θ − lr·v`.
#[derive(Debug, Clone)]
pub struct Trainer {
    probe: LinearProbe,
    vel_w: Array2<f32>,
    vel_b: Array1<f32>,
    cfg: ProbeConfig,
}

impl Trainer {
    /// A trainer with a freshly initialised probe ([`LinearProbe::new`] seeded with `cfg.seed`).
    ///
    /// # Errors
    ///
    /// [`LinearError::Config`] for bad settings ([`ProbeConfig::validate`]) or `dim`/`classes`
    /// of 0.
    pub fn new(dim: usize, classes: usize, cfg: ProbeConfig) -> Result<Self, LinearError> {
        cfg.validate()?;
        if dim == 0 || classes == 0 {
            return Err(LinearError::Config(format!(
                "a probe needs at least one feature and one class (D = {dim}, C = {classes})"
            )));
        }
        Ok(Self {
            probe: LinearProbe::new(dim, classes, cfg.seed),
            vel_w: Array2::zeros((dim, classes)),
            vel_b: Array1::zeros(classes),
            cfg,
        })
    }

    /// The current probe.
    pub fn probe(&self) -> &LinearProbe {
        &self.probe
    }

    /// The settings.
    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// One epoch (0-based `epoch`) over `features` `[N, D]` in the order
    /// [`epoch_order`]`(N, seed, epoch)`, mini-batches of `batch` (the last one may be smaller),
    /// at the epoch's cosine learning rate.
    ///
    /// # Errors
    ///
    /// [`LinearError::Shape`] for mismatched features or labels; [`LinearError::Diverged`]
    /// when the loss stops being finite; [`LinearError::Config`] for `epoch >= epochs`.
    pub fn train_epoch(
        &mut self,
        features: ArrayView2<'_, f32>,
        labels: &[u32],
        epoch: usize,
    ) -> Result<EpochTrain, LinearError> {
        let n = features.nrows();
        if n == 0 || labels.len() != n {
            return Err(LinearError::Shape(format!(
                "{n} training feature rows but {} labels",
                labels.len()
            )));
        }
        let lr = self.cfg.lr_at(epoch)?;
        let (lr32, mom, wd) = (
            lr as f32,
            self.cfg.momentum as f32,
            self.cfg.weight_decay as f32,
        );
        let order = epoch_order(n, self.cfg.seed, epoch as u64);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for chunk in order.chunks(self.cfg.batch) {
            let x = features.select(Axis(0), chunk);
            let y: Vec<u32> = chunk.iter().map(|&i| labels[i]).collect();
            let g = self.probe.loss_and_grad(x.view(), &y)?;
            if !g.loss.is_finite() {
                return Err(LinearError::Diverged {
                    epoch: epoch + 1,
                    lr,
                });
            }
            loss_sum += g.loss * chunk.len() as f64;
            correct += g.correct;
            let p = &mut self.probe;
            self.vel_w.mapv_inplace(|v| v * mom);
            self.vel_w.scaled_add(1.0, &g.weight);
            self.vel_b.mapv_inplace(|v| v * mom);
            self.vel_b.scaled_add(1.0, &g.bias);
            if wd > 0.0 {
                self.vel_w.scaled_add(wd, &p.weight);
                self.vel_b.scaled_add(wd, &p.bias);
            }
            p.weight.scaled_add(-lr32, &self.vel_w);
            p.bias.scaled_add(-lr32, &self.vel_b);
        }
        Ok(EpochTrain {
            lr,
            loss: loss_sum / n as f64,
            top1: 100.0 * correct as f64 / n as f64,
        })
    }
}

/// The statistics of one epoch of [`train_probe`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training top-1 (%) of the predictions made during the epoch.
    pub train_top1: f64,
    /// Test top-1 (%) after the epoch.
    pub test_top1: f64,
    /// Test top-5 (%) after the epoch.
    pub test_top5: f64,
}

/// The outcome of a probe training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// One entry per epoch.
    pub epochs: Vec<EpochStats>,
    /// The last epoch (the number to report).
    pub last: EpochStats,
    /// The epoch with the best test top-1 (MoCo v3 prints this as `best_acc1`; it is selected
    /// on the test set, so it is optimistic).
    pub best: EpochStats,
}

impl ProbeReport {
    /// Builds the report from per-epoch statistics.
    ///
    /// # Errors
    ///
    /// [`LinearError::Config`] when `epochs` is empty.
    pub fn from_epochs(epochs: Vec<EpochStats>) -> Result<Self, LinearError> {
        let last = *epochs
            .last()
            .ok_or_else(|| LinearError::Config("no epoch was trained".into()))?;
        let best = epochs
            .iter()
            .copied()
            .fold(last, |b, e| if e.test_top1 > b.test_top1 { e } else { b });
        Ok(Self { epochs, last, best })
    }
}

/// Trains a probe on fixed features (the `--fast` mode of `patchmix linear`), evaluating on
/// the test features after every epoch; `on_epoch` sees each epoch's statistics.
///
/// # Errors
///
/// [`LinearError::Config`] for bad settings or widths that differ between train and test;
/// [`LinearError::Shape`] for label counts or labels ≥ `classes`; [`LinearError::NonFinite`]
/// for a feature that is NaN or infinite; [`LinearError::Diverged`] when the loss blows up.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_train::linear::{ProbeConfig, train_probe};
///
/// let x = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]];
/// let y = [0, 0, 1, 1];
/// let cfg = ProbeConfig { epochs: 20, batch: 2, base_lr: 50.0, ..ProbeConfig::default() };
/// let r = train_probe(x.view(), &y, x.view(), &y, 2, cfg, |_| {})?;
/// assert_eq!(r.last.test_top1, 100.0);
/// # Ok::<(), patchmix_train::linear::LinearError>(())
/// ```
pub fn train_probe(
    train: ArrayView2<'_, f32>,
    train_labels: &[u32],
    test: ArrayView2<'_, f32>,
    test_labels: &[u32],
    classes: usize,
    cfg: ProbeConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<ProbeReport, LinearError> {
    check_features(train, train_labels, classes, "train")?;
    check_features(test, test_labels, classes, "test")?;
    if train.ncols() != test.ncols() {
        return Err(LinearError::Config(format!(
            "train features have D = {} but test features D = {}",
            train.ncols(),
            test.ncols()
        )));
    }
    let mut trainer = Trainer::new(train.ncols(), classes, cfg)?;
    let mut epochs = Vec::with_capacity(cfg.epochs);
    for e in 0..cfg.epochs {
        let t = trainer.train_epoch(train, train_labels, e)?;
        let acc = evaluate(trainer.probe(), test, test_labels)?;
        let stats = EpochStats {
            epoch: e + 1,
            lr: t.lr,
            train_loss: t.loss,
            train_top1: t.top1,
            test_top1: acc.top1,
            test_top5: acc.top5,
        };
        on_epoch(&stats);
        epochs.push(stats);
    }
    ProbeReport::from_epochs(epochs)
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
        let x = Array2::from_shape_simple_fn((b, d), || normal(&mut rng, 1.0));
        let y = (0..b).map(|i| ((i * 7 + 3) % c) as u32).collect();
        let mut p = LinearProbe::new(d, c, seed + 1);
        p.weight.mapv_inplace(|w| w * 30.0); // logits of order 1, not 0.01
        p.bias = Array1::from_shape_simple_fn(c, || normal(&mut rng, 0.5));
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
    fn bad_labels_and_shapes_are_errors() {
        let z = Array2::<f32>::zeros((2, 3));
        assert!(softmax_cross_entropy(z.view(), &[0]).is_err());
        assert!(softmax_cross_entropy(z.view(), &[0, 3]).is_err());
        let p = LinearProbe::new(4, 3, 0);
        assert!(p.logits(Array2::<f32>::zeros((2, 5)).view()).is_err());
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
        let cfg = ProbeConfig {
            epochs: 0,
            ..ProbeConfig::default()
        };
        assert!(Trainer::new(4, 3, cfg).is_err());
    }

    /// Gaussian blobs around well-separated class centres.
    fn blobs(seed: u64, per_class: usize, d: usize, c: usize) -> (Array2<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = Array2::from_shape_simple_fn((c, d), || normal(&mut rng, 3.0));
        let n = per_class * c;
        let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| centres[[i % c, j]]);
        let noise = Array2::from_shape_simple_fn((n, d), || normal(&mut rng, 0.5));
        (x + noise, labels)
    }

    #[test]
    fn separable_blobs_reach_full_accuracy() {
        let (xtr, ytr) = blobs(7, 60, 16, 5);
        let (xte, yte) = {
            // Same centres (same seed for the centres), fresh noise.
            let (x, y) = blobs(7, 80, 16, 5);
            (
                x.slice_axis(Axis(0), ndarray::Slice::from(300..))
                    .to_owned(),
                y[300..].to_vec(),
            )
        };
        let cfg = ProbeConfig {
            epochs: 30,
            batch: 32,
            ..ProbeConfig::default()
        };
        let mut seen = 0;
        let r = train_probe(xtr.view(), &ytr, xte.view(), &yte, 5, cfg, |_| seen += 1).unwrap();
        assert_eq!(seen, 30);
        assert_eq!(r.epochs.len(), 30);
        assert_eq!(r.last.test_top1, 100.0, "{:?}", r.last);
        assert_eq!(r.last.test_top5, 100.0);
        assert!(r.last.train_loss < 0.1, "{:?}", r.last);
        assert!(r.epochs[0].train_loss > r.last.train_loss);
        // The schedule: peak lr at epoch 1, decaying towards 0.
        assert!((r.epochs[0].lr - 0.05 * 32.0 / 256.0).abs() < 1e-12);
        assert!(r.last.lr < r.epochs[0].lr * 0.01);
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (x, y) = blobs(3, 20, 6, 3);
        let cfg = ProbeConfig {
            epochs: 3,
            batch: 8,
            seed: 5,
            ..ProbeConfig::default()
        };
        let a = train_probe(x.view(), &y, x.view(), &y, 3, cfg, |_| {}).unwrap();
        let b = train_probe(x.view(), &y, x.view(), &y, 3, cfg, |_| {}).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn momentum_update_matches_pytorch() {
        // One feature, two classes, batch = N: two steps by hand.
        let x = ndarray::array![[1.0f32]];
        let cfg = ProbeConfig {
            epochs: 1,
            batch: 1,
            base_lr: 256.0 * 0.1,
            momentum: 0.5,
            weight_decay: 0.1,
            seed: 0,
        };
        let mut t = Trainer::new(1, 2, cfg).unwrap();
        let w0 = t.probe().clone();
        let g0 = w0.loss_and_grad(x.view(), &[0]).unwrap();
        t.train_epoch(x.view(), &[0], 0).unwrap();
        let v = &g0.weight + &(w0.weight.clone() * 0.1);
        let want = &w0.weight - &(v * 0.1);
        for (a, b) in t.probe().weight.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
