//! Host-side preparation of one step's inputs from two augmented views: the PatchMix images
//! (two independent permutations, through the core's plans), the soft targets (the core's
//! labels) and the drop-path masks, all drawn from one seeded RNG per step.

use super::config::StepConfig;
use super::inputs::StepInputs;
use patchmix_core::{
    ImageShape, LabelSpec, MixPlan, mix_to_mix_targets, mix_to_origin_targets, origin_targets,
};
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
    /// The two permutations used for mix1 and mix2.
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
    let smoothing = smoothing.into();
    let (b, img, grid) = (cfg.batch, cfg.vit.img, cfg.vit.grid());
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
        let plan = MixPlan::from_seed(b, grid, cfg.mix, rng.random::<u64>())?;
        let mut out = vec![0.0f32; len];
        plan.apply_nchw(shape, view, &mut out)?;
        perms.push(plan.perm().to_vec());
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
            for (src, dst) in crops.chunks(b * per).zip(mixed.chunks_mut(b * per)) {
                let plan = MixPlan::from_seed(b, lgrid, cfg.mix, rng.random::<u64>())?;
                plan.apply_nchw(lshape, src, dst)?;
            }
            Some([crops, mixed])
        }
    };
    let src_spec = LabelSpec::single(b, smoothing.src)?;
    let t_src: Vec<f32> = origin_targets(&src_spec)?;
    let spec = LabelSpec::single(b, smoothing.mix)?;
    let t_mix: Vec<f32> = mix_to_origin_targets(&spec, cfg.mix)?;
    let t_mix2: Vec<f32> = mix_to_mix_targets(&spec, cfg.mix)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Frame;

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
