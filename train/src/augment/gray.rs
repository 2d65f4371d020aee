//! Grey levels and `RandomGrayscale`.

use image::{Rgb, RgbImage};

/// PIL's `convert("L")`: `L = (19595·R + 38470·G + 7471·B + 32768) >> 16`, i.e. ITU-R 601-2
/// luma (0.299, 0.587, 0.114) rounded to the nearest integer.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::gray::luma;
///
/// assert_eq!(luma([255, 255, 255]), 255);
/// assert_eq!(luma([100, 0, 0]), 30); // 29.9
/// ```
pub fn luma(p: [u8; 3]) -> u8 {
    let l = 19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]) + 32768;
    (l >> 16) as u8
}

/// Replaces every pixel by its grey level on three channels (torchvision's `Grayscale(3)`, the
/// op `RandomGrayscale` applies).
pub fn grayscale(img: &mut RgbImage) {
    for p in img.pixels_mut() {
        let l = luma(p.0);
        *p = Rgb([l, l, l]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_hand_values() {
        // 0.299·10 + 0.587·20 + 0.114·30 = 18.15 → 18; 0.299·200 + 0.587·100 + 0.114·50 = 124.2 → 124.
        let mut img = RgbImage::from_vec(2, 1, vec![10, 20, 30, 200, 100, 50]).unwrap();
        grayscale(&mut img);
        assert_eq!(img.into_raw(), vec![18, 18, 18, 124, 124, 124]);
        assert_eq!(luma([0, 0, 255]), 29); // 29.07
        assert_eq!(luma([0, 255, 0]), 150); // 149.685
    }
}
