//! Serialising state dicts to safetensors bytes and writing them atomically.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use ndarray::ArrayD;
use safetensors::tensor::{Dtype, View};

use super::{IntStateDict, MEMORY_NAME, Metadata, StateDict, WeightsError};
use crate::atomic::write_atomic_with;

/// A tensor to serialise; its little-endian bytes are produced lazily, one tensor at a time,
/// so saving needs the arrays plus the output buffer and not a second full copy.
enum OutTensor<'a> {
    F32(&'a ArrayD<f32>),
    I64(&'a ArrayD<i64>),
}

impl View for OutTensor<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            Self::F32(_) => Dtype::F32,
            Self::I64(_) => Dtype::I64,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Self::F32(a) => a.shape(),
            Self::I64(a) => a.shape(),
        }
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // `iter` walks in logical (row-major) order whatever the memory layout.
        match self {
            Self::F32(a) => Cow::Owned(a.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Self::I64(a) => Cow::Owned(a.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Self::F32(a) => a.len() * 4,
            Self::I64(a) => a.len() * 8,
        }
    }
}

/// Serialises float and integer tensors (and optional metadata) to safetensors bytes.
///
/// Floats are written as `F32`, integers as `I64`. Tensors are ordered as the `safetensors`
/// crate orders them (by dtype alignment, then name), like `safetensors.torch.save_file`.
///
/// # Errors
///
/// [`WeightsError::Save`] (naming `<in-memory buffer>`) if a name is present in both maps or
/// the header would exceed the format's 100 MB limit.
///
/// # Examples
///
/// ```
/// use ndarray::ArrayD;
/// use patchmix_export::weights::{load_safetensors_bytes, serialize_safetensors, IntStateDict, StateDict};
///
/// let sd = StateDict::from([("cls_token".to_string(), ArrayD::zeros(vec![1, 1, 8]))]);
/// let ints = IntStateDict::from([("step".to_string(), ArrayD::from_elem(vec![], 7i64))]);
/// let bytes = serialize_safetensors(&sd, &ints, None).unwrap();
/// let back = load_safetensors_bytes(&bytes).unwrap();
/// assert_eq!(back.ints["step"][[]], 7);
/// ```
pub fn serialize_safetensors(
    tensors: &StateDict,
    ints: &IntStateDict,
    metadata: Option<&Metadata>,
) -> Result<Vec<u8>, WeightsError> {
    serialize_named(Path::new(MEMORY_NAME), tensors, ints, metadata)
}

/// A safetensors file without tensors. `safetensors` 0.8 writes `{},"__metadata__":{…}}` (not
/// JSON) for an empty tensor list with metadata, so this header is written here: the metadata
/// map (if any) as JSON, space-padded to 8 bytes, after its little-endian length.
fn empty_file_bytes(metadata: Option<&Metadata>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        let map = m
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(map));
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

fn serialize_named(
    path: &Path,
    tensors: &StateDict,
    ints: &IntStateDict,
    metadata: Option<&Metadata>,
) -> Result<Vec<u8>, WeightsError> {
    if let Some(dup) = ints.keys().find(|k| tensors.contains_key(*k)) {
        return Err(WeightsError::Save {
            path: path.to_path_buf(),
            reason: format!("tensor `{dup}` is present both as a float and as an integer tensor"),
        });
    }
    if tensors.is_empty() && ints.is_empty() {
        return Ok(empty_file_bytes(metadata));
    }
    let items = tensors
        .iter()
        .map(|(k, v)| (k.as_str(), OutTensor::F32(v)))
        .chain(ints.iter().map(|(k, v)| (k.as_str(), OutTensor::I64(v))));
    let bytes =
        safetensors::tensor::serialize(items, None::<HashMap<String, String>>).map_err(|e| {
            WeightsError::Save {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
    match metadata.filter(|m| !m.is_empty()) {
        Some(m) => with_metadata(path, bytes, m),
        None => Ok(bytes),
    }
}

/// Puts `metadata` into the header of serialized safetensors `bytes`, in sorted key order.
///
/// The safetensors crate takes metadata as a `HashMap` and writes it in that map's iteration
/// order, which changes from process to process: two runs saving the same tensors and metadata
/// would write different bytes (so a resumed run's files would not equal an uninterrupted
/// run's). The header is rewritten here with every object's keys sorted (serde_json's map),
/// padded with spaces to a multiple of 8 bytes as the format asks; the data offsets are relative
/// to the end of the header, so the tensor bytes are kept as they are.
fn with_metadata(
    path: &Path,
    bytes: Vec<u8>,
    metadata: &Metadata,
) -> Result<Vec<u8>, WeightsError> {
    let bad = |reason: String| WeightsError::Save {
        path: path.to_path_buf(),
        reason,
    };
    let len = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| bad("serialized safetensors shorter than its header length".into()))?
        as usize;
    let end = 8usize
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("serialized safetensors shorter than its header".into()))?;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(format!("header: {e}")))?;
    let map = metadata
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    header.insert("__metadata__".into(), serde_json::Value::Object(map));
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
}

/// Writes a float state dict to `path` as safetensors (`F32`), atomically.
///
/// Equivalent to [`save_safetensors_with_ints`] with no integer tensors.
///
/// # Errors
///
/// [`WeightsError::Io`] if the file cannot be written, synced or renamed into place (the
/// previous file, if any, is then left untouched); [`WeightsError::Save`] if the header
/// would be too large.
///
/// # Examples
///
/// See the [module documentation](super).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &StateDict,
    metadata: Option<&Metadata>,
) -> Result<(), WeightsError> {
    save_safetensors_with_ints(path, tensors, &IntStateDict::new(), metadata)
}

/// Writes float (`F32`) and integer (`I64`) tensors plus optional metadata to `path`,
/// atomically (see [`crate::atomic::write_atomic`]).
///
/// # Errors
///
/// [`WeightsError::Save`] if a name is in both maps; otherwise as [`save_safetensors`].
///
/// # Examples
///
/// ```
/// use ndarray::ArrayD;
/// use patchmix_export::weights::{load_safetensors, save_safetensors_with_ints, IntStateDict, StateDict};
///
/// let dir = std::env::temp_dir().join(format!("pm-weights-doc2-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("ckpt.safetensors");
/// let sd = StateDict::from([("norm.bias".to_string(), ArrayD::zeros(vec![4]))]);
/// let ints = IntStateDict::from([("opt.step".to_string(), ArrayD::from_elem(vec![], 1000i64))]);
/// save_safetensors_with_ints(&path, &sd, &ints, None).unwrap();
/// assert_eq!(load_safetensors(&path).unwrap().ints["opt.step"][[]], 1000);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn save_safetensors_with_ints(
    path: impl AsRef<Path>,
    tensors: &StateDict,
    ints: &IntStateDict,
    metadata: Option<&Metadata>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let bytes = serialize_named(path, tensors, ints, metadata)?;
    write_atomic_with(path, |f| f.write_all(&bytes))?;
    Ok(())
}

#[cfg(test)]
mod metadata_tests {
    use super::*;
    use crate::weights::load_safetensors;
    use ndarray::ArrayD;

    /// The same tensors and metadata give the same bytes on every save (a `HashMap` in the
    /// safetensors crate's path used to order the metadata differently each time), and the
    /// metadata reads back.
    #[test]
    fn saving_with_metadata_is_byte_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDict::from([
            ("b".to_string(), ArrayD::from_elem(vec![3], 1.5f32)),
            (
                "a.weight".to_string(),
                ArrayD::from_elem(vec![2, 2], -2.0f32),
            ),
        ]);
        let meta: Metadata = (0..6)
            .map(|i| (format!("key{i}"), format!("value {i}")))
            .collect();
        let bytes: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("{i}.safetensors"));
                save_safetensors(&p, &sd, Some(&meta)).unwrap();
                std::fs::read(&p).unwrap()
            })
            .collect();
        assert!(bytes.iter().all(|b| *b == bytes[0]));
        let header_len = u64::from_le_bytes(bytes[0][..8].try_into().unwrap());
        assert_eq!(header_len % 8, 0);
        let back = load_safetensors(dir.path().join("0.safetensors")).unwrap();
        assert_eq!(back.tensors, sd);
        assert_eq!(back.metadata, meta);
    }
}
