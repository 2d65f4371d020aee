//! The probe's hyper-parameters and the cosine learning-rate schedule of the MoCo v3 linear
//! evaluation (one value per epoch, no warm-up).

use serde::{Deserialize, Serialize};

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
