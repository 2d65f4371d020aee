//! PIL's affine warp (`Image.transform(size, AFFINE, matrix, resample, fillcolor)`) and the
//! RandAugment ops built on it: rotate, shear and translate, as timm calls them.
//!
//! Written here rather than taken from `imageproc`: PIL samples the source at
//! `M·(x + ½, y + ½)`, fills every output pixel whose source point lies outside
//! `[0, W) × [0, H)` with the fill colour (no blending at the border), clamps the filter taps
//! to the edge, uses a cubic with `a = −1` (not Catmull-Rom's −½) and truncates to bytes;
//! `imageproc`'s `warp` samples and fills differently, so its pixels would not be PIL's.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// The resampling filter of the geometric ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    /// PIL's `BILINEAR` transform filter.
    Bilinear,
    /// PIL's `BICUBIC` transform filter (the original's `train_interpolation = 'bicubic'`).
    Bicubic,
}

/// PIL's transform cubic (`a = −1`) through `v1..v4` at `d ∈ [0, 1)` past `v2`.
fn cubic(v: [f64; 4], d: f64) -> f64 {
    let p1 = v[1];
    let p2 = -v[0] + v[2];
    let p3 = 2.0 * (v[0] - v[1]) + v[2] - v[3];
    let p4 = -v[0] + v[1] - v[2] + v[3];
    p1 + d * (p2 + d * (p3 + d * p4))
}

/// One channel sampled at the source point `(xin, yin)` (already inside the image).
fn sample(img: &RgbImage, xin: f64, yin: f64, resample: Resample) -> [u8; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (xin, yin) = (xin - 0.5, yin - 0.5);
    let (xf, yf) = (xin.floor(), yin.floor());
    let (dx, dy) = (xin - xf, yin - yf);
    let (x, y) = (xf as i64, yf as i64);
    let px = |xx: i64, yy: i64, c: usize| -> f64 {
        f64::from(
            img.get_pixel(xx.clamp(0, w - 1) as u32, yy.clamp(0, h - 1) as u32)
                .0[c],
        )
    };
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        *o = match resample {
            Resample::Bilinear => {
                let row = |yy: i64| px(x, yy, c) + (px(x + 1, yy, c) - px(x, yy, c)) * dx;
                let (v1, v2) = (row(y), row(y + 1));
                // Within [0, 255] by construction; truncated as PIL's `(UINT8)v`.
                (v1 + (v2 - v1) * dy) as u8
            }
            Resample::Bicubic => {
                let row = |yy: i64| {
                    cubic(
                        [
                            px(x - 1, yy, c),
                            px(x, yy, c),
                            px(x + 1, yy, c),
                            px(x + 2, yy, c),
                        ],
                        dx,
                    )
                };
                let v = cubic([row(y - 1), row(y), row(y + 1), row(y + 2)], dy);
                if v <= 0.0 {
                    0
                } else if v >= 255.0 {
                    255
                } else {
                    v as u8
                }
            }
        };
    }
    out
}

/// PIL's `Image.transform(img.size, AFFINE, m, resample, fillcolor=fill)`: output pixel
/// `(x, y)` takes the source at `(m0·(x+½) + m1·(y+½) + m2, m3·(x+½) + m4·(y+½) + m5)`,
/// or `fill` when that point is outside `[0, W) × [0, H)`.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::affine::{Resample, affine_warp};
///
/// let img = image::RgbImage::from_fn(4, 4, |x, y| image::Rgb([(40 * x + y) as u8, 0, 0]));
/// let same = affine_warp(&img, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], Resample::Bicubic, [9, 9, 9]);
/// assert_eq!(same, img);
/// ```
pub fn affine_warp(img: &RgbImage, m: [f64; 6], resample: Resample, fill: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let (xo, yo) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
        let xin = m[0] * xo + m[1] * yo + m[2];
        let yin = m[3] * xo + m[4] * yo + m[5];
        if xin < 0.0 || xin >= f64::from(w) || yin < 0.0 || yin >= f64::from(h) {
            Rgb(fill)
        } else {
            Rgb(sample(img, xin, yin, resample))
        }
    })
}

/// Python's `round(v, 15)` (PIL rounds the rotation matrix to 15 decimals).
fn round15(v: f64) -> f64 {
    format!("{v:.15}").parse().unwrap_or(v)
}

/// PIL's `img.rotate(degrees, resample, fillcolor=fill)` about the centre, counter-clockwise
/// for positive degrees, same size (timm's `rotate`). A multiple of 360° is a copy.
///
/// # Examples
///
/// ```
/// use patchmix_train::augment::affine::{Resample, rotate};
///
/// let img = image::RgbImage::from_pixel(5, 5, image::Rgb([200, 10, 10]));
/// let r = rotate(&img, 30.0, Resample::Bicubic, [124, 116, 104]);
/// assert_eq!(r.get_pixel(2, 2).0, [200, 10, 10]); // the centre stays
/// assert_eq!(r.get_pixel(0, 0).0, [124, 116, 104]); // a corner leaves the image
/// ```
pub fn rotate(img: &RgbImage, degrees: f64, resample: Resample, fill: [u8; 3]) -> RgbImage {
    // Python's `angle % 360.0` (the result takes the divisor's sign).
    let angle = degrees.rem_euclid(360.0);
    if angle == 0.0 {
        return img.clone();
    }
    let (cx, cy) = (f64::from(img.width()) / 2.0, f64::from(img.height()) / 2.0);
    let a = -angle.to_radians();
    let mut m = [
        round15(a.cos()),
        round15(a.sin()),
        0.0,
        round15(-a.sin()),
        round15(a.cos()),
        0.0,
    ];
    // PIL: `(a·x + b·y) + c` with c = 0 (IEEE addition commutes exactly).
    m[2] += m[0] * -cx + m[1] * -cy;
    m[5] += m[3] * -cx + m[4] * -cy;
    m[2] += cx;
    m[5] += cy;
    affine_warp(img, m, resample, fill)
}

/// timm's `shear_x`: the matrix `(1, factor, 0, 0, 1, 0)`.
pub fn shear_x(img: &RgbImage, factor: f64, resample: Resample, fill: [u8; 3]) -> RgbImage {
    affine_warp(img, [1.0, factor, 0.0, 0.0, 1.0, 0.0], resample, fill)
}

/// timm's `shear_y`: the matrix `(1, 0, 0, factor, 1, 0)`.
pub fn shear_y(img: &RgbImage, factor: f64, resample: Resample, fill: [u8; 3]) -> RgbImage {
    affine_warp(img, [1.0, 0.0, 0.0, factor, 1.0, 0.0], resample, fill)
}

/// timm's `translate_x_rel`: the source is read `pct · W` pixels to the right
/// (the matrix `(1, 0, pct·W, 0, 1, 0)`), so the content moves left for `pct > 0`.
pub fn translate_x(img: &RgbImage, pct: f64, resample: Resample, fill: [u8; 3]) -> RgbImage {
    let pixels = pct * f64::from(img.width());
    affine_warp(img, [1.0, 0.0, pixels, 0.0, 1.0, 0.0], resample, fill)
}

/// timm's `translate_y_rel`: the matrix `(1, 0, 0, 0, 1, pct·H)`.
pub fn translate_y(img: &RgbImage, pct: f64, resample: Resample, fill: [u8; 3]) -> RgbImage {
    let pixels = pct * f64::from(img.height());
    affine_warp(img, [1.0, 0.0, 0.0, 0.0, 1.0, pixels], resample, fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILL: [u8; 3] = [124, 116, 104];

    fn row(v: &[u8]) -> RgbImage {
        RgbImage::from_fn(v.len() as u32, 1, |x, _| Rgb([v[x as usize], 0, 0]))
    }

    fn reds(img: &RgbImage) -> Vec<u8> {
        img.pixels().map(|p| p.0[0]).collect()
    }

    #[test]
    fn whole_pixel_translation_shifts_and_fills() {
        // pct 0.25 of width 4 = 1 pixel: output x reads source x + 1 (+½ → exact centres, d = 0).
        let img = row(&[10, 20, 30, 40]);
        for r in [Resample::Bilinear, Resample::Bicubic] {
            let t = translate_x(&img, 0.25, r, FILL);
            assert_eq!(reds(&t), vec![20, 30, 40, 124], "{r:?}");
            // Output 3 reads source 4.5 ≥ W = 4: the fill colour on every channel.
            assert_eq!(t.get_pixel(3, 0).0, FILL);
            let t = translate_x(&img, -0.25, r, FILL);
            assert_eq!(reds(&t), vec![124, 10, 20, 30], "{r:?}");
        }
    }

    #[test]
    fn half_pixel_bilinear_and_bicubic_by_hand() {
        // Shift by half a pixel: output x reads source x + 1 (pixel-centre coordinates), i.e.
        // d = ½ between source pixels x and x + 1.
        let img = row(&[0, 100, 200, 100, 0, 0]);
        let m = [1.0, 0.0, 0.5, 0.0, 1.0, 0.0];
        // Bilinear: (0+100)/2 = 50, 150, 150, 50, 0; the last reads 6.0 ≥ W → fill.
        let b = affine_warp(&img, m, Resample::Bilinear, FILL);
        assert_eq!(reds(&b), vec![50, 150, 150, 50, 0, 124]);
        // Bicubic a = −1 at d = ½: v = v2 + ½(v3 − v1) + ¼(2v1 − 2v2 + v3 − v4) + ⅛(−v1 + v2 − v3 + v4)
        //   = (−v1 + 5v2 + 5v3 − v4) / 8, taps clamped at the edges.
        // x0: taps (0, 0, 100, 200) → (0 + 0 + 500 − 200)/8 = 37.5 → 37
        // x1: (0, 100, 200, 100) → (0 + 500 + 1000 − 100)/8 = 175
        // x2: (100, 200, 100, 0) → (−100 + 1000 + 500)/8 = 175
        // x3: (200, 100, 0, 0) → (−200 + 500)/8 = 37.5 → 37
        // x4: (100, 0, 0, 0) → −100/8 < 0 → 0
        let c = affine_warp(&img, m, Resample::Bicubic, FILL);
        assert_eq!(reds(&c), vec![37, 175, 175, 37, 0, 124]);
    }

    #[test]
    fn bicubic_overshoot_clips_to_255() {
        // Half-pixel shift of [0, 255, 255, 0], d = ½, v = (−v1 + 5v2 + 5v3 − v4)/8:
        // x0 taps (0, 0, 255, 255) → 1020/8 = 127.5 → 127; x1 (0, 255, 255, 0) → 318.75 → 255;
        // x2 (255, 255, 0, 0) → 127.5 → 127; x3 reads 4.0 ≥ W → fill.
        let img = row(&[0, 255, 255, 0]);
        let c = affine_warp(
            &img,
            [1.0, 0.0, 0.5, 0.0, 1.0, 0.0],
            Resample::Bicubic,
            FILL,
        );
        assert_eq!(reds(&c), vec![127, 255, 127, 124]);
    }

    #[test]
    fn shear_by_hand() {
        // 4×2 image, shear_x 2: output (x, y) reads (x + ½ + 2(y + ½), y + ½), the centre of
        // source pixel (x + 2y + 1, y): row 0 reads x + 1, row 1 reads x + 3.
        let img = RgbImage::from_fn(4, 2, |x, y| Rgb([(10 * (x + 1) + 100 * y) as u8, 0, 0]));
        let s = shear_x(&img, 2.0, Resample::Bicubic, FILL);
        assert_eq!(reds(&s), vec![20, 30, 40, 124, 140, 124, 124, 124]);
        // shear_y 2 on the transposed layout: column 0 reads row y + 1, column 1 row y + 3.
        let img = RgbImage::from_fn(2, 4, |x, y| Rgb([(10 * (y + 1) + 100 * x) as u8, 0, 0]));
        let s = shear_y(&img, 2.0, Resample::Bilinear, FILL);
        assert_eq!(reds(&s), vec![20, 140, 30, 124, 40, 124, 124, 124]);
    }

    #[test]
    fn rotation_by_90_degrees_by_hand() {
        // 90° counter-clockwise on 3×3: cos rounds to 0 at 15 decimals, the matrix is
        // (0, −1, 3, 1, 0, 0): xin = 3 − (y + ½), yin = x + ½, so out(x, y) = in(2 − y, x).
        let img = RgbImage::from_fn(3, 3, |x, y| Rgb([(10 * x + y) as u8, 0, 0]));
        let r = rotate(&img, 90.0, Resample::Bicubic, FILL);
        for y in 0..3 {
            for x in 0..3 {
                assert_eq!(
                    r.get_pixel(x, y).0[0],
                    (10 * (2 - y) + x) as u8,
                    "({x}, {y})"
                );
            }
        }
        assert_eq!(rotate(&img, 360.0, Resample::Bicubic, FILL), img);
        assert_eq!(rotate(&img, -360.0, Resample::Bicubic, FILL), img);
    }
}
