//! Evaluation preprocessing (torchvision's `Resize(resize)` → `CenterCrop(crop)` → `ToTensor` →
//! `Normalize(mean, std)`): decode, resize the shorter side with bicubic (Catmull-Rom, a = −0.5,
//! the filter PIL uses, widened when downsampling), centre-crop, and write normalised f32 CHW.

use image::RgbImage;
use image::imageops::{self, FilterType};
use ndarray::Array4;
use rayon::prelude::*;

use super::{DataError, Dataset};

/// ImageNet channel means (RGB), torchvision's defaults.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), torchvision's defaults.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Resizes so that the shorter side is `size`, keeping the aspect ratio (the longer side is
/// `floor(size · long / short)`, as torchvision's `Resize(int)`), with bicubic (Catmull-Rom).
///
/// # Examples
///
/// ```
/// use patchmix_export::data::preprocess::resize_shorter;
///
/// let img = image::RgbImage::new(40, 30);
/// assert_eq!(resize_shorter(&img, 24).dimensions(), (32, 24));
/// ```
pub fn resize_shorter(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || size == 0 {
        return RgbImage::new(w.min(size), h.min(size));
    }
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long =
        u32::try_from(u64::from(size) * u64::from(long) / u64::from(short)).unwrap_or(u32::MAX);
    let (nw, nh) = if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    };
    if (nw, nh) == (w, h) {
        return img.clone();
    }
    imageops::resize(img, nw, nh, FilterType::CatmullRom)
}

/// Crops the centre `width × height` (torchvision's `CenterCrop`): offsets
/// `round((W − width) / 2)` with Python's round-half-to-even; an image smaller than the crop is
/// first padded with black on all sides, as torchvision does.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::preprocess::center_crop;
///
/// let img = image::RgbImage::from_fn(5, 1, |x, _| image::Rgb([x as u8; 3]));
/// let c = center_crop(&img, 2, 1); // (5 − 2) / 2 = 1.5 rounds to 2
/// assert_eq!(c.get_pixel(0, 0).0, [2, 2, 2]);
/// ```
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let padded;
    let src = if width > w || height > h {
        let left = width.saturating_sub(w) / 2;
        let top = height.saturating_sub(h) / 2;
        let (pw, ph) = (w.max(width), h.max(height));
        let mut canvas = RgbImage::new(pw, ph);
        imageops::replace(&mut canvas, img, i64::from(left), i64::from(top));
        padded = canvas;
        &padded
    } else {
        img
    };
    let (w, h) = src.dimensions();
    let offset = |full: u32, part: u32| (f64::from(full - part) / 2.0).round_ties_even() as u32;
    imageops::crop_imm(src, offset(w, width), offset(h, height), width, height).to_image()
}

/// Writes `img` as normalised f32 CHW into `out` (`3 · width · height` floats):
/// `(v / 255 − mean[c]) / std[c]`, as torchvision's `ToTensor` + `Normalize`.
///
/// # Errors
///
/// [`DataError::Preprocess`] when `out` has the wrong length.
pub fn normalize_into(
    img: &RgbImage,
    mean: [f32; 3],
    std: [f32; 3],
    out: &mut [f32],
) -> Result<(), DataError> {
    let plane = img.width() as usize * img.height() as usize;
    if out.len() != 3 * plane {
        return Err(DataError::Preprocess {
            detail: format!(
                "output has {} floats but a 3×{}×{} image needs {}",
                out.len(),
                img.height(),
                img.width(),
                3 * plane
            ),
        });
    }
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let planes = [r, g, b];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            planes[c][i] = (f32::from(px.0[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    Ok(())
}

/// Evaluation preprocessing settings.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::{Dataset, Preprocess, Split};
///
/// let ds = Dataset::synthetic("synthetic:8,size=32".parse()?, Split::Test);
/// let pre = Preprocess::new(32, 28);
/// let batch = pre.batch(&ds, &[0, 1, 2])?;
/// assert_eq!(batch.shape(), &[3, 3, 28, 28]);
/// # Ok::<(), patchmix_export::data::DataError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// Target of the shorter side before cropping.
    pub resize: u32,
    /// Side of the square centre crop.
    pub crop: u32,
    /// Channel means subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Channel standard deviations divided by.
    pub std: [f32; 3],
}

impl Preprocess {
    /// Resize to `resize`, crop `crop`, ImageNet mean/std.
    pub fn new(resize: u32, crop: u32) -> Self {
        Self {
            resize,
            crop,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Floats per image: `3 · crop · crop`.
    pub fn floats_per_image(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    fn check(&self) -> Result<(), DataError> {
        if self.resize == 0 || self.crop == 0 {
            return Err(DataError::Preprocess {
                detail: format!(
                    "resize ({}) and crop ({}) must be at least 1",
                    self.resize, self.crop
                ),
            });
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(DataError::Preprocess {
                detail: format!(
                    "mean {:?} / std {:?} must be finite and std non-zero",
                    self.mean, self.std
                ),
            });
        }
        Ok(())
    }

    /// Resizes and crops one image (no normalisation).
    pub fn resize_crop(&self, img: &RgbImage) -> RgbImage {
        center_crop(&resize_shorter(img, self.resize), self.crop, self.crop)
    }

    /// Preprocesses one image into `out` (`floats_per_image()` floats, CHW).
    ///
    /// # Errors
    ///
    /// [`DataError::Preprocess`] for unusable settings or a wrong `out` length.
    pub fn apply_into(&self, img: &RgbImage, out: &mut [f32]) -> Result<(), DataError> {
        self.check()?;
        normalize_into(&self.resize_crop(img), self.mean, self.std, out)
    }

    /// Reads, preprocesses and writes images `indices` of `ds` into `out` as `[B, 3, crop, crop]`
    /// (row-major), in parallel on the current rayon pool.
    ///
    /// # Errors
    ///
    /// [`DataError::Preprocess`] when `out.len() != indices.len() · floats_per_image()` or the
    /// settings are unusable; the dataset's errors (index out of range, undecodable file).
    pub fn fill_batch(
        &self,
        ds: &Dataset,
        indices: &[usize],
        out: &mut [f32],
    ) -> Result<(), DataError> {
        self.check()?;
        let n = self.floats_per_image();
        if out.len() != indices.len() * n {
            return Err(DataError::Preprocess {
                detail: format!(
                    "batch buffer has {} floats but {} images of 3×{c}×{c} need {}",
                    out.len(),
                    indices.len(),
                    indices.len() * n,
                    c = self.crop
                ),
            });
        }
        out.par_chunks_mut(n)
            .zip(indices.par_iter())
            .try_for_each(|(chunk, &i)| self.apply_into(&ds.image(i)?, chunk))
    }

    /// Like [`fill_batch`](Self::fill_batch), returning a new `[B, 3, crop, crop]` array.
    ///
    /// # Errors
    ///
    /// As [`fill_batch`](Self::fill_batch).
    pub fn batch(&self, ds: &Dataset, indices: &[usize]) -> Result<Array4<f32>, DataError> {
        let c = self.crop as usize;
        let mut out = Array4::<f32>::zeros((indices.len(), 3, c, c));
        let slice = out.as_slice_mut().ok_or_else(|| DataError::Preprocess {
            detail: "internal: a fresh array is not contiguous".into(),
        })?;
        self.fill_batch(ds, indices, slice)?;
        Ok(out)
    }
}
