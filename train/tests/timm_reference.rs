//! The fine-tuning augmentations against timm itself (`scripts/timm_augment_reference.py`):
//! every RandAugment op, on PIL images, at several arguments and both resampling filters, must
//! give PIL's bytes exactly; Mixup and CutMix, with λ and the CutMix centre given, must give
//! timm's mixed batch, box and soft targets exactly; every op's magnitude-to-argument rule must
//! give timm's `LEVEL_TO_ARG` value exactly, for both signs.
//!
//! Needs a `python3` with `timm` (so torch and Pillow); without it every test prints
//! `SKIPPED: …` and passes (CI has no timm).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use image::RgbImage;
use patchmix_train::augment::affine::{
    Resample, rotate, shear_x, shear_y, translate_x, translate_y,
};
use patchmix_train::augment::jitter::{adjust_brightness, adjust_contrast, adjust_saturation};
use patchmix_train::augment::mixup::{Mix, box_lambda, cut_box, mix_images, mixed_targets};
use patchmix_train::augment::randaugment::{OpArg, RandOp, level_to_arg_signed};
use patchmix_train::augment::sharpness::adjust_sharpness;
use patchmix_train::augment::tone::{
    autocontrast, equalize, invert, posterize, solarize, solarize_add,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

fn timm_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import timm, torch, PIL"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with timm (torch, Pillow) is not available");
    }
    ok
}

/// Runs the reference script on `cases`, returning its results.
fn reference(cases: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("timm_augment_reference.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

/// Test images: random bytes (odd size), a smooth ramp, and a low-contrast patch.
fn images() -> Vec<RgbImage> {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let noise = RgbImage::from_fn(13, 11, |_, _| image::Rgb(rng.random::<[u8; 3]>()));
    let ramp = RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 16) as u8, (y * 15 + 10) as u8, ((x + y) * 7) as u8])
    });
    let dull = RgbImage::from_fn(9, 12, |x, y| {
        image::Rgb([
            60 + (x * 7 % 50) as u8,
            100 + (y * 3) as u8,
            90 + ((x * y) % 20) as u8,
        ])
    });
    vec![noise, ramp, dull]
}

/// `(timm function name, its arguments)` of every op under test.
fn op_cases() -> Vec<(&'static str, Vec<f64>)> {
    let mut v: Vec<(&str, Vec<f64>)> = vec![
        ("auto_contrast", vec![]),
        ("equalize", vec![]),
        ("invert", vec![]),
    ];
    for deg in [27.0, -13.7, 4.2, -30.0] {
        v.push(("rotate", vec![deg]));
    }
    for bits in [1.0, 2.0, 4.0] {
        v.push(("posterize", vec![bits]));
    }
    for t in [26.0, 128.0, 256.0] {
        v.push(("solarize", vec![t]));
    }
    for add in [0.0, 37.0, 110.0] {
        v.push(("solarize_add", vec![add]));
    }
    for f in [0.19, 1.81, 0.1, 1.9, 1.0 + 0.9 * 0.87] {
        for op in ["color", "contrast", "brightness", "sharpness"] {
            v.push((op, vec![f]));
        }
    }
    for s in [0.27, -0.3, 0.113] {
        v.push(("shear_x", vec![s]));
        v.push(("shear_y", vec![s]));
    }
    for t in [0.405, -0.45, 0.1234] {
        v.push(("translate_x_rel", vec![t]));
        v.push(("translate_y_rel", vec![t]));
    }
    v
}

fn ours(img: &RgbImage, op: &str, args: &[f64], r: Resample, fill: [u8; 3]) -> RgbImage {
    let a = args.first().copied().unwrap_or(0.0);
    let mut out = img.clone();
    match op {
        "auto_contrast" => autocontrast(&mut out),
        "equalize" => equalize(&mut out),
        "invert" => invert(&mut out),
        "rotate" => return rotate(img, a, r, fill),
        "posterize" => posterize(&mut out, a as u32),
        "solarize" => solarize(&mut out, a as u16),
        "solarize_add" => solarize_add(&mut out, a as u8),
        "color" => adjust_saturation(&mut out, a as f32),
        "contrast" => adjust_contrast(&mut out, a as f32),
        "brightness" => adjust_brightness(&mut out, a as f32),
        "sharpness" => adjust_sharpness(&mut out, a as f32),
        "shear_x" => return shear_x(img, a, r, fill),
        "shear_y" => return shear_y(img, a, r, fill),
        "translate_x_rel" => return translate_x(img, a, r, fill),
        "translate_y_rel" => return translate_y(img, a, r, fill),
        _ => panic!("no op {op}"),
    }
    out
}

#[test]
fn randaugment_ops_match_pil_byte_for_byte() {
    if !timm_available() {
        return;
    }
    let fill = [124, 116, 104];
    let mut cases = Vec::new();
    let mut ours_out = Vec::new();
    for img in images() {
        for (op, args) in op_cases() {
            for (r, rname) in [
                (Resample::Bicubic, "bicubic"),
                (Resample::Bilinear, "bilinear"),
            ] {
                cases.push(json!({
                    "kind": "op", "op": op, "args": args, "width": img.width(),
                    "height": img.height(), "pixels": img.as_raw(), "fill": fill,
                    "resample": rname,
                }));
                ours_out.push((
                    format!("{op}{args:?} {rname} on {:?}", img.dimensions()),
                    ours(&img, op, &args, r, fill),
                ));
            }
        }
    }
    let theirs = reference(&cases);
    assert_eq!(theirs.len(), ours_out.len());
    let mut bad = Vec::new();
    for ((name, mine), t) in ours_out.iter().zip(&theirs) {
        let want: Vec<u8> = serde_json::from_value(t["pixels"].clone()).unwrap();
        if mine.as_raw() != &want {
            let diffs = mine
                .as_raw()
                .iter()
                .zip(&want)
                .filter(|(a, b)| a != b)
                .count();
            let worst = mine
                .as_raw()
                .iter()
                .zip(&want)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap_or(0);
            bad.push(format!("{name}: {diffs} bytes differ (max {worst})"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} cases differ from PIL:\n{}",
        bad.len(),
        ours_out.len(),
        bad.join("\n")
    );
}

/// `(n, c, h, w, classes, smoothing, λ, cutmix, cy, cx)`.
type Setup = (
    usize,
    usize,
    usize,
    usize,
    usize,
    f64,
    f64,
    bool,
    usize,
    usize,
);

#[test]
fn mixup_and_cutmix_match_timm() {
    if !timm_available() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // (n, c, h, w, classes, smoothing, λ, cutmix, cy, cx): mixup; cutmix unclipped and
    // clipped at every edge; λ giving odd cuts; no smoothing.
    let setups: &[Setup] = &[
        (4, 3, 5, 6, 10, 0.1, 0.6180339887, false, 0, 0),
        (6, 2, 7, 5, 3, 0.1, 0.37, false, 0, 0),
        (4, 3, 8, 8, 10, 0.1, 0.75, true, 4, 4),
        (4, 3, 8, 8, 10, 0.1, 0.3, true, 0, 0),
        (4, 3, 8, 8, 10, 0.1, 0.3, true, 7, 7),
        (4, 1, 9, 7, 5, 0.1, 0.123456, true, 1, 6),
        (2, 3, 7, 5, 4, 0.0, 0.5, true, 6, 0),
        (8, 3, 6, 6, 100, 0.1, 0.9, true, 2, 3),
    ];
    let mut cases = Vec::new();
    let mut mine = Vec::new();
    for &(n, c, h, w, k, s, lam, cutmix, cy, cx) in setups {
        let images: Vec<f32> = (0..n * c * h * w)
            .map(|_| rng.random::<f32>() * 4.0 - 2.0)
            .collect();
        let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..k)).collect();
        cases.push(json!({
            "kind": "mixup", "shape": [n, c, h, w],
            "images": images.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            "labels": labels, "classes": k, "smoothing": s, "lam": lam, "cutmix": cutmix,
            "cy": cy, "cx": cx,
        }));
        let mix = if cutmix {
            let cut = cut_box(h, w, lam, cy, cx);
            Mix::CutMix {
                lam: box_lambda(cut, h, w),
                cut,
            }
        } else {
            Mix::Mixup { lam }
        };
        let mut x = images.clone();
        mix_images(&mix, &mut x, n, c, (h, w)).unwrap();
        let t = mixed_targets(&labels, k, s, mix.lambda()).unwrap();
        mine.push((mix, x, t));
    }
    let theirs = reference(&cases);
    for (i, ((mix, x, t), r)) in mine.iter().zip(&theirs).enumerate() {
        // Compared as f32: the values are f32 tensors, and serde_json's f64 parsing may miss
        // the last bit of an f64 (which cannot move an exact f32).
        let want_x: Vec<f32> = serde_json::from_value(r["images"].clone()).unwrap();
        let want_t: Vec<f32> = serde_json::from_value(r["targets"].clone()).unwrap();
        if let Mix::CutMix { cut, .. } = mix {
            let b: Vec<usize> = serde_json::from_value(r["box"].clone()).unwrap();
            assert_eq!(vec![cut.y0, cut.y1, cut.x0, cut.x1], b, "case {i}: box");
        } else {
            assert!(r["box"].is_null(), "case {i}");
        }
        assert_eq!(x, &want_x, "case {i}: mixed images");
        assert_eq!(t, &want_t, "case {i}: targets");
    }
}

#[test]
fn magnitude_to_argument_matches_timm() {
    if !timm_available() {
        return;
    }
    let mut cases = Vec::new();
    let mut mine = Vec::new();
    for op in RandOp::INCREASING {
        for m in [0.0, 0.37, 3.3, 7.5, 8.99, 9.0, 9.4861, 10.0] {
            for negate in [false, true] {
                cases.push(json!({
                    "kind": "level", "name": op.timm_name(), "magnitude": m, "negate": negate,
                }));
                mine.push((op, m, negate, level_to_arg_signed(op, m, negate)));
            }
        }
    }
    let theirs = reference(&cases);
    for ((op, m, negate, arg), t) in mine.iter().zip(&theirs) {
        let want: Vec<String> = serde_json::from_value(t["args"].clone()).unwrap();
        let got: Vec<f64> = match arg {
            OpArg::None => vec![],
            OpArg::Int(i) => vec![f64::from(*i)],
            OpArg::Real(v) => vec![*v],
        };
        // Python's repr is the shortest round-trip form; Rust's parse is exact.
        let want: Vec<f64> = want.iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(got, want, "{op:?} at m = {m}, negate {negate}");
        if let OpArg::Int(_) = arg {
            assert!(
                t["args"][0].as_str().is_some_and(|s| !s.contains('.')),
                "{op:?}: timm gives an int"
            );
        }
    }
}
