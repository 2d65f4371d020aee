//! Encoder weights as safetensors files under **timm's `state_dict` names**.
//!
//! A file written by [`save_safetensors`] loads in PyTorch with
//! `model.load_state_dict(safetensors.torch.load_file(path), strict=False)` on a
//! `timm.create_model("vit_small_patch16_224", num_classes=0)`-style model with only the
//! head missing, and a timm checkpoint converted to safetensors loads here with
//! [`load_safetensors`] followed by [`select_encoder`] and [`check_against`]
//! (or [`load_encoder`], which does all three).
//!
//! # Layout (timm `VisionTransformer`, embedding width `D`, `T` patches, depth `L`)
//!
//! | key | shape |
//! |-----|-------|
//! | `patch_embed.proj.weight` | `[D, 3, p, p]` |
//! | `patch_embed.proj.bias` | `[D]` |
//! | `cls_token` | `[1, 1, D]` |
//! | `pos_embed` | `[1, T + 1, D]` |
//! | `blocks.{i}.norm1.weight` / `.bias` | `[D]` |
//! | `blocks.{i}.attn.qkv.weight` / `.bias` | `[3D, D]` / `[3D]` |
//! | `blocks.{i}.attn.proj.weight` / `.bias` | `[D, D]` / `[D]` |
//! | `blocks.{i}.norm2.weight` / `.bias` | `[D]` |
//! | `blocks.{i}.mlp.fc1.weight` / `.bias` | `[4D, D]` / `[4D]` |
//! | `blocks.{i}.mlp.fc2.weight` / `.bias` | `[D, 4D]` / `[D]` |
//! | `norm.weight` / `.bias` | `[D]` |
//!
//! [`timm_vit_shapes`] builds this list for [`check_against`].
//!
//! # Dtypes
//!
//! Floating-point tensors are held as `f32` ([`StateDict`]). On load, `F16`, `BF16` and `F64`
//! are converted to `f32`. Integer tensors (`num_batches_tracked`, an optimizer's `step`, kNN
//! labels) are held as `i64` ([`IntStateDict`]); on load every integer dtype (`I8`…`I64`,
//! `U8`…`U64`, and `BOOL` as 0/1) is widened to `i64`. Any other dtype (FP8, FP4, complex) is
//! rejected with [`WeightsError::UnsupportedDtype`]. Files are always written as `F32` and
//! `I64`, little-endian, exactly as `safetensors.torch.save_file` would.
//!
//! # Durability
//!
//! Every save goes through [`write_atomic`]: the bytes are written to a temporary file in the
//! destination directory, fsynced, renamed over the destination and the directory is fsynced.
//! A crash or an error leaves either the old file or the new one, never a torn file, and no
//! temporary file is left behind on error.
//!
//! # Examples
//!
//! ```
//! use std::collections::BTreeMap;
//! use ndarray::ArrayD;
//! use patchmix_export::weights::{load_safetensors, save_safetensors, StateDict};
//!
//! let dir = std::env::temp_dir().join(format!("pm-weights-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("encoder.safetensors");
//!
//! let mut sd = StateDict::new();
//! sd.insert("norm.weight".into(), ArrayD::from_elem(vec![4], 1.0f32));
//! let meta = BTreeMap::from([("arch".to_string(), "vit_tiny".to_string())]);
//! save_safetensors(&path, &sd, Some(&meta)).unwrap();
//!
//! let loaded = load_safetensors(&path).unwrap();
//! assert_eq!(loaded.tensors, sd);
//! assert_eq!(loaded.metadata["arch"], "vit_tiny");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

/// Floating-point tensors keyed by timm `state_dict` name, held as `f32`.
pub type StateDict = BTreeMap<String, ArrayD<f32>>;

/// Integer tensors (scalars such as `num_batches_tracked` or an optimizer `step`, label
/// vectors), held as `i64` and written as safetensors `I64` (PyTorch's `torch.long`).
pub type IntStateDict = BTreeMap<String, ArrayD<i64>>;

/// The free-form `__metadata__` string map of a safetensors header.
pub type Metadata = BTreeMap<String, String>;

/// Name used in error messages for buffers that did not come from a file.
const MEMORY_NAME: &str = "<in-memory buffer>";

/// Everything read from one safetensors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafetensorsContents {
    /// Floating-point tensors (any float dtype in the file, converted to `f32`).
    pub tensors: StateDict,
    /// Integer tensors (any integer or bool dtype in the file, widened to `i64`).
    pub ints: IntStateDict,
    /// The header's `__metadata__` map (empty when absent).
    pub metadata: Metadata,
}

/// Which encoder of a two-encoder training checkpoint [`select_encoder`] keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EncoderSource {
    /// The online encoder, `base_encoder.*` (what the paper evaluates). The default.
    #[default]
    Base,
    /// The EMA encoder, `momentum_encoder.*`.
    Momentum,
}

impl EncoderSource {
    /// The key prefix of this encoder in the official (MoCo v3-style) checkpoints.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Base => "base_encoder.",
            Self::Momentum => "momentum_encoder.",
        }
    }
}

/// One tensor whose shape differs from the expected one (see [`check_against`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The `state_dict` key.
    pub name: String,
    /// The shape found.
    pub found: Vec<usize>,
    /// The shape expected.
    pub expected: Vec<usize>,
}

/// All differences between a state dict and an expected layout, reported together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDictDiff {
    /// Expected keys that are absent.
    pub missing: Vec<String>,
    /// Keys present but not expected.
    pub unexpected: Vec<String>,
    /// Keys present with the wrong shape.
    pub mismatched: Vec<ShapeMismatch>,
}

impl StateDictDiff {
    /// `true` when the state dict matches exactly.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for StateDictDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} missing, {} unexpected, {} with the wrong shape",
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len()
        )?;
        for name in &self.missing {
            write!(f, "\n  missing: {name}")?;
        }
        for name in &self.unexpected {
            write!(f, "\n  unexpected: {name}")?;
        }
        for m in &self.mismatched {
            write!(
                f,
                "\n  {}: shape {:?} expected {:?}",
                m.name, m.found, m.expected
            )?;
        }
        Ok(())
    }
}

/// Errors of this module. Every variant caused by a file names that file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// Reading, writing, syncing or renaming a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename into place", ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, bad header JSON, bad offsets...).
    #[error(
        "{} is not a valid safetensors file ({source}); it may be truncated or not a \
         safetensors file at all: re-export it with `safetensors.torch.save_file`",
        path.display()
    )]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What the safetensors parser rejected.
        #[source]
        source: SafeTensorError,
    },
    /// A tensor has a dtype this crate cannot convert to `f32`/`i64`.
    #[error(
        "{}: tensor `{tensor}` has dtype {dtype}, which is not supported; convert it to \
         float32 (or an integer dtype) before saving",
        path.display()
    )]
    UnsupportedDtype {
        /// The file concerned.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The dtype as written in the header.
        dtype: String,
    },
    /// A tensor's contents cannot be represented (a `U64` above `i64::MAX`, a shape ndarray
    /// cannot index).
    #[error("{}: tensor `{tensor}`: {reason}", path.display())]
    BadTensor {
        /// The file concerned.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The data given to a save function cannot be written.
    #[error("cannot save {}: {reason}", path.display())]
    Save {
        /// The destination.
        path: PathBuf,
        /// What is wrong with the input.
        reason: String,
    },
    /// The state dict does not have the expected keys/shapes.
    #[error("{origin} does not match the expected model: {diff}")]
    Mismatch {
        /// Where the state dict came from (a file name, or "state dict").
        origin: String,
        /// All the differences.
        diff: StateDictDiff,
    },
}

impl WeightsError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------------------------

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
    let meta: Option<HashMap<String, String>> =
        metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    safetensors::tensor::serialize(items, meta).map_err(|e| WeightsError::Save {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
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
/// See the [module documentation](self).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &StateDict,
    metadata: Option<&Metadata>,
) -> Result<(), WeightsError> {
    save_safetensors_with_ints(path, tensors, &IntStateDict::new(), metadata)
}

/// Writes float (`F32`) and integer (`I64`) tensors plus optional metadata to `path`,
/// atomically (see [`write_atomic`]).
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
    write_atomic(path, &bytes)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// fsynced and renamed over `path`, then the directory is fsynced (on Unix).
///
/// On error the temporary file is removed and an existing `path` is left untouched.
///
/// # Errors
///
/// [`WeightsError::Io`] naming the file and the step that failed.
///
/// # Examples
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pm-atomic-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("a.bin");
/// patchmix_export::weights::write_atomic(&path, b"new").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"new");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), WeightsError> {
    write_atomic_with(path.as_ref(), |f| f.write_all(bytes))
}

/// [`write_atomic`] with a caller-provided writer (used by tests to inject failures).
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WeightsError> {
    let file_name = path.file_name().ok_or_else(|| {
        WeightsError::io(
            "write",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        )
    })?;
    let dir = parent_dir(path);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| WeightsError::io("create a temporary file for", path, e))?;
        write(&mut file).map_err(|e| WeightsError::io("write", path, e))?;
        file.sync_all()
            .map_err(|e| WeightsError::io("sync", path, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| WeightsError::io("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir).map_err(|e| WeightsError::io("sync the directory of", path, e))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened as files on Windows; rename is as durable as it gets there.
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads a safetensors file: float tensors as `f32`, integer tensors as `i64`, metadata.
///
/// The whole file is read into memory (this crate forbids `unsafe`, so no mmap).
///
/// # Errors
///
/// [`WeightsError::Io`] if the file cannot be read; [`WeightsError::Format`] for a truncated
/// file, a bad header length, bad header JSON, inconsistent offsets; [`WeightsError::UnsupportedDtype`]
/// for FP8/FP4/complex tensors; [`WeightsError::BadTensor`] for `U64` values above `i64::MAX`.
/// All name the file. Never panics on malformed input.
///
/// # Examples
///
/// See the [module documentation](self).
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<SafetensorsContents, WeightsError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| WeightsError::io("read", path, e))?;
    parse(path, &bytes)
}

/// [`load_safetensors`] from bytes already in memory; errors name `<in-memory buffer>`.
///
/// # Errors
///
/// As [`load_safetensors`], minus I/O errors.
///
/// # Examples
///
/// ```
/// use patchmix_export::weights::{load_safetensors_bytes, WeightsError};
/// let err = load_safetensors_bytes(b"\x05\x00").unwrap_err();
/// assert!(matches!(err, WeightsError::Format { .. }));
/// ```
pub fn load_safetensors_bytes(bytes: &[u8]) -> Result<SafetensorsContents, WeightsError> {
    parse(Path::new(MEMORY_NAME), bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<SafetensorsContents, WeightsError> {
    let format_err = |source| WeightsError::Format {
        path: path.to_path_buf(),
        source,
    };
    let (header_len, header) = SafeTensors::read_metadata(bytes).map_err(format_err)?;
    // `read_metadata` has checked that the offsets tile the buffer after the header exactly.
    let body = &bytes[8 + header_len..];
    let mut out = SafetensorsContents {
        metadata: header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        ..SafetensorsContents::default()
    };
    for (name, info) in header.tensors() {
        let name = name.as_str();
        let bad = |reason: String| WeightsError::BadTensor {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            reason,
        };
        let shape = IxDyn(&info.shape);
        let (start, end) = info.data_offsets;
        let data = body
            .get(start..end)
            .ok_or_else(|| bad("data offsets out of range".into()))?;
        let dtype = info.dtype;
        let float: Option<Vec<f32>> = match dtype {
            Dtype::F32 => Some(le_chunks::<4>(data).map(f32::from_le_bytes).collect()),
            Dtype::F64 => Some(
                le_chunks::<8>(data)
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect(),
            ),
            Dtype::F16 => Some(
                le_chunks::<2>(data)
                    .map(|b| half::f16::from_le_bytes(b).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => Some(
                le_chunks::<2>(data)
                    .map(|b| half::bf16::from_le_bytes(b).to_f32())
                    .collect(),
            ),
            _ => None,
        };
        if let Some(values) = float {
            let arr = ArrayD::from_shape_vec(shape, values).map_err(|e| bad(e.to_string()))?;
            out.tensors.insert(name.to_string(), arr);
            continue;
        }
        let ints: Vec<i64> = match dtype {
            Dtype::I64 => le_chunks::<8>(data).map(i64::from_le_bytes).collect(),
            Dtype::I32 => le_chunks::<4>(data)
                .map(|b| i64::from(i32::from_le_bytes(b)))
                .collect(),
            Dtype::I16 => le_chunks::<2>(data)
                .map(|b| i64::from(i16::from_le_bytes(b)))
                .collect(),
            Dtype::I8 => data.iter().map(|&b| i64::from(b as i8)).collect(),
            Dtype::U8 | Dtype::BOOL => data.iter().map(|&b| i64::from(b)).collect(),
            Dtype::U16 => le_chunks::<2>(data)
                .map(|b| i64::from(u16::from_le_bytes(b)))
                .collect(),
            Dtype::U32 => le_chunks::<4>(data)
                .map(|b| i64::from(u32::from_le_bytes(b)))
                .collect(),
            Dtype::U64 => le_chunks::<8>(data)
                .map(|b| i64::try_from(u64::from_le_bytes(b)))
                .collect::<Result<_, _>>()
                .map_err(|_| bad("a U64 value exceeds i64::MAX".to_string()))?,
            other => {
                return Err(WeightsError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let arr = ArrayD::from_shape_vec(shape, ints).map_err(|e| bad(e.to_string()))?;
        out.ints.insert(name.to_string(), arr);
    }
    Ok(out)
}

/// Little-endian fixed-size chunks (the parser has already checked the byte length).
fn le_chunks<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

// ---------------------------------------------------------------------------------------------
// Selecting and checking
// ---------------------------------------------------------------------------------------------

/// Extracts the encoder from a (possibly training) checkpoint's state dict.
///
/// Steps, in order:
/// 1. strip every leading `module.` (from `DistributedDataParallel`);
/// 2. if any key starts with `which.prefix()` (`base_encoder.` by default, or
///    `momentum_encoder.`), keep only those keys, with the prefix removed — this drops the
///    other encoder, `predictor.*`, optimizer entries and the like; otherwise (a bare timm
///    checkpoint) keep every key as it is;
/// 3. drop classifier/projector keys: `head.*` and `fc.*` (but not `fc_norm.*`).
///
/// Generic over the value type, so it works on a [`StateDict`] and an [`IntStateDict`] alike.
/// If `which` is not present but the other encoder is, its keys are kept under their
/// prefixed names, so [`check_against`] reports them as unexpected.
///
/// # Examples
///
/// ```
/// use patchmix_export::weights::{select_encoder, EncoderSource};
/// use std::collections::BTreeMap;
///
/// let sd = BTreeMap::from([
///     ("module.base_encoder.norm.weight".to_string(), 1),
///     ("module.base_encoder.head.0.weight".to_string(), 2),
///     ("module.momentum_encoder.norm.weight".to_string(), 3),
///     ("module.predictor.0.weight".to_string(), 4),
/// ]);
/// let enc = select_encoder(sd.clone(), EncoderSource::Base);
/// assert_eq!(enc, BTreeMap::from([("norm.weight".to_string(), 1)]));
/// let ema = select_encoder(sd, EncoderSource::Momentum);
/// assert_eq!(ema, BTreeMap::from([("norm.weight".to_string(), 3)]));
/// ```
#[must_use]
pub fn select_encoder<V>(sd: BTreeMap<String, V>, which: EncoderSource) -> BTreeMap<String, V> {
    let stripped = sd.into_iter().map(|(k, v)| {
        let mut key = k.as_str();
        while let Some(rest) = key.strip_prefix("module.") {
            key = rest;
        }
        (key.to_string(), v)
    });
    let prefix = which.prefix();
    let stripped: Vec<(String, V)> = stripped.collect();
    let has_prefix = stripped.iter().any(|(k, _)| k.starts_with(prefix));
    stripped
        .into_iter()
        .filter_map(|(k, v)| {
            if has_prefix {
                k.strip_prefix(prefix).map(|rest| (rest.to_string(), v))
            } else {
                Some((k, v))
            }
        })
        .filter(|(k, _)| !(k.starts_with("head.") || k.starts_with("fc.")))
        .collect()
}

/// Compares a state dict with an expected list of `(name, shape)`.
///
/// # Errors
///
/// [`WeightsError::Mismatch`] (origin `"state dict"`) listing every missing key, every
/// unexpected key and every shape mismatch at once, e.g.
/// `blocks.3.attn.qkv.weight: shape [576, 192] expected [384, 192]`.
///
/// # Examples
///
/// ```
/// use ndarray::ArrayD;
/// use patchmix_export::weights::{check_against, StateDict};
///
/// let sd = StateDict::from([("norm.weight".to_string(), ArrayD::zeros(vec![8]))]);
/// check_against(&sd, &[("norm.weight".to_string(), vec![8])]).unwrap();
/// let err = check_against(&sd, &[("norm.weight".to_string(), vec![4])]).unwrap_err();
/// assert!(err.to_string().contains("norm.weight: shape [8] expected [4]"));
/// ```
pub fn check_against(
    sd: &StateDict,
    expected: &[(String, Vec<usize>)],
) -> Result<(), WeightsError> {
    let diff = diff_against(sd, expected);
    if diff.is_empty() {
        Ok(())
    } else {
        Err(WeightsError::Mismatch {
            origin: "state dict".to_string(),
            diff,
        })
    }
}

/// The differences [`check_against`] reports, without making an error of them.
///
/// `missing` and `mismatched` follow the order of `expected`; `unexpected` is sorted.
#[must_use]
pub fn diff_against(sd: &StateDict, expected: &[(String, Vec<usize>)]) -> StateDictDiff {
    let mut diff = StateDictDiff::default();
    for (name, shape) in expected {
        match sd.get(name) {
            None => diff.missing.push(name.clone()),
            Some(a) if a.shape() != shape.as_slice() => diff.mismatched.push(ShapeMismatch {
                name: name.clone(),
                found: a.shape().to_vec(),
                expected: shape.clone(),
            }),
            Some(_) => {}
        }
    }
    let wanted: std::collections::BTreeSet<&str> =
        expected.iter().map(|(n, _)| n.as_str()).collect();
    diff.unexpected = sd
        .keys()
        .filter(|k| !wanted.contains(k.as_str()))
        .cloned()
        .collect();
    diff
}

/// The timm `VisionTransformer` encoder layout (no head) for [`check_against`]:
/// `embed_dim` `D`, `depth` blocks, square `patch_size` on 3-channel input, `num_patches`
/// patch tokens (e.g. 196 for 224/16), MLP ratio 4, `class_token=True`, qkv bias.
///
/// # Examples
///
/// ```
/// let shapes = patchmix_export::weights::timm_vit_shapes(192, 12, 16, 196);
/// assert_eq!(shapes.len(), 4 + 12 * 12 + 2);
/// assert!(shapes.contains(&("blocks.3.attn.qkv.weight".to_string(), vec![576, 192])));
/// ```
#[must_use]
pub fn timm_vit_shapes(
    embed_dim: usize,
    depth: usize,
    patch_size: usize,
    num_patches: usize,
) -> Vec<(String, Vec<usize>)> {
    let d = embed_dim;
    let h = 4 * d;
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("cls_token".into(), vec![1, 1, d]),
        ("pos_embed".into(), vec![1, num_patches + 1, d]),
        (
            "patch_embed.proj.weight".into(),
            vec![d, 3, patch_size, patch_size],
        ),
        ("patch_embed.proj.bias".into(), vec![d]),
    ];
    for i in 0..depth {
        let p = format!("blocks.{i}.");
        for (suffix, shape) in [
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("mlp.fc1.weight", vec![h, d]),
            ("mlp.fc1.bias", vec![h]),
            ("mlp.fc2.weight", vec![d, h]),
            ("mlp.fc2.bias", vec![d]),
        ] {
            v.push((format!("{p}{suffix}"), shape));
        }
    }
    v.push(("norm.weight".into(), vec![d]));
    v.push(("norm.bias".into(), vec![d]));
    v
}

/// Loads encoder weights from a safetensors file: [`load_safetensors`], then
/// [`select_encoder`], then [`check_against`] `expected`, with errors naming `path`.
///
/// Integer tensors and metadata are ignored. Pass `expected` from [`timm_vit_shapes`].
///
/// # Errors
///
/// Any [`load_safetensors`] error, or [`WeightsError::Mismatch`] naming the file.
///
/// # Examples
///
/// ```no_run
/// use patchmix_export::weights::{load_encoder, timm_vit_shapes, EncoderSource};
/// let sd = load_encoder("checkpoint.safetensors", EncoderSource::Base, &timm_vit_shapes(192, 12, 16, 196))?;
/// # Ok::<(), patchmix_export::weights::WeightsError>(())
/// ```
pub fn load_encoder(
    path: impl AsRef<Path>,
    which: EncoderSource,
    expected: &[(String, Vec<usize>)],
) -> Result<StateDict, WeightsError> {
    let path = path.as_ref();
    let sd = select_encoder(load_safetensors(path)?.tensors, which);
    let diff = diff_against(&sd, expected);
    if diff.is_empty() {
        Ok(sd)
    } else {
        Err(WeightsError::Mismatch {
            origin: path.display().to_string(),
            diff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pm-weights-unit-{tag}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn failed_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tmpdir("fail");
        let path = dir.join("w.safetensors");
        fs::write(&path, b"old contents").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cannot write") && msg.contains("w.safetensors"),
            "{msg}"
        );
        assert!(msg.contains("disk on fire"), "{msg}");
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        assert_eq!(entries(&dir), vec!["w.safetensors".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn successful_write_replaces_and_leaves_no_temp() {
        let dir = tmpdir("ok");
        let path = dir.join("w.bin");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        assert_eq!(entries(&dir), vec!["w.bin".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parent_of_bare_file_name_is_cwd() {
        assert_eq!(parent_dir(Path::new("w.safetensors")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("a/w.safetensors")), PathBuf::from("a"));
    }
}
