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
//! [`timm_vit_shapes`] builds this list for [`check_against`] (it is
//! [`crate::vit::timm_vit_shapes`], re-exported here).
//!
//! # Modules
//!
//! * `load`: reading safetensors files and buffers, converting every dtype to `f32`/`i64`;
//! * `save`: serialising state dicts and writing them atomically;
//! * `select`: picking the encoder out of a training checkpoint ([`select_encoder`]);
//! * `check`: comparing a state dict with an expected layout ([`check_against`],
//!   [`load_encoder`]);
//! * `error`: [`WeightsError`].
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
//! Every save goes through [`crate::atomic::write_atomic`]'s implementation: the bytes are
//! written to a temporary file in the destination directory, fsynced, renamed over the
//! destination and the directory is fsynced.
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

mod check;
mod error;
mod load;
mod save;
mod select;

use std::collections::BTreeMap;

use ndarray::ArrayD;

pub use crate::vit::timm_vit_shapes;
pub use check::{ShapeMismatch, StateDictDiff, check_against, diff_against, load_encoder};
pub use error::WeightsError;
pub use load::{load_safetensors, load_safetensors_bytes};
pub use save::{save_safetensors, save_safetensors_with_ints, serialize_safetensors};
pub use select::{EncoderSource, select_encoder};

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
