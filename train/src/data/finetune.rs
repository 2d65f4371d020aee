//! Fine-tuning batches: the recipe's per-sample training transform on the loader's own worker
//! pool, then Mixup/CutMix of the whole batch and its soft targets.
//!
//! Sample `k` of step `s` in epoch `e` is transformed with
//! [`sample_rng`](crate::data::sample_rng)`(seed, e, s·B + k)` and the batch is mixed with
//! [`mix_rng`](crate::data::mix_rng)`(seed, e, s)`, in the order of
//! [`epoch_order`](crate::data::epoch_order); so a batch is a pure function of
//! `(seed, epoch, step)`, independent of the thread count and of where a run resumed.
//! Consumed by the fine-tuning step (its inputs are `images` and `targets`).
//!
//! A data-parallel rank's loader ([`FinetuneLoader::sharded`]) loads only its contiguous
//! slice `r·b .. (r+1)·b` of each global batch of B = W·b: each sample keeps the transform
//! draws of its position in the epoch (never the rank's), and Mixup/CutMix mixes within the
//! rank's b images (sample i with b − 1 − i), as timm's `Mixup` does on each DDP rank's
//! batch. Every rank draws the batch's λ and box from the same `mix_rng(seed, epoch, step)`;
//! with mixing off the W shards are exactly the rows of the one-process batch.

use std::sync::Arc;

use ndarray::{Array2, Array4};
use patchmix_export::data::{DataError, Dataset};
use rayon::prelude::*;

use super::loader::{LoaderConfig, LoaderError, Shard};
use super::seed::{epoch_order, mix_rng};
use crate::augment::AugmentError;
use crate::augment::finetune::FinetuneTransform;
use crate::augment::mixup::{Mix, Mixup};

/// One fine-tuning batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneBatch {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// Its step within the epoch.
    pub step: usize,
    /// Dataset indices of its samples, in batch order.
    pub indices: Vec<usize>,
    /// Their labels (before mixing).
    pub labels: Vec<u32>,
    /// The transformed and mixed images, `[B, 3, size, size]` (a shard's b = B/W rows for a
    /// [`FinetuneLoader::sharded`] loader, as for the other per-sample fields).
    pub images: Array4<f32>,
    /// The soft targets, `[B, classes]` (`[b, classes]` for a shard; label smoothing only
    /// when the batch was not mixed).
    pub targets: Array2<f32>,
    /// The batch's mixing draw.
    pub mix: Mix,
}

/// Prepares fine-tuning batches (see the module docs).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use patchmix_export::data::{Dataset, Split};
/// use patchmix_train::augment::finetune::{FinetuneConfig, FinetuneTransform};
/// use patchmix_train::augment::mixup::{Mixup, MixupConfig};
/// use patchmix_train::data::{FinetuneLoader, LoaderConfig};
///
/// let ds = Arc::new(Dataset::synthetic("synthetic:20,size=16".parse()?, Split::Train));
/// let t = FinetuneTransform::new(FinetuneConfig::recipe(16))?;
/// let mixup = Mixup::new(MixupConfig::default())?;
/// let cfg = LoaderConfig { batch_size: 8, seed: 1, threads: 2, prefetch: 1 };
/// let loader = FinetuneLoader::new(ds, t, mixup, cfg)?;
/// let b = loader.batch(0, 1)?;
/// assert_eq!(b.images.shape(), &[8, 3, 16, 16]);
/// assert_eq!(b.targets.shape(), &[8, loader.classes()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FinetuneLoader {
    dataset: Arc<Dataset>,
    transform: Arc<FinetuneTransform>,
    mixup: Mixup,
    cfg: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    shard: Shard,
}

impl std::fmt::Debug for FinetuneLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinetuneLoader")
            .field("dataset", &self.dataset.to_string())
            .field("transform", self.transform.config())
            .field("mixup", self.mixup.config())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl FinetuneLoader {
    /// A loader over `dataset` (`cfg.prefetch` is unused: batches are prepared on request).
    ///
    /// # Errors
    ///
    /// [`LoaderError::Config`] when `batch_size` is 0, odd (Mixup pairs sample `i` with
    /// `B − 1 − i`) or larger than the dataset, or the dataset has no classes;
    /// [`LoaderError::Threads`] when the worker pool cannot be built.
    pub fn new(
        dataset: Arc<Dataset>,
        transform: FinetuneTransform,
        mixup: Mixup,
        cfg: LoaderConfig,
    ) -> Result<Self, LoaderError> {
        let b = cfg.batch_size;
        if b == 0 || !b.is_multiple_of(2) {
            return Err(LoaderError::Config(format!(
                "batch_size {b} must be even and at least 2 (Mixup pairs sample i with B − 1 − i)"
            )));
        }
        if dataset.len() < b {
            return Err(LoaderError::Config(format!(
                "{dataset} has fewer images than one batch of {b}; lower batch_size"
            )));
        }
        if dataset.num_classes() == 0 {
            return Err(LoaderError::Config(format!("{dataset} has no classes")));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("patchmix-ft-loader-{i}"))
            .build()
            .map_err(|e| LoaderError::Threads(e.to_string()))?;
        Ok(Self {
            dataset,
            transform: Arc::new(transform),
            mixup,
            cfg,
            pool: Arc::new(pool),
            shard: Shard::WHOLE,
        })
    }

    /// This loader, loading only `shard`'s rows of each global batch of `batch_size` (a
    /// data-parallel rank's share; see the module docs).
    ///
    /// # Errors
    /// [`LoaderError::Config`] when the batch does not split over the shard's world, or
    /// splits into odd per-rank batches (each rank mixes its own batch, and Mixup pairs
    /// sample i with b − 1 − i).
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use patchmix_export::data::{Dataset, Split};
    /// use patchmix_train::augment::finetune::{FinetuneConfig, FinetuneTransform};
    /// use patchmix_train::augment::mixup::{Mixup, MixupConfig};
    /// use patchmix_train::data::{FinetuneLoader, LoaderConfig, Shard};
    ///
    /// let ds = Arc::new(Dataset::synthetic("synthetic:20,size=16".parse()?, Split::Train));
    /// let t = FinetuneTransform::new(FinetuneConfig::recipe(16))?;
    /// let off = MixupConfig { prob: 0.0, ..MixupConfig::default() };
    /// let cfg = LoaderConfig { batch_size: 8, seed: 1, threads: 1, prefetch: 1 };
    /// let whole = FinetuneLoader::new(ds, t, Mixup::new(off)?, cfg)?;
    /// let second = whole.clone().sharded(Shard::new(1, 2, 8)?)?;
    /// let (a, b) = (whole.batch(0, 1)?, second.batch(0, 1)?);
    /// assert_eq!(b.indices, a.indices[4..]);
    /// assert_eq!(b.images.as_slice().unwrap(), &a.images.as_slice().unwrap()[a.images.len() / 2..]);
    /// // 8 images over 8 ranks: one per rank, which cannot be mixed.
    /// assert!(whole.sharded(Shard::new(0, 8, 8)?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sharded(mut self, shard: Shard) -> Result<Self, LoaderError> {
        let b = self.cfg.batch_size;
        Shard::new(shard.rank(), shard.world(), b)?;
        let per_rank = b / shard.world();
        if !per_rank.is_multiple_of(2) {
            return Err(LoaderError::Config(format!(
                "batch {b} over {} ranks is {per_rank} images per rank, which must be even (each rank mixes its own batch: Mixup pairs sample i with b − 1 − i)",
                shard.world()
            )));
        }
        self.shard = shard;
        Ok(self)
    }

    /// The rows of each global batch this loader loads.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// The per-sample transform.
    pub fn transform(&self) -> &FinetuneTransform {
        &self.transform
    }

    /// Number of classes of the targets (the dataset's).
    pub fn classes(&self) -> usize {
        self.dataset.num_classes()
    }

    /// Full batches per epoch: `len / batch_size` (drop last).
    pub fn steps_per_epoch(&self) -> usize {
        self.dataset.len() / self.cfg.batch_size
    }

    /// Prepares batch `step` of `epoch` (on the loader's pool).
    ///
    /// # Errors
    ///
    /// [`LoaderError::Config`] when `step` is past the epoch; [`LoaderError::Data`] when a
    /// sample cannot be read; [`LoaderError::Augment`] when a sample does not fit the
    /// transform (a pad-crop larger than the padded image, a label beyond the classes).
    pub fn batch(&self, epoch: u64, step: usize) -> Result<FinetuneBatch, LoaderError> {
        let order = epoch_order(self.dataset.len(), self.cfg.seed, epoch);
        self.batch_in(&order, epoch, step)
    }

    /// [`batch`](Self::batch) with the epoch's order already computed (for loops over an
    /// epoch).
    ///
    /// # Errors
    ///
    /// As [`batch`](Self::batch); [`LoaderError::Config`] also when `order` is shorter than
    /// the batch needs.
    pub fn batch_in(
        &self,
        order: &[usize],
        epoch: u64,
        step: usize,
    ) -> Result<FinetuneBatch, LoaderError> {
        let (b, seed) = (self.cfg.batch_size, self.cfg.seed);
        if step >= self.steps_per_epoch() || order.len() < (step + 1) * b {
            return Err(LoaderError::Config(format!(
                "step {step} is past the end of the epoch ({} steps)",
                self.steps_per_epoch()
            )));
        }
        // This rank's rows of the global batch (all of them for one process).
        let rows = self.shard.rows(b);
        let first = step * b + rows.start;
        let b = rows.len();
        let indices = order[first..first + b].to_vec();
        let size = self.transform.config().size as usize;
        let per = self.transform.config().floats();
        let mut images = vec![0f32; b * per];
        let (ds, t) = (&self.dataset, &self.transform);
        self.pool.install(|| {
            images
                .par_chunks_mut(per)
                .zip(indices.par_iter())
                .enumerate()
                .try_for_each(|(k, (out, &i))| -> Result<(), LoaderError> {
                    let img = ds.image(i).map_err(LoaderError::Data)?;
                    t.train_sample(&img, seed, epoch, first + k, out)?;
                    Ok(())
                })
        })?;
        let labels: Vec<u32> = indices.iter().map(|&i| ds.label(i)).collect();
        let classes = self.classes();
        let as_usize: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        let (mix, targets) = self
            .mixup
            .mix_batch(
                &mut mix_rng(seed, epoch, step as u64),
                &mut images,
                3,
                (size, size),
                &as_usize,
                classes,
            )
            .map_err(|e| LoaderError::Augment(AugmentError::Config(e.to_string())))?;
        let images = Array4::from_shape_vec((b, 3, size, size), images).map_err(|e| {
            LoaderError::Data(DataError::Preprocess {
                detail: e.to_string(),
            })
        })?;
        let targets = Array2::from_shape_vec((b, classes), targets).map_err(|e| {
            LoaderError::Data(DataError::Preprocess {
                detail: e.to_string(),
            })
        })?;
        Ok(FinetuneBatch {
            epoch,
            step,
            indices,
            labels,
            images,
            targets,
            mix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::finetune::FinetuneConfig;
    use crate::augment::mixup::{MixupConfig, mix_images, mixed_targets, smooth_one_hot};
    use patchmix_export::data::Split;

    fn loader(
        threads: usize,
        mixup: MixupConfig,
        batch: usize,
    ) -> Result<FinetuneLoader, LoaderError> {
        let ds = Arc::new(Dataset::synthetic(
            "synthetic:24,size=12".parse().unwrap(),
            Split::Train,
        ));
        let t = FinetuneTransform::new(FinetuneConfig::recipe(12)).unwrap();
        let cfg = LoaderConfig {
            batch_size: batch,
            seed: 5,
            threads,
            prefetch: 1,
        };
        FinetuneLoader::new(ds, t, Mixup::new(mixup).unwrap(), cfg)
    }

    #[test]
    fn batches_are_the_documented_composition() {
        let l = loader(2, MixupConfig::default(), 8).unwrap();
        let b = l.batch(1, 2).unwrap();
        // Rebuild by hand: order, per-sample transform, then the batch's mix draw.
        let order = epoch_order(24, 5, 1);
        assert_eq!(b.indices, order[16..24].to_vec());
        let t = l.transform();
        let mut images = vec![0f32; 8 * t.config().floats()];
        for (k, out) in images.chunks_mut(t.config().floats()).enumerate() {
            let img = l.dataset.image(order[16 + k]).unwrap();
            t.train_sample(&img, 5, 1, 16 + k, out).unwrap();
        }
        let mix = l.mixup.sample(&mut mix_rng(5, 1, 2), (12, 12));
        assert_eq!(b.mix, mix);
        mix_images(&mix, &mut images, 8, 3, (12, 12)).unwrap();
        assert_eq!(b.images.as_slice().unwrap(), &images[..]);
        let labels: Vec<usize> = b.labels.iter().map(|&v| v as usize).collect();
        let targets = mixed_targets(&labels, l.classes(), 0.1, mix.lambda()).unwrap();
        assert_eq!(b.targets.as_slice().unwrap(), &targets[..]);
        for row in b.targets.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn thread_count_does_not_change_a_batch() {
        let a = loader(1, MixupConfig::default(), 8)
            .unwrap()
            .batch(0, 0)
            .unwrap();
        let b = loader(3, MixupConfig::default(), 8)
            .unwrap()
            .batch(0, 0)
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn mixing_off_gives_label_smoothing() {
        let off = MixupConfig {
            prob: 0.0,
            ..MixupConfig::default()
        };
        let b = loader(2, off, 4).unwrap().batch(0, 0).unwrap();
        assert_eq!(b.mix, Mix::Off);
        let labels: Vec<usize> = b.labels.iter().map(|&v| v as usize).collect();
        let want = smooth_one_hot(&labels, b.targets.shape()[1], 0.1).unwrap();
        assert_eq!(b.targets.as_slice().unwrap(), &want[..]);
    }

    /// A rank's share with mixing on: its rows of the epoch order, each transformed with the
    /// draws of its global position, then mixed among themselves (i with b − 1 − i) with the
    /// batch's one draw — the same on every rank.
    #[test]
    fn a_shard_transforms_its_rows_as_the_whole_batch_and_mixes_them_alone() {
        let whole = loader(2, MixupConfig::default(), 8).unwrap();
        let b = whole
            .clone()
            .sharded(Shard::new(1, 2, 8).unwrap())
            .unwrap()
            .batch(1, 2)
            .unwrap();
        let order = epoch_order(24, 5, 1);
        assert_eq!(b.indices, order[20..24].to_vec());
        let t = whole.transform();
        let per = t.config().floats();
        let mut images = vec![0f32; 4 * per];
        for (k, out) in images.chunks_mut(per).enumerate() {
            let img = whole.dataset.image(order[20 + k]).unwrap();
            t.train_sample(&img, 5, 1, 20 + k, out).unwrap();
        }
        let mix = whole.mixup.sample(&mut mix_rng(5, 1, 2), (12, 12));
        assert_eq!(b.mix, mix);
        assert_eq!(b.mix, whole.batch(1, 2).unwrap().mix);
        mix_images(&mix, &mut images, 4, 3, (12, 12)).unwrap();
        assert_eq!(b.images.as_slice().unwrap(), &images[..]);
        let labels: Vec<usize> = b.labels.iter().map(|&v| v as usize).collect();
        let targets = mixed_targets(&labels, whole.classes(), 0.1, mix.lambda()).unwrap();
        assert_eq!(b.targets.as_slice().unwrap(), &targets[..]);
        // 8 over 8 ranks leaves one image per rank: nothing to mix it with.
        let e = whole
            .sharded(Shard::new(0, 8, 8).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 images per rank, which must be even"), "{e}");
    }

    #[test]
    fn bad_settings_are_errors() {
        let e = loader(1, MixupConfig::default(), 7)
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_size 7 must be even"), "{e}");
        let e = loader(1, MixupConfig::default(), 26)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer images than one batch of 26"), "{e}");
        let l = loader(1, MixupConfig::default(), 8).unwrap();
        assert_eq!(l.steps_per_epoch(), 3);
        let e = l.batch(0, 3).unwrap_err().to_string();
        assert!(e.contains("step 3 is past the end"), "{e}");
    }
}
