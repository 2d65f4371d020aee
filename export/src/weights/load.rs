//! Reading safetensors files: float tensors as `f32`, integer tensors as `i64`, metadata.

use std::fs;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors};

use super::{MEMORY_NAME, SafetensorsContents, WeightsError};

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
/// See the [module documentation](super).
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
