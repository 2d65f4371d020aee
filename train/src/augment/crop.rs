//! `RandomResizedCrop`: torchvision's sampling of a crop box, then a bicubic resize.

use image::RgbImage;
use image::imageops::{self, FilterType};
use rand::Rng;

use super::random::{int_to, uniform};

/// A crop box in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: u32,
    /// First column.
    pub left: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
}

/// Samples a crop box as torchvision's `RandomResizedCrop.get_params`: up to ten tries of an
/// area fraction uniform in `scale` and an aspect ratio log-uniform in `ratio`, with
/// `w = round(√(area·ratio))`, `h = round(√(area/ratio))` (round half to even, as Python), accepted
/// when `0 < w ≤ W` and `0 < h ≤ H`, then a uniform position; otherwise the centre crop of the
/// whole image clamped to the ratio range.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::crop::sample_box;
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let b = sample_box(&mut rng, 32, 32, (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0));
/// assert!(b.left + b.width <= 32 && b.top + b.height <= 32);
/// ```
pub fn sample_box<R: Rng + ?Sized>(
    rng: &mut R,
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> CropBox {
    let area = f64::from(width) * f64::from(height);
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= f64::from(width) && h > 0.0 && h <= f64::from(height) {
            let (w, h) = (w as u32, h as u32);
            let top = int_to(rng, height - h);
            let left = int_to(rng, width - w);
            return CropBox {
                top,
                left,
                height: h,
                width: w,
            };
        }
    }
    fallback_box(width, height, ratio)
}

/// torchvision's fallback: the whole image, narrowed to the nearest allowed ratio, centred.
pub fn fallback_box(width: u32, height: u32, ratio: (f64, f64)) -> CropBox {
    let in_ratio = f64::from(width) / f64::from(height.max(1));
    let (lo, hi) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < lo {
        (
            width,
            ((f64::from(width) / lo).round_ties_even() as u32).min(height),
        )
    } else if in_ratio > hi {
        (
            ((f64::from(height) * hi).round_ties_even() as u32).min(width),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// Crops `b` and resizes it to `size × size` with bicubic (Catmull-Rom, as PIL's BICUBIC).
pub fn resized_crop(img: &RgbImage, b: CropBox, size: u32) -> RgbImage {
    let crop = imageops::crop_imm(img, b.left, b.top, b.width, b.height).to_image();
    imageops::resize(&crop, size, size, FilterType::CatmullRom)
}

/// [`sample_box`] then [`resized_crop`].
pub fn random_resized_crop<R: Rng + ?Sized>(
    rng: &mut R,
    img: &RgbImage,
    size: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> RgbImage {
    let b = sample_box(rng, img.width(), img.height(), scale, ratio);
    resized_crop(img, b, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn fallback_clamps_ratio_and_centres() {
        // 10×2 is wider than 4:3: keep the height, width round(2·4/3) = 3, centred at (10−3)/2 = 3.
        assert_eq!(
            fallback_box(10, 2, (0.75, 4.0 / 3.0)),
            CropBox {
                top: 0,
                left: 3,
                height: 2,
                width: 3
            }
        );
        // 2×10 is taller than 3:4: keep the width, height round(2/0.75) = round(2.67) = 3.
        assert_eq!(
            fallback_box(2, 10, (0.75, 4.0 / 3.0)),
            CropBox {
                top: 3,
                left: 0,
                height: 3,
                width: 2
            }
        );
        assert_eq!(
            fallback_box(3, 3, (0.75, 4.0 / 3.0)),
            CropBox {
                top: 0,
                left: 0,
                height: 3,
                width: 3
            }
        );
    }

    #[test]
    fn scale_one_ratio_one_is_the_whole_image() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            assert_eq!(
                sample_box(&mut rng, 3, 3, (1.0, 1.0), (1.0, 1.0)),
                CropBox {
                    top: 0,
                    left: 0,
                    height: 3,
                    width: 3
                }
            );
        }
    }

    #[test]
    fn boxes_fit_and_respect_scale() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..500 {
            let b = sample_box(&mut rng, 40, 30, (0.2, 0.5), (0.75, 4.0 / 3.0));
            assert!(b.width > 0 && b.height > 0);
            assert!(b.left + b.width <= 40 && b.top + b.height <= 30);
            let frac = f64::from(b.width * b.height) / 1200.0;
            // Rounding of w and h moves the area a little; the fallback (whole image) is rare here.
            assert!(
                (0.15..=0.58).contains(&frac) || b.width == 40,
                "{b:?} {frac}"
            );
        }
    }

    #[test]
    fn impossible_scale_falls_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Areas of 5–6× the image never fit: the fallback centre crop is used.
        let b = sample_box(&mut rng, 4, 2, (5.0, 6.0), (0.75, 4.0 / 3.0));
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 0,
                height: 2,
                width: 3
            }
        );
    }

    #[test]
    fn resized_crop_of_one_pixel_box_is_constant() {
        let img = RgbImage::from_fn(3, 3, |x, y| image::Rgb([(10 * x + y) as u8, 0, 0]));
        let b = CropBox {
            top: 1,
            left: 2,
            height: 1,
            width: 1,
        };
        let out = resized_crop(&img, b, 2);
        assert!(out.pixels().all(|p| p.0 == [21, 0, 0]));
        let whole = resized_crop(
            &img,
            CropBox {
                top: 0,
                left: 0,
                height: 3,
                width: 3,
            },
            3,
        );
        assert_eq!(whole, img);
    }
}
