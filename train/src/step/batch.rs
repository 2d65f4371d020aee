//! Host-side preparation of one step's inputs from two augmented views: the PatchMix images
//! (two independent permutations, through the core's plans), the soft targets (the core's
//! labels) and the drop-path masks, all drawn from one seeded RNG per step; with virtual
//! ranks, per rank group (see [`super::ranks`]).

use super::config::StepConfig;
use super::inputs::StepInputs;
use super::ranks::{VirtualRanks, rank_targets};
use patchmix_core::{ImageShape, MixPlan};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Why a step's inputs cannot be prepared from a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The two views do not have the step's B·3·H·W values.
    #[error("views have {view1} and {view2} values, expected {want} (B={batch}, 3×{img}×{img})")]
    ViewSize {
        /// Values in view 1.
        view1: usize,
        /// Values in view 2.
        view2: usize,
        /// The step's B·3·H·W.
        want: usize,
        /// The step's batch.
        batch: usize,
        /// The step's image side.
        img: usize,
    },
    /// The step was built with local crops and the batch has none.
    #[error("the step has local crops but the batch has none")]
    MissingLocalCrops,
    /// The batch has local crops and the step was built without them.
    #[error("the batch has local crops but the step was built without them")]
    UnexpectedLocalCrops,
    /// The local crops do not have n·B·3·l·l values.
    #[error(
        "local crops have {got} values, expected {want} ({count} crops × B={batch} × 3×{img}×{img})"
    )]
    LocalSize {
        /// Values given.
        got: usize,
        /// Values expected.
        want: usize,
        /// Crops per image.
        count: usize,
        /// The step's batch.
        batch: usize,
        /// The crops' side.
        img: usize,
    },
    /// The virtual ranks split another batch than the step's.
    #[error("the virtual ranks split a batch of {split}, the step's batch is {batch}")]
    RanksBatch {
        /// The batch the ranks split.
        split: usize,
        /// The step's batch.
        batch: usize,
    },
    /// A rank outside the world.
    #[error("rank {rank} is not one of the {world} ranks")]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// The number of ranks.
        world: usize,
    },
    /// The core rejected the mixing geometry or the label smoothing.
    #[error(transparent)]
    Core(#[from] patchmix_core::Error),
}

/// The label smoothing of a step's soft targets: `src` for the view-to-view target
/// (`target_src`, which the multi-crop term shares), `mix` for the mix-to-origin and
/// mix-to-mix targets. Smoothing `s` puts `s/N` on every entry and `(1 − s)` times the target's
/// weights on top (see `patchmix_core::LabelSpec`).
///
/// A plain `f64` converts into the same smoothing for all three targets.
///
/// # Examples
///
/// ```
/// use patchmix_train::step::TargetSmoothing;
///
/// let original = TargetSmoothing { src: 0.1, mix: 0.0 };
/// assert_eq!(TargetSmoothing::from(0.0), TargetSmoothing { src: 0.0, mix: 0.0 });
/// assert_ne!(original, TargetSmoothing::from(0.1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TargetSmoothing {
    /// Smoothing of the view-to-view target.
    pub src: f64,
    /// Smoothing of the two mix targets.
    pub mix: f64,
}

impl From<f64> for TargetSmoothing {
    fn from(s: f64) -> Self {
        Self { src: s, mix: s }
    }
}

/// Everything a step needs besides the scalars.
#[derive(Clone, Debug)]
pub struct PreparedBatch {
    /// view1, view2, mix1, mix2 (B·3·H·W each).
    pub images: [Vec<f32>; 4],
    /// target_src, target_mix, target_mix2 (B·B each).
    pub targets: [Vec<f32>; 3],
    /// Drop-path scales per base pass (2·depth·B each), empty when drop path is off.
    pub drop_path: Vec<Vec<f32>>,
    /// The two permutations used for mix1 and mix2 (shared by every virtual rank's group).
    pub perms: [Vec<u32>; 2],
    /// Multi-crop: the local crops and their PatchMix (n·B·3·l·l each, crop-major).
    pub local: Option<[Vec<f32>; 2]>,
}

impl PreparedBatch {
    /// The session inputs for this batch and the step's schedule values.
    pub fn inputs(&self, lr: f32, wd: f32, temperature: f32, momentum: f32) -> StepInputs<'_> {
        StepInputs {
            images: [
                &self.images[0],
                &self.images[1],
                &self.images[2],
                &self.images[3],
            ],
            targets: [&self.targets[0], &self.targets[1], &self.targets[2]],
            lr,
            wd,
            temperature,
            momentum,
            drop_path: self.drop_path.iter().map(|v| v.as_slice()).collect(),
            local: self
                .local
                .as_ref()
                .map(|[l, m]| [l.as_slice(), m.as_slice()]),
        }
    }
}

/// Builds a step's inputs. `seed` should be unique per step (e.g. derived from the run seed
/// and the global step), so that runs are reproducible and resumable. `smoothing` is a
/// [`TargetSmoothing`], or one `f64` for all three targets.
///
/// # Errors
/// A message when the views have the wrong size or the core rejects the geometry.
pub fn prepare_batch(
    cfg: &StepConfig,
    view1: Vec<f32>,
    view2: Vec<f32>,
    seed: u64,
    smoothing: impl Into<TargetSmoothing>,
) -> Result<PreparedBatch, BatchError> {
    prepare_batch_with_local(cfg, view1, view2, None, seed, smoothing)
}

/// [`prepare_batch`] with multi-crop local crops (n·B·3·l·l, crop-major: row j·B + b is crop
/// j of image b). Each crop j is mixed with its own permutation, as the original calls its
/// mixer once per crop; the mix targets do not depend on the permutation.
///
/// # Errors
/// As [`prepare_batch`], and local crops that do not match the configuration.
pub fn prepare_batch_with_local(
    cfg: &StepConfig,
    view1: Vec<f32>,
    view2: Vec<f32>,
    local: Option<Vec<f32>>,
    seed: u64,
    smoothing: impl Into<TargetSmoothing>,
) -> Result<PreparedBatch, BatchError> {
    let ranks = VirtualRanks::single(cfg.batch);
    prepare_batch_on_ranks(cfg, ranks, view1, view2, local, seed, smoothing)
}

/// [`prepare_batch_with_local`] for `ranks` virtual ranks: the batch is cut into W contiguous
/// groups of B/W images, each PatchMixed within itself (every group with the same step's
/// permutations, as the original's identically seeded ranks), and the targets stack each
/// group's rank-offset rows ([`rank_targets`]). The RNG draws are those of one rank, so the
/// drop-path masks do not depend on W, and W = 1 gives exactly [`prepare_batch_with_local`].
///
/// # Errors
/// As [`prepare_batch_with_local`], and [`BatchError::RanksBatch`] when `ranks` splits another
/// batch than the step's.
///
/// # Examples
///
/// ```
/// use patchmix_train::step::{Frame, StepConfig, VirtualRanks, prepare_batch_on_ranks};
///
/// let cfg = StepConfig::tiny(Frame::NoMomentum, 0.0); // B = 8, m = 2
/// let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
/// let view: Vec<f32> = (0..n).map(|i| i as f32).collect();
/// let ranks = VirtualRanks::new(2, cfg.batch, cfg.mix)?;
/// let b = prepare_batch_on_ranks(&cfg, ranks, view.clone(), view, None, 1, 0.0)?;
/// // Row 3 (rank 0's last image) mixes with rank 0's image 0, not with image 4.
/// assert_eq!(&b.targets[1][3 * 8..4 * 8], &[0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prepare_batch_on_ranks(
    cfg: &StepConfig,
    ranks: VirtualRanks,
    view1: Vec<f32>,
    view2: Vec<f32>,
    local: Option<Vec<f32>>,
    seed: u64,
    smoothing: impl Into<TargetSmoothing>,
) -> Result<PreparedBatch, BatchError> {
    let smoothing = smoothing.into();
    let (b, img, grid) = (cfg.batch, cfg.vit.img, cfg.vit.grid());
    if ranks.batch() != b {
        return Err(BatchError::RanksBatch {
            split: ranks.batch(),
            batch: b,
        });
    }
    let len = b * 3 * img * img;
    if view1.len() != len || view2.len() != len {
        return Err(BatchError::ViewSize {
            view1: view1.len(),
            view2: view2.len(),
            want: len,
            batch: b,
            img,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = ImageShape::square(3, img);
    let mut mixed = Vec::with_capacity(2);
    let mut perms = Vec::with_capacity(2);
    for view in [&view1, &view2] {
        let mut out = vec![0.0f32; len];
        let perm = mix_groups(
            ranks,
            grid,
            cfg.mix,
            rng.random::<u64>(),
            shape,
            view,
            &mut out,
        )?;
        perms.push(perm);
        mixed.push(out);
    }
    let local = match (&cfg.local, local) {
        (None, None) => None,
        (Some(_), None) => return Err(BatchError::MissingLocalCrops),
        (None, Some(_)) => return Err(BatchError::UnexpectedLocalCrops),
        (Some(lc), Some(crops)) => {
            let per = 3 * lc.img * lc.img;
            if crops.len() != lc.count * b * per {
                return Err(BatchError::LocalSize {
                    got: crops.len(),
                    want: lc.count * b * per,
                    count: lc.count,
                    batch: b,
                    img: lc.img,
                });
            }
            let lgrid = lc.img / cfg.vit.patch;
            let lshape = ImageShape::square(3, lc.img);
            let mut mixed = vec![0.0f32; crops.len()];
            // Crop j of every image is rows j·B .. (j+1)·B, so rank r's crops j are its rows
            // r·b .. (r+1)·b within that block.
            for (src, dst) in crops.chunks(b * per).zip(mixed.chunks_mut(b * per)) {
                mix_groups(ranks, lgrid, cfg.mix, rng.random::<u64>(), lshape, src, dst)?;
            }
            Some([crops, mixed])
        }
    };
    let [t_src, t_mix, t_mix2] = rank_targets(ranks, cfg.mix, smoothing)?;
    let drop_path = if cfg.has_drop_path() {
        let rates = cfg.drop_path_rates();
        cfg.base_passes()
            .iter()
            .map(|pass| {
                let rows = cfg.pass_rows(pass);
                let mut v = Vec::with_capacity(2 * rates.len() * rows);
                for &r in &rates {
                    for _ in 0..2 {
                        let keep = 1.0 - r;
                        for _ in 0..rows {
                            let kept = rng.random::<f32>() < keep;
                            v.push(if kept { 1.0 / keep } else { 0.0 });
                        }
                    }
                }
                v
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut it = mixed.into_iter();
    let (mix1, mix2) = (it.next().expect("two"), it.next().expect("two"));
    let mut pit = perms.into_iter();
    let (p1, p2) = (pit.next().expect("two"), pit.next().expect("two"));
    Ok(PreparedBatch {
        images: [view1, view2, mix1, mix2],
        targets: [t_src, t_mix, t_mix2],
        drop_path,
        perms: [p1, p2],
        local,
    })
}

/// PatchMixes `src` (B images of `shape`) into `dst` within each rank's group of B/W images,
/// all with the plan of `plan_seed`; returns its token permutation.
fn mix_groups(
    ranks: VirtualRanks,
    grid: usize,
    mix: usize,
    plan_seed: u64,
    shape: ImageShape,
    src: &[f32],
    dst: &mut [f32],
) -> Result<Vec<u32>, BatchError> {
    let plan = MixPlan::from_seed(ranks.per_rank(), grid, mix, plan_seed)?;
    let group = src.len() / ranks.world();
    for (s, d) in src.chunks(group).zip(dst.chunks_mut(group)) {
        plan.apply_nchw(shape, s, d)?;
    }
    Ok(plan.perm().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Frame, LocalCrops};

    /// B = 8 with two virtual ranks is two independent B = 4 batches side by side: each half's
    /// PatchMix images (global views and every local crop) are what a B = 4 step prepares from
    /// that half with the same seed, the targets are the B = 4 targets in the diagonal blocks
    /// (rank r's rows point at its own columns 4r..4r+4) and 0 elsewhere, and the permutations
    /// and drop-path masks are those of one rank (the RNG draws do not depend on W).
    #[test]
    fn two_virtual_ranks_are_two_independent_group_plans_side_by_side() {
        let cfg = StepConfig {
            local: Some(LocalCrops { count: 2, img: 4 }),
            ..StepConfig::tiny(Frame::Momentum, 0.3)
        };
        let half = StepConfig {
            batch: 4,
            ..cfg.clone()
        };
        let (b, per) = (cfg.batch, 3 * cfg.vit.img * cfg.vit.img);
        let lper = 3 * 4 * 4;
        let view = |k: f32| {
            (0..b * per)
                .map(|i| (i as f32 * k).sin())
                .collect::<Vec<f32>>()
        };
        let (v1, v2) = (view(0.1), view(0.37));
        let crops: Vec<f32> = (0..2 * b * lper).map(|i| (i as f32 * 0.3).cos()).collect();
        let ranks = VirtualRanks::new(2, b, cfg.mix).unwrap();
        let two = prepare_batch_on_ranks(
            &cfg,
            ranks,
            v1.clone(),
            v2.clone(),
            Some(crops.clone()),
            9,
            0.0,
        )
        .unwrap();
        let groups: Vec<PreparedBatch> = (0..2)
            .map(|r| {
                let rows = |v: &[f32], n: usize| v[r * 4 * n..(r + 1) * 4 * n].to_vec();
                // Crop j of image i is row j·B + i: rank r's crops j are rows j·8 + 4r ..
                let local: Vec<f32> = (0..2)
                    .flat_map(|j| {
                        crops[(j * 8 + r * 4) * lper..(j * 8 + r * 4 + 4) * lper].to_vec()
                    })
                    .collect();
                prepare_batch_with_local(&half, rows(&v1, per), rows(&v2, per), Some(local), 9, 0.0)
                    .unwrap()
            })
            .collect();
        for k in 2..4 {
            let side_by_side = [groups[0].images[k].clone(), groups[1].images[k].clone()].concat();
            assert_eq!(two.images[k], side_by_side, "image {k}");
        }
        let mut mixed_crops = Vec::new();
        for j in 0..2 {
            for g in &groups {
                let mixed = &g.local.as_ref().unwrap()[1];
                mixed_crops.extend_from_slice(&mixed[j * 4 * lper..(j + 1) * 4 * lper]);
            }
        }
        assert_eq!(two.local.as_ref().unwrap()[1], mixed_crops);
        for (t, (two_t, g)) in two.targets.iter().zip(groups[0].targets.iter()).enumerate() {
            for row in 0..8 {
                for col in 0..8 {
                    let (r, c) = (row / 4, col / 4);
                    let want = if r == c {
                        g[(row % 4) * 4 + col % 4]
                    } else {
                        0.0
                    };
                    assert_eq!(two_t[row * 8 + col], want, "target {t} ({row}, {col})");
                }
            }
        }
        assert_eq!(groups[0].targets, groups[1].targets);
        let one = prepare_batch_with_local(&cfg, v1, v2, Some(crops), 9, 0.0).unwrap();
        assert_eq!(two.perms, one.perms);
        assert_eq!(two.perms, groups[0].perms);
        assert_eq!(two.drop_path, one.drop_path);
        assert_ne!(two.images[2], one.images[2], "the split changes the mix");
        assert_ne!(two.targets[1], one.targets[1]);
        assert_eq!(
            two.targets[0], one.targets[0],
            "the origin target is I either way"
        );
    }

    #[test]
    fn ranks_that_split_another_batch_are_an_error() {
        let cfg = StepConfig::tiny(Frame::NoMomentum, 0.0);
        let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
        let ranks = VirtualRanks::new(2, 4, 2).unwrap();
        let e = prepare_batch_on_ranks(&cfg, ranks, vec![0.0; n], vec![0.0; n], None, 0, 0.0)
            .unwrap_err();
        assert!(
            matches!(e, BatchError::RanksBatch { split: 4, batch: 8 }),
            "{e}"
        );
    }

    fn batch(smoothing: impl Into<TargetSmoothing>) -> PreparedBatch {
        let cfg = StepConfig::tiny(Frame::NoMomentum, 0.0);
        let len = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
        let view: Vec<f32> = (0..len).map(|i| i as f32).collect();
        prepare_batch(&cfg, view.clone(), view, 7, smoothing).unwrap()
    }

    #[test]
    fn the_src_target_takes_its_own_smoothing_and_the_mix_targets_theirs() {
        let plain = batch(0.0);
        let b = batch(TargetSmoothing { src: 0.1, mix: 0.0 });
        let n = (b.targets[0].len() as f64).sqrt() as usize;
        for r in 0..n {
            for c in 0..n {
                let want = if r == c {
                    0.9 + 0.1 / n as f64
                } else {
                    0.1 / n as f64
                };
                let got = f64::from(b.targets[0][r * n + c]);
                assert!((got - want).abs() < 1e-7, "({r}, {c}): {got} vs {want}");
            }
        }
        assert_eq!(
            b.targets[1], plain.targets[1],
            "mix-to-origin is unsmoothed"
        );
        assert_eq!(b.targets[2], plain.targets[2], "mix-to-mix is unsmoothed");
        assert_eq!(
            b.images, plain.images,
            "smoothing draws nothing from the RNG"
        );

        let m = batch(TargetSmoothing { src: 0.0, mix: 0.2 });
        assert_eq!(m.targets[0], plain.targets[0]);
        let off = 0.2 / n as f64;
        for (t, p) in m.targets[1].iter().zip(&plain.targets[1]) {
            let want = 0.8 * f64::from(*p) + off;
            assert!((f64::from(*t) - want).abs() < 1e-7);
        }
    }
}
