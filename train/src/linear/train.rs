//! Training the probe: SGD with momentum (PyTorch's update) over mini-batches in a seeded
//! per-epoch order, and [`train_probe`], which trains and evaluates epoch by epoch.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::data::epoch_order;

use super::LinearError;
use super::config::ProbeConfig;
use super::eval::{check_features, evaluate};
use super::head::LinearProbe;

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
pub struct ProbeTrainer {
    probe: LinearProbe,
    vel_w: Array2<f32>,
    vel_b: Array1<f32>,
    cfg: ProbeConfig,
}

impl ProbeTrainer {
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

impl EpochStats {
    /// The record of 0-based epoch `epoch`: its training figures and the test accuracy after it.
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::linear::{EpochStats, EpochTrain, TopK};
    /// let t = EpochTrain { lr: 0.1, loss: 2.0, top1: 30.0 };
    /// let s = EpochStats::of_epoch(0, &t, &TopK { top1: 40.0, top5: 80.0 });
    /// assert_eq!((s.epoch, s.test_top5), (1, 80.0));
    /// ```
    pub fn of_epoch(epoch: usize, train: &EpochTrain, test: &super::TopK) -> EpochStats {
        EpochStats {
            epoch: epoch + 1,
            lr: train.lr,
            train_loss: train.loss,
            train_top1: train.top1,
            test_top1: test.top1,
            test_top5: test.top5,
        }
    }
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
    on_epoch: impl FnMut(&EpochStats),
) -> Result<ProbeReport, LinearError> {
    train_probe_keeping(
        train,
        train_labels,
        test,
        test_labels,
        classes,
        cfg,
        on_epoch,
    )
    .map(|(report, _)| report)
}

/// [`train_probe`], also returning the probe as it is after the last epoch (the one
/// `report.last` scores), e.g. to export it as a classifier head.
///
/// # Errors
///
/// As [`train_probe`].
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_train::linear::{ProbeConfig, evaluate, train_probe_keeping};
///
/// let x = array![[1.0f32, 0.0], [0.0, 1.0]];
/// let cfg = ProbeConfig { epochs: 5, batch: 2, base_lr: 50.0, ..ProbeConfig::default() };
/// let (report, probe) = train_probe_keeping(x.view(), &[0, 1], x.view(), &[0, 1], 2, cfg, |_| {})?;
/// assert_eq!(evaluate(&probe, x.view(), &[0, 1])?.top1, report.last.test_top1);
/// # Ok::<(), patchmix_train::linear::LinearError>(())
/// ```
pub fn train_probe_keeping(
    train: ArrayView2<'_, f32>,
    train_labels: &[u32],
    test: ArrayView2<'_, f32>,
    test_labels: &[u32],
    classes: usize,
    cfg: ProbeConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<(ProbeReport, LinearProbe), LinearError> {
    check_features(train, train_labels, classes, "train")?;
    check_features(test, test_labels, classes, "test")?;
    if train.ncols() != test.ncols() {
        return Err(LinearError::Config(format!(
            "train features have D = {} but test features D = {}",
            train.ncols(),
            test.ncols()
        )));
    }
    let mut trainer = ProbeTrainer::new(train.ncols(), classes, cfg)?;
    let mut epochs = Vec::with_capacity(cfg.epochs);
    for e in 0..cfg.epochs {
        let t = trainer.train_epoch(train, train_labels, e)?;
        let acc = evaluate(trainer.probe(), test, test_labels)?;
        let stats = EpochStats::of_epoch(e, &t, &acc);
        on_epoch(&stats);
        epochs.push(stats);
    }
    Ok((ProbeReport::from_epochs(epochs)?, trainer.probe().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchmix_export::vit::{RadiusDraw, normal_with};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A draw from N(0, std²) as the probe's initialisation makes it.
    fn gauss(rng: &mut ChaCha8Rng, std: f64) -> f32 {
        normal_with(rng, std, RadiusDraw::Complement) as f32
    }

    #[test]
    fn bad_settings_are_errors() {
        let cfg = ProbeConfig {
            epochs: 0,
            ..ProbeConfig::default()
        };
        assert!(ProbeTrainer::new(4, 3, cfg).is_err());
    }

    /// Gaussian blobs around well-separated class centres.
    fn blobs(seed: u64, per_class: usize, d: usize, c: usize) -> (Array2<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = Array2::from_shape_simple_fn((c, d), || gauss(&mut rng, 3.0));
        let n = per_class * c;
        let labels: Vec<u32> = (0..n).map(|i| (i % c) as u32).collect();
        let x = Array2::from_shape_fn((n, d), |(i, j)| centres[[i % c, j]]);
        let noise = Array2::from_shape_simple_fn((n, d), || gauss(&mut rng, 0.5));
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
        let mut t = ProbeTrainer::new(1, 2, cfg).unwrap();
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
