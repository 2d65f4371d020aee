//! The settings of a fine-tuning run and its presets (the original's
//! `config/finetune/vit_*_finetune.py`), and its learning-rate schedule.

use crate::step::{FinetuneStepConfig, Precision};
use patchmix_export::vit::VitConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The preset names.
pub const PRESETS: [&str; 5] = [
    "demo-ft",
    "cifar10-vit-tiny-ft",
    "cifar100-vit-tiny-ft",
    "cifar10-vit-small-ft",
    "imagenet-vit-small-ft",
];

/// A fine-tuning run's settings (written to the run directory as `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneRunConfig {
    /// The preset it started from.
    pub preset: String,
    /// Training data spec (`PATH[:train]`); empty: must be given.
    pub data: String,
    /// Evaluation data spec; `None`: the training data's test split.
    pub eval_data: Option<String>,
    /// The encoder.
    pub vit: VitConfig,
    /// Classes the data must have (`None`: whatever the data has).
    pub classes: Option<usize>,
    /// Images per step (even: Mixup pairs i with B − 1 − i).
    pub batch: usize,
    /// Epochs.
    pub epochs: u64,
    /// Warm-up epochs (lr from `warmup_lr` up to the peak).
    pub warmup_epochs: u64,
    /// The peak lr at batch 256 (`lr = base_lr · batch / 256`).
    pub base_lr: f64,
    /// The first warm-up lr.
    pub warmup_lr: f64,
    /// The cosine's floor.
    pub min_lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Layer-wise lr decay.
    pub layer_decay: f32,
    /// Maximum drop-path rate.
    pub drop_path: f32,
    /// The model EMA's decay.
    pub ema_decay: f64,
    /// Mixup 0.8 / CutMix 1.0 (the recipe); off: label-smoothing (0.1) targets.
    pub mixup: bool,
    /// The run seed.
    pub seed: u64,
    /// The precision of the matrix products.
    pub precision: Precision,
    /// The run directory.
    pub out_dir: PathBuf,
}

impl FinetuneRunConfig {
    /// A preset by name.
    ///
    /// # Errors
    /// A message listing the presets for an unknown name.
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::finetune::FinetuneRunConfig;
    /// let c = FinetuneRunConfig::preset("cifar10-vit-tiny-ft").unwrap();
    /// assert_eq!((c.batch, c.epochs, c.warmup_epochs), (256, 100, 10));
    /// assert!((c.peak_lr() - 1e-3).abs() < 1e-12);
    /// assert!(FinetuneRunConfig::preset("nope").unwrap_err().contains("demo-ft"));
    /// ```
    pub fn preset(name: &str) -> Result<FinetuneRunConfig, String> {
        let cifar = |classes: usize, dim: usize, heads: usize| FinetuneRunConfig {
            preset: name.into(),
            data: String::new(),
            eval_data: None,
            vit: VitConfig {
                img: 32,
                patch: 2,
                dim,
                depth: 12,
                heads,
            },
            classes: Some(classes),
            batch: 256,
            epochs: 100,
            warmup_epochs: 10,
            base_lr: 1e-3,
            warmup_lr: 1e-6,
            min_lr: 1e-5,
            weight_decay: 0.05,
            layer_decay: 0.75,
            drop_path: 0.1,
            ema_decay: 0.99996,
            mixup: true,
            seed: 7,
            precision: Precision::Fp32,
            out_dir: PathBuf::from(format!("runs/{name}")),
        };
        Ok(match name {
            "demo-ft" => FinetuneRunConfig {
                data: "data/mnist10k:train".into(),
                eval_data: Some("data/mnist10k:test".into()),
                vit: VitConfig {
                    img: 28,
                    patch: 4,
                    dim: 64,
                    depth: 4,
                    heads: 4,
                },
                batch: 64,
                epochs: 10,
                warmup_epochs: 1,
                // 10 epochs rather than 100: a peak lr of 1e-3 at batch 64 (the recipe's
                // 1e-3·64/256 = 2.5e-4 learns too little in 1 250 steps).
                base_lr: 4e-3,
                // The demo is 10 epochs: a shorter EMA horizon than 0.99996's ~25k steps.
                ema_decay: 0.999,
                ..cifar(10, 64, 4)
            },
            "cifar10-vit-tiny-ft" => cifar(10, 192, 3),
            "cifar100-vit-tiny-ft" => cifar(100, 192, 3),
            // The original's ViT-S fine-tuning uses 12 heads.
            "cifar10-vit-small-ft" => cifar(10, 384, 12),
            "imagenet-vit-small-ft" => FinetuneRunConfig {
                vit: VitConfig {
                    img: 224,
                    patch: 16,
                    dim: 384,
                    depth: 12,
                    heads: 12,
                },
                batch: 1024,
                ..cifar(1000, 384, 12)
            },
            other => {
                return Err(format!(
                    "unknown fine-tune preset `{other}` (expected one of: {})",
                    PRESETS.join(", ")
                ));
            }
        })
    }

    /// The peak lr: `base_lr · batch / 256` (the original's scaling rule).
    pub fn peak_lr(&self) -> f64 {
        self.base_lr * self.batch as f64 / 256.0
    }

    /// The lr of an epoch, as timm's `CosineLRScheduler` stepped per epoch (the original's
    /// `lr_scheduler.step(epoch)`): linear warm-up from `warmup_lr` over `warmup_epochs`, then
    /// `min_lr + (peak − min_lr)·(1 + cos(π·e/epochs))/2` (timm's `warmup_prefix=False`).
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::finetune::FinetuneRunConfig;
    /// let c = FinetuneRunConfig::preset("cifar10-vit-tiny-ft").unwrap();
    /// assert_eq!(c.lr_at(0), 1e-6);
    /// assert!((c.lr_at(5) - (1e-6 + 5.0 * (1e-3 - 1e-6) / 10.0)).abs() < 1e-15);
    /// let cos = 1e-5 + (1e-3 - 1e-5) * (1.0 + (std::f64::consts::PI * 0.5).cos()) / 2.0;
    /// assert!((c.lr_at(50) - cos).abs() < 1e-15);
    /// ```
    pub fn lr_at(&self, epoch: u64) -> f64 {
        let peak = self.peak_lr();
        if epoch < self.warmup_epochs {
            return self.warmup_lr
                + epoch as f64 * (peak - self.warmup_lr) / self.warmup_epochs as f64;
        }
        let t = epoch as f64 / self.epochs.max(1) as f64;
        self.min_lr + 0.5 * (peak - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }

    /// The step configuration for `classes` classes.
    pub fn step_config(&self, classes: usize) -> FinetuneStepConfig {
        FinetuneStepConfig {
            vit: self.vit.clone(),
            classes,
            batch: self.batch,
            drop_path: self.drop_path,
            layer_decay: self.layer_decay,
            precision: self.precision,
        }
    }
}
