//! The inference commands end to end through the `patchmix` binary: `export` (random init and
//! weights files), `embed` with tract and ONNX Runtime, `knn` from a model, from feature files
//! and from raw pixels on a slice of the real MNIST in `data/mnist10k`, `bench embed`, and
//! bad input giving a one-line error and a failing exit status.
//!
//! The ONNX Runtime tests need the library (`ORT_DYLIB_PATH`, or the provisioning of
//! `patchmix_export::runtime::ort_env`).

use ndarray::ArrayD;
use patchmix_export::knn::{FeatureIndex, KnnReport};
use patchmix_export::vit::{VitConfig, init_weights};
use patchmix_export::weights::{StateDict, save_safetensors};
use std::path::{Path, PathBuf};

#[path = "common/cli.rs"]
mod cli;
use cli::{error_line, ok, s};

fn mnist() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k");
    assert!(
        p.join("train-images-idx3-ubyte.gz").is_file(),
        "{} is missing the MNIST files (see data/mnist10k/README.md)",
        p.display()
    );
    p
}

/// A small random-init vit-tiny (2 blocks) at `img`/`patch`, written to `dir/name`.
fn export_random(dir: &Path, name: &str, img: usize, patch: usize, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let (img, patch) = (img.to_string(), patch.to_string());
    let mut args = vec![
        "export",
        "--init",
        "random",
        "--seed",
        "3",
        "--preset",
        "vit-tiny",
        "--img",
        &img,
        "--patch",
        &patch,
        "--depth",
        "2",
        "--out",
        s(&out),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    out
}

fn rel_diff(a: &FeatureIndex, b: &FeatureIndex) -> f64 {
    let (fa, fb) = (a.features(), b.features());
    assert_eq!(fa.shape(), fb.shape());
    let num: f64 = fa
        .iter()
        .zip(fb.iter())
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum();
    let den: f64 = fb.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn export_then_embed_with_tract_and_ort_gives_the_same_features() {
    let dir = tempfile::tempdir().unwrap();
    let model = export_random(dir.path(), "enc.onnx", 16, 4, &[]);
    // 40 images in batches of 16: the last batch has 8 (dynamic batch); size 20 → resize to 16.
    let data = "synthetic:40,size=20,classes=4,seed=1";
    let mut index = Vec::new();
    for rt in ["tract", "ort"] {
        let out = dir.path().join(format!("{rt}.safetensors"));
        ok(&[
            "embed",
            "--model",
            s(&model),
            "--data",
            data,
            "--runtime",
            rt,
            "--batch",
            "16",
            "--out",
            s(&out),
        ]);
        index.push(FeatureIndex::load(&out).unwrap());
    }
    let (t, o) = (&index[0], &index[1]);
    assert_eq!((t.len(), t.dim(), t.num_classes()), (40, 192, 4));
    assert_eq!(t.labels(), o.labels());
    let d = rel_diff(o, t);
    assert!(d < 1e-4, "tract and ort differ by {d:e}");
    for row in t.features().rows() {
        let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (n - 1.0).abs() < 1e-5,
            "rows are L2-normalised, got norm {n}"
        );
    }

    // The same encoder with the extra `tokens` output embeds identically.
    let with_tokens = export_random(dir.path(), "enc_tokens.onnx", 16, 4, &["--tokens"]);
    let out = dir.path().join("tokens.safetensors");
    ok(&[
        "embed",
        "--model",
        s(&with_tokens),
        "--data",
        data,
        "--batch",
        "16",
        "--out",
        s(&out),
    ]);
    assert_eq!(FeatureIndex::load(&out).unwrap().features(), t.features());

    // --limit takes N images spread over the dataset.
    let out = dir.path().join("limit.safetensors");
    ok(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        data,
        "--limit",
        "10",
        "--out",
        s(&out),
    ]);
    let limited = FeatureIndex::load(&out).unwrap();
    assert_eq!(limited.len(), 10);
    // Image 4 of 40 is the second of 10; batches of 10 and 16 round differently in tract.
    let diff = (&limited.features().row(1) - &t.features().row(4)).mapv(f32::abs);
    assert!(diff.iter().all(|&d| d < 1e-5), "{diff}");
}

/// A training checkpoint: both encoders under `module.` prefixes, plus a head and a predictor.
fn checkpoint(cfg: &VitConfig, base_seed: u64, momentum_seed: u64) -> StateDict {
    let mut sd = StateDict::new();
    for (prefix, seed) in [
        ("module.base_encoder.", base_seed),
        ("module.momentum_encoder.", momentum_seed),
    ] {
        for (k, v) in init_weights(cfg, seed) {
            sd.insert(format!("{prefix}{k}"), v);
        }
        sd.insert(
            format!("{prefix}head.0.weight"),
            ArrayD::zeros(vec![4, cfg.dim]),
        );
    }
    sd.insert(
        "module.predictor.0.weight".into(),
        ArrayD::zeros(vec![4, 4]),
    );
    sd
}

#[test]
fn export_from_a_checkpoint_selects_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = VitConfig {
        img: 8,
        patch: 4,
        dim: 16,
        depth: 1,
        heads: 2,
    };
    let ckpt = dir.path().join("ckpt.safetensors");
    save_safetensors(&ckpt, &checkpoint(&cfg, 5, 6), None).unwrap();
    let size = [
        "--img", "8", "--patch", "4", "--dim", "16", "--depth", "1", "--heads", "2",
    ];
    let export = |out: &Path, extra: &[&str]| {
        let mut args = vec!["export", "--out", s(out)];
        args.extend_from_slice(&size);
        args.extend_from_slice(extra);
        ok(&args);
        std::fs::read(out).unwrap()
    };
    let base = export(&dir.path().join("b.onnx"), &["--weights", s(&ckpt)]);
    let momentum = export(
        &dir.path().join("m.onnx"),
        &["--weights", s(&ckpt), "--source", "momentum"],
    );
    let seed5 = export(
        &dir.path().join("5.onnx"),
        &["--init", "random", "--seed", "5"],
    );
    let seed6 = export(
        &dir.path().join("6.onnx"),
        &["--init", "random", "--seed", "6"],
    );
    assert_eq!(base, seed5, "--source base exports base_encoder.*");
    assert_eq!(
        momentum, seed6,
        "--source momentum exports momentum_encoder.*"
    );
    assert_ne!(base, momentum);
}

fn knn_json(args: &[&str]) -> KnnReport {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a KnnReport ({e}): {text}"))
}

#[test]
fn knn_on_an_mnist_slice_from_pixels_a_model_and_feature_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist();
    let (train, test) = (format!("{}:train", s(&data)), format!("{}:test", s(&data)));

    // Raw pixels: the baseline of data/mnist10k/README.md (94.55% top-1 at k=20 on the full
    // 8k/2k split); on a 1000/500 slice it is lower but far above chance.
    let pixels = knn_json(&[
        "knn",
        "--raw-pixels",
        "--train",
        &train,
        "--test",
        &test,
        "--limit",
        "1000",
        "--k",
        "10,20",
        "--json",
    ]);
    assert_eq!(
        (pixels.num_train, pixels.num_test, pixels.dim),
        (1000, 1000, 784 * 3)
    );
    assert_eq!(pixels.num_classes, 10);
    let top1 = pixels.row(20).unwrap().top1;
    assert!(top1 > 80.0, "raw-pixel kNN top-1 {top1}");

    // A random-init encoder, run by `knn` itself ...
    let model = export_random(dir.path(), "enc.onnx", 28, 4, &[]);
    let limit = "300";
    let direct = knn_json(&[
        "knn",
        "--model",
        s(&model),
        "--train",
        &train,
        "--test",
        &test,
        "--limit",
        limit,
        "--batch",
        "100",
        "--json",
    ]);
    assert_eq!(
        direct.rows.iter().map(|r| r.k).collect::<Vec<_>>(),
        vec![10, 20, 100, 200]
    );
    assert_eq!(
        (direct.num_train, direct.num_test, direct.dim),
        (300, 300, 192)
    );
    // A 2-block random encoder on 300 images: weak but above the 10% of chance.
    assert!(
        direct.rows[0].top1 > 15.0,
        "random-init encoder top-1 {}",
        direct.rows[0].top1
    );

    // ... and from feature files written by `embed`: the same report.
    let (ft, fq) = (dir.path().join("train.st"), dir.path().join("test.st"));
    for (spec, out) in [(&train, &ft), (&test, &fq)] {
        ok(&[
            "embed",
            "--model",
            s(&model),
            "--data",
            spec,
            "--limit",
            limit,
            "--batch",
            "100",
            "--out",
            s(out),
        ]);
    }
    let files = knn_json(&[
        "knn",
        "--train-features",
        s(&ft),
        "--test-features",
        s(&fq),
        "--json",
    ]);
    assert_eq!(files, direct);

    // The table form.
    let table = ok(&[
        "knn",
        "--train-features",
        s(&ft),
        "--test-features",
        s(&fq),
        "--k",
        "20",
    ]);
    assert!(
        table.contains("top-1") && table.contains("    20 |"),
        "{table}"
    );
}

#[test]
fn raw_pixel_knn_reproduces_the_mnist10k_readme_figure() {
    let data = mnist();
    let (train, test) = (format!("{}:train", s(&data)), format!("{}:test", s(&data)));
    let r = knn_json(&[
        "knn",
        "--raw-pixels",
        "--train",
        &train,
        "--test",
        &test,
        "--k",
        "20",
        "--json",
    ]);
    assert_eq!((r.num_train, r.num_test), (8000, 2000));
    // data/mnist10k/README.md: 94.55% top-1 (k=20, T=0.07, cosine on raw pixels).
    assert!(
        (r.rows[0].top1 - 94.55).abs() < 1e-9,
        "top-1 {}",
        r.rows[0].top1
    );
}

#[test]
fn bench_embed_reports_both_runtimes_and_knn() {
    let out = ok(&[
        "bench",
        "embed",
        "--img",
        "8",
        "--patch",
        "4",
        "--depth",
        "1",
        "--batch",
        "1,3",
        "--iters",
        "2",
        "--warmup",
        "1",
        "--knn",
        "300,40,16",
        "--knn-iters",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{out}");
    for r in rows {
        assert!(r["images_per_s"].as_f64().unwrap() > 0.0);
    }
    for d in v["tract_vs_ort_rel_diff"].as_array().unwrap() {
        assert!(d[1].as_f64().unwrap() < 1e-4, "{out}");
    }
    assert_eq!(v["knn"]["train"], 300);
    let table = ok(&[
        "bench",
        "embed",
        "--runtime",
        "tract",
        "--img",
        "8",
        "--patch",
        "4",
        "--depth",
        "1",
        "--batch",
        "2",
        "--iters",
        "1",
        "--knn",
        "none",
    ]);
    assert!(
        table.contains("tract img/s") && !table.contains("ort img/s"),
        "{table}"
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = export_random(d, "enc.onnx", 8, 4, &[]);
    let missing = d.join("missing.onnx");
    let out = d.join("f.safetensors");
    let data = "synthetic:4,size=8";

    // Missing or unreadable model.
    let e = error_line(&[
        "embed",
        "--model",
        s(&missing),
        "--data",
        data,
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("--model") && e.contains("missing.onnx") && e.contains("patchmix export"),
        "{e}"
    );
    let e = error_line(&[
        "knn",
        "--model",
        s(&missing),
        "--train",
        data,
        "--test",
        data,
    ]);
    assert!(e.contains("missing.onnx"), "{e}");
    let garbage = d.join("garbage.onnx");
    std::fs::write(&garbage, b"not a model").unwrap();
    for rt in ["tract", "ort"] {
        let e = error_line(&[
            "embed",
            "--model",
            s(&garbage),
            "--runtime",
            rt,
            "--data",
            data,
            "--out",
            s(&out),
        ]);
        assert!(e.contains("garbage.onnx") && e.contains(rt), "{e}");
    }

    // Unknown preset, sizes that do not fit.
    let e = error_line(&[
        "export",
        "--init",
        "random",
        "--preset",
        "vit-huge",
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(
        e.contains("--preset") && e.contains("vit-huge") && e.contains("vit-tiny"),
        "{e}"
    );
    let e = error_line(&[
        "export",
        "--init",
        "random",
        "--img",
        "32",
        "--patch",
        "5",
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(e.contains("--patch 5 does not divide --img 32"), "{e}");
    let e = error_line(&[
        "export",
        "--init",
        "random",
        "--heads",
        "5",
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(e.contains("--heads 5"), "{e}");

    // Weights of another architecture: every difference on one line, with what the file is.
    let cfg = VitConfig {
        img: 32,
        patch: 4,
        dim: 192,
        depth: 12,
        heads: 3,
    };
    let w = d.join("w.safetensors");
    save_safetensors(&w, &init_weights(&cfg, 0), None).unwrap();
    let e = error_line(&[
        "export",
        "--weights",
        s(&w),
        "--img",
        "32",
        "--patch",
        "2",
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(
        e.contains("w.safetensors") && e.contains("does not match"),
        "{e}"
    );
    assert!(
        e.contains("pos_embed is [1, 65, 192], expected [1, 257, 192]"),
        "{e}"
    );
    assert!(e.contains("--patch 4 --img 32"), "{e}");
    let e = error_line(&[
        "export",
        "--weights",
        s(&w),
        "--img",
        "32",
        "--patch",
        "4",
        "--depth",
        "6",
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(
        e.contains("72 unexpected") && e.contains("blocks.10."),
        "{e}"
    );
    let e = error_line(&[
        "export",
        "--weights",
        s(&missing),
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(e.contains("--weights") && e.contains("missing.onnx"), "{e}");
    let e = error_line(&[
        "export",
        "--weights",
        s(&model),
        "--img",
        "8",
        "--patch",
        "4",
        "--out",
        s(&d.join("x.onnx")),
    ]);
    assert!(e.contains("enc.onnx") && e.contains("safetensors"), "{e}");

    // Unreadable datasets.
    let nowhere = d.join("nowhere");
    let e = error_line(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        s(&nowhere),
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("--data") && e.contains("nowhere") && e.contains("no dataset found"),
        "{e}"
    );
    let e = error_line(&[
        "knn",
        "--raw-pixels",
        "--train",
        s(&nowhere),
        "--test",
        data,
    ]);
    assert!(e.contains("--train") && e.contains("nowhere"), "{e}");
    let e = error_line(&[
        "knn",
        "--model",
        s(&model),
        "--train",
        data,
        "--test",
        "data:tset",
    ]);
    assert!(e.contains("--test") && e.contains("tset"), "{e}");
    let e = error_line(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        "data:tset",
        "--out",
        s(&out),
    ]);
    assert!(e.contains("--data") && e.contains("tset"), "{e}");
    let corrupt = d.join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(corrupt.join("train-images-idx3-ubyte"), [0u8; 16]).unwrap();
    std::fs::write(corrupt.join("train-labels-idx1-ubyte"), [0u8; 8]).unwrap();
    let e = error_line(&[
        "knn",
        "--model",
        s(&model),
        "--train",
        s(&corrupt),
        "--test",
        data,
    ]);
    assert!(e.contains("train-") && e.contains("corrupt"), "{e}");

    // Unwritable outputs: checked before any work.
    let e = error_line(&[
        "export",
        "--init",
        "random",
        "--out",
        s(&d.join("no/such/dir/x.onnx")),
    ]);
    assert!(e.contains("--out") && e.contains("does not exist"), "{e}");
    let e = error_line(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        data,
        "--out",
        s(&d.join("no/f.st")),
    ]);
    assert!(e.contains("--out") && e.contains("does not exist"), "{e}");
    let e = error_line(&["embed", "--model", s(&model), "--data", data, "--out", s(d)]);
    assert!(e.contains("is a directory"), "{e}");

    // Feature files that are not feature files, or do not fit together.
    let e = error_line(&[
        "knn",
        "--train-features",
        s(&model),
        "--test-features",
        s(&model),
    ]);
    assert!(
        e.contains("--train-features") && e.contains("enc.onnx"),
        "{e}"
    );
    let (a, b) = (d.join("a.st"), d.join("b.st"));
    ok(&[
        "embed",
        "--model",
        s(&model),
        "--data",
        data,
        "--out",
        s(&a),
    ]);
    ok(&[
        "knn",
        "--raw-pixels",
        "--train",
        data,
        "--test",
        data,
        "--k",
        "1",
    ]);
    let other = export_random(d, "wide.onnx", 8, 4, &["--dim", "24", "--heads", "2"]);
    ok(&[
        "embed",
        "--model",
        s(&other),
        "--data",
        data,
        "--out",
        s(&b),
    ]);
    let e = error_line(&["knn", "--train-features", s(&a), "--test-features", s(&b)]);
    assert!(e.contains("D = 192") && e.contains("D = 24"), "{e}");
    let e = error_line(&[
        "knn",
        "--train-features",
        s(&a),
        "--test-features",
        s(&a),
        "--k",
        "0",
    ]);
    assert!(e.contains("--k"), "{e}");
}

/// An image folder with `train/` and `test/`, two classes of `side`×`side` RGB PNGs told apart
/// by colour; returns the folder.
fn rgb_folder(root: &Path, side: u32) -> PathBuf {
    for (split, n) in [("train", 6), ("test", 3)] {
        for (c, class) in ["blue", "red"].iter().enumerate() {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(side, side, |x, y| {
                    let v = ((x + y + i) % 16) as u8;
                    if c == 0 {
                        image::Rgb([v, v, 200 + v])
                    } else {
                        image::Rgb([200 + v, v, v])
                    }
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    root.to_path_buf()
}

#[test]
fn knn_raw_pixels_on_an_image_folder_takes_the_size_from_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    let data = rgb_folder(dir.path(), 32);
    let (train, test) = (format!("{}:train", s(&data)), format!("{}:test", s(&data)));
    let args = [
        "knn",
        "--raw-pixels",
        "--train",
        &train,
        "--test",
        &test,
        "--k",
        "3",
        "--json",
    ];
    let r = knn_json(&args);
    assert_eq!((r.num_train, r.num_test, r.dim), (12, 6, 3 * 32 * 32));
    assert_eq!(r.rows[0].top1, 100.0, "{r:?}");

    // One image of another size: the error names two files that differ.
    image::RgbImage::from_pixel(28, 30, image::Rgb([0, 0, 255]))
        .save(data.join("train/red/4.png"))
        .unwrap();
    let e = error_line(&args);
    assert!(
        e.contains("--train") && e.contains("the images differ in size"),
        "{e}"
    );
    assert!(
        e.contains("blue/0.png is 32×32") && e.contains("red/4.png is 28×30"),
        "{e}"
    );
    assert!(e.contains("give --img"), "{e}");
    // --img settles it.
    let r = knn_json(&[&args[..], &["--img", "32"]].concat());
    assert_eq!(r.dim, 3 * 32 * 32);
}
