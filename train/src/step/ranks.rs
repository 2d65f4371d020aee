//! Virtual ranks: one process emulating the original's W data-parallel ranks.
//!
//! # What the original does on W GPUs (visresearch/patchmix)
//!
//! - `main_pretrain.py`, `main_worker`: the configured `batch_size` is the global batch B;
//!   with DDP each rank gets `B / world_size` images from a `DistributedSampler`, every
//!   BatchNorm becomes `nn.SyncBatchNorm` (batch statistics over all ranks' rows), and the
//!   learning rate is scaled by the global B.
//! - `module/mix.py`, `PatchMixer.__call__` and `PatchMix.forward`: each rank mixes **within
//!   its own batch** of b = B/W images (mixed image i takes its groups from images
//!   i, …, i+m−1 mod b of that rank) and builds its targets over `num_classes = b·W` columns,
//!   shifted by `offset = b·rank`: the origin target of row i is column `b·rank + i`, the
//!   mix-to-origin targets are `b·rank + (i + k) mod b`, the mix-to-mix ones
//!   `b·rank + (i − m + 1 + k) mod b`. `patchmix_core::LabelSpec::new(b, W, rank, s)` builds
//!   exactly these rows (with the core's accumulation when b < 2m − 1).
//! - `module/loss.py`, `MultiTempContrastiveLoss`: the keys are normalised, then
//!   `concat_all_gather`ed (no gradient) into all B keys in rank order, so rank r's logits are
//!   its b queries against all B keys, and `SoftTargetCrossEntropy` averages over its b rows.
//! - DDP averages the gradients over the ranks, so the step follows
//!   `(1/W)·Σ_r mean_{rows of r} ℓ = mean over all B rows of ℓ` (equal b per rank); SyncBN's
//!   backward makes each rank's gradient the derivative of the sum over ranks, as one
//!   process's BatchNorm over the whole batch does. The logged losses are the ranks' means
//!   averaged (`AverageMeter.synchronize_between_processes`), the same mean over B rows.
//!
//! # The emulation
//!
//! So one process reproduces W ranks with the unchanged step graph (BatchNorm over the whole
//! batch, keys = all B rows, the loss a mean over the B rows) and different inputs only: the
//! batch is cut into W contiguous groups of b rows (group r = rows `r·b .. (r+1)·b`, rank r's
//! slice of the global batch); each group is PatchMixed on its own; and the [B, B] targets
//! stack the W groups' rank-offset rows, so they are block-structured (each row's mass lies in
//! its own group's columns, apart from the smoothing's `s/B`). With W = 1 this is exactly the
//! single-process step.
//!
//! # The permutations
//!
//! Each view's (and each local crop's) token permutation is drawn once per step from the
//! step's RNG, exactly as with W = 1, and every group applies that permutation to its own
//! images. This is what the original's ranks do: `main_worker` calls
//! `misc.fix_random_seeds(args.seed)` with the same seed on every rank, and the mixer's NumPy
//! draws (`np.random.rand` for `mix_p`, `np.random.shuffle` in `PatchShuffle`) come in the same
//! order on every rank, so in each step every rank shuffles its tokens with the same
//! permutation. A real rank r reproduces virtual group r by seeding the same step RNG (from the
//! run seed and the global step, not from the rank), drawing the same plan seeds, and applying
//! them to its own b images. The drop-path masks are drawn for all B rows as today; rank r
//! takes its rows.

use super::batch::TargetSmoothing;
use patchmix_core::{LabelSpec, mix_to_mix_targets, mix_to_origin_targets, origin_targets};
use std::ops::Range;

/// Why a batch cannot be split over virtual ranks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RankSplitError {
    /// W = 0.
    #[error("virtual_ranks must be ≥ 1 (got 0)")]
    ZeroRanks,
    /// B is not a multiple of W.
    #[error(
        "batch {batch} does not split into virtual_ranks = {world} equal groups: batch must be a multiple of virtual_ranks"
    )]
    Uneven {
        /// The global batch B.
        batch: usize,
        /// The number of ranks W.
        world: usize,
    },
    /// Each rank's batch is smaller than the mix count, so a mixed image would take several
    /// of its groups from the same image.
    #[error(
        "batch {batch} / virtual_ranks {world} = {per_rank} images per rank is fewer than mix m = {mix}: each rank mixes within its own batch, so batch / virtual_ranks must be ≥ mix"
    )]
    TooSmallForMix {
        /// The global batch B.
        batch: usize,
        /// The number of ranks W.
        world: usize,
        /// B / W.
        per_rank: usize,
        /// PatchMix groups m.
        mix: usize,
    },
}

/// A global batch of B images split over W (virtual) ranks of b = B/W images each.
///
/// # Examples
///
/// ```
/// use patchmix_train::step::VirtualRanks;
///
/// let r = VirtualRanks::new(2, 8, 2)?;
/// assert_eq!((r.world(), r.per_rank(), r.batch()), (2, 4, 8));
/// assert_eq!(r.rows(1), 4..8);
/// assert!(VirtualRanks::new(3, 8, 2).is_err());
/// # Ok::<(), patchmix_train::step::RankSplitError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualRanks {
    world: usize,
    per_rank: usize,
}

impl VirtualRanks {
    /// One rank holding the whole batch (the single-process step).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = patchmix_train::step::VirtualRanks::single(8);
    /// assert_eq!((r.world(), r.per_rank()), (1, 8));
    /// ```
    pub fn single(batch: usize) -> Self {
        Self {
            world: 1,
            per_rank: batch,
        }
    }

    /// Splits `batch` over `world` ranks for PatchMix with `mix` groups.
    ///
    /// With W = 1 any batch is accepted (as the single-process step always has: a batch below
    /// m mixes groups of the same image and its targets accumulate); with W > 1 each rank needs
    /// at least m images.
    ///
    /// # Errors
    /// [`RankSplitError`]: W = 0, B not a multiple of W, or B/W < m when W > 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::step::{RankSplitError, VirtualRanks};
    ///
    /// assert_eq!(
    ///     VirtualRanks::new(4, 10, 2),
    ///     Err(RankSplitError::Uneven { batch: 10, world: 4 })
    /// );
    /// assert!(VirtualRanks::new(4, 8, 3).unwrap_err().to_string().contains("≥ mix"));
    /// ```
    pub fn new(world: usize, batch: usize, mix: usize) -> Result<Self, RankSplitError> {
        if world == 0 {
            return Err(RankSplitError::ZeroRanks);
        }
        if !batch.is_multiple_of(world) {
            return Err(RankSplitError::Uneven { batch, world });
        }
        let per_rank = batch / world;
        if world > 1 && per_rank < mix {
            return Err(RankSplitError::TooSmallForMix {
                batch,
                world,
                per_rank,
                mix,
            });
        }
        Ok(Self { world, per_rank })
    }

    /// The number of ranks W.
    pub const fn world(&self) -> usize {
        self.world
    }

    /// Images per rank, b = B/W.
    pub const fn per_rank(&self) -> usize {
        self.per_rank
    }

    /// The global batch B = W·b.
    pub const fn batch(&self) -> usize {
        self.world * self.per_rank
    }

    /// The rows of the global batch that rank `rank` holds: `rank·b .. (rank+1)·b`.
    pub fn rows(&self, rank: usize) -> Range<usize> {
        rank * self.per_rank..(rank + 1) * self.per_rank
    }
}

/// The step's three soft targets, each [B, B] row-major: `target_src` (origin-to-origin, with
/// `smoothing.src`), `target_mix` (mix-to-origin) and `target_mix2` (mix-to-mix, both with
/// `smoothing.mix`). The rows of group r are the core's targets for rank r of W
/// (`LabelSpec::new(b, W, r, s)`: b rows over the N = B columns of all ranks' keys), stacked
/// in rank order; with W = 1 they are the single-process targets.
///
/// # Errors
/// The core's: m = 0, smoothing outside [0, 1].
///
/// # Examples
///
/// ```
/// use patchmix_train::step::{TargetSmoothing, VirtualRanks, rank_targets};
///
/// // B = 4, W = 2, m = 1: every target is the identity, whatever the split.
/// let [src, mix, _] = rank_targets(VirtualRanks::new(2, 4, 1)?, 1, TargetSmoothing::from(0.0))?;
/// assert_eq!(src, mix);
/// assert_eq!(&src[4..8], &[0.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rank_targets(
    ranks: VirtualRanks,
    mix: usize,
    smoothing: TargetSmoothing,
) -> Result<[Vec<f32>; 3], patchmix_core::Error> {
    let (b, w) = (ranks.per_rank(), ranks.world());
    let mut out: [Vec<f32>; 3] = std::array::from_fn(|_| Vec::with_capacity(b * b * w * w));
    for rank in 0..w {
        let src = LabelSpec::new(b, w, rank, smoothing.src)?;
        out[0].extend(origin_targets::<f32>(&src)?);
        let spec = LabelSpec::new(b, w, rank, smoothing.mix)?;
        out[1].extend(mix_to_origin_targets::<f32>(&spec, mix)?);
        out[2].extend(mix_to_mix_targets::<f32>(&spec, mix)?);
    }
    Ok(out)
}

impl super::batch::PreparedBatch {
    /// Rank `rank`'s share of a batch prepared for `cfg` on `ranks` (by
    /// [`prepare_batch_on_ranks`](super::batch::prepare_batch_on_ranks)): its rows of every
    /// image, of the targets (with all B columns: a real rank's keys are gathered from all
    /// ranks), of each drop-path mask and of each local crop. This is the batch a real
    /// data-parallel rank r feeds to its step (built by
    /// [`build_data_parallel_step`](super::build_data_parallel_step) for the per-rank batch).
    ///
    /// # Examples
    /// ```
    /// use patchmix_train::step::{Frame, StepConfig, VirtualRanks, prepare_batch_on_ranks};
    /// let cfg = StepConfig::tiny(Frame::NoMomentum, 0.0);
    /// let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    /// let view: Vec<f32> = (0..n).map(|i| i as f32).collect();
    /// let ranks = VirtualRanks::new(2, cfg.batch, cfg.mix)?;
    /// let b = prepare_batch_on_ranks(&cfg, ranks, view.clone(), view, None, 1, 0.0)?;
    /// let second = b.rank_share(&cfg, ranks, 1);
    /// assert_eq!(second.images[0], b.images[0][n / 2..]);
    /// assert_eq!(second.targets[0], b.targets[0][4 * 8..]); // rows 4..8, all 8 columns
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rank_share(
        &self,
        cfg: &super::StepConfig,
        ranks: VirtualRanks,
        rank: usize,
    ) -> super::batch::PreparedBatch {
        let rows = ranks.rows(rank);
        let batch = ranks.batch();
        // Rank `rank`'s rows of each of the `blocks` batch-major blocks [B, …] of `v`.
        let share = |v: &[f32], blocks: usize| -> Vec<f32> {
            let row = v.len() / (blocks * batch).max(1);
            v.chunks((batch * row).max(1))
                .flat_map(|block| block[rows.start * row..rows.end * row].iter().copied())
                .collect()
        };
        let crops = cfg.local.map_or(1, |l| l.count);
        super::batch::PreparedBatch {
            images: self.images.each_ref().map(|v| share(v, 1)),
            targets: self.targets.each_ref().map(|v| share(v, 1)),
            // One scale per row: [2·depth, B] per pass ([2·depth, n·B] crop-major for crops).
            drop_path: self
                .drop_path
                .iter()
                .map(|v| share(v, v.len() / batch))
                .collect(),
            perms: self.perms.clone(),
            // Crop-major [n·B, 3, l, l].
            local: self
                .local
                .as_ref()
                .map(|pair| pair.each_ref().map(|v| share(v, crops))),
        }
    }
}

/// A real data-parallel rank's step inputs, from its own rows only: rank `rank` of `ranks`
/// holds b = B/W images of each view (`view1`, `view2`: [b, 3, img, img]) and, with
/// multi-crop, its local crops (crop-major [n·b, 3, l, l]); `cfg` is the **global** step
/// configuration (batch B). The result equals
/// `prepare_batch_on_ranks(cfg, ranks, <all B rows>, …).rank_share(cfg, ranks, rank)` for any
/// content of the other ranks' rows: each group is PatchMixed on its own with the step's
/// permutations, the targets and drop-path masks do not depend on the pixels, and the step RNG
/// draws the same sequence whatever the images (the other rows are filled with zeros and their
/// mixing discarded: B·3·img² copies, negligible against the step).
///
/// # Errors
/// [`BatchError`]: a rank outside the world, views or crops of the wrong size, or what
/// [`prepare_batch_on_ranks`](super::batch::prepare_batch_on_ranks) rejects.
///
/// # Examples
/// ```
/// use patchmix_train::step::{Frame, StepConfig, VirtualRanks, prepare_batch_on_ranks, prepare_rank_batch};
/// let cfg = StepConfig::tiny(Frame::NoMomentum, 0.0);
/// let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
/// let view: Vec<f32> = (0..n).map(|i| i as f32).collect();
/// let ranks = VirtualRanks::new(2, cfg.batch, cfg.mix)?;
/// let whole = prepare_batch_on_ranks(&cfg, ranks, view.clone(), view.clone(), None, 1, 0.1)?;
/// let mine = view[n / 2..].to_vec();
/// let rank1 = prepare_rank_batch(&cfg, ranks, 1, mine.clone(), mine, None, 1, 0.1)?;
/// assert_eq!(rank1.images, whole.rank_share(&cfg, ranks, 1).images);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn prepare_rank_batch(
    cfg: &super::StepConfig,
    ranks: VirtualRanks,
    rank: usize,
    view1: Vec<f32>,
    view2: Vec<f32>,
    local: Option<Vec<f32>>,
    seed: u64,
    smoothing: impl Into<TargetSmoothing>,
) -> Result<super::batch::PreparedBatch, super::batch::BatchError> {
    use super::batch::BatchError;
    if rank >= ranks.world() {
        return Err(BatchError::Rank {
            rank,
            world: ranks.world(),
        });
    }
    let (b, img) = (ranks.per_rank(), cfg.vit.img);
    let per = 3 * img * img;
    if view1.len() != b * per || view2.len() != b * per {
        return Err(BatchError::ViewSize {
            view1: view1.len(),
            view2: view2.len(),
            want: b * per,
            batch: b,
            img,
        });
    }
    let rows = ranks.rows(rank);
    // `blocks` blocks of b rows of `row` values each, placed at this rank's rows of `blocks`
    // global blocks of B rows.
    let widen = |mine: &[f32], blocks: usize| -> Vec<f32> {
        let row = mine.len() / (blocks * b).max(1);
        let mut global = vec![0.0f32; blocks * ranks.batch() * row];
        for (src, dst) in mine
            .chunks((b * row).max(1))
            .zip(global.chunks_mut((ranks.batch() * row).max(1)))
        {
            dst[rows.start * row..rows.end * row].copy_from_slice(src);
        }
        global
    };
    let local = match (cfg.local, local) {
        (Some(lc), Some(crops)) => {
            let want = lc.count * b * 3 * lc.img * lc.img;
            if crops.len() != want {
                return Err(BatchError::LocalSize {
                    got: crops.len(),
                    want,
                    count: lc.count,
                    batch: b,
                    img: lc.img,
                });
            }
            Some(widen(&crops, lc.count))
        }
        // Missing or unexpected crops: the whole-batch preparation names the problem.
        (_, crops) => crops,
    };
    let whole = super::batch::prepare_batch_on_ranks(
        cfg,
        ranks,
        widen(&view1, 1),
        widen(&view2, 1),
        local,
        seed,
        smoothing,
    )?;
    Ok(whole.rank_share(cfg, ranks, rank))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B = 8, W = 2, m = 2, no smoothing, written out by hand from the original's formulas:
    /// rank r's row i (global row 4r + i) targets column 4r + i (origin); 4r + i and
    /// 4r + (i+1) mod 4 with ½ each (mix-to-origin); 4r + (i−1) mod 4, 4r + i, 4r + (i+1) mod 4
    /// with (1 − |d|/2)/2 = ¼, ½, ¼ (mix-to-mix).
    #[test]
    fn targets_for_b8_w2_m2_are_the_hand_worked_blocks() {
        let r = VirtualRanks::new(2, 8, 2).unwrap();
        let [src, mix, mix2] = rank_targets(r, 2, TargetSmoothing::from(0.0)).unwrap();
        let (h, q) = (0.5f32, 0.25f32);
        #[rustfmt::skip]
        let want_mix = [
            h, h, 0., 0., 0., 0., 0., 0.,
            0., h, h, 0., 0., 0., 0., 0.,
            0., 0., h, h, 0., 0., 0., 0.,
            h, 0., 0., h, 0., 0., 0., 0.,
            0., 0., 0., 0., h, h, 0., 0.,
            0., 0., 0., 0., 0., h, h, 0.,
            0., 0., 0., 0., 0., 0., h, h,
            0., 0., 0., 0., h, 0., 0., h,
        ];
        #[rustfmt::skip]
        let want_mix2 = [
            h, q, 0., q, 0., 0., 0., 0.,
            q, h, q, 0., 0., 0., 0., 0.,
            0., q, h, q, 0., 0., 0., 0.,
            q, 0., q, h, 0., 0., 0., 0.,
            0., 0., 0., 0., h, q, 0., q,
            0., 0., 0., 0., q, h, q, 0.,
            0., 0., 0., 0., 0., q, h, q,
            0., 0., 0., 0., q, 0., q, h,
        ];
        let mut eye = [0.0f32; 64];
        for i in 0..8 {
            eye[i * 8 + i] = 1.0;
        }
        assert_eq!(src, eye);
        assert_eq!(mix, want_mix);
        assert_eq!(mix2, want_mix2);

        // The same batch as one rank wraps around all 8 images instead.
        let [_, one, _] =
            rank_targets(VirtualRanks::single(8), 2, TargetSmoothing::from(0.0)).unwrap();
        assert_eq!(one[3 * 8 + 4], h, "row 3 mixes with image 4 in one group");
        assert_eq!(mix[3 * 8 + 4], 0.0, "but not across ranks");
    }

    /// Smoothing puts s/N on every column, N = B = b·W (the original's `num_classes`).
    #[test]
    fn smoothing_spreads_over_all_ranks_columns() {
        let r = VirtualRanks::new(2, 8, 2).unwrap();
        let s = TargetSmoothing { src: 0.1, mix: 0.2 };
        let [src, mix, _] = rank_targets(r, 2, s).unwrap();
        // Row 5 = rank 1, row 1: origin at column 5, mix at columns 5 and 6.
        let row = |t: &[f32], i: usize| t[i * 8..(i + 1) * 8].to_vec();
        let (o, on) = ((0.1f64 / 8.0) as f32, (0.9f64 + 0.1 / 8.0) as f32);
        assert_eq!(row(&src, 5), [o, o, o, o, o, on, o, o]);
        let (o, on) = ((0.2f64 / 8.0) as f32, (0.8f64 / 2.0 + 0.2 / 8.0) as f32);
        assert_eq!(row(&mix, 5), [o, o, o, o, o, on, on, o]);
    }

    /// A real rank prepares from its own rows exactly its share of the whole batch: images,
    /// targets, drop-path masks, local crops (raw and mixed) — while the other ranks' rows
    /// hold anything at all.
    #[test]
    fn a_rank_prepares_its_share_from_its_own_rows() {
        use crate::step::{Frame, LocalCrops, StepConfig};
        let cfg = StepConfig {
            local: Some(LocalCrops { count: 2, img: 4 }),
            ..StepConfig::tiny(Frame::Momentum, 0.2)
        };
        let ranks = VirtualRanks::new(2, cfg.batch, cfg.mix).unwrap();
        let n = cfg.batch * 3 * 8 * 8;
        let nl = 2 * cfg.batch * 3 * 4 * 4;
        let fill = |len: usize, k: f32| -> Vec<f32> {
            (0..len).map(|i| (i as f32 * 0.37 + k).sin()).collect()
        };
        let (v1, v2, loc) = (fill(n, 0.0), fill(n, 1.0), fill(nl, 2.0));
        let whole = super::super::batch::prepare_batch_on_ranks(
            &cfg,
            ranks,
            v1.clone(),
            v2.clone(),
            Some(loc.clone()),
            5,
            0.1,
        )
        .unwrap();
        for rank in 0..2 {
            let want = whole.rank_share(&cfg, ranks, rank);
            let rows = |v: &[f32], blocks: usize| -> Vec<f32> {
                let per = v.len() / (blocks * cfg.batch);
                v.chunks(cfg.batch * per)
                    .flat_map(|c| c[rank * 4 * per..(rank + 1) * 4 * per].to_vec())
                    .collect()
            };
            let got = prepare_rank_batch(
                &cfg,
                ranks,
                rank,
                rows(&v1, 1),
                rows(&v2, 1),
                Some(rows(&loc, 2)),
                5,
                0.1,
            )
            .unwrap();
            assert_eq!(got.images, want.images, "rank {rank}");
            assert_eq!(got.targets, want.targets, "rank {rank}");
            assert_eq!(got.drop_path, want.drop_path, "rank {rank}");
            assert_eq!(got.local, want.local, "rank {rank}");
            assert_eq!(got.perms, want.perms, "rank {rank}");
        }
        let e = prepare_rank_batch(&cfg, ranks, 2, vec![], vec![], None, 5, 0.1).unwrap_err();
        assert_eq!(e.to_string(), "rank 2 is not one of the 2 ranks");
        let e = prepare_rank_batch(&cfg, ranks, 0, v1.clone(), v2.clone(), None, 5, 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("B=4"), "{e}");
    }

    #[test]
    fn splits_that_do_not_fit_are_errors_naming_the_fields() {
        assert_eq!(VirtualRanks::new(0, 8, 2), Err(RankSplitError::ZeroRanks));
        let e = VirtualRanks::new(3, 8, 2).unwrap_err().to_string();
        assert!(
            e.contains("batch 8") && e.contains("virtual_ranks = 3"),
            "{e}"
        );
        let e = VirtualRanks::new(4, 8, 3).unwrap_err().to_string();
        assert!(
            e.contains("batch 8 / virtual_ranks 4 = 2") && e.contains("mix m = 3"),
            "{e}"
        );
        // One rank keeps the single-process rule: any batch.
        assert_eq!(VirtualRanks::new(1, 2, 3), Ok(VirtualRanks::single(2)));
        assert_eq!(VirtualRanks::new(4, 8, 2).unwrap().rows(3), 6..8);
    }
}
