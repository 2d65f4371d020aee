//! Weights: round-trips, dtype conversion, prefixes/head skipping, layout checks, atomic
//! writes and error messages on bad files.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use patchmix_export::weights::{
    EncoderSource, IntStateDict, Metadata, StateDict, WeightsError, check_against, diff_against,
    load_encoder, load_safetensors, load_safetensors_bytes, save_safetensors,
    save_safetensors_with_ints, select_encoder, serialize_safetensors, timm_vit_shapes,
};
use safetensors::tensor::{Dtype, View};

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn raw(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Raw {
    Raw {
        dtype,
        shape: shape.to_vec(),
        bytes,
    }
}

fn arange(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(
        IxDyn(shape),
        (0..n).map(|i| i as f32 * 0.25 - 3.0).collect(),
    )
    .unwrap()
}

/// A full tiny ViT state dict (D = 8, depth 2, patch 4, 4 patches).
fn tiny_vit() -> StateDict {
    timm_vit_shapes(8, 2, 4, 4)
        .into_iter()
        .map(|(k, s)| (k, arange(&s)))
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_floats_ints_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let mut sd = tiny_vit();
    // A non-standard (transposed) layout is written in logical order.
    sd.insert("t".into(), arange(&[3, 2]).reversed_axes());
    let ints = IntStateDict::from([
        (
            "opt.step".to_string(),
            ArrayD::from_elem(IxDyn(&[]), 123_456_789_012i64),
        ),
        (
            "bn.num_batches_tracked".to_string(),
            ArrayD::from_elem(IxDyn(&[]), -1i64),
        ),
        (
            "v".to_string(),
            ArrayD::from_shape_vec(IxDyn(&[3]), vec![i64::MIN, 0, i64::MAX]).unwrap(),
        ),
    ]);
    let meta = BTreeMap::from([
        ("arch".to_string(), "vit_tiny_patch4".to_string()),
        ("epoch".to_string(), "7".to_string()),
    ]);
    save_safetensors_with_ints(&path, &sd, &ints, Some(&meta)).unwrap();
    let back = load_safetensors(&path).unwrap();
    assert_eq!(back.tensors, sd);
    assert_eq!(back.tensors["t"].shape(), &[2, 3]);
    assert_eq!(back.tensors["t"][[1, 0]], sd["t"][[1, 0]]);
    assert_eq!(back.ints, ints);
    assert_eq!(back.metadata, meta);
    assert_eq!(files_in(dir.path()), vec!["ckpt.safetensors"]);

    // Bytes API agrees with the file API.
    let bytes = serialize_safetensors(&sd, &ints, Some(&meta)).unwrap();
    // (Not byte-equal: the safetensors crate takes metadata as a HashMap, so the header's
    // metadata order varies between serialisations; the content is what must agree.)
    assert_eq!(
        load_safetensors_bytes(&bytes).unwrap(),
        load_safetensors_bytes(&std::fs::read(&path).unwrap()).unwrap()
    );
    assert_eq!(load_safetensors_bytes(&bytes).unwrap(), back);

    // Without metadata: the map is empty.
    save_safetensors(&path, &sd, None).unwrap();
    let back = load_safetensors(&path).unwrap();
    assert!(back.metadata.is_empty() && back.ints.is_empty());
}

#[test]
fn special_float_values_survive() {
    let v = vec![
        f32::NAN,
        f32::INFINITY,
        -0.0,
        f32::MIN_POSITIVE / 2.0,
        f32::MAX,
    ];
    let sd = StateDict::from([(
        "x".to_string(),
        ArrayD::from_shape_vec(IxDyn(&[5]), v.clone()).unwrap(),
    )]);
    let back =
        load_safetensors_bytes(&serialize_safetensors(&sd, &IntStateDict::new(), None).unwrap())
            .unwrap();
    let got: Vec<u32> = back.tensors["x"].iter().map(|x| x.to_bits()).collect();
    let want: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
    assert_eq!(got, want);
}

#[test]
fn other_dtypes_convert() {
    let f16: Vec<u8> = [1.5f32, -2.0, 65504.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [1.5f32, -2.0, 3.0e38]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let f64b: Vec<u8> = [0.1f64, -1e300]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let i32b: Vec<u8> = [-5i32, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
    let u64b: Vec<u8> = [u64::from(u32::MAX) + 1]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let bytes = safetensors::tensor::serialize(
        vec![
            ("h", raw(Dtype::F16, &[3], f16)),
            ("b", raw(Dtype::BF16, &[3], bf16)),
            ("d", raw(Dtype::F64, &[2], f64b)),
            ("i", raw(Dtype::I32, &[2], i32b)),
            ("u8", raw(Dtype::U8, &[2], vec![0, 255])),
            ("i8", raw(Dtype::I8, &[1], vec![0xff])),
            ("flag", raw(Dtype::BOOL, &[2], vec![1, 0])),
            ("u64", raw(Dtype::U64, &[1], u64b)),
        ],
        None,
    )
    .unwrap();
    let c = load_safetensors_bytes(&bytes).unwrap();
    assert_eq!(c.tensors["h"].as_slice().unwrap(), &[1.5, -2.0, 65504.0]);
    assert_eq!(c.tensors["b"][[0]], 1.5);
    assert_eq!(c.tensors["b"][[1]], -2.0);
    assert!((c.tensors["b"][[2]] / 3.0e38 - 1.0).abs() < 1e-2);
    assert_eq!(c.tensors["d"][[0]], 0.1f32);
    assert_eq!(c.tensors["d"][[1]], f32::NEG_INFINITY);
    assert_eq!(c.ints["i"].as_slice().unwrap(), &[-5, 7]);
    assert_eq!(c.ints["u8"].as_slice().unwrap(), &[0, 255]);
    assert_eq!(c.ints["i8"].as_slice().unwrap(), &[-1]);
    assert_eq!(c.ints["flag"].as_slice().unwrap(), &[1, 0]);
    assert_eq!(c.ints["u64"].as_slice().unwrap(), &[1i64 << 32]);
}

#[test]
fn unsupported_dtype_and_u64_overflow_name_the_tensor_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fp8.safetensors");
    let bytes = safetensors::tensor::serialize(
        vec![(
            "blocks.0.attn.qkv.weight",
            raw(Dtype::F8_E4M3, &[2], vec![0, 1]),
        )],
        None,
    )
    .unwrap();
    std::fs::write(&p, bytes).unwrap();
    let err = load_safetensors(&p).unwrap_err();
    assert!(matches!(err, WeightsError::UnsupportedDtype { .. }));
    let msg = err.to_string();
    assert!(msg.contains("fp8.safetensors"), "{msg}");
    assert!(
        msg.contains("`blocks.0.attn.qkv.weight` has dtype F8_E4M3"),
        "{msg}"
    );

    let bytes = safetensors::tensor::serialize(
        vec![(
            "step",
            raw(Dtype::U64, &[1], u64::MAX.to_le_bytes().to_vec()),
        )],
        None,
    )
    .unwrap();
    let msg = load_safetensors_bytes(&bytes).unwrap_err().to_string();
    assert!(
        msg.contains("<in-memory buffer>: tensor `step`: a U64 value exceeds i64::MAX"),
        "{msg}"
    );
}

#[test]
fn bad_files_never_panic_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = serialize_safetensors(&tiny_vit(), &IntStateDict::new(), None).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;

    let mut bad_json = good.clone();
    bad_json[8] = b'[';
    let mut not_utf8 = good.clone();
    not_utf8[9] = 0xff;
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut extra = good.clone();
    extra.push(0);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "header too small"),
        ("short", vec![1, 2, 3, 4], "header too small"),
        (
            "truncated_header",
            good[..8 + header_len / 2].to_vec(),
            "invalid header length",
        ),
        ("truncated_data", good[..good.len() - 1].to_vec(), ""),
        ("trailing_byte", extra, ""),
        ("bad_json", bad_json, "invalid JSON"),
        ("not_utf8", not_utf8, "UTF-8"),
        ("huge_header", huge_header, "header too large"),
        (
            "wrong_size",
            {
                let h = br#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
                let mut v = (h.len() as u64).to_le_bytes().to_vec();
                v.extend_from_slice(h);
                v.extend_from_slice(&[0; 8]);
                v
            },
            "",
        ),
        (
            "unknown_dtype",
            {
                let h = br#"{"x":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
                let mut v = (h.len() as u64).to_le_bytes().to_vec();
                v.extend_from_slice(h);
                v.extend_from_slice(&[0; 16]);
                v
            },
            "invalid JSON",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&p, &bytes).unwrap();
        let err = load_safetensors(&p).unwrap_err();
        assert!(
            matches!(err, WeightsError::Format { .. }),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&p.display().to_string()), "{name}: {msg}");
        assert!(
            msg.contains("is not a valid safetensors file"),
            "{name}: {msg}"
        );
        assert!(msg.contains(expect), "{name}: {msg}");
    }

    let p = dir.path().join("does-not-exist.safetensors");
    let msg = load_safetensors(&p).unwrap_err().to_string();
    assert!(
        msg.starts_with("cannot read ") && msg.contains("does-not-exist.safetensors"),
        "{msg}"
    );
}

#[test]
fn select_encoder_handles_training_checkpoint_prefixes() {
    let vit = tiny_vit();
    let mut ckpt = StateDict::new();
    for (k, v) in &vit {
        ckpt.insert(format!("module.base_encoder.{k}"), v.clone());
        ckpt.insert(format!("module.momentum_encoder.{k}"), v.mapv(|x| x + 1.0));
    }
    // MoCo v3-style projector heads and the predictor are dropped.
    ckpt.insert("module.base_encoder.head.0.weight".into(), arange(&[16, 8]));
    ckpt.insert(
        "module.momentum_encoder.head.0.weight".into(),
        arange(&[16, 8]),
    );
    ckpt.insert("module.predictor.0.weight".into(), arange(&[16, 8]));

    let base = select_encoder(ckpt.clone(), EncoderSource::Base);
    assert_eq!(base, vit);
    let mom = select_encoder(ckpt.clone(), EncoderSource::Momentum);
    assert_eq!(mom["norm.weight"], vit["norm.weight"].mapv(|x| x + 1.0));
    assert_eq!(mom.len(), vit.len());
    assert_eq!(select_encoder(ckpt, EncoderSource::default()), vit);

    // Without `module.`.
    let plain: StateDict = vit
        .iter()
        .map(|(k, v)| (format!("base_encoder.{k}"), v.clone()))
        .collect();
    assert_eq!(select_encoder(plain, EncoderSource::Base), vit);
}

#[test]
fn bare_timm_checkpoint_loses_only_the_head() {
    let mut timm = tiny_vit();
    timm.insert("head.weight".into(), arange(&[10, 8]));
    timm.insert("head.bias".into(), arange(&[10]));
    timm.insert("fc.weight".into(), arange(&[10, 8]));
    timm.insert("fc_norm.weight".into(), arange(&[8]));
    let sel = select_encoder(timm, EncoderSource::Base);
    assert!(!sel.contains_key("head.weight") && !sel.contains_key("fc.weight"));
    // `fc_norm` is not a classifier; check_against reports it instead of hiding it.
    assert!(sel.contains_key("fc_norm.weight"));
    let diff = diff_against(&sel, &timm_vit_shapes(8, 2, 4, 4));
    assert_eq!(diff.unexpected, vec!["fc_norm.weight".to_string()]);
}

#[test]
fn asking_for_a_missing_encoder_keeps_keys_visible() {
    let ckpt: StateDict = tiny_vit()
        .into_iter()
        .map(|(k, v)| (format!("base_encoder.{k}"), v))
        .collect();
    let sel = select_encoder(ckpt, EncoderSource::Momentum);
    let err = check_against(&sel, &timm_vit_shapes(8, 2, 4, 4))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected: base_encoder.norm.weight"),
        "{err}"
    );
    assert!(err.contains("missing: norm.weight"), "{err}");
}

#[test]
fn check_against_reports_everything_at_once() {
    let expected = timm_vit_shapes(192, 4, 16, 196);
    assert_eq!(expected.len(), 4 + 4 * 12 + 2);
    let mut sd: StateDict = expected
        .iter()
        .map(|(k, s)| (k.clone(), ArrayD::zeros(IxDyn(s))))
        .collect();
    check_against(&sd, &expected).unwrap();

    sd.insert(
        "blocks.3.attn.qkv.weight".into(),
        ArrayD::zeros(IxDyn(&[576, 192 * 2])),
    );
    sd.remove("norm.bias");
    sd.remove("cls_token");
    sd.insert("head.weight".into(), ArrayD::zeros(IxDyn(&[1000, 192])));
    let err = check_against(&sd, &expected).unwrap_err();
    let WeightsError::Mismatch { diff, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        diff.missing,
        vec!["cls_token".to_string(), "norm.bias".to_string()]
    );
    assert_eq!(diff.unexpected, vec!["head.weight".to_string()]);
    assert_eq!(diff.mismatched.len(), 1);
    assert_eq!(
        err.to_string(),
        "state dict does not match the expected model: 2 missing, 1 unexpected, 1 with the wrong shape\n  \
         missing: cls_token\n  missing: norm.bias\n  unexpected: head.weight\n  \
         blocks.3.attn.qkv.weight: shape [576, 384] expected [576, 192]"
    );
}

#[test]
fn timm_shapes_are_the_documented_ones() {
    let s: BTreeMap<String, Vec<usize>> = timm_vit_shapes(192, 12, 16, 196).into_iter().collect();
    assert_eq!(s["patch_embed.proj.weight"], vec![192, 3, 16, 16]);
    assert_eq!(s["pos_embed"], vec![1, 197, 192]);
    assert_eq!(s["cls_token"], vec![1, 1, 192]);
    assert_eq!(s["blocks.11.attn.qkv.weight"], vec![576, 192]);
    assert_eq!(s["blocks.11.attn.qkv.bias"], vec![576]);
    assert_eq!(s["blocks.0.attn.proj.weight"], vec![192, 192]);
    assert_eq!(s["blocks.0.mlp.fc1.weight"], vec![768, 192]);
    assert_eq!(s["blocks.0.mlp.fc1.bias"], vec![768]);
    assert_eq!(s["blocks.0.mlp.fc2.weight"], vec![192, 768]);
    assert_eq!(s["blocks.0.norm2.bias"], vec![192]);
    assert_eq!(s["norm.weight"], vec![192]);
    assert_eq!(s.len(), 150);
}

#[test]
fn load_encoder_end_to_end_and_error_names_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patchmix_ep100.safetensors");
    let mut ckpt: StateDict = tiny_vit()
        .into_iter()
        .map(|(k, v)| (format!("module.base_encoder.{k}"), v))
        .collect();
    ckpt.insert("module.predictor.1.weight".into(), arange(&[4]));
    let ints = IntStateDict::from([("opt.step".to_string(), ArrayD::from_elem(IxDyn(&[]), 5i64))]);
    save_safetensors_with_ints(&path, &ckpt, &ints, None).unwrap();
    let shapes = timm_vit_shapes(8, 2, 4, 4);
    assert_eq!(
        load_encoder(&path, EncoderSource::Base, &shapes).unwrap(),
        tiny_vit()
    );

    let wrong = timm_vit_shapes(8, 3, 4, 4);
    let msg = load_encoder(&path, EncoderSource::Base, &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!(
            "{} does not match the expected model: 12 missing",
            path.display()
        )),
        "{msg}"
    );
}

#[test]
fn atomic_write_replaces_only_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, b"previous").unwrap();
    save_safetensors(&path, &tiny_vit(), None).unwrap();
    assert_eq!(load_safetensors(&path).unwrap().tensors, tiny_vit());
    assert_eq!(files_in(dir.path()), vec!["w.safetensors"]);

    // Failing before any byte is written (bad input): the old file stays.
    let sd = StateDict::from([("x".to_string(), arange(&[1]))]);
    let ints = IntStateDict::from([("x".to_string(), ArrayD::zeros(IxDyn(&[1])))]);
    let err = save_safetensors_with_ints(&path, &sd, &ints, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("`x` is present both as a float and as an integer"),
        "{err}"
    );
    assert_eq!(load_safetensors(&path).unwrap().tensors, tiny_vit());

    // Failing at the rename (the destination is a non-empty directory): nothing changes,
    // and the temporary file is cleaned up.
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"k").unwrap();
    let err = save_safetensors(&target, &sd, None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot rename into place") && msg.contains("taken"),
        "{msg}"
    );
    assert_eq!(files_in(dir.path()), vec!["taken", "w.safetensors"]);
    assert_eq!(files_in(&target), vec!["keep"]);

    // A missing directory: a clear error naming the path.
    let msg = save_safetensors(dir.path().join("nope/w.safetensors"), &sd, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot create a temporary file for") && msg.contains("nope"),
        "{msg}"
    );
}

/// A file without tensors round-trips, with and without metadata (found by the `load_weights`
/// fuzz target: `safetensors` 0.8 serialises an empty tensor list with metadata as
/// `{},"__metadata__":{…}}`, which no reader accepts).
#[test]
fn files_without_tensors_round_trip_with_metadata() {
    let fuzzed: &[u8] = b"\x07\0\0\0\0\0\0\0{}\n\t\t\n\t";
    let parsed = load_safetensors_bytes(fuzzed).unwrap();
    assert!(parsed.tensors.is_empty() && parsed.metadata.is_empty());
    for meta in [
        Metadata::new(),
        Metadata::from([("format".to_string(), "pt \"quoted\"".to_string())]),
    ] {
        let bytes =
            serialize_safetensors(&StateDict::new(), &IntStateDict::new(), Some(&meta)).unwrap();
        assert!((bytes.len() - 8).is_multiple_of(8));
        let back = load_safetensors_bytes(&bytes).unwrap();
        assert!(back.tensors.is_empty() && back.ints.is_empty());
        assert_eq!(back.metadata, meta);
    }
}
