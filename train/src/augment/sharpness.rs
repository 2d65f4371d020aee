//! PIL's `ImageEnhance.Sharpness`: a blend of the image with its `ImageFilter.SMOOTH` version.
//!
//! Written here because PIL's 3×3 filter has its own arithmetic (f32 taps `1/13` and `5/13`,
//! rows summed bottom to top onto a `+½` offset, truncated; the one-pixel border copied), which
//! neither `image::imageops::filter3x3` nor `imageproc` reproduces byte for byte.

use image::RgbImage;

/// PIL's `img.filter(ImageFilter.SMOOTH)`: kernel `[[1,1,1],[1,5,1],[1,1,1]] / 13`; the
/// outermost rows and columns are copied unchanged.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::sharpness::smooth;
///
/// // A lone 130 among zeros: the centre keeps 5/13 of it: 50.0 + ½ → 50.
/// let mut img = image::RgbImage::new(3, 3);
/// img.put_pixel(1, 1, image::Rgb([130, 0, 0]));
/// assert_eq!(smooth(&img).get_pixel(1, 1).0, [50, 0, 0]);
/// ```
pub fn smooth(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    if w < 3 || h < 3 {
        return out;
    }
    let k_side = 1.0f32 / 13.0;
    let k_mid = 5.0f32 / 13.0;
    let at = |x: u32, y: u32, c: usize| f32::from(img.get_pixel(x, y).0[c]);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut px = [0u8; 3];
            for (c, o) in px.iter_mut().enumerate() {
                let line = |yy: u32, mid: f32| {
                    at(x - 1, yy, c) * k_side + at(x, yy, c) * mid + at(x + 1, yy, c) * k_side
                };
                let mut ss = 0.5f32;
                ss += line(y + 1, k_side);
                ss += line(y, k_mid);
                ss += line(y - 1, k_side);
                *o = ss.clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(x, y, image::Rgb(px));
        }
    }
    out
}

/// PIL's `ImageEnhance.Sharpness(img).enhance(factor)`: `Image.blend(smooth(img), img, factor)`
/// (factor 0 is the smoothed image, 1 the image, 2 sharpened).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::sharpness::adjust_sharpness;
///
/// let mut img = image::RgbImage::new(3, 3);
/// img.put_pixel(1, 1, image::Rgb([130, 0, 0]));
/// let mut sharp = img.clone();
/// adjust_sharpness(&mut sharp, 1.5); // 50 + 1.5·(130 − 50) = 170
/// assert_eq!(sharp.get_pixel(1, 1).0, [170, 0, 0]);
/// ```
pub fn adjust_sharpness(img: &mut RgbImage, factor: f32) {
    let degenerate = smooth(img);
    for (p, d) in img.iter_mut().zip(degenerate.iter()) {
        *p = super::jitter::blend(f32::from(*d), *p, factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_by_hand() {
        // 4×3 red ramp 0, 13, 26, 39 on every row: interior (1, 1) = (0 + 13·5 + 26)/13·… per row:
        // each row contributes (0 + 13·k + 26·k) with side k = 1/13: row above/below
        // (0 + 13 + 26)/13 = 3, middle row (0 + 65 + 26)/13 = 7 → 3 + 7 + 3 = 13 (+½ → 13).
        // (2, 1): rows (13 + 26 + 39)/13 = 6, middle (13 + 130 + 39)/13 = 14 → 26.
        let img = RgbImage::from_fn(4, 3, |x, _| image::Rgb([(13 * x) as u8, 0, 0]));
        let s = smooth(&img);
        assert_eq!(s.get_pixel(1, 1).0[0], 13);
        assert_eq!(s.get_pixel(2, 1).0[0], 26);
        // The border is copied.
        for x in 0..4 {
            assert_eq!(s.get_pixel(x, 0), img.get_pixel(x, 0));
            assert_eq!(s.get_pixel(x, 2), img.get_pixel(x, 2));
        }
        // A single bright pixel spreads 1/13 to its neighbours: 13·1/13 + ½ = 1.5 → 1.
        let mut img = RgbImage::new(5, 5);
        img.put_pixel(2, 2, image::Rgb([13, 0, 0]));
        let s = smooth(&img);
        assert_eq!(s.get_pixel(2, 2).0[0], 5);
        assert_eq!(s.get_pixel(1, 1).0[0], 1);
        assert_eq!(s.get_pixel(3, 2).0[0], 1);
    }

    #[test]
    fn sharpness_blends_and_clips() {
        // Centre 130 → smoothed 50; factor 0.5: 50 + 0.5·80 = 90; factor 4: 50 + 320 = 370 → 255.
        let mut img = RgbImage::new(3, 3);
        img.put_pixel(1, 1, image::Rgb([130, 0, 0]));
        let mut a = img.clone();
        adjust_sharpness(&mut a, 0.5);
        assert_eq!(a.get_pixel(1, 1).0[0], 90);
        let mut b = img.clone();
        adjust_sharpness(&mut b, 4.0);
        assert_eq!(b.get_pixel(1, 1).0[0], 255);
        // The border equals its smoothed self, so any factor leaves it.
        assert_eq!(b.get_pixel(0, 0).0[0], 0);
    }
}
