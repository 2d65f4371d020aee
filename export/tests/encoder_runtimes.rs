//! The exported encoder: tract and ONNX Runtime agree, both match an independent plain-Rust
//! ViT forward, and the written models pass `onnx.checker` when Python's `onnx` is present.
#![cfg(feature = "ort")]

use ndarray::{Array2, Array4, ArrayD, s};
use patchmix_export::onnx::{to_onnx_bytes, write_onnx};
use patchmix_export::runtime::{Embed, OrtEncoder, TractEncoder};
use patchmix_export::vit::{VitConfig, VitPreset, encoder_graph, init_weights};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;

fn random_images(b: usize, img: usize, seed: u64) -> Array4<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn((b, 3, img, img), |_| rng.random_range(-2.0..2.0f32))
}

/// Random weights with non-trivial LayerNorm affine and biases (init gives ones/zeros).
fn random_weights(cfg: &VitConfig, seed: u64) -> BTreeMap<String, ArrayD<f32>> {
    let mut w = init_weights(cfg, seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xabcdef);
    for (name, a) in w.iter_mut() {
        if name.ends_with(".bias")
            || name.starts_with("norm")
            || name.contains(".norm")
            || name == "cls_token"
        {
            a.mapv_inplace(|v| v + rng.random_range(-0.5..0.5f32));
        }
    }
    w
}

fn rel_err(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    let num = (a - b).mapv(|x| x * x).sum().sqrt();
    let den = b.mapv(|x| x * x).sum().sqrt().max(1e-12);
    num / den
}

// ---- an independent reference: a plain ndarray ViT forward written from the timm definition ----

fn ln(x: &Array2<f32>, w: &ArrayD<f32>, b: &ArrayD<f32>) -> Array2<f32> {
    let mut y = x.clone();
    for mut row in y.rows_mut() {
        let n = row.len() as f32;
        let mean = row.sum() / n;
        let var = row.mapv(|v| (v - mean) * (v - mean)).sum() / n;
        let inv = 1.0 / (var + 1e-6).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) * inv * w[[i]] + b[[i]];
        }
    }
    y
}

fn linear(x: &Array2<f32>, w: &ArrayD<f32>, b: &ArrayD<f32>) -> Array2<f32> {
    let w2 = w.view().into_dimensionality::<ndarray::Ix2>().unwrap();
    let mut y = x.dot(&w2.t());
    y += &b.view().into_dimensionality::<ndarray::Ix1>().unwrap();
    y
}

fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse; integrate the series instead (|x| small here).
    let mut sum = 0.0;
    let mut term = x;
    let mut n = 0.0;
    while term.abs() > 1e-17 && n < 200.0 {
        sum += term / (2.0 * n + 1.0);
        n += 1.0;
        term *= -x * x / n;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn reference_forward(
    cfg: &VitConfig,
    w: &BTreeMap<String, ArrayD<f32>>,
    x: &Array4<f32>,
) -> Array2<f32> {
    let (b, d, p, g) = (x.shape()[0], cfg.dim, cfg.patch, cfg.grid());
    let n = g * g + 1;
    let (heads, dh) = (cfg.heads, cfg.dim / cfg.heads);
    let pw = &w["patch_embed.proj.weight"];
    let mut out = Array2::<f32>::zeros((b, d));
    for bi in 0..b {
        let mut h = Array2::<f32>::zeros((n, d));
        for e in 0..d {
            h[[0, e]] = w["cls_token"][[0, 0, e]];
        }
        for r in 0..g {
            for c in 0..g {
                for e in 0..d {
                    let mut acc = w["patch_embed.proj.bias"][[e]];
                    for ch in 0..3 {
                        for i in 0..p {
                            for j in 0..p {
                                acc += pw[[e, ch, i, j]] * x[[bi, ch, r * p + i, c * p + j]];
                            }
                        }
                    }
                    h[[1 + r * g + c, e]] = acc;
                }
            }
        }
        for t in 0..n {
            for e in 0..d {
                h[[t, e]] += w["pos_embed"][[0, t, e]];
            }
        }
        for blk in 0..cfg.depth {
            let k = |s: &str| &w[&format!("blocks.{blk}.{s}")];
            let y = ln(&h, k("norm1.weight"), k("norm1.bias"));
            let qkv = linear(&y, k("attn.qkv.weight"), k("attn.qkv.bias"));
            let mut o = Array2::<f32>::zeros((n, d));
            for hd in 0..heads {
                let q = qkv.slice(s![.., hd * dh..(hd + 1) * dh]);
                let kk = qkv.slice(s![.., d + hd * dh..d + (hd + 1) * dh]);
                let v = qkv.slice(s![.., 2 * d + hd * dh..2 * d + (hd + 1) * dh]);
                let mut a = q.dot(&kk.t()) * (dh as f32).powf(-0.5);
                for mut row in a.rows_mut() {
                    let m = row.fold(f32::MIN, |acc, &v| acc.max(v));
                    row.mapv_inplace(|v| (v - m).exp());
                    let s = row.sum();
                    row.mapv_inplace(|v| v / s);
                }
                o.slice_mut(s![.., hd * dh..(hd + 1) * dh])
                    .assign(&a.dot(&v));
            }
            h = &h + &linear(&o, k("attn.proj.weight"), k("attn.proj.bias"));
            let y = ln(&h, k("norm2.weight"), k("norm2.bias"));
            let u = linear(&y, k("mlp.fc1.weight"), k("mlp.fc1.bias")).mapv(|v| {
                (0.5 * v as f64 * (1.0 + erf(v as f64 / std::f64::consts::SQRT_2))) as f32
            });
            h = &h + &linear(&u, k("mlp.fc2.weight"), k("mlp.fc2.bias"));
        }
        let y = ln(&h, &w["norm.weight"], &w["norm.bias"]);
        out.row_mut(bi).assign(&y.row(0));
    }
    out
}

#[test]
fn tract_matches_an_independent_reference_forward() {
    let cfg = VitConfig {
        img: 8,
        patch: 4,
        dim: 8,
        depth: 2,
        heads: 2,
    };
    let w = random_weights(&cfg, 3);
    let bytes = to_onnx_bytes(&encoder_graph(&cfg, &w, false).unwrap());
    let x = random_images(3, 8, 9);
    let got = TractEncoder::from_bytes(&bytes)
        .unwrap()
        .embed(x.view())
        .unwrap();
    let want = reference_forward(&cfg, &w, &x);
    let err = rel_err(&got, &want);
    assert!(
        err < 1e-5,
        "tract vs reference relative error {err}\n{got:?}\n{want:?}"
    );
}

#[test]
fn tract_and_ort_agree_on_presets_and_batch_sizes() {
    let configs = [
        VitConfig {
            img: 8,
            patch: 2,
            dim: 16,
            depth: 2,
            heads: 4,
        },
        VitPreset::Tiny.config(32, 4).unwrap(),
        VitConfig {
            img: 32,
            patch: 8,
            dim: 384,
            depth: 2,
            heads: 12,
        }, // vit-small width, shallow
    ];
    for (ci, cfg) in configs.iter().enumerate() {
        let w = random_weights(cfg, ci as u64);
        let bytes = to_onnx_bytes(&encoder_graph(cfg, &w, false).unwrap());
        let mut tract = TractEncoder::from_bytes(&bytes).unwrap();
        let mut ort = OrtEncoder::from_bytes(&bytes).unwrap();
        for b in [1usize, 2, 5] {
            let x = random_images(b, cfg.img, 100 + b as u64);
            let a = tract.embed(x.view()).unwrap();
            let o = ort.embed(x.view()).unwrap();
            assert_eq!(a.shape(), &[b, cfg.dim]);
            let err = rel_err(&a, &o);
            assert!(
                err < 1e-4,
                "config {cfg:?} batch {b}: tract vs ort relative error {err}"
            );
            // Rows are independent: the batch-1 result of row 0 matches.
            let one = tract.embed(x.slice(s![0..1, .., .., ..])).unwrap();
            assert!(rel_err(&one, &a.slice(s![0..1, ..]).to_owned()) < 1e-5);
        }
    }
}

#[test]
fn patch_tokens_output_matches_cls_output() {
    let cfg = VitConfig {
        img: 8,
        patch: 4,
        dim: 8,
        depth: 1,
        heads: 2,
    };
    let w = random_weights(&cfg, 5);
    let bytes_cls = to_onnx_bytes(&encoder_graph(&cfg, &w, false).unwrap());
    let bytes_tok = to_onnx_bytes(&encoder_graph(&cfg, &w, true).unwrap());
    let x = random_images(2, 8, 1);
    let a = TractEncoder::from_bytes(&bytes_cls)
        .unwrap()
        .embed(x.view())
        .unwrap();
    let b = TractEncoder::from_bytes(&bytes_tok)
        .unwrap()
        .embed(x.view())
        .unwrap();
    assert!(rel_err(&a, &b) < 1e-6);
}

#[test]
fn bad_batches_are_rejected_with_the_expected_shape() {
    let cfg = VitConfig {
        img: 8,
        patch: 4,
        dim: 8,
        depth: 1,
        heads: 2,
    };
    let bytes = to_onnx_bytes(&encoder_graph(&cfg, &init_weights(&cfg, 0), false).unwrap());
    let mut t = TractEncoder::from_bytes(&bytes).unwrap();
    let err = t
        .embed(Array4::zeros((2, 3, 16, 16)).view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[batch, 3, 8, 8]"), "{err}");
    assert!(TractEncoder::from_bytes(b"not an onnx model").is_err());
}

#[test]
fn written_models_pass_the_onnx_full_checker() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import onnx"])
        .output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        eprintln!("SKIPPED: python3 with the `onnx` package is not available (pip install onnx)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = VitConfig {
        img: 16,
        patch: 4,
        dim: 16,
        depth: 2,
        heads: 2,
    };
    for tokens in [false, true] {
        let path = dir.path().join(format!("enc-{tokens}.onnx"));
        write_onnx(
            &encoder_graph(&cfg, &init_weights(&cfg, 1), tokens).unwrap(),
            &path,
        )
        .unwrap();
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print(m.opset_import[0].version, m.ir_version)",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "onnx checker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "17 8");
    }
}
