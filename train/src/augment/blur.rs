//! Gaussian blur, MoCo v3's `GaussianBlur([0.1, 2.0])` (PIL `ImageFilter.GaussianBlur(radius=σ)`).
//!
//! Implemented as an exact separable Gaussian: weights `exp(−k²/2σ²)` for `|k| ≤ ceil(3σ)`,
//! normalised to sum 1, edges replicated, horizontal then vertical pass in f32, rounded to the
//! nearest byte once at the end. (PIL approximates the same Gaussian with three box blurs, so
//! results differ from PIL by a grey level or so.)

use image::RgbImage;

/// The normalised kernel of `sigma` (`2·ceil(3σ) + 1` taps); `[1.0]` for `σ ≤ 0`.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::blur::kernel;
///
/// let k = kernel(1.0);
/// assert_eq!(k.len(), 7);
/// assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// ```
pub fn kernel(sigma: f32) -> Vec<f32> {
    if sigma.is_nan() || sigma <= 0.0 {
        return vec![1.0];
    }
    let radius = (3.0 * sigma).ceil().min(1024.0) as i32;
    let w: Vec<f32> = (-radius..=radius)
        .map(|k| (-((k * k) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = w.iter().sum();
    w.into_iter().map(|x| x / sum).collect()
}

/// Blurs `img` with a Gaussian of standard deviation `sigma` pixels.
pub fn gaussian_blur(img: &RgbImage, sigma: f32) -> RgbImage {
    let k = kernel(sigma);
    let (w, h) = img.dimensions();
    if k.len() == 1 || w == 0 || h == 0 {
        return img.clone();
    }
    let (w, h) = (w as usize, h as usize);
    let r = (k.len() / 2) as isize;
    let src = img.as_raw();
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0f32; 3];
            for (j, &kw) in k.iter().enumerate() {
                let sx = clamp(x as isize + j as isize - r, w);
                let p = &src[(y * w + sx) * 3..][..3];
                for c in 0..3 {
                    acc[c] += kw * f32::from(p[c]);
                }
            }
            tmp[(y * w + x) * 3..][..3].copy_from_slice(&acc);
        }
    }
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0f32; 3];
            for (j, &kw) in k.iter().enumerate() {
                let sy = clamp(y as isize + j as isize - r, h);
                let p = &tmp[(sy * w + x) * 3..][..3];
                for c in 0..3 {
                    acc[c] += kw * p[c];
                }
            }
            for c in 0..3 {
                out[(y * w + x) * 3 + c] = (acc[c] + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| img.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_three_by_one() {
        // σ = 0.5: radius ceil(1.5) = 2, weights e^{-2k²} for k = −2..2:
        // [e^-8, e^-2, 1, e^-2, e^-8] / (1 + 2e^-2 + 2e^-8) = [0.000264, 0.106451, 0.786571, …].
        let k = kernel(0.5);
        assert_eq!(k.len(), 5);
        assert!(
            (k[2] - 0.786_571).abs() < 1e-5 && (k[1] - 0.106_451).abs() < 1e-5,
            "{k:?}"
        );
        // Row [0, 255, 0] (one channel shown): edges replicate.
        // x=0: taps (0,0,0,255,0) → 255·0.106451 = 27.14 → 27.
        // x=1: taps (0,0,255,0,0) → 255·0.786571 = 200.58 → 201.
        let img = RgbImage::from_vec(3, 1, vec![0, 0, 0, 255, 255, 255, 0, 0, 0]).unwrap();
        let out = gaussian_blur(&img, 0.5);
        assert_eq!(out.into_raw(), vec![27, 27, 27, 201, 201, 201, 27, 27, 27]);
    }

    #[test]
    fn two_by_two_is_separable() {
        // σ = 0.3: radius 1, weights [e^{-1/0.18}, 1, e^{-1/0.18}] → side weight a = 0.003836…
        // Pixel (0,0) of [[100, 0], [0, 0]]: replicate edges → horizontal: (1−a)·100 = 99.616 at
        // x=0, a·100 = 0.384 at x=1; vertical at y=0: (1−a)·99.616 = 99.233 → 99.
        let img = RgbImage::from_vec(2, 2, [[100u8; 3], [0; 3], [0; 3], [0; 3]].concat()).unwrap();
        let out = gaussian_blur(&img, 0.3);
        assert_eq!(out.get_pixel(0, 0).0, [99; 3]);
        assert_eq!(out.get_pixel(1, 0).0, [0; 3]); // 0.383 → 0
        assert_eq!(out.get_pixel(0, 1).0, [0; 3]);
    }

    #[test]
    fn constant_stays_constant_and_zero_sigma_is_identity() {
        let flat = RgbImage::from_pixel(3, 3, image::Rgb([17, 200, 3]));
        assert_eq!(gaussian_blur(&flat, 2.0), flat);
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 9]));
        assert_eq!(gaussian_blur(&img, 0.0), img);
    }
}
