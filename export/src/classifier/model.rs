//! What an ONNX classifier declares: its image side, its class count and (when it was
//! written by [`export_classifier`](super::export_classifier)) its class names, read from the
//! model proto before any runtime loads it, so that a wrong model is a clear error.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;

use super::{CLASSES_KEY, ClassifierError};

/// The declared interface of an ONNX classifier: input `[batch, 3, img, img]`, first output
/// `[batch, classes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierModel {
    /// The model file.
    pub path: PathBuf,
    /// Input image side.
    pub img: usize,
    /// Number of classes (the first output's second dimension).
    pub classes: usize,
    /// The first output's name.
    pub output: String,
    /// The class names of the metadata ([`CLASSES_KEY`]), when present.
    pub class_names: Option<Vec<String>>,
}

fn fixed_dims(v: &pb::ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    Some(
        t.shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) => Some(n),
                _ => None,
            })
            .collect(),
    )
}

fn show(dims: &[Option<i64>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |n| n.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

impl ClassifierModel {
    /// Reads and checks the ONNX file at `path`.
    ///
    /// # Errors
    /// [`ClassifierError::Io`] when it cannot be read; otherwise as [`Self::from_bytes`].
    pub fn open(path: &Path) -> Result<Self, ClassifierError> {
        let bytes = std::fs::read(path).map_err(|source| ClassifierError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Checks the ONNX model in `bytes` (errors name `path`).
    ///
    /// # Errors
    /// [`ClassifierError::Model`] when the bytes are not an ONNX model, the input is not
    /// `[batch, 3, H, H]` with a fixed H, the first output is not `[batch, classes]` with a
    /// fixed class count, or the metadata's class list is not JSON or does not have one name
    /// per class.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use patchmix_export::classifier::ClassifierModel;
    /// let err = ClassifierModel::from_bytes(b"not onnx", Path::new("m.onnx")).unwrap_err();
    /// assert!(err.to_string().starts_with("m.onnx: not an ONNX model"));
    /// ```
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ClassifierError> {
        let bad = |reason: String| ClassifierError::Model {
            path: path.to_path_buf(),
            reason,
        };
        let model =
            pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model ({e})")))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| bad("not an ONNX model (no graph)".into()))?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !initializers.contains(&i.name.as_str()))
            .ok_or_else(|| bad("the model has no input".into()))?;
        let dims = fixed_dims(input).unwrap_or_default();
        let img = match dims.as_slice() {
            [_, Some(3), Some(h), Some(w)] if h == w && *h > 0 => *h as usize,
            _ => {
                return Err(bad(format!(
                    "input `{}` is {}, expected [batch, 3, H, H] with a fixed H",
                    input.name,
                    show(&dims)
                )));
            }
        };
        let output = graph
            .output
            .first()
            .ok_or_else(|| bad("the model has no output".into()))?;
        let dims = fixed_dims(output).unwrap_or_default();
        let classes = match dims.as_slice() {
            [_, Some(c)] if *c > 0 => *c as usize,
            _ => {
                return Err(bad(format!(
                    "output `{}` is {}, expected logits [batch, classes] with a fixed class count; \
                     is this an encoder rather than a classifier?",
                    output.name,
                    show(&dims)
                )));
            }
        };
        let class_names = match model.metadata_props.iter().find(|p| p.key == CLASSES_KEY) {
            None => None,
            Some(p) => {
                let names: Vec<String> = serde_json::from_str(&p.value).map_err(|e| {
                    bad(format!(
                        "metadata `{CLASSES_KEY}` is not a JSON list of strings: {e}"
                    ))
                })?;
                if names.len() != classes {
                    return Err(bad(format!(
                        "metadata `{CLASSES_KEY}` names {} classes but the output has {classes}",
                        names.len()
                    )));
                }
                Some(names)
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            img,
            classes,
            output: output.name.clone(),
            class_names,
        })
    }
}
