//! The deterministic, prefetching training loader.
//!
//! A producer thread prepares batches in order and hands them over a bounded
//! `sync_channel(prefetch)`; inside a batch, samples are decoded and augmented in parallel on
//! the loader's own rayon pool. Every random choice is a function of `(seed, epoch, position)`
//! (see [`epoch_order`](crate::data::epoch_order) and [`sample_seed`](crate::data::sample_seed)), so the bytes of a batch do not depend on the
//! number of threads, on prefetching, or on where the epoch was started.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use image::RgbImage;
use ndarray::Array4;
use patchmix_export::data::{DataError, Dataset};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::Batch;
use super::seed::{epoch_order, sample_rng};
use crate::augment::{AugmentError, Pipeline, ViewImages};

/// What can stop the loader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoaderError {
    /// Reading or decoding a sample failed (the message names the file).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The augmentation settings are unusable.
    #[error(transparent)]
    Augment(#[from] AugmentError),
    /// The loader settings are unusable.
    #[error("loader config: {0}")]
    Config(String),
    /// The worker pool or the producer thread could not be started.
    #[error("loader threads: {0}")]
    Threads(String),
}

/// Loader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Samples per batch; the last partial batch of an epoch is dropped.
    pub batch_size: usize,
    /// Seed of the shuffles and augmentations.
    pub seed: u64,
    /// Worker threads (0: one per CPU).
    pub threads: usize,
    /// Batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            seed: 0,
            threads: 0,
            prefetch: 2,
        }
    }
}

/// The training loader: shuffled per epoch, two augmented views (plus locals) per sample.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use patchmix_export::data::{Dataset, Split};
/// use patchmix_train::augment::{AugmentConfig, Pipeline};
/// use patchmix_train::data::{Loader, LoaderConfig};
///
/// let ds = Arc::new(Dataset::synthetic("synthetic:20,size=16".parse()?, Split::Train));
/// let pipe = Pipeline::new(AugmentConfig::new(8, 0.2))?;
/// let cfg = LoaderConfig { batch_size: 8, seed: 1, threads: 2, prefetch: 2 };
/// let loader = Loader::new(ds, pipe, cfg)?;
/// assert_eq!(loader.steps_per_epoch(), 2); // 20 / 8, the partial batch is dropped
/// for batch in loader.epoch(0) {
///     let batch = batch?;
///     assert_eq!(batch.view1.shape(), &[8, 3, 8, 8]);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Loader {
    dataset: Arc<Dataset>,
    pipeline: Arc<Pipeline>,
    cfg: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    shard: Shard,
}

/// The rows of every global batch that one data-parallel rank loads: rank `rank` of `world`
/// takes the contiguous slice `rank·b .. (rank+1)·b` (b = batch ÷ world) of each global batch,
/// the sampler the data-parallel step expects (`PreparedBatch::rank_share`).
///
/// # Examples
/// ```
/// use patchmix_train::data::Shard;
/// let s = Shard::new(1, 2, 8)?;
/// assert_eq!(s.rows(8), 4..8);
/// assert!(Shard::new(0, 3, 8).is_err()); // 8 images do not split over 3 ranks
/// # Ok::<(), patchmix_train::data::LoaderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    rank: usize,
    world: usize,
}

impl Shard {
    /// The whole batch (one process).
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };

    /// Rank `rank` of `world` ranks sharing global batches of `batch` images.
    ///
    /// # Errors
    /// [`LoaderError::Config`] when `world` is 0, `rank` ≥ `world`, or `batch` is not a
    /// multiple of `world`.
    pub fn new(rank: usize, world: usize, batch: usize) -> Result<Self, LoaderError> {
        if world == 0 || rank >= world {
            return Err(LoaderError::Config(format!(
                "rank {rank} is not one of {world} ranks"
            )));
        }
        if !batch.is_multiple_of(world) {
            return Err(LoaderError::Config(format!(
                "batch {batch} does not split evenly over {world} ranks"
            )));
        }
        Ok(Shard { rank, world })
    }

    /// This rank.
    pub const fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub const fn world(&self) -> usize {
        self.world
    }

    /// This rank's rows of a global batch of `batch` images.
    pub fn rows(&self, batch: usize) -> std::ops::Range<usize> {
        let b = batch / self.world;
        self.rank * b..(self.rank + 1) * b
    }
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("dataset", &self.dataset.to_string())
            .field("pipeline", self.pipeline.config())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl Loader {
    /// A loader over `dataset`.
    ///
    /// # Errors
    ///
    /// [`LoaderError::Config`] when `batch_size` is 0 or larger than the dataset;
    /// [`LoaderError::Threads`] when the worker pool cannot be built.
    pub fn new(
        dataset: Arc<Dataset>,
        pipeline: Pipeline,
        cfg: LoaderConfig,
    ) -> Result<Self, LoaderError> {
        if cfg.batch_size == 0 {
            return Err(LoaderError::Config("batch_size must be at least 1".into()));
        }
        if dataset.len() < cfg.batch_size {
            return Err(LoaderError::Config(format!(
                "{dataset} has fewer images than one batch of {}; lower batch_size",
                cfg.batch_size
            )));
        }
        pipeline.config().validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("patchmix-loader-{i}"))
            .build()
            .map_err(|e| LoaderError::Threads(e.to_string()))?;
        Ok(Self {
            dataset,
            pipeline: Arc::new(pipeline),
            cfg,
            pool: Arc::new(pool),
            shard: Shard::WHOLE,
        })
    }

    /// This loader, loading only `shard`'s rows of each global batch (a data-parallel rank's
    /// share). Each sample's augmentation draws depend on (seed, epoch, its position in the
    /// epoch), never on the rank, so the W shards of a batch are exactly the rows of the
    /// batch one process loads.
    ///
    /// # Errors
    /// [`LoaderError::Config`] when the batch does not split over the shard's world.
    pub fn sharded(mut self, shard: Shard) -> Result<Self, LoaderError> {
        Shard::new(shard.rank, shard.world, self.cfg.batch_size)?;
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

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The augmentation pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Full batches per epoch: `len / batch_size` (drop last).
    pub fn steps_per_epoch(&self) -> usize {
        self.dataset.len() / self.cfg.batch_size
    }

    /// The sample order of `epoch` ([`epoch_order`](crate::data::epoch_order) of the dataset length).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        epoch_order(self.dataset.len(), self.cfg.seed, epoch)
    }

    /// Prepares batch `step` of `epoch` on the calling thread (using the loader's pool).
    ///
    /// # Errors
    ///
    /// [`LoaderError::Config`] when `step` is not below [`steps_per_epoch`](Self::steps_per_epoch);
    /// [`LoaderError::Data`] when a sample cannot be read.
    pub fn batch(&self, epoch: u64, step: usize) -> Result<Batch, LoaderError> {
        let order = self.epoch_order(epoch);
        self.batch_in(&order, epoch, step)
    }

    fn batch_in(&self, order: &[usize], epoch: u64, step: usize) -> Result<Batch, LoaderError> {
        if step >= self.steps_per_epoch() {
            return Err(LoaderError::Config(format!(
                "step {step} is past the end of the epoch ({} steps)",
                self.steps_per_epoch()
            )));
        }
        let rows = self.shard.rows(self.cfg.batch_size);
        let first = step * self.cfg.batch_size + rows.start;
        let indices = order[first..step * self.cfg.batch_size + rows.end].to_vec();
        self.pool
            .install(|| self.prepare(epoch, step, first, indices))
    }

    fn prepare(
        &self,
        epoch: u64,
        step: usize,
        first: usize,
        indices: Vec<usize>,
    ) -> Result<Batch, LoaderError> {
        let (ds, pipe, seed) = (&self.dataset, &self.pipeline, self.cfg.seed);
        let views: Vec<ViewImages> = indices
            .par_iter()
            .enumerate()
            .map(|(k, &i)| {
                let img = ds.image(i)?;
                Ok(pipe.augment(&img, &mut sample_rng(seed, epoch, first + k)))
            })
            .collect::<Result<_, DataError>>()?;
        let size = pipe.config().size as usize;
        let view1 = self.stack(&views, size, |v| &v.view1);
        let view2 = self.stack(&views, size, |v| &v.view2);
        let local = pipe.local_size() as usize;
        let locals = (0..pipe.n_local())
            .map(|j| self.stack(&views, local, |v| &v.locals[j]))
            .collect();
        let labels = indices.iter().map(|&i| ds.label(i)).collect();
        Ok(Batch {
            epoch,
            step,
            indices,
            labels,
            view1,
            view2,
            locals,
        })
    }

    /// Normalises one view of every sample into a `[B, 3, side, side]` array, in parallel.
    fn stack(
        &self,
        views: &[ViewImages],
        side: usize,
        pick: impl Fn(&ViewImages) -> &RgbImage + Sync,
    ) -> Array4<f32> {
        let per = 3 * side * side;
        let mut data = vec![0f32; views.len() * per];
        data.par_chunks_mut(per)
            .zip(views.par_iter())
            .for_each(|(out, v)| self.pipeline.normalize_into(pick(v), out));
        Array4::from_shape_vec((views.len(), 3, side, side), data)
            .unwrap_or_else(|_| Array4::zeros((views.len(), 3, side, side)))
    }

    /// Iterates over the batches of `epoch` in order, prepared ahead on a producer thread.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// Like [`epoch`](Self::epoch), starting at `start_step` (for exact resume: the batches are
    /// identical to steps `start_step..` of a full epoch). Empty when `start_step` is at or past
    /// the end.
    pub fn epoch_from(&self, epoch: u64, start_step: usize) -> EpochIter {
        let steps = self.steps_per_epoch();
        let remaining = steps.saturating_sub(start_step);
        let (tx, rx) = sync_channel(self.cfg.prefetch.max(1));
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("patchmix-loader".into())
            .spawn(move || {
                let order = me.epoch_order(epoch);
                for step in start_step..steps {
                    let batch = me.batch_in(&order, epoch, step);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            });
        match spawned {
            Ok(handle) => EpochIter {
                rx: Some(rx),
                handle: Some(handle),
                remaining,
                error: None,
            },
            Err(e) => EpochIter {
                rx: None,
                handle: None,
                remaining: 0,
                error: Some(LoaderError::Threads(format!(
                    "cannot start the producer thread: {e}"
                ))),
            },
        }
    }
}

/// The batches of one epoch, in order. Dropping it stops the producer.
#[derive(Debug)]
pub struct EpochIter {
    rx: Option<Receiver<Result<Batch, LoaderError>>>,
    handle: Option<JoinHandle<()>>,
    remaining: usize,
    error: Option<LoaderError>,
}

impl Iterator for EpochIter {
    type Item = Result<Batch, LoaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        if self.remaining == 0 {
            return None;
        }
        match self.rx.as_ref()?.recv() {
            Ok(Ok(batch)) => {
                self.remaining -= 1;
                Some(Ok(batch))
            }
            Ok(Err(e)) => {
                self.remaining = 0;
                Some(Err(e))
            }
            Err(_) => {
                // The producer ended early without sending an error: it panicked.
                self.remaining = 0;
                Some(Err(LoaderError::Threads(
                    "the producer thread stopped unexpectedly".into(),
                )))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining + usize::from(self.error.is_some())))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel makes the producer's next send fail, so it stops.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
