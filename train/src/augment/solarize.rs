//! Solarize (PIL `ImageOps.solarize(threshold=128)`, MoCo v3's `Solarize`).

use image::RgbImage;

/// Inverts every channel value `≥ threshold` (`x → 255 − x`).
pub fn solarize(img: &mut RgbImage, threshold: u8) {
    for v in img.iter_mut() {
        if *v >= threshold {
            *v = 255 - *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_at_and_above_threshold() {
        let mut img = RgbImage::from_vec(2, 1, vec![0, 127, 128, 129, 200, 255]).unwrap();
        solarize(&mut img, 128);
        assert_eq!(img.into_raw(), vec![0, 127, 127, 126, 55, 0]);
    }
}
