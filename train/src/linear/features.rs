//! What `patchmix linear` feeds the probe: the training-time augmentation of `--augment` mode
//! and the on-disk feature cache of `--cache`.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{Array2, Array4, ArrayD, IxDyn};
use patchmix_export::data::preprocess::{IMAGENET_MEAN, IMAGENET_STD, normalize_into};
use patchmix_export::data::{DataError, Dataset};
use patchmix_export::weights::{
    IntStateDict, Metadata, StateDict, load_safetensors, save_safetensors_with_ints,
};
use rand::Rng;
use rayon::prelude::*;

use super::LinearError;
use crate::augment::crop::random_resized_crop;
use crate::augment::flip::hflip;
use crate::augment::random::coin;
use crate::data::sample_rng;

/// MoCo v3's linear-evaluation training transform: `RandomResizedCrop(size)` (scale
/// (0.08, 1), ratio (3/4, 4/3), bicubic) → `RandomHorizontalFlip()` → `ToTensor` →
/// `Normalize(ImageNet mean/std)`, built from the ops of [`crate::augment`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainAugment {
    /// Output side.
    pub size: u32,
    /// Range of the crop's area fraction.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio.
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip.
    pub flip_p: f64,
    /// Channel means.
    pub mean: [f32; 3],
    /// Channel standard deviations.
    pub std: [f32; 3],
}

impl TrainAugment {
    /// The MoCo v3 settings at side `size`.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_p: 0.5,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Floats per image: `3 · size²`.
    pub fn floats_per_image(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Augments one image (crop, resize, maybe flip), without normalising.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::linear::TrainAugment;
    /// use rand::SeedableRng;
    ///
    /// let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 0]));
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// assert_eq!(TrainAugment::new(28).apply(&img, &mut rng).dimensions(), (28, 28));
    /// ```
    pub fn apply<R: Rng + ?Sized>(&self, img: &RgbImage, rng: &mut R) -> RgbImage {
        let mut out = random_resized_crop(rng, img, self.size, self.scale, self.ratio);
        if coin(rng, self.flip_p) {
            hflip(&mut out);
        }
        out
    }

    /// Augments and normalises images `indices` of `ds` into `out` (`[B, 3, size, size]`,
    /// row-major), in parallel. Image `i` of the dataset uses the RNG
    /// [`sample_rng`]`(seed, epoch, i)`, so a run is reproducible whatever the batching.
    ///
    /// # Errors
    ///
    /// [`DataError::Preprocess`] for a wrong `out` length or a size of 0; the dataset's errors.
    pub fn fill_batch(
        &self,
        ds: &Dataset,
        indices: &[usize],
        seed: u64,
        epoch: u64,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let n = self.floats_per_image();
        if n == 0 || out.len() != indices.len() * n {
            return Err(DataError::Preprocess {
                detail: format!(
                    "augmented batch buffer has {} floats but {} images of 3×{s}×{s} need {}",
                    out.len(),
                    indices.len(),
                    indices.len() * n,
                    s = self.size
                ),
            });
        }
        out.par_chunks_mut(n)
            .zip(indices.par_iter())
            .try_for_each(|(chunk, &i)| {
                let mut rng = sample_rng(seed, epoch, i);
                let img = self.apply(&ds.image(i)?, &mut rng);
                normalize_into(&img, self.mean, self.std, chunk)
            })
    }

    /// Like [`fill_batch`](Self::fill_batch), returning a new array.
    ///
    /// # Errors
    ///
    /// As [`fill_batch`](Self::fill_batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::{Dataset, Split};
    /// use patchmix_train::linear::TrainAugment;
    ///
    /// let ds = Dataset::synthetic("synthetic:4,size=32".parse()?, Split::Train);
    /// let aug = TrainAugment::new(16);
    /// let a = aug.batch(&ds, &[0, 1], 7, 0)?;
    /// assert_eq!(a.shape(), &[2, 3, 16, 16]);
    /// assert_eq!(a, aug.batch(&ds, &[0, 1], 7, 0)?); // seeded per image
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn batch(
        &self,
        ds: &Dataset,
        indices: &[usize],
        seed: u64,
        epoch: u64,
    ) -> Result<Array4<f32>, DataError> {
        let s = self.size as usize;
        let mut out = Array4::<f32>::zeros((indices.len(), 3, s, s));
        let slice = out.as_slice_mut().ok_or_else(|| DataError::Preprocess {
            detail: "internal: a fresh array is not contiguous".into(),
        })?;
        self.fill_batch(ds, indices, seed, epoch, slice)?;
        Ok(out)
    }
}

/// Features `[N, D]` and labels `[N]` of one split, as [`FeatureCache::load`] returns them.
pub type CachedSplit = (Array2<f32>, Vec<u32>);

/// Features and labels of one split, cached on disk as safetensors (`features` F32 `[N, D]`,
/// `labels` I64 `[N]`) under a name derived from a description of how they were computed
/// (model file, its size and modification time, runtime, dataset, images, preprocessing).
/// The description is also stored in the file and compared on load, so a stale or colliding
/// file is recomputed, never used.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
}

/// FNV-1a, 64 bits.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

const DESCRIPTION: &str = "patchmix_linear_features";

impl FeatureCache {
    /// A cache in `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// [`LinearError::Cache`] when the folder cannot be created.
    pub fn new(dir: &Path) -> Result<Self, LinearError> {
        std::fs::create_dir_all(dir).map_err(|e| LinearError::Cache {
            path: dir.display().to_string(),
            message: format!("cannot create the folder: {e}"),
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file holding the features described by `description`.
    pub fn path_for(&self, description: &str) -> PathBuf {
        self.dir
            .join(format!("features-{:016x}.safetensors", fnv1a(description)))
    }

    /// The cached features, or `None` when there is no file for `description` or the file was
    /// written for another description.
    ///
    /// # Errors
    ///
    /// [`LinearError::Cache`] when the file exists but is unreadable or malformed (delete it).
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::linear::FeatureCache;
    ///
    /// let dir = std::env::temp_dir().join(format!("pm-cache-doc-{}", std::process::id()));
    /// let cache = FeatureCache::new(&dir)?;
    /// let feats = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
    /// cache.store("model a, data b", &feats, &[0, 1])?;
    /// assert_eq!(cache.load("model a, data b")?, Some((feats, vec![0, 1])));
    /// assert_eq!(cache.load("model a, data c")?, None);
    /// # Ok::<(), patchmix_train::linear::LinearError>(())
    /// ```
    pub fn load(&self, description: &str) -> Result<Option<CachedSplit>, LinearError> {
        let path = self.path_for(description);
        if !path.is_file() {
            return Ok(None);
        }
        let err = |message: String| LinearError::Cache {
            path: path.display().to_string(),
            message: format!("{message}; delete the file to recompute it"),
        };
        let mut c = load_safetensors(&path).map_err(|e| err(e.to_string()))?;
        if c.metadata.get(DESCRIPTION).map(String::as_str) != Some(description) {
            return Ok(None);
        }
        let feats = c
            .tensors
            .remove("features")
            .ok_or_else(|| err("no `features` tensor".into()))?;
        let labels = c
            .ints
            .remove("labels")
            .ok_or_else(|| err("no `labels` tensor".into()))?;
        let feats = feats
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| err(format!("`features` is not 2-D: {e}")))?;
        let labels: Vec<u32> = labels
            .iter()
            .map(|&l| u32::try_from(l))
            .collect::<Result<_, _>>()
            .map_err(|_| err("a label is negative or too large".into()))?;
        if labels.len() != feats.nrows() {
            return Err(err(format!(
                "{} labels for {} feature rows",
                labels.len(),
                feats.nrows()
            )));
        }
        Ok(Some((feats, labels)))
    }

    /// Writes the features for `description` (atomically); returns the file.
    ///
    /// # Errors
    ///
    /// [`LinearError::Cache`] when the file cannot be written.
    pub fn store(
        &self,
        description: &str,
        features: &Array2<f32>,
        labels: &[u32],
    ) -> Result<PathBuf, LinearError> {
        let path = self.path_for(description);
        let mut tensors = StateDict::new();
        tensors.insert("features".into(), features.clone().into_dyn());
        let mut ints = IntStateDict::new();
        let l: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        let l =
            ArrayD::from_shape_vec(IxDyn(&[labels.len()]), l).map_err(|e| LinearError::Cache {
                path: path.display().to_string(),
                message: format!("internal: {e}"),
            })?;
        ints.insert("labels".into(), l);
        let mut meta = Metadata::new();
        meta.insert(DESCRIPTION.into(), description.into());
        save_safetensors_with_ints(&path, &tensors, &ints, Some(&meta)).map_err(|e| {
            LinearError::Cache {
                path: path.display().to_string(),
                message: e.to_string(),
            }
        })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchmix_export::data::Split;

    #[test]
    fn augmentation_varies_by_epoch_and_image_but_not_by_batching() {
        let ds = Dataset::synthetic("synthetic:6,size=32".parse().unwrap(), Split::Train);
        let aug = TrainAugment::new(16);
        let all = aug.batch(&ds, &[0, 1, 2, 3], 3, 1).unwrap();
        let part = aug.batch(&ds, &[2, 3], 3, 1).unwrap();
        assert_eq!(
            all.slice_axis(ndarray::Axis(0), ndarray::Slice::from(2..)),
            part
        );
        let other_epoch = aug.batch(&ds, &[0, 1, 2, 3], 3, 2).unwrap();
        assert_ne!(all, other_epoch);
        assert!(aug.fill_batch(&ds, &[0], 0, 0, &mut [0.0; 5]).is_err());
    }

    #[test]
    fn corrupt_cache_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(dir.path()).unwrap();
        std::fs::write(cache.path_for("x"), b"not safetensors").unwrap();
        let e = cache.load("x").unwrap_err().to_string();
        assert!(
            e.starts_with("feature cache ") && e.contains("delete the file"),
            "{e}"
        );
        assert_eq!(cache.load("y").unwrap(), None);
    }
}
