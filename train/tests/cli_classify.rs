//! `patchmix classify` end to end: top-1/top-5 and the confusion matrix equal a hand
//! computation from the model's logits (run here through the ONNX Runtime API, not the
//! command), with tract and with ONNX Runtime; the text tables and the `--plot` PNG; top-5 with
//! fewer than 5 classes; and bad input (a model whose output is not `[N, classes]`, an encoder
//! instead of a classifier, a class count that disagrees with the data, an empty split, missing
//! files) as one-line errors naming the file or flag.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use patchmix_export::classifier::{ClassifierHead, export_classifier};
use patchmix_export::data::{Dataset, DatasetRef, Preprocess};
use patchmix_export::graph::{DType, Dim, Graph, Shape};
use patchmix_export::runtime::{Embed, OrtEncoder};
use patchmix_export::vit::{VitConfig, init_weights, normal};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::{error_line, ok, s};

fn mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k")
}

fn cfg(img: usize) -> VitConfig {
    VitConfig {
        img,
        patch: 7,
        dim: 48,
        depth: 1,
        heads: 3,
    }
}

/// A random classifier whose logits are of order 1 (so that predictions spread over classes).
fn classifier(dir: &Path, img: usize, classes: usize, seed: u64) -> PathBuf {
    let cfg = cfg(img);
    let mut enc = init_weights(&cfg, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (name, a) in enc.iter_mut() {
        if name.contains("norm") && name.ends_with(".bias") {
            a.mapv_inplace(|v| v + rng.random_range(-0.5..0.5f32));
        }
    }
    let w = Array2::from_shape_simple_fn((classes, cfg.dim), || 0.3 * normal(&mut rng) as f32);
    let b = Array1::from_shape_simple_fn(classes, || rng.random_range(-0.5..0.5f32));
    let head = ClassifierHead::new(w, b).unwrap();
    let names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();
    export_classifier(&enc, &head, &cfg, &names, dir)
        .unwrap()
        .onnx
}

/// What the command must report, computed here: the logits through ONNX Runtime's API on the
/// images `classify --limit n` selects (⌊i·len/n⌋), then ranks by sorting.
struct Expected {
    confusion: Vec<Vec<u64>>,
    top1: f64,
    top5: f64,
}

fn expected(model: &Path, spec: &str, img: u32, n: usize) -> Expected {
    let r: DatasetRef = spec.parse().unwrap();
    let ds = Dataset::open(&r).unwrap();
    let idx: Vec<usize> = (0..n).map(|i| i * ds.len() / n).collect();
    let x = Preprocess::new(img, img).batch(&ds, &idx).unwrap();
    let mut ort = OrtEncoder::from_bytes(&std::fs::read(model).unwrap()).unwrap();
    let logits = ort.embed(x.view()).unwrap();
    let c = logits.ncols();
    let mut confusion = vec![vec![0u64; c]; c];
    let (mut h1, mut h5) = (0usize, 0usize);
    for (row, &i) in logits.outer_iter().zip(&idx) {
        let y = ds.label(i) as usize;
        // Classes in decreasing logit order, ties to the lower index (a stable sort).
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap());
        confusion[y][order[0]] += 1;
        let pos = order.iter().position(|&k| k == y).unwrap();
        h1 += usize::from(pos == 0);
        h5 += usize::from(pos < 5);
    }
    Expected {
        confusion,
        top1: 100.0 * h1 as f64 / n as f64,
        top5: 100.0 * h5 as f64 / n as f64,
    }
}

fn confusion_of(j: &Value) -> Vec<Vec<u64>> {
    serde_json::from_value(j["confusion"].clone()).unwrap()
}

#[test]
fn accuracies_and_confusion_equal_a_hand_computation_from_the_logits() {
    let dir = tempfile::tempdir().unwrap();
    let model = classifier(dir.path(), 28, 10, 5);
    let data = format!("{}:test", mnist().display());
    let want = expected(&model, &data, 28, 400);
    // Not a degenerate case: several classes are predicted and top-5 differs from top-1.
    let predicted = (0..10)
        .filter(|&p| want.confusion.iter().any(|r| r[p] > 0))
        .count();
    assert!(predicted >= 3, "{:?}", want.confusion);
    assert!(want.top5 > want.top1);

    for runtime in ["ort", "tract"] {
        let out = ok(&[
            "classify",
            "--model",
            s(&model),
            "--data",
            &data,
            "--limit",
            "400",
            "--runtime",
            runtime,
            "--json",
            "--batch",
            "64",
        ]);
        let j: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["count"], 400, "{runtime}");
        assert_eq!(j["classes"], 10);
        assert_eq!(j["top5_k"], 5);
        assert_eq!(j["class_names"][7], "7");
        assert_eq!(confusion_of(&j), want.confusion, "{runtime}");
        assert!(
            (j["top1"].as_f64().unwrap() - want.top1).abs() < 1e-9,
            "{runtime}"
        );
        assert!(
            (j["top5"].as_f64().unwrap() - want.top5).abs() < 1e-9,
            "{runtime}"
        );
        let total: u64 = confusion_of(&j).iter().flatten().sum();
        assert_eq!(total, 400);
    }
}

#[test]
fn text_report_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let model = classifier(dir.path(), 28, 10, 6);
    let data = format!("{}:test", mnist().display());
    let png = dir.path().join("confusion.png");
    let out = ok(&[
        "classify",
        "--model",
        s(&model),
        "--data",
        &data,
        "--limit",
        "100",
        "--plot",
        s(&png),
    ]);
    let want = expected(&model, &data, 28, 100);
    assert!(
        out.contains(&format!("top-1 {:.2}%, top-5 {:.2}%", want.top1, want.top5)),
        "{out}"
    );
    // One table row per true class, its counts in order, then the total.
    for (t, row) in want.confusion.iter().enumerate() {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{t} |")))
            .unwrap_or_else(|| panic!("no row for class {t}: {out}"));
        let cells: Vec<u64> = line
            .split('|')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(&cells, row, "{line}");
    }
    let img = image::open(&png).unwrap();
    assert!(img.width() >= 480 && img.height() == img.width());
}

#[test]
fn top5_with_fewer_than_five_classes_is_top_k_of_all_classes() {
    let dir = tempfile::tempdir().unwrap();
    let model = classifier(dir.path(), 28, 3, 8);
    let data = "synthetic:90,size=28,classes=3,seed=4:test";
    let want = expected(&model, data, 28, 90);
    let j: Value = serde_json::from_str(&ok(&[
        "classify",
        "--model",
        s(&model),
        "--data",
        data,
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["top5_k"], 3);
    assert_eq!(j["top5"], 100.0);
    assert_eq!(confusion_of(&j), want.confusion);
    assert!((j["top1"].as_f64().unwrap() - want.top1).abs() < 1e-9);
    let text = ok(&["classify", "--model", s(&model), "--data", data]);
    assert!(
        text.contains("top-5 100.00% (top-3: only 3 classes"),
        "{text}"
    );
}

/// A model `images [N, 3, 28, 28] → maps [N, 3, 784]`: not a classifier.
fn rank3_model(path: &Path) {
    let mut g = Graph::new("not_a_classifier");
    let x = g.input(
        "images",
        DType::F32,
        Shape(vec![Dim::BATCH, 3.into(), 28.into(), 28.into()]),
    );
    let y = g.reshape(x, &[-1, 3, 784]).unwrap();
    g.output(y, "maps");
    patchmix_export::onnx::write_onnx(&g, path).unwrap();
}

/// An MNIST folder whose test split has no images.
fn empty_mnist(dir: &Path) -> PathBuf {
    let d = dir.join("empty_mnist");
    std::fs::create_dir_all(&d).unwrap();
    let images = [0u8, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28];
    let labels = [0u8, 0, 8, 1, 0, 0, 0, 0];
    std::fs::write(d.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    d
}

#[test]
fn bad_input_is_a_one_line_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = classifier(dir.path(), 28, 10, 9);
    let data = format!("{}:test", mnist().display());

    let rank3 = dir.path().join("rank3.onnx");
    rank3_model(&rank3);
    let e = error_line(&["classify", "--model", s(&rank3), "--data", &data]);
    assert!(
        e.contains("rank3.onnx")
            && e.contains("output `maps` is [?, 3, 784], expected logits [batch, classes]"),
        "{e}"
    );

    // An encoder (features [batch, 48]) is taken for 48 classes, which MNIST does not have.
    let encoder = dir.path().join("encoder.onnx");
    ok(&[
        "export",
        "--init",
        "random",
        "--preset",
        "vit-tiny",
        "--img",
        "28",
        "--patch",
        "7",
        "--dim",
        "48",
        "--depth",
        "1",
        "--out",
        s(&encoder),
    ]);
    let e = error_line(&["classify", "--model", s(&encoder), "--data", &data]);
    assert!(
        e.contains("encoder.onnx has 48 classes (output `features` is [batch, 48]) but --data")
            && e.contains("labels 10 classes"),
        "{e}"
    );

    let e = error_line(&[
        "classify",
        "--model",
        s(&model),
        "--data",
        "synthetic:20,size=28,classes=4",
    ]);
    assert!(
        e.contains("has 10 classes") && e.contains("labels 4 classes"),
        "{e}"
    );

    let empty = empty_mnist(dir.path());
    let spec = format!("{}:test", empty.display());
    let e = error_line(&["classify", "--model", s(&model), "--data", &spec]);
    assert!(e.contains("--data") && e.contains("empty_mnist"), "{e}");

    let missing = dir.path().join("nope.onnx");
    let e = error_line(&["classify", "--model", s(&missing), "--data", &data]);
    assert!(e.contains("--model") && e.contains("nope.onnx"), "{e}");

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07not a model at all").unwrap();
    let e = error_line(&["classify", "--model", s(&garbage), "--data", &data]);
    assert!(e.contains("garbage.onnx"), "{e}");

    let e = error_line(&[
        "classify",
        "--model",
        s(&model),
        "--data",
        &format!("{}/nothing-here:test", dir.path().display()),
    ]);
    assert!(e.contains("--data") && e.contains("nothing-here"), "{e}");

    let e = error_line(&[
        "classify",
        "--model",
        s(&model),
        "--data",
        &data,
        "--plot",
        &format!("{}/no/dir/c.png", dir.path().display()),
    ]);
    assert!(e.contains("--plot"), "{e}");
}

/// `patchmix export` flags of a small random encoder (the same one at every call).
const ENCODER: [&str; 15] = [
    "export", "--init", "random", "--seed", "3", "--preset", "vit-tiny", "--img", "28", "--patch",
    "7", "--dim", "48", "--depth", "1",
];

#[test]
fn a_linear_probe_exported_as_a_classifier_scores_what_the_probe_scored() {
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("enc.onnx");
    let mut args = ENCODER.to_vec();
    args.extend(["--out", s(&enc)]);
    ok(&args);
    let head = dir.path().join("head.safetensors");
    let (train, test) = (
        format!("{}:train", mnist().display()),
        format!("{}:test", mnist().display()),
    );
    let probe: Value = serde_json::from_str(&ok(&[
        "linear",
        "--model",
        s(&enc),
        "--train",
        &train,
        "--test",
        &test,
        "--limit",
        "600",
        "--epochs",
        "8",
        "--lr",
        "0.5",
        "--json",
        "--save-head",
        s(&head),
    ]))
    .unwrap();
    let (top1, top5) = (
        probe["last"]["test_top1"].as_f64().unwrap(),
        probe["last"]["test_top5"].as_f64().unwrap(),
    );
    assert!(top1 > 30.0, "the probe should be well above chance: {top1}");

    let out_dir = dir.path().join("clf");
    let mut args = ENCODER.to_vec();
    args.extend(["--head", s(&head), "--out", s(&out_dir)]);
    ok(&args);
    let j: Value = serde_json::from_str(&ok(&[
        "classify",
        "--model",
        s(&out_dir.join("classifier.onnx")),
        "--data",
        &test,
        "--limit",
        "600",
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["count"], 600);
    assert_eq!(
        j["top1"].as_f64().unwrap(),
        top1,
        "classify vs linear top-1"
    );
    assert_eq!(
        j["top5"].as_f64().unwrap(),
        top5,
        "classify vs linear top-5"
    );

    // A head of another width, and a file without a head, are errors naming the file.
    let mut args = ENCODER.to_vec();
    assert_eq!(args[11], "--dim");
    args[12] = "96";
    args.extend(["--head", s(&head), "--out", s(&out_dir)]);
    let e = error_line(&args);
    assert!(
        e.contains("head.safetensors: head.weight is [10, 48] but the encoder width D is 96"),
        "{e}"
    );
    let no_head = dir.path().join("no_head.safetensors");
    patchmix_export::weights::save_safetensors(
        &no_head,
        &patchmix_export::weights::StateDict::from([(
            "norm.weight".to_string(),
            ndarray::ArrayD::zeros(vec![48]),
        )]),
        None,
    )
    .unwrap();
    let mut args = ENCODER.to_vec();
    args.extend(["--head", s(&no_head), "--out", s(&out_dir)]);
    let e = error_line(&args);
    assert!(
        e.contains("no_head.safetensors: `head.weight` is missing"),
        "{e}"
    );
}
