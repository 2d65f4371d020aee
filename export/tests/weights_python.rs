//! Interoperability with Python's `safetensors` + NumPy (what `safetensors.torch` builds
//! on). Skips, saying why, unless `python3 -c "import safetensors, numpy"` succeeds.

use std::path::Path;
use std::process::Command;

use ndarray::{ArrayD, IxDyn};
use patchmix_export::knn::FeatureIndex;
use patchmix_export::weights::{
    IntStateDict, Metadata, StateDict, load_safetensors, save_safetensors_with_ints,
    timm_vit_shapes,
};

fn python_available() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`import safetensors, numpy` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("python3 not runnable: {e}")),
    }
}

fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn file_written_here_loads_in_python_with_same_names_and_values() {
    if let Err(why) = python_available() {
        eprintln!(
            "SKIPPED file_written_here_loads_in_python: {why} (pip install safetensors numpy)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.safetensors");
    // Values i * 0.5 - 7 are exact in f32; Python checks them the same way.
    let sd: StateDict = timm_vit_shapes(8, 2, 4, 4)
        .into_iter()
        .map(|(k, s)| {
            let n: usize = s.iter().product();
            let v = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
            (k, ArrayD::from_shape_vec(IxDyn(&s), v).unwrap())
        })
        .collect();
    let ints = IntStateDict::from([(
        "opt.step".to_string(),
        ArrayD::from_elem(IxDyn(&[]), 9_000_000_000i64),
    )]);
    let meta = Metadata::from([("arch".to_string(), "vit_tiny".to_string())]);
    save_safetensors_with_ints(&path, &sd, &ints, Some(&meta)).unwrap();

    let script = r#"
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
d = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="np") as f:
    meta = f.metadata()
assert meta == {"arch": "vit_tiny"}, meta
step = d.pop("opt.step")
assert step.dtype == np.int64 and step.shape == () and int(step) == 9_000_000_000, step
for k, v in sorted(d.items()):
    assert v.dtype == np.float32, (k, v.dtype)
    want = (np.arange(v.size, dtype=np.float32) * 0.5 - 7.0).reshape(v.shape)
    assert np.array_equal(v, want), k
    print(k, list(v.shape))
"#;
    let printed = run_python(script, &[&path]);
    let mut expected: Vec<String> = sd
        .iter()
        .map(|(k, v)| format!("{k} {:?}", v.shape()))
        .collect();
    expected.sort();
    let got: Vec<String> = printed.lines().map(str::to_string).collect();
    assert_eq!(got, expected);
}

#[test]
fn file_written_by_python_loads_here() {
    if let Err(why) = python_available() {
        eprintln!(
            "SKIPPED file_written_by_python_loads_here: {why} (pip install safetensors numpy)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("py.safetensors");
    let index = dir.path().join("py_index.safetensors");
    let script = r#"
import sys, numpy as np
from safetensors.numpy import save_file
save_file({
    "module.base_encoder.norm.weight": np.array([1.5, -2.0], dtype=np.float16),
    "module.base_encoder.norm.bias": np.array([0.25, 1e-3], dtype=np.float64),
    "module.base_encoder.cls_token": np.arange(6, dtype=np.float32).reshape(1, 2, 3),
    "module.base_encoder.head.weight": np.zeros((4, 2), dtype=np.float32),
    "bn.num_batches_tracked": np.array(17, dtype=np.int64),
}, sys.argv[1], metadata={"epoch": "99"})
save_file({
    "features": np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]], dtype=np.float32),
    "labels": np.array([0, 2, 1], dtype=np.int64),
}, sys.argv[2], metadata={"num_classes": "4"})
"#;
    run_python(script, &[&weights, &index]);

    let c = load_safetensors(&weights).unwrap();
    assert_eq!(c.metadata["epoch"], "99");
    assert_eq!(c.ints["bn.num_batches_tracked"][[]], 17);
    let enc = patchmix_export::weights::select_encoder(
        c.tensors,
        patchmix_export::weights::EncoderSource::Base,
    );
    let keys: Vec<&str> = enc.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["cls_token", "norm.bias", "norm.weight"]);
    assert_eq!(enc["norm.weight"].as_slice().unwrap(), &[1.5, -2.0]);
    assert_eq!(enc["norm.bias"].as_slice().unwrap(), &[0.25, 1e-3f32]);
    assert_eq!(enc["cls_token"].shape(), &[1, 2, 3]);
    assert_eq!(enc["cls_token"][[0, 1, 2]], 5.0);

    let idx = FeatureIndex::load(&index).unwrap();
    assert_eq!(idx.num_classes(), 4);
    assert_eq!(idx.labels(), &[0, 2, 1]);
    assert_eq!(idx.features().row(0).to_vec(), vec![0.6, 0.8]);
}
