//! The `.pmx` gallery file.
//!
//! # Why safetensors
//!
//! A gallery file is a [safetensors](https://huggingface.co/docs/safetensors) file — an 8-byte
//! little-endian header length, a JSON header naming each tensor's dtype, shape and byte range
//! plus a string map `__metadata__`, then the raw tensor bytes — rather than a format of our
//! own with a magic number and sections, because:
//!
//! * the features, labels and ids open in Python with `safetensors.numpy.load_file` (the same
//!   as `patchmix embed`'s feature files), so a gallery can be inspected or migrated to a
//!   vector database without this crate;
//! * the parser is maintained and fuzzed upstream: it rejects a header length past the end,
//!   malformed JSON, overlapping or out-of-range byte ranges and a body that does not end
//!   exactly where the last tensor ends — so a truncated or padded file is an error, never
//!   garbage features;
//! * the identifying magic and the version live in `__metadata__` (`format =
//!   "patchmix-gallery"`, `format_version = "1"`), checked before anything else, so a kNN
//!   feature file, a weights file or any other safetensors file is refused by name.
//!
//! What safetensors does not give is a checksum of the tensor bytes; a bit flip inside the
//! features goes unnoticed (as in every weights file). Writes are atomic (temp file, fsync,
//! rename), so the torn files a crash would otherwise leave cannot occur.
//!
//! # Contents
//!
//! | tensor | dtype | shape | contents |
//! |--------|-------|-------|----------|
//! | `features` | `F32` | `[N, D]` | L2-normalised features |
//! | `labels` | `I64` | `[N]` | class ids in `0..num_classes` |
//! | `ids` | `U8` | `[B]` | the UTF-8 ids, concatenated |
//! | `id_offsets` | `I64` | `[N + 1]` | id `i` is `ids[id_offsets[i]..id_offsets[i + 1]]` |
//!
//! `__metadata__`: `format`, `format_version`, `count` (`N`), `dim` (`D`), `num_classes`,
//! `classes` (a JSON array of class names), `model_sha256` (the encoder's
//! [fingerprint](super::ModelFingerprint)), `preprocess` (JSON of the evaluation
//! [`Preprocess`] the gallery was embedded with, which queries must use too), `ann` (`none`
//! or `hnsw`) and, for `hnsw`, `hnsw` (JSON of the [`HnswParams`] plus the graph file's name,
//! see [`super::ann`]); any other key is free user metadata (model path, dataset, runtime).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::Array2;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::GalleryError;
use super::ann::HnswParams;
use super::fingerprint::ModelFingerprint;
use crate::data::Preprocess;
use crate::weights::Metadata;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "patchmix-gallery";
/// Value of the `format_version` metadata key.
pub const FORMAT_VERSION: &str = "1";
/// Metadata keys this module writes itself.
pub const RESERVED_KEYS: [&str; 10] = [
    "format",
    "format_version",
    "count",
    "dim",
    "num_classes",
    "classes",
    "model_sha256",
    "preprocess",
    "ann",
    "hnsw",
];

/// The HNSW entry of the metadata: the parameters and the graph file beside the gallery.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HnswEntry {
    /// Build and search parameters.
    #[serde(flatten)]
    pub(crate) params: HnswParams,
    /// File name of the graph, in the gallery's folder.
    pub(crate) file: String,
}

/// Everything a gallery file holds, validated.
#[derive(Debug)]
pub(crate) struct Contents {
    pub(crate) features: Array2<f32>,
    pub(crate) labels: Vec<u32>,
    pub(crate) ids: Vec<String>,
    pub(crate) classes: Vec<String>,
    pub(crate) model: ModelFingerprint,
    pub(crate) preprocess: Preprocess,
    pub(crate) hnsw: Option<HnswEntry>,
    pub(crate) metadata: Metadata,
}

/// Borrowed contents to encode.
pub(crate) struct Encode<'a> {
    pub(crate) features: ndarray::ArrayView2<'a, f32>,
    pub(crate) labels: &'a [u32],
    pub(crate) ids: &'a [String],
    pub(crate) classes: &'a [String],
    pub(crate) model: &'a ModelFingerprint,
    pub(crate) preprocess: &'a Preprocess,
    pub(crate) hnsw: Option<&'a HnswEntry>,
    pub(crate) metadata: &'a Metadata,
}

fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>, String> {
    TensorView::new(dtype, shape, data)
        .map_err(|e| format!("internal: cannot lay out a tensor: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain structs, string lists and maps cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// Serialises a gallery to the bytes of a `.pmx` file.
pub(crate) fn encode(g: &Encode<'_>) -> Result<Vec<u8>, String> {
    let (n, d) = g.features.dim();
    let features: Vec<u8> = g.features.iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = g
        .labels
        .iter()
        .flat_map(|&l| i64::from(l).to_le_bytes())
        .collect();
    let mut ids = Vec::new();
    let mut offsets = Vec::with_capacity(8 * (n + 1));
    offsets.extend(0i64.to_le_bytes());
    for id in g.ids {
        ids.extend_from_slice(id.as_bytes());
        offsets.extend(i64::try_from(ids.len()).unwrap_or(i64::MAX).to_le_bytes());
    }
    let tensors = vec![
        ("features", view(Dtype::F32, vec![n, d], &features)?),
        ("labels", view(Dtype::I64, vec![n], &labels)?),
        ("ids", view(Dtype::U8, vec![ids.len()], &ids)?),
        ("id_offsets", view(Dtype::I64, vec![n + 1], &offsets)?),
    ];
    let mut meta: HashMap<String, String> = g
        .metadata
        .iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("format_version".into(), FORMAT_VERSION.into());
    meta.insert("count".into(), n.to_string());
    meta.insert("dim".into(), d.to_string());
    meta.insert("num_classes".into(), g.classes.len().to_string());
    meta.insert("classes".into(), json(&g.classes));
    meta.insert("model_sha256".into(), g.model.to_string());
    meta.insert("preprocess".into(), json(g.preprocess));
    match g.hnsw {
        Some(h) => {
            meta.insert("ann".into(), "hnsw".into());
            meta.insert("hnsw".into(), json(h));
        }
        None => {
            meta.insert("ann".into(), "none".into());
        }
    }
    safetensors::tensor::serialize(tensors, Some(meta))
        .map_err(|e| format!("internal: cannot serialise: {e}"))
}

/// Reads only the header of a gallery file and returns its HNSW entry, if any (used before
/// overwriting a gallery, to delete its old graph file afterwards). Any failure gives `None`.
pub(crate) fn peek_hnsw(path: &Path) -> Option<HnswEntry> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    if len > 100_000_000 {
        return None;
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let meta = v.get("__metadata__")?;
    if meta.get("format")?.as_str()? != FORMAT {
        return None;
    }
    serde_json::from_str(meta.get("hnsw")?.as_str()?).ok()
}

fn tensor<'a>(
    st: &SafeTensors<'a>,
    name: &str,
    dtype: Dtype,
    rank: usize,
    bad: &impl Fn(String) -> GalleryError,
) -> Result<TensorView<'a>, GalleryError> {
    let t = st
        .tensor(name)
        .map_err(|_| bad(format!("tensor `{name}` is missing")))?;
    if t.dtype() != dtype || t.shape().len() != rank {
        return Err(bad(format!(
            "tensor `{name}` is {:?} {:?}, expected {dtype:?} of rank {rank}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t)
}

fn i64s<'a>(t: &TensorView<'a>) -> impl Iterator<Item = i64> + 'a {
    let data: &'a [u8] = t.data();
    data.chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
}

fn meta_usize(
    meta: &HashMap<String, String>,
    key: &str,
    bad: &impl Fn(String) -> GalleryError,
) -> Result<usize, GalleryError> {
    let v = meta
        .get(key)
        .ok_or_else(|| bad(format!("metadata `{key}` is missing")))?;
    v.parse()
        .map_err(|_| bad(format!("metadata `{key}` = {v:?} is not a count")))
}

/// Parses and validates the bytes of a gallery file; errors name `path`.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Contents, GalleryError> {
    let bad = |reason: String| GalleryError::format(path, reason);
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        bad(format!(
            "it is not a valid safetensors container ({e}); the file is truncated, corrupt \
             or of another kind"
        ))
    })?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("unreadable header ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some("patchmix-knn-index") => {
            return Err(bad(
                "it is a kNN feature file from `patchmix embed`; build a gallery with \
                 `patchmix index build`"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(bad(format!(
                "metadata format is {other:?}, expected {FORMAT:?}"
            )));
        }
        None => return Err(bad(format!("no `format` metadata (expected {FORMAT:?})"))),
    }
    match meta.get("format_version") {
        Some(v) if v == FORMAT_VERSION => {}
        Some(v) => {
            return Err(GalleryError::Version {
                path: path.to_path_buf(),
                found: v.clone(),
                expected: FORMAT_VERSION,
            });
        }
        None => return Err(bad("metadata `format_version` is missing".into())),
    }
    let n = meta_usize(&meta, "count", &bad)?;
    let d = meta_usize(&meta, "dim", &bad)?;
    let num_classes = meta_usize(&meta, "num_classes", &bad)?;

    let features = tensor(&st, "features", Dtype::F32, 2, &bad)?;
    if features.shape() != [n, d] {
        return Err(bad(format!(
            "tensor `features` has shape {:?}, the metadata says [{n}, {d}]",
            features.shape()
        )));
    }
    let values: Vec<f32> = features
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let features = Array2::from_shape_vec((n, d), values)
        .map_err(|e| bad(format!("tensor `features`: {e}")))?;

    let labels_t = tensor(&st, "labels", Dtype::I64, 1, &bad)?;
    if labels_t.shape() != [n] {
        return Err(bad(format!(
            "tensor `labels` has shape {:?}, expected [{n}]",
            labels_t.shape()
        )));
    }
    let labels = i64s(&labels_t)
        .enumerate()
        .map(|(i, l)| match u32::try_from(l) {
            Ok(l) if (l as usize) < num_classes => Ok(l),
            _ => Err(bad(format!(
                "label #{i} is {l}, not in 0..{num_classes} (num_classes)"
            ))),
        })
        .collect::<Result<Vec<u32>, _>>()?;

    let id_bytes = tensor(&st, "ids", Dtype::U8, 1, &bad)?;
    let offsets_t = tensor(&st, "id_offsets", Dtype::I64, 1, &bad)?;
    if offsets_t.shape() != [n + 1] {
        return Err(bad(format!(
            "tensor `id_offsets` has shape {:?}, expected [{}]",
            offsets_t.shape(),
            n + 1
        )));
    }
    let offsets: Vec<i64> = i64s(&offsets_t).collect();
    let blob = id_bytes.data();
    let mut ids = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    for (i, w) in offsets.windows(2).enumerate() {
        let range = usize::try_from(w[0]).ok().zip(usize::try_from(w[1]).ok());
        let id = match range {
            Some((a, b)) if a < b && b <= blob.len() => std::str::from_utf8(&blob[a..b])
                .map_err(|_| bad(format!("id #{i} is not UTF-8")))?,
            _ => {
                return Err(bad(format!(
                    "id #{i} has the byte range {}..{} in `ids` of {} bytes",
                    w[0],
                    w[1],
                    blob.len()
                )));
            }
        };
        if !seen.insert(id) {
            return Err(bad(format!("id {id:?} occurs twice")));
        }
        ids.push(id.to_string());
    }
    if offsets.first() != Some(&0)
        || offsets.last().and_then(|&l| usize::try_from(l).ok()) != Some(blob.len())
    {
        return Err(bad(
            "`id_offsets` must start at 0 and end at the length of `ids`".into(),
        ));
    }

    let classes: Vec<String> = meta
        .get("classes")
        .and_then(|c| serde_json::from_str(c).ok())
        .ok_or_else(|| bad("metadata `classes` is missing or not a JSON list of names".into()))?;
    if classes.len() != num_classes {
        return Err(bad(format!(
            "{} class names for num_classes = {num_classes}",
            classes.len()
        )));
    }
    let model = meta
        .get("model_sha256")
        .and_then(|h| ModelFingerprint::from_hex(h))
        .ok_or_else(|| bad("metadata `model_sha256` is missing or not 64 hex digits".into()))?;
    let preprocess: Preprocess = meta
        .get("preprocess")
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| bad("metadata `preprocess` is missing or malformed".into()))?;
    let hnsw = match meta.get("ann").map(String::as_str) {
        Some("none") => None,
        Some("hnsw") => Some(
            meta.get("hnsw")
                .and_then(|h| serde_json::from_str::<HnswEntry>(h).ok())
                .ok_or_else(|| bad("metadata `hnsw` is missing or malformed".into()))?,
        ),
        other => {
            return Err(bad(format!(
                "metadata `ann` is {other:?}, expected \"none\" or \"hnsw\""
            )));
        }
    };
    if let Some(h) = &hnsw
        && (h.file.contains('/') || h.file.contains('\\') || h.file.is_empty())
    {
        return Err(bad(format!(
            "the HNSW graph file name {:?} is not a plain file name",
            h.file
        )));
    }
    let metadata: Metadata = meta
        .into_iter()
        .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
        .collect::<BTreeMap<_, _>>();
    Ok(Contents {
        features,
        labels,
        ids,
        classes,
        model,
        preprocess,
        hnsw,
        metadata,
    })
}
