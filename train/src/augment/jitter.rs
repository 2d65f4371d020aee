//! `ColorJitter`: brightness, contrast, saturation and hue, as torchvision applies them to PIL
//! images (PIL's `ImageEnhance` blends, truncated to bytes, and an HSV hue shift).

use image::{Rgb, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::gray::luma;
use super::hsv::{hsv_to_rgb, rgb_to_hsv};
use super::random::{perm4, uniform};

/// PIL's `Image.blend(a, b, f)` on one channel: `a + f·(b − a)` in f32, clipped to `0..=255`
/// and truncated.
pub(crate) fn blend(a: f32, b: u8, f: f32) -> u8 {
    (a + f * (f32::from(b) - a)).clamp(0.0, 255.0) as u8
}

/// Multiplies by `factor` (PIL `ImageEnhance.Brightness`: blend with black).
pub fn adjust_brightness(img: &mut RgbImage, factor: f32) {
    for p in img.pixels_mut() {
        p.0 = p.0.map(|v| blend(0.0, v, factor));
    }
}

/// Blends with the mean grey level (PIL `ImageEnhance.Contrast`: the mean of the `L` image,
/// rounded, `int(mean + 0.5)`).
pub fn adjust_contrast(img: &mut RgbImage, factor: f32) {
    let n = u64::from(img.width()) * u64::from(img.height());
    if n == 0 {
        return;
    }
    let sum: u64 = img.pixels().map(|p| u64::from(luma(p.0))).sum();
    let mean = (sum as f64 / n as f64 + 0.5).floor() as f32;
    for p in img.pixels_mut() {
        p.0 = p.0.map(|v| blend(mean, v, factor));
    }
}

/// Blends each pixel with its own grey level (PIL `ImageEnhance.Color`).
pub fn adjust_saturation(img: &mut RgbImage, factor: f32) {
    for p in img.pixels_mut() {
        let l = f32::from(luma(p.0));
        p.0 = p.0.map(|v| blend(l, v, factor));
    }
}

/// Rotates the hue by `factor` of a turn, `factor ∈ [−0.5, 0.5]` (torchvision's PIL
/// `adjust_hue`: to 8-bit HSV, `h += int8(factor·255)` with wrap-around, back to RGB).
pub fn adjust_hue(img: &mut RgbImage, factor: f32) {
    let shift = (f64::from(factor) * 255.0).clamp(-128.0, 127.0) as i8 as u8;
    for p in img.pixels_mut() {
        let [h, s, v] = rgb_to_hsv(p.0);
        *p = Rgb(hsv_to_rgb([h.wrapping_add(shift), s, v]));
    }
}

/// Jitter strengths, as `ColorJitter(brightness, contrast, saturation, hue)`: factors are drawn
/// uniformly from `[1 − b, 1 + b]`, `[1 − c, 1 + c]`, `[1 − s, 1 + s]` and `[−h, h]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    /// Brightness strength.
    pub brightness: f64,
    /// Contrast strength.
    pub contrast: f64,
    /// Saturation strength.
    pub saturation: f64,
    /// Hue strength (at most 0.5).
    pub hue: f64,
}

impl Default for ColorJitter {
    /// MoCo v3's `ColorJitter(0.4, 0.4, 0.2, 0.1)`.
    fn default() -> Self {
        Self {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.2,
            hue: 0.1,
        }
    }
}

/// One draw of [`ColorJitter`]: the order of the four ops and their factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterParams {
    /// Op order: 0 brightness, 1 contrast, 2 saturation, 3 hue.
    pub order: [usize; 4],
    /// Brightness factor.
    pub brightness: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Saturation factor.
    pub saturation: f32,
    /// Hue shift.
    pub hue: f32,
}

impl ColorJitter {
    /// Draws the order (`randperm(4)`) then the four factors, as torchvision's `get_params`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> JitterParams {
        let order = perm4(rng);
        let around_one = |rng: &mut R, s: f64| uniform(rng, (1.0 - s).max(0.0), 1.0 + s) as f32;
        let brightness = around_one(rng, self.brightness);
        let contrast = around_one(rng, self.contrast);
        let saturation = around_one(rng, self.saturation);
        let hue = uniform(rng, -self.hue, self.hue) as f32;
        JitterParams {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }
}

impl JitterParams {
    /// Applies the four ops in order (a factor of exactly 1, or a hue of 0, is skipped as
    /// torchvision's `None` strengths are).
    pub fn apply(&self, img: &mut RgbImage) {
        for op in self.order {
            match op {
                0 if self.brightness != 1.0 => adjust_brightness(img, self.brightness),
                1 if self.contrast != 1.0 => adjust_contrast(img, self.contrast),
                2 if self.saturation != 1.0 => adjust_saturation(img, self.saturation),
                3 if self.hue != 0.0 => adjust_hue(img, self.hue),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn img(px: &[[u8; 3]]) -> RgbImage {
        RgbImage::from_vec(px.len() as u32, 1, px.concat()).unwrap()
    }

    #[test]
    fn brightness_truncates_and_clips() {
        let mut i = img(&[[10, 100, 250], [3, 0, 255]]);
        adjust_brightness(&mut i, 1.5);
        // 15, 150, 375 → 255; 4.5 → 4.
        assert_eq!(i.into_raw(), vec![15, 150, 255, 4, 0, 255]);
        let mut i = img(&[[10, 99, 255]]);
        adjust_brightness(&mut i, 0.6);
        // 6, 59.4 → 59, 153.
        assert_eq!(i.into_raw(), vec![6, 59, 153]);
    }

    #[test]
    fn contrast_blends_with_rounded_mean_grey() {
        // Greys 0 and 255 → L 0 and 255 → mean 127.5 → int(128.0) = 128.
        let mut i = img(&[[0, 0, 0], [255, 255, 255]]);
        adjust_contrast(&mut i, 0.5);
        // 128 + 0.5·(0 − 128) = 64; 128 + 0.5·127 = 191.5 → 191.
        assert_eq!(i.into_raw(), vec![64, 64, 64, 191, 191, 191]);
        let mut i = img(&[[10, 20, 30], [200, 100, 50]]);
        // L = 18 and 124 → mean 71.
        adjust_contrast(&mut i, 2.0);
        // 71 + 2·(v − 71): 10 → −51 → 0; 20 → −31 → 0; 30 → −11 → 0; 200 → 329 → 255; 100 → 129; 50 → 29.
        assert_eq!(i.into_raw(), vec![0, 0, 0, 255, 129, 29]);
    }

    #[test]
    fn saturation_blends_with_own_grey() {
        let mut i = img(&[[200, 100, 50]]);
        // L = 124: 124 + 0.5·(200 − 124) = 162; 124 − 12 = 112; 124 − 37 = 87.
        adjust_saturation(&mut i, 0.5);
        assert_eq!(i.into_raw(), vec![162, 112, 87]);
        let mut i = img(&[[200, 100, 50]]);
        adjust_saturation(&mut i, 0.0);
        assert_eq!(i.into_raw(), vec![124, 124, 124]);
    }

    #[test]
    fn hue_shifts_in_hsv() {
        // Red (h 0) + int8(1/3·255 = 85) → h 85 → green.
        let mut i = img(&[[255, 0, 0], [9, 9, 9]]);
        adjust_hue(&mut i, 1.0 / 3.0);
        assert_eq!(i.into_raw(), vec![0, 255, 0, 9, 9, 9]);
        // Negative shifts wrap: red − int8(0.1·255 = 25) → h 231 → sector 5, f = 0.435:
        // (v, p, q) = (255, 0, round(255·(1 − 0.435))) = (255, 0, 144).
        let mut i = img(&[[255, 0, 0]]);
        adjust_hue(&mut i, -0.1);
        assert_eq!(i.into_raw(), vec![255, 0, 144]);
    }

    #[test]
    fn sample_stays_in_range_and_order_is_a_permutation() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let cj = ColorJitter::default();
        for _ in 0..200 {
            let p = cj.sample(&mut rng);
            let mut o = p.order;
            o.sort_unstable();
            assert_eq!(o, [0, 1, 2, 3]);
            assert!((0.6..=1.4).contains(&p.brightness));
            assert!((0.6..=1.4).contains(&p.contrast));
            assert!((0.8..=1.2).contains(&p.saturation));
            assert!((-0.1..=0.1).contains(&p.hue));
        }
    }
}
