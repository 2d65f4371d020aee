//! The per-channel lookup-table ops of RandAugment, as PIL's `ImageOps` (and timm's
//! `solarize_add`) compute them on RGB images: each channel is mapped through its own table.
//!
//! The `image`/`imageproc` crates have no op with PIL's exact tables (PIL's `equalize` rounds
//! its step and starts at `step / 2`; `autocontrast` truncates), so the tables are written here.

use image::RgbImage;

/// Maps every channel value through that channel's table.
fn apply_luts(img: &mut RgbImage, luts: &[[u8; 256]; 3]) {
    for p in img.pixels_mut() {
        for (c, v) in p.0.iter_mut().enumerate() {
            *v = luts[c][usize::from(*v)];
        }
    }
}

/// Per-channel histograms.
fn histograms(img: &RgbImage) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for p in img.pixels() {
        for (c, v) in p.0.iter().enumerate() {
            h[c][usize::from(*v)] += 1;
        }
    }
    h
}

fn identity() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// PIL's `ImageOps.autocontrast(img)` (cutoff 0): per channel, the darkest value present maps
/// to 0 and the lightest to 255 with `int(i·s − lo·s)`, `s = 255 / (hi − lo)`; a channel with
/// one value is left alone.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::tone::autocontrast;
///
/// let mut img = image::RgbImage::from_vec(2, 1, vec![50, 7, 0, 150, 7, 255]).unwrap();
/// autocontrast(&mut img);
/// assert_eq!(img.into_raw(), vec![0, 7, 0, 255, 7, 255]);
/// ```
pub fn autocontrast(img: &mut RgbImage) {
    let h = histograms(img);
    let luts = std::array::from_fn(|c| {
        let lo = h[c].iter().position(|&n| n > 0).unwrap_or(0);
        let hi = h[c].iter().rposition(|&n| n > 0).unwrap_or(0);
        if hi <= lo {
            return identity();
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        // Python's int() truncates toward zero, then the value is clipped to 0..=255.
        std::array::from_fn(|i| ((i as f64 * scale + offset).trunc()).clamp(0.0, 255.0) as u8)
    });
    apply_luts(img, &luts);
}

/// PIL's `ImageOps.equalize(img)`: per channel, `step = (N − n_last) // 255` with `n_last` the
/// count of the lightest value present; value `i` maps to `(step // 2 + Σ_{j<i} n_j) // step`.
/// A channel with one value, or `step = 0`, is left alone.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::tone::equalize;
///
/// // Red: 255 pixels of 0 and one of 9: step = (256 − 1) // 255 = 1, 0 → 0, 9 → 255.
/// let mut px = vec![0u8; 3 * 256];
/// px[0] = 9;
/// let mut img = image::RgbImage::from_vec(256, 1, px).unwrap();
/// equalize(&mut img);
/// assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
/// assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
/// ```
pub fn equalize(img: &mut RgbImage) {
    let h = histograms(img);
    let luts = std::array::from_fn(|c| {
        let present: Vec<u64> = h[c].iter().copied().filter(|&n| n > 0).collect();
        if present.len() <= 1 {
            return identity();
        }
        let total: u64 = present.iter().sum();
        let step = (total - present[present.len() - 1]) / 255;
        if step == 0 {
            return identity();
        }
        let mut n = step / 2;
        std::array::from_fn(|i| {
            let v = (n / step).min(255) as u8;
            n += h[c][i];
            v
        })
    });
    apply_luts(img, &luts);
}

/// PIL's `ImageOps.invert`: `255 − v`.
pub fn invert(img: &mut RgbImage) {
    for v in img.iter_mut() {
        *v = 255 - *v;
    }
}

/// Keeps the `bits` most significant bits of every value (PIL's `ImageOps.posterize`; `bits ≥ 8`
/// is a no-op as in timm, `bits = 0` makes every value 0 as PIL's mask `~255` did before
/// Pillow refused 0).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::tone::posterize;
///
/// let mut img = image::RgbImage::from_vec(1, 1, vec![255, 100, 31]).unwrap();
/// posterize(&mut img, 2);
/// assert_eq!(img.into_raw(), vec![192, 64, 0]);
/// ```
pub fn posterize(img: &mut RgbImage, bits: u32) {
    if bits >= 8 {
        return;
    }
    let mask = !((1u16 << (8 - bits)) - 1) as u8;
    for v in img.iter_mut() {
        *v &= mask;
    }
}

/// PIL's `ImageOps.solarize(img, threshold)`: values `≥ threshold` become `255 − v`
/// (`threshold` 256 changes nothing; timm's `SolarizeIncreasing` reaches it at magnitude 0).
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::tone::solarize;
///
/// let mut img = image::RgbImage::from_vec(1, 1, vec![0, 100, 255]).unwrap();
/// solarize(&mut img, 100);
/// assert_eq!(img.into_raw(), vec![0, 155, 0]);
/// ```
pub fn solarize(img: &mut RgbImage, threshold: u16) {
    for v in img.iter_mut() {
        if u16::from(*v) >= threshold {
            *v = 255 - *v;
        }
    }
}

/// timm's `solarize_add(img, add, thresh=128)`: values below 128 get `add`, saturating at 255.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::tone::solarize_add;
///
/// let mut img = image::RgbImage::from_vec(1, 1, vec![10, 127, 128]).unwrap();
/// solarize_add(&mut img, 100);
/// assert_eq!(img.into_raw(), vec![110, 227, 128]);
/// ```
pub fn solarize_add(img: &mut RgbImage, add: u8) {
    for v in img.iter_mut() {
        if *v < 128 {
            *v = v.saturating_add(add);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reds(v: &[u8]) -> RgbImage {
        RgbImage::from_fn(v.len() as u32, 1, |x, _| {
            image::Rgb([v[x as usize], 0, 200])
        })
    }

    fn red(img: &RgbImage) -> Vec<u8> {
        img.pixels().map(|p| p.0[0]).collect()
    }

    #[test]
    fn autocontrast_by_hand() {
        // Red values 10, 20, 60: lo 10, hi 60, scale 5.1, offset −51:
        // 10 → 0, 20 → int(102 − 51) = 51, 60 → 255. Blue (one value, 200) is untouched.
        let mut img = reds(&[10, 20, 60]);
        autocontrast(&mut img);
        assert_eq!(red(&img), vec![0, 51, 255]);
        assert!(img.pixels().all(|p| p.0[2] == 200 && p.0[1] == 0));
        // Truncation: 0, 3, 7 → scale 255/7 = 36.43: 3 → int(109.29) = 109.
        let mut img = reds(&[0, 3, 7]);
        autocontrast(&mut img);
        assert_eq!(red(&img), vec![0, 109, 255]);
    }

    #[test]
    fn equalize_by_hand() {
        // 2 pixels of 0, 1 of 128, 255 of 255 → N = 258, last 255 has 255,
        // step = (258 − 255) // 255 = 0 → identity.
        let mut v = vec![0u8, 0, 128];
        v.extend(std::iter::repeat_n(255, 255));
        let mut img = reds(&v);
        let before = img.clone();
        equalize(&mut img);
        assert_eq!(red(&img), red(&before));
        // 510 pixels: 255 of 0, 255 of 10: last (10) has 255 → step = 255 // 255 = 1, n₀ = 0:
        // 0 → 0, 10 → 255 (n = 255 after the zeros).
        let mut v = vec![0u8; 255];
        v.extend(std::iter::repeat_n(10, 255));
        let mut img = reds(&v);
        equalize(&mut img);
        assert_eq!(img.get_pixel(0, 0).0[0], 0);
        assert_eq!(img.get_pixel(300, 0).0[0], 255);
        // 1020 pixels, 255 each of 0, 50, 100 and 200: step = (1020 − 255) // 255 = 3, n₀ = 1:
        // 0 → 1 // 3 = 0; 50 → (1 + 255) // 3 = 85; 100 → 511 // 3 = 170; 200 → 766 // 3 = 255.
        let mut v = Vec::new();
        for x in [0u8, 50, 100, 200] {
            v.extend(std::iter::repeat_n(x, 255));
        }
        let mut img = reds(&v);
        equalize(&mut img);
        let got: Vec<u8> = [0, 255, 510, 765]
            .iter()
            .map(|&i| img.get_pixel(i, 0).0[0])
            .collect();
        assert_eq!(got, vec![0, 85, 170, 255]);
    }

    #[test]
    fn point_ops_by_hand() {
        let mut img = reds(&[0, 77, 255]);
        invert(&mut img);
        assert_eq!(red(&img), vec![255, 178, 0]);
        assert_eq!(img.get_pixel(0, 0).0[2], 55);
        let mut img = reds(&[255, 130, 7]);
        posterize(&mut img, 1);
        assert_eq!(red(&img), vec![128, 128, 0]);
        posterize(&mut img, 0);
        assert_eq!(red(&img), vec![0, 0, 0]);
        let mut img = reds(&[255, 130, 7]);
        posterize(&mut img, 8);
        assert_eq!(red(&img), vec![255, 130, 7]);
        let mut img = reds(&[0, 255]);
        solarize(&mut img, 256);
        assert_eq!(red(&img), vec![0, 255]);
        solarize(&mut img, 0);
        assert_eq!(red(&img), vec![255, 0]);
        let mut img = reds(&[200, 127, 0]);
        solarize_add(&mut img, 110);
        assert_eq!(red(&img), vec![200, 237, 110]);
        assert_eq!(img.get_pixel(0, 0).0[2], 200); // blue 200 ≥ 128 stays
    }
}
