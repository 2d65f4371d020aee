//! `patchmix pretrain` configuration: the original recipes as presets, a TOML file, and
//! command-line overrides, resolved into one [`PretrainConfig`] that is printed at start and
//! saved with every checkpoint.

use crate::device::Device;
use crate::step::StepConfigError;
use crate::step::{Frame, LocalCrops, Precision, StepConfig, TargetSmoothing, VirtualRanks};
use patchmix_export::vit::{VitConfig, VitConfigError, VitPreset};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a pretraining configuration cannot be used. Each displays as one line naming the file,
/// the field or the preset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No built-in preset has this name.
    #[error("unknown preset `{name}`; known presets: {}", PRESETS.join(", "))]
    UnknownPreset {
        /// The name asked for.
        name: String,
    },
    /// The config file cannot be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not TOML.
    #[error("config {}: invalid TOML: {source}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        #[source]
        source: toml::de::Error,
    },
    /// The config file sets a field that no configuration has.
    #[error("config {}: unknown field `{field}`", path.display())]
    UnknownField {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
    },
    /// A field of the config file has the wrong type or value, or its preset is unknown.
    #[error("config {}: {message}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The preset could not be turned into a TOML table (a bug, reported rather than hidden).
    #[error("cannot represent the preset as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
    /// The encoder architecture does not fit.
    #[error(transparent)]
    Vit(#[from] VitConfigError),
    /// The step (heads, batch, mixing, crops) does not fit.
    #[error(transparent)]
    Step(#[from] StepConfigError),
    /// A field is out of range (the message names it and what it must be).
    #[error("{message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The field, its value and what it must be.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// A fully resolved pretraining configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// The preset this configuration started from.
    pub preset: String,
    /// Training data (`PATH[:train|:test]`, or `synthetic:…`).
    pub data: String,
    /// Held-out data for the online kNN monitor and the final evaluation (optional).
    pub eval_data: Option<String>,
    /// Architecture preset: vit-tiny, vit-small or vit-base.
    pub arch: String,
    /// Input side in pixels.
    pub img: usize,
    /// Patch side.
    pub patch: usize,
    /// Optional width override (custom architectures).
    pub dim: Option<usize>,
    /// Optional depth override.
    pub depth: Option<usize>,
    /// Optional head-count override.
    pub heads: Option<usize>,
    /// Projector/predictor hidden width.
    pub hidden: usize,
    /// Projector/predictor output width.
    pub out: usize,
    /// Images per step.
    pub batch: usize,
    /// Epochs.
    pub epochs: u64,
    /// Learning-rate warm-up epochs.
    pub warmup_epochs: u64,
    /// Base learning rate, scaled by batch/256.
    pub base_lr: f64,
    /// Final learning rate of the cosine schedule.
    pub min_lr: f64,
    /// Initial weight decay.
    pub weight_decay: f64,
    /// Final weight decay (cosine).
    pub weight_decay_end: f64,
    /// Maximum drop-path rate.
    pub drop_path: f32,
    /// Key frame.
    pub frame: Frame,
    /// Initial EMA momentum (momentum frame), cosine to 1.
    pub momentum: f64,
    /// Loss temperature after warm-up.
    pub temperature: f64,
    /// Loss temperature at epoch 0.
    pub warmup_temperature: f64,
    /// Temperature warm-up epochs.
    pub temperature_warmup_epochs: u64,
    /// PatchMix groups m.
    pub mix: usize,
    /// Label smoothing s of the two mix targets (mix-to-origin, mix-to-mix): 0 in every
    /// recipe of the original.
    pub smoothing: f64,
    /// Label smoothing of the view-to-view (origin-to-origin) target of the `src` term, and of
    /// the multi-crop term that shares it: on value `(1 − s) + s/N`, off value `s/N`, with N
    /// the batch. The original builds this target with a `PatchMixer` that is not given its
    /// recipe's smoothing, so it gets the class's default 0.1 in every recipe; every preset
    /// uses 0.1 too. Configurations written before this field existed ran with 0, which is
    /// what a missing field reads as.
    #[serde(default)]
    pub src_smoothing: f64,
    /// RandomResizedCrop minimum scale.
    pub min_crop: f64,
    /// Multi-crop: the global crops' minimum scale (`None`: single-crop).
    pub global_crop: Option<f64>,
    /// Multi-crop: number of local crops.
    pub local_crops: usize,
    /// Multi-crop: local crop side.
    pub local_size: usize,
    /// Run seed.
    pub seed: u64,
    /// ORT intra-op threads (0: one per core).
    pub threads: usize,
    /// Data-loader threads (0: one per core).
    pub loader_threads: usize,
    /// Run directory.
    pub out_dir: PathBuf,
    /// Checkpoint every N epochs (and at the end).
    pub checkpoint_every: u64,
    /// Online kNN every K epochs (0: only at the end).
    pub knn_every: u64,
    /// Stop after this many steps in total (tests, demos); `None`: run all epochs.
    pub max_steps: Option<u64>,
    /// After training, also report kNN of a random-init encoder and of raw pixels.
    pub compare_baselines: bool,
    /// Where the step runs: `cpu`, `cuda[:N]` (an error if CUDA cannot load) or `auto`.
    #[serde(default)]
    pub device: Device,
    /// ORT's CUDA graph capture (CUDA only): a step becomes one graph replay.
    #[serde(default)]
    pub cuda_graph: bool,
    /// The precision of the matrix products: `fp32`, `bf16` (f32 master weights and
    /// optimizer state) or `fp16` (the same, with dynamic loss scaling).
    #[serde(default)]
    pub precision: Precision,
    /// Virtual ranks W: one process emulates W data-parallel ranks of the original (its DDP
    /// recipe on W GPUs). `batch` stays the global batch; each group of `batch / W` images is
    /// PatchMixed within itself with rank-offset targets, while BatchNorm statistics and the
    /// keys span the whole batch, as SyncBatchNorm and the gathered keys do (see
    /// [`crate::step::ranks`]). 1 (the default, and what a configuration written before this
    /// field existed reads as) is the plain single-process step.
    #[serde(default = "one_rank")]
    pub virtual_ranks: usize,
}

fn one_rank() -> usize {
    1
}

/// The smoothing of the view-to-view target in the original: its pretraining builds that
/// target with `PatchMixer(…, mix_p=0.0, mix_n=1)` and no `smoothing` argument, so the class's
/// default 0.1 applies, whatever the recipe's own `smoothing` (0 in every recipe).
pub const ORIGINAL_SRC_SMOOTHING: f64 = 0.1;

/// The names of the built-in presets.
pub const PRESETS: [&str; 8] = [
    "demo",
    "cifar10-vit-tiny",
    "cifar100-vit-tiny",
    "cifar10-vit-small",
    "cifar10-vit-base",
    "imagenet-vit-small",
    "imagenet-vit-base",
    "tiny-test",
];

fn cifar_tiny(data: &str) -> PretrainConfig {
    PretrainConfig {
        preset: String::new(),
        data: data.into(),
        eval_data: None,
        arch: "vit-tiny".into(),
        img: 32,
        patch: 2,
        dim: None,
        depth: None,
        heads: None,
        hidden: 4096,
        out: 256,
        batch: 512,
        epochs: 800,
        warmup_epochs: 100,
        base_lr: 2e-3,
        min_lr: 1e-6,
        weight_decay: 0.02,
        weight_decay_end: 0.2,
        drop_path: 0.1,
        frame: Frame::NoMomentum,
        momentum: 0.996,
        temperature: 0.2,
        warmup_temperature: 0.2,
        temperature_warmup_epochs: 30,
        mix: 2,
        smoothing: 0.0,
        src_smoothing: ORIGINAL_SRC_SMOOTHING,
        min_crop: 0.1,
        global_crop: None,
        local_crops: 0,
        local_size: 96,
        seed: 0,
        threads: 0,
        loader_threads: 0,
        out_dir: PathBuf::from("runs/patchmix"),
        checkpoint_every: 10,
        knn_every: 10,
        max_steps: None,
        compare_baselines: false,
        device: Device::Cpu,
        cuda_graph: false,
        precision: Precision::Fp32,
        virtual_ranks: 1,
    }
}

impl PretrainConfig {
    /// A built-in preset (see [`PRESETS`]).
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn preset(name: &str) -> Result<PretrainConfig, ConfigError> {
        let mut c = match name {
            "cifar10-vit-tiny" => cifar_tiny("data/cifar-10-batches-bin:train"),
            "cifar100-vit-tiny" => cifar_tiny("data/cifar-100-binary:train"),
            "cifar10-vit-small" | "cifar10-vit-base" => {
                let base = name.ends_with("base");
                PretrainConfig {
                    arch: if base { "vit-base" } else { "vit-small" }.into(),
                    base_lr: if base { 7.5e-4 } else { 5e-4 },
                    weight_decay: 0.04,
                    weight_decay_end: 0.4,
                    frame: Frame::Momentum,
                    momentum: 0.996,
                    ..cifar_tiny("data/cifar-10-batches-bin:train")
                }
            }
            "imagenet-vit-small" | "imagenet-vit-base" => {
                let base = name.ends_with("base");
                PretrainConfig {
                    arch: if base { "vit-base" } else { "vit-small" }.into(),
                    img: 224,
                    patch: 16,
                    batch: 1024,
                    epochs: 300,
                    warmup_epochs: 10,
                    base_lr: if base { 7.5e-4 } else { 5e-4 },
                    weight_decay: 0.04,
                    weight_decay_end: 0.4,
                    frame: Frame::Momentum,
                    min_crop: 0.05,
                    global_crop: Some(0.35),
                    local_crops: 8,
                    local_size: 96,
                    ..cifar_tiny("data/imagenet:train")
                }
            }
            "demo" => PretrainConfig {
                data: "data/mnist10k:train".into(),
                eval_data: Some("data/mnist10k:test".into()),
                img: 28,
                patch: 4,
                dim: Some(64),
                depth: Some(4),
                heads: Some(4),
                hidden: 512,
                out: 128,
                batch: 64,
                epochs: 10,
                warmup_epochs: 1,
                base_lr: 4e-3,
                temperature_warmup_epochs: 0,
                min_crop: 0.3,
                drop_path: 0.0,
                out_dir: PathBuf::from("runs/demo"),
                checkpoint_every: 1,
                knn_every: 5,
                compare_baselines: true,
                ..cifar_tiny("data/mnist10k:train")
            },
            "tiny-test" => PretrainConfig {
                data: "synthetic:64".into(),
                img: 8,
                patch: 2,
                dim: Some(16),
                depth: Some(2),
                heads: Some(2),
                hidden: 32,
                out: 16,
                batch: 8,
                epochs: 2,
                warmup_epochs: 1,
                temperature_warmup_epochs: 0,
                out_dir: PathBuf::from("runs/tiny-test"),
                checkpoint_every: 1,
                knn_every: 0,
                ..cifar_tiny("synthetic:64")
            },
            other => {
                return Err(ConfigError::UnknownPreset { name: other.into() });
            }
        };
        c.preset = name.to_string();
        Ok(c)
    }

    /// Reads a TOML file that names a `preset` and overrides any of its fields.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown field or preset — each naming the file.
    pub fn from_toml_file(path: &Path) -> Result<PretrainConfig, ConfigError> {
        Self::from_toml_file_with_fields(path).map(|(c, _)| c)
    }

    /// [`PretrainConfig::from_toml_file`], also returning the names of the fields the file
    /// sets itself (the others come from its preset).
    ///
    /// # Errors
    /// As [`PretrainConfig::from_toml_file`].
    pub fn from_toml_file_with_fields(
        path: &Path,
    ) -> Result<(PretrainConfig, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Toml {
            path: path.into(),
            source,
        })?;
        let preset = table
            .get("preset")
            .and_then(|v| v.as_str())
            .unwrap_or("demo");
        let base = PretrainConfig::preset(preset).map_err(|e| ConfigError::InFile {
            path: path.into(),
            message: e.to_string(),
        })?;
        let mut merged = toml::Table::try_from(&base)?;
        let fields: Vec<String> = table.keys().cloned().collect();
        for (k, v) in table {
            if !merged.contains_key(&k) && !OPTIONAL_FIELDS.contains(&k.as_str()) {
                return Err(ConfigError::UnknownField {
                    path: path.into(),
                    field: k,
                });
            }
            merged.insert(k, v);
        }
        let config = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::InFile {
                path: path.into(),
                message: e.message().to_string(),
            })?;
        Ok((config, fields))
    }

    /// The encoder architecture.
    ///
    /// # Errors
    /// An unknown architecture or sizes that do not fit.
    pub fn vit(&self) -> Result<VitConfig, ConfigError> {
        let preset: VitPreset = self.arch.parse()?;
        let v = preset.with_overrides(self.img, self.patch, self.dim, self.depth, self.heads);
        v.validate()?;
        Ok(v)
    }

    /// The step configuration.
    ///
    /// # Errors
    /// As [`PretrainConfig::validate`].
    pub fn step_config(&self) -> Result<StepConfig, ConfigError> {
        let s = StepConfig {
            vit: self.vit()?,
            hidden: self.hidden,
            out: self.out,
            batch: self.batch,
            mix: self.mix,
            frame: self.frame,
            drop_path: self.drop_path,
            local: (self.local_crops > 0).then_some(LocalCrops {
                count: self.local_crops,
                img: self.local_size,
            }),
            precision: self.precision,
        };
        s.validate()?;
        Ok(s)
    }

    /// The split of the step's batch over [`virtual_ranks`](Self::virtual_ranks). The batch
    /// and m are the step's (for a run, this configuration's own step: `bench loader` pairs a
    /// recipe with another step).
    ///
    /// # Errors
    /// `virtual_ranks` 0, a batch that is not a multiple of it, or (W > 1) fewer than `mix`
    /// images per rank: [`ConfigError::Invalid`] naming `virtual_ranks`, `batch` and `mix`.
    pub fn ranks(&self, step: &StepConfig) -> Result<VirtualRanks, ConfigError> {
        VirtualRanks::new(self.virtual_ranks, step.batch, step.mix)
            .map_err(|e| invalid("virtual_ranks", e.to_string()))
    }

    /// Checks every field, with messages that name the field and what to do. A batch per rank
    /// smaller than 2m−1 is allowed (the repeated mix-to-mix targets are accumulated) and
    /// logged as a warning.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = self.step_config()?;
        let ranks = self.ranks(&s)?;
        let b = ranks.per_rank();
        if b < 2 * self.mix - 1 {
            let per = if ranks.world() > 1 {
                format!(" / virtual_ranks {} = {b}", ranks.world())
            } else {
                String::new()
            };
            log::warn!(
                "batch {}{per} < 2m−1 = {}: mix-to-mix targets repeat (they are accumulated, see patchmix-core)",
                self.batch,
                2 * self.mix - 1
            );
        }
        if self.epochs == 0 {
            return Err(invalid("epochs", "epochs must be ≥ 1"));
        }
        if self.warmup_epochs > self.epochs {
            return Err(invalid(
                "warmup_epochs",
                format!(
                    "warmup_epochs {} exceeds epochs {}",
                    self.warmup_epochs, self.epochs
                ),
            ));
        }
        if !(self.base_lr > 0.0 && self.base_lr.is_finite()) {
            return Err(invalid(
                "base_lr",
                format!("base_lr {} must be a positive number", self.base_lr),
            ));
        }
        if !(0.0 < self.min_crop && self.min_crop <= 1.0) {
            return Err(invalid(
                "min_crop",
                format!("min_crop {} must be in (0, 1]", self.min_crop),
            ));
        }
        if !(self.temperature > 0.0 && self.warmup_temperature > 0.0) {
            return Err(invalid("temperature", "temperatures must be > 0"));
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return Err(invalid(
                "smoothing",
                format!("smoothing {} must be in [0, 1)", self.smoothing),
            ));
        }
        if !(0.0..1.0).contains(&self.src_smoothing) {
            return Err(invalid(
                "src_smoothing",
                format!("src_smoothing {} must be in [0, 1)", self.src_smoothing),
            ));
        }
        if let Some(gc) = self.global_crop
            && !(self.min_crop < gc && gc < 1.0)
        {
            return Err(invalid(
                "global_crop",
                format!(
                    "global_crop {gc} must be in (min_crop = {}, 1): local crops take scale (min_crop, global_crop), global views (global_crop, 1)",
                    self.min_crop
                ),
            ));
        }
        if self.local_crops > 64 {
            return Err(invalid(
                "local_crops",
                format!(
                    "local_crops = {} is too many (at most 64)",
                    self.local_crops
                ),
            ));
        }
        let _ = s;
        Ok(())
    }

    /// The smoothing of the step's soft targets: `src_smoothing` for the view-to-view target,
    /// `smoothing` for the mix targets.
    pub fn target_smoothing(&self) -> TargetSmoothing {
        TargetSmoothing {
            src: self.src_smoothing,
            mix: self.smoothing,
        }
    }

    /// The learning rate after linear scaling: `base_lr · batch / 256`.
    pub fn scaled_lr(&self) -> f64 {
        self.base_lr * self.batch as f64 / 256.0
    }
}

/// Fields that may be absent from the serialised preset (`Option`s serialised as missing).
const OPTIONAL_FIELDS: [&str; 6] = [
    "eval_data",
    "dim",
    "depth",
    "heads",
    "global_crop",
    "max_steps",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_smooths_the_view_to_view_target_as_the_original() {
        for name in PRESETS {
            let c = PretrainConfig::preset(name).unwrap();
            assert_eq!(c.src_smoothing, 0.1, "{name}");
            assert_eq!(c.smoothing, 0.0, "{name}");
            let t = c.target_smoothing();
            assert_eq!((t.src, t.mix), (0.1, 0.0), "{name}");
        }
    }

    #[test]
    fn src_smoothing_is_a_config_field_checked_like_smoothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "preset = \"tiny-test\"\nsrc_smoothing = 0.0\n").unwrap();
        let c = PretrainConfig::from_toml_file(&path).unwrap();
        assert_eq!((c.src_smoothing, c.smoothing), (0.0, 0.0));
        let bad = PretrainConfig {
            src_smoothing: 1.0,
            ..c.clone()
        };
        let e = bad.validate().unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "src_smoothing",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("src_smoothing 1 must be in [0, 1)"),
            "{e}"
        );
        // A configuration saved before the field existed ran with 0, and reads as 0.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("src_smoothing");
        let old: PretrainConfig = serde_json::from_value(old).unwrap();
        assert_eq!(old.src_smoothing, 0.0);
    }
}
