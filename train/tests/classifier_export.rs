//! The exported classifier (`classifier.onnx` + `classifier.safetensors`) against timm itself:
//! the safetensors file loads into timm's `VisionTransformer(num_classes=…,
//! global_pool='token')` with `strict=True` (`scripts/timm_classifier_reference.py`), and its
//! logits on real MNIST test images equal those of `classifier.onnx` run by tract and by ONNX
//! Runtime to ≤ 1e-4; tract and ONNX Runtime agree with each other.
//!
//! The timm comparison needs a `python3` with `timm` (so torch and safetensors); without it
//! that test prints `SKIPPED: …` and passes. The ONNX Runtime runs need the library
//! (`ORT_DYLIB_PATH`, or the provisioning of `patchmix_export::runtime::ort_env`).

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array1, Array2, Array4, ArrayD, Ix2};
use patchmix_export::classifier::{
    CLASSIFIER_SAFETENSORS, ClassifierHead, ClassifierModel, export_classifier,
};
use patchmix_export::data::{Dataset, DatasetRef, Preprocess};
use patchmix_export::runtime::{Embed, OrtEncoder, TractEncoder};
use patchmix_export::vit::{VitConfig, init_weights, normal};
use patchmix_export::weights::{StateDict, load_safetensors, save_safetensors};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mnist_test() -> Dataset {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k");
    let r: DatasetRef = format!("{}:test", p.display()).parse().unwrap();
    Dataset::open(&r).expect("data/mnist10k (see data/mnist10k/README.md)")
}

/// 48 MNIST test images spread over the split, preprocessed as `patchmix classify` does.
fn images(img: u32) -> (Array4<f32>, Vec<u32>) {
    let ds = mnist_test();
    let idx: Vec<usize> = (0..48).map(|i| i * ds.len() / 48).collect();
    let batch = Preprocess::new(img, img).batch(&ds, &idx).unwrap();
    (batch, idx.iter().map(|&i| ds.label(i)).collect())
}

/// Encoder weights with non-trivial LayerNorm affines and biases (the init gives ones/zeros),
/// and a head whose logits are of order 1, so that a 1e-4 tolerance is a real check.
fn weights(cfg: &VitConfig, classes: usize, seed: u64) -> (StateDict, ClassifierHead) {
    let mut w = init_weights(cfg, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for (name, a) in w.iter_mut() {
        if name.ends_with(".bias") || name.contains("norm") || name == "cls_token" {
            a.mapv_inplace(|v| v + rng.random_range(-0.5..0.5f32));
        }
    }
    let weight = Array2::from_shape_simple_fn((classes, cfg.dim), || 0.2 * normal(&mut rng) as f32);
    let bias = Array1::from_shape_simple_fn(classes, || rng.random_range(-1.0..1.0f32));
    (w, ClassifierHead::new(weight, bias).unwrap())
}

fn cfg() -> VitConfig {
    VitConfig {
        img: 28,
        patch: 7,
        dim: 192,
        depth: 2,
        heads: 3,
    }
}

fn max_abs(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn run_both(onnx: &Path, x: &Array4<f32>) -> (Array2<f32>, Array2<f32>) {
    let bytes = std::fs::read(onnx).unwrap();
    let tract = TractEncoder::from_bytes(&bytes)
        .unwrap()
        .embed(x.view())
        .unwrap();
    let ort = OrtEncoder::from_bytes(&bytes)
        .unwrap()
        .embed(x.view())
        .unwrap();
    (tract, ort)
}

fn export(dir: &Path, classes: usize, seed: u64) -> (PathBuf, StateDict, ClassifierHead) {
    let (enc, head) = weights(&cfg(), classes, seed);
    let names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
    let files = export_classifier(&enc, &head, &cfg(), &names, dir).unwrap();
    (files.onnx, enc, head)
}

#[test]
fn tract_and_ort_agree_and_the_model_declares_its_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (onnx, enc, head) = export(dir.path(), 10, 7);
    let info = ClassifierModel::open(&onnx).unwrap();
    assert_eq!((info.img, info.classes), (28, 10));
    assert_eq!(info.output, "logits");
    assert_eq!(info.class_names.as_ref().unwrap()[3], "class 3");

    let (x, _) = images(28);
    let (tract, ort) = run_both(&onnx, &x);
    assert_eq!(tract.dim(), (48, 10));
    let spread = tract.std(0.0);
    assert!(spread > 0.5, "logits should be of order 1, std {spread}");
    let d = max_abs(&tract, &ort);
    eprintln!("tract vs ort: max |Δ| {d:.3e}");
    assert!(d <= 1e-4, "tract vs ort: max |Δ| {d}");

    // The logits are the encoder's features through the head: the exported encoder (the
    // existing `features` model) then `features · Wᵀ + b` in plain ndarray.
    let enc_graph = patchmix_export::vit::encoder_graph(&cfg(), &enc, false).unwrap();
    let enc_bytes = patchmix_export::onnx::to_onnx_bytes(&enc_graph);
    let feats = TractEncoder::from_bytes(&enc_bytes)
        .unwrap()
        .embed(x.view())
        .unwrap();
    let by_hand = feats.dot(&head.weight.t()) + &head.bias;
    let d = max_abs(&tract, &by_hand);
    assert!(d <= 1e-4, "classifier vs encoder + head: max |Δ| {d}");

    // The safetensors file holds the encoder plus the head, bit for bit.
    let back = load_safetensors(dir.path().join(CLASSIFIER_SAFETENSORS)).unwrap();
    assert_eq!(back.tensors.len(), enc.len() + 2);
    assert_eq!(
        back.tensors["head.weight"]
            .view()
            .into_dimensionality::<Ix2>()
            .unwrap(),
        head.weight
    );
    assert_eq!(
        back.tensors["blocks.1.mlp.fc2.weight"],
        enc["blocks.1.mlp.fc2.weight"]
    );
}

fn timm_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import timm, torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with timm (torch, safetensors) is not available");
    }
    ok
}

#[test]
fn timm_loads_the_weights_strictly_and_gives_the_same_logits() {
    if !timm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (onnx, enc, _) = export(dir.path(), 10, 11);
    let (x, _) = images(28);
    let images_path = dir.path().join("images.safetensors");
    let x_dyn: ArrayD<f32> = x.clone().into_dyn();
    save_safetensors(
        &images_path,
        &StateDict::from([("images".to_string(), x_dyn)]),
        None,
    )
    .unwrap();
    let out_path = dir.path().join("timm_logits.safetensors");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/timm_classifier_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.path().join(CLASSIFIER_SAFETENSORS))
        .arg(&images_path)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "timm reference failed (strict load?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let expected = cfg().num_params() + 10 * 192 + 10;
    assert_eq!(loaded, expected, "parameters timm loaded");
    assert_eq!(enc.len(), cfg().param_specs().len());

    let timm = load_safetensors(&out_path).unwrap().tensors["logits"]
        .clone()
        .into_dimensionality::<Ix2>()
        .unwrap();
    let (tract, ort) = run_both(&onnx, &x);
    for (name, ours) in [("tract", &tract), ("ort", &ort)] {
        let d = max_abs(ours, &timm);
        eprintln!(
            "{name} vs timm: max |Δ| {d:.3e} over {:?} logits",
            timm.dim()
        );
        assert!(d <= 1e-4, "{name} vs timm: max |Δ| {d}");
    }
    assert!(timm.std(0.0) > 0.5);
}
