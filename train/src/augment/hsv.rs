//! PIL's 8-bit RGB ↔ HSV conversions (`Image.convert("HSV")` and back), which torchvision's
//! `adjust_hue` uses on PIL images.

/// RGB → HSV with each component in `0..=255` (PIL's `rgb2hsv`, following `colorsys`, with
/// truncation to bytes).
pub fn rgb_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return [0, 0, maxc];
    }
    let cr = f32::from(maxc - minc);
    let s = cr / f32::from(maxc);
    let rc = f32::from(maxc - r) / cr;
    let gc = f32::from(maxc - g) / cr;
    let bc = f32::from(maxc - b) / cr;
    let h = if r == maxc {
        bc - gc
    } else if g == maxc {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
    let to_byte = |x: f32| (f64::from(x) * 255.0).clamp(0.0, 255.0) as u8;
    [to_byte(h), to_byte(s), maxc]
}

/// HSV → RGB (PIL's `hsv2rgb`: sector `floor(6h/255)`, `p`, `q`, `t` rounded half away from zero).
pub fn hsv_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let h6 = f64::from(h) * 6.0 / 255.0;
    let i = h6.floor();
    let f = f64::from((h6 - i) as f32);
    let fs = f64::from((f64::from(s) / 255.0) as f32);
    let v_ = f64::from(v);
    let byte = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    let p = byte(v_ * (1.0 - fs));
    let q = byte(v_ * (1.0 - fs * f));
    let t = byte(v_ * (1.0 - fs * (1.0 - f)));
    match (i as i64) % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_conversions() {
        // Pure red: h 0, s 255, v 255.
        assert_eq!(rgb_to_hsv([255, 0, 0]), [0, 255, 255]);
        // (0, 255, 0): h = 2/6 → 85.
        assert_eq!(rgb_to_hsv([0, 255, 0]), [85, 255, 255]);
        // (0, 0, 255): h = 4/6 → 170.
        assert_eq!(rgb_to_hsv([0, 0, 255]), [170, 255, 255]);
        // (200, 100, 50): cr 150, s = 0.75 → 191; h = (bc − gc)/6 = (1 − 2/3)/6 = 1/18 → 14.
        assert_eq!(rgb_to_hsv([200, 100, 50]), [14, 191, 200]);
        // Grey: no hue, no saturation.
        assert_eq!(rgb_to_hsv([7, 7, 7]), [0, 0, 7]);
        // Back: h 14 → 6h/255 = 0.329, sector 0, f = 0.329; s 191 → fs = 0.749;
        // p = round(200·0.251) = 50, t = round(200·(1 − 0.749·0.671)) = round(99.5..) = 100.
        assert_eq!(hsv_to_rgb([14, 191, 200]), [200, 100, 50]);
        assert_eq!(hsv_to_rgb([85, 255, 255]), [0, 255, 0]);
        assert_eq!(hsv_to_rgb([0, 0, 9]), [9, 9, 9]);
        // h 255 → sector 6 → 6 mod 6 = 0.
        assert_eq!(hsv_to_rgb([255, 255, 255]), [255, 0, 0]);
    }
}
