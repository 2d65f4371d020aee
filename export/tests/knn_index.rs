//! Feature index: normalisation, persistence round-trip, validation of bad files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array2, array};
use patchmix_export::knn::{FeatureIndex, KnnError, l2_normalize_rows};
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

fn raw_f32(shape: &[usize], v: &[f32]) -> Raw {
    Raw {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}
fn raw_i64(shape: &[usize], v: &[i64]) -> Raw {
    Raw {
        dtype: Dtype::I64,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn write_raw(path: &Path, tensors: Vec<(&str, Raw)>, meta: &[(&str, &str)]) {
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bytes = safetensors::tensor::serialize(tensors, Some(meta)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn load_err(path: &Path) -> String {
    let e = FeatureIndex::load(path).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
    msg
}

#[test]
fn normalisation_matches_torch_normalize() {
    let mut a = array![[3.0f32, 4.0], [0.0, 0.0], [1e-30, 0.0], [-2.0, 0.0]];
    l2_normalize_rows(&mut a, "train").unwrap();
    assert_eq!(a.row(0).to_vec(), vec![0.6, 0.8]);
    assert_eq!(a.row(1).to_vec(), vec![0.0, 0.0]);
    // Below eps = 1e-12 the row is divided by eps, like F.normalize.
    assert!((a[[2, 0]] - 1e-18).abs() < 1e-24);
    assert_eq!(a.row(3).to_vec(), vec![-1.0, 0.0]);
    // Large values do not overflow (norm accumulated in f64).
    let mut big = array![[3e30f32, 4e30]];
    l2_normalize_rows(&mut big, "train").unwrap();
    assert!((big[[0, 0]] - 0.6).abs() < 1e-6);

    let mut bad = array![[1.0f32, 0.0], [f32::INFINITY, 0.0]];
    let err = l2_normalize_rows(&mut bad, "train").unwrap_err();
    assert_eq!(
        err.to_string(),
        "train feature row 1 is not finite (NaN or infinity); check the encoder output"
    );
}

#[test]
fn new_validates() {
    let f = array![[1.0f32, 0.0], [0.0, 1.0]];
    assert!(matches!(
        FeatureIndex::new(Array2::zeros((0, 3)), vec![], None),
        Err(KnnError::EmptyIndex)
    ));
    assert!(matches!(
        FeatureIndex::new(f.clone(), vec![0], None),
        Err(KnnError::LabelCount {
            what: "train",
            features: 2,
            labels: 1
        })
    ));
    let err = FeatureIndex::new(f.clone(), vec![0, 5], Some(5)).unwrap_err();
    assert!(
        err.to_string()
            .contains("train label #1 is 5, but there are only 5 classes"),
        "{err}"
    );
    assert!(matches!(
        FeatureIndex::new(f.clone(), vec![0, 0], Some(0)),
        Err(KnnError::InvalidNumClasses(0))
    ));
    let idx = FeatureIndex::new(f, vec![0, 5], None).unwrap();
    assert_eq!(idx.num_classes(), 6);
    assert!(!idx.is_empty());
}

#[test]
fn round_trip_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.knn.safetensors");
    let feats = Array2::from_shape_fn((37, 5), |(i, j)| (i as f32 * 0.37 - j as f32).sin());
    let labels: Vec<u32> = (0..37).map(|i| i % 4).collect();
    let idx = FeatureIndex::new(feats, labels, Some(10))
        .unwrap()
        .with_metadata("checkpoint", "runs/vit_tiny/epoch_100.safetensors")
        .with_metadata("num_classes", "will be overwritten and dropped");
    idx.save(&path).unwrap();
    let back = FeatureIndex::load(&path).unwrap();
    assert_eq!(back.features(), idx.features());
    assert_eq!(back.labels(), idx.labels());
    assert_eq!(back.num_classes(), 10);
    assert_eq!(
        back.metadata().get("checkpoint").unwrap(),
        "runs/vit_tiny/epoch_100.safetensors"
    );
    assert!(!back.metadata().contains_key("num_classes"));
    assert!(!back.metadata().contains_key("format"));

    // On-disk layout: F32 features, I64 labels, reserved metadata.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("features").unwrap().dtype(), Dtype::F32);
    assert_eq!(st.tensor("features").unwrap().shape(), &[37, 5]);
    assert_eq!(st.tensor("labels").unwrap().dtype(), Dtype::I64);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["format"], "patchmix-knn-index");
    assert_eq!(meta["format_version"], "1");
    assert_eq!(meta["num_classes"], "10");
    assert_eq!(meta["count"], "37");
    assert_eq!(meta["dim"], "5");
    // No temporary file left.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn python_style_file_loads_leniently() {
    // Unnormalised F64 features, I32 labels, no metadata at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.safetensors");
    let f: Vec<u8> = [3.0f64, 4.0, 0.0, 2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let l: Vec<u8> = [1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
    write_raw(
        &path,
        vec![
            (
                "features",
                Raw {
                    dtype: Dtype::F64,
                    shape: vec![2, 2],
                    bytes: f,
                },
            ),
            (
                "labels",
                Raw {
                    dtype: Dtype::I32,
                    shape: vec![2],
                    bytes: l,
                },
            ),
        ],
        &[],
    );
    let idx = FeatureIndex::load(&path).unwrap();
    assert_eq!(idx.features(), array![[0.6f32, 0.8], [0.0, 1.0]]);
    assert_eq!(idx.labels(), &[1, 2]);
    assert_eq!(idx.num_classes(), 3);
}

#[test]
fn corrupt_and_invalid_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    FeatureIndex::new(array![[1.0f32, 0.0], [0.0, 1.0]], vec![0, 1], None)
        .unwrap()
        .save(&good)
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let p = dir.path().join("truncated.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    assert!(load_err(&p).contains("not a valid safetensors file"));

    let p = dir.path().join("missing.safetensors");
    assert!(load_err(&p).contains("cannot read"));

    let case = |name: &str, tensors: Vec<(&str, Raw)>, meta: &[(&str, &str)], expect: &str| {
        let p = dir.path().join(name);
        write_raw(&p, tensors, meta);
        let msg = load_err(&p);
        assert!(msg.contains("not a valid kNN feature index"), "{msg}");
        assert!(msg.contains(expect), "{name}: {msg}");
    };
    let f2 = || raw_f32(&[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    let l2 = || raw_i64(&[2], &[0, 1]);
    case(
        "nofeat.st",
        vec![("labels", l2())],
        &[],
        "tensor `features` [N, D] is missing",
    );
    case(
        "nolab.st",
        vec![("features", f2())],
        &[],
        "tensor `labels` [N] is missing",
    );
    case(
        "floatlab.st",
        vec![("features", f2()), ("labels", raw_f32(&[2], &[0.0, 1.0]))],
        &[],
        "`labels` has a float dtype",
    );
    case(
        "intfeat.st",
        vec![
            ("features", raw_i64(&[2, 2], &[1, 0, 0, 1])),
            ("labels", l2()),
        ],
        &[],
        "`features` has an integer dtype",
    );
    case(
        "rank.st",
        vec![
            ("features", raw_f32(&[4], &[1.0, 0.0, 0.0, 1.0])),
            ("labels", l2()),
        ],
        &[],
        "must have 2 dimensions",
    );
    case(
        "lab2d.st",
        vec![("features", f2()), ("labels", raw_i64(&[2, 1], &[0, 1]))],
        &[],
        "must have 1 dimension [N], found shape [2, 1]",
    );
    case(
        "count.st",
        vec![("features", f2()), ("labels", raw_i64(&[3], &[0, 1, 1]))],
        &[],
        "`features` has 2 rows but `labels` has 3 entries",
    );
    case(
        "neg.st",
        vec![("features", f2()), ("labels", raw_i64(&[2], &[0, -1]))],
        &[],
        "label #1 is -1",
    );
    case(
        "range.st",
        vec![("features", f2()), ("labels", l2())],
        &[("num_classes", "1")],
        "label #1 is 1, but there are only 1 classes",
    );
    case(
        "ncls.st",
        vec![("features", f2()), ("labels", l2())],
        &[("num_classes", "ten")],
        "num_classes = \"ten\"",
    );
    case(
        "fmt.st",
        vec![("features", f2()), ("labels", l2())],
        &[("format", "something-else")],
        "metadata format is \"something-else\"",
    );
    case(
        "ver.st",
        vec![("features", f2()), ("labels", l2())],
        &[("format_version", "9")],
        "format_version \"9\" is not supported",
    );
    case(
        "nan.st",
        vec![
            ("features", raw_f32(&[2, 2], &[1.0, 0.0, f32::NAN, 1.0])),
            ("labels", l2()),
        ],
        &[],
        "row 1 is not finite",
    );
    case(
        "empty.st",
        vec![
            ("features", raw_f32(&[0, 2], &[])),
            ("labels", raw_i64(&[0], &[])),
        ],
        &[],
        "no rows",
    );
}
