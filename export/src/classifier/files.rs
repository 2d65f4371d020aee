//! Writing `classifier.onnx` and `classifier.safetensors` into a folder.

use std::path::{Path, PathBuf};

use super::{ClassifierError, ClassifierHead, classifier_graph};
use crate::onnx::to_model_proto;
use crate::vit::VitConfig;
use crate::weights::{Metadata, StateDict, save_safetensors};

/// File name of the exported ONNX classifier.
pub const CLASSIFIER_ONNX: &str = "classifier.onnx";
/// File name of the exported timm-named weights (encoder + head).
pub const CLASSIFIER_SAFETENSORS: &str = "classifier.safetensors";
/// Metadata key (in both files) holding the class names as a JSON list of strings.
pub const CLASSES_KEY: &str = "patchmix.classes";
/// Metadata key (in both files) holding the architecture as JSON
/// (`{"img","patch","dim","depth","heads"}`).
pub const VIT_KEY: &str = "patchmix.vit";

/// The two files [`export_classifier`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierFiles {
    /// `out_dir/classifier.onnx`.
    pub onnx: PathBuf,
    /// `out_dir/classifier.safetensors`.
    pub safetensors: PathBuf,
}

/// The timm state dict of encoder + head: the encoder's keys plus `head.weight`/`head.bias`,
/// what `VisionTransformer(num_classes=classes, global_pool='token')` loads with
/// `strict=True`.
#[must_use]
pub fn classifier_state_dict(encoder: &StateDict, head: &ClassifierHead) -> StateDict {
    let mut sd = encoder.clone();
    sd.extend(head.to_state_dict());
    sd
}

/// Writes the classifier of `encoder` (timm names, matching `cfg`) and `head` into `out_dir`
/// (created if missing): `classifier.onnx` (input `images` [batch, 3, H, W], output `logits`
/// [batch, classes]) and `classifier.safetensors` (encoder + `head.*`). Each file is written
/// atomically. `classes` names the classes in label order (e.g. the dataset's class names) and
/// is stored in both files' metadata under [`CLASSES_KEY`], with the architecture under
/// [`VIT_KEY`].
///
/// # Errors
/// [`ClassifierError::Head`] when `classes` does not have one name per head row, the head's
/// width is not `cfg.dim`, or the encoder weights do not match `cfg`;
/// [`ClassifierError::Io`]/[`ClassifierError::Weights`] when a file cannot be written.
///
/// # Examples
/// ```
/// use ndarray::{Array1, Array2};
/// use patchmix_export::classifier::{ClassifierHead, export_classifier};
/// use patchmix_export::vit::{VitConfig, init_weights};
/// let dir = std::env::temp_dir().join(format!("pm-clf-doc-{}", std::process::id()));
/// let cfg = VitConfig { img: 8, patch: 4, dim: 8, depth: 1, heads: 2 };
/// let head = ClassifierHead::new(Array2::zeros((2, 8)), Array1::zeros(2))?;
/// let classes = vec!["cat".to_string(), "dog".to_string()];
/// let files = export_classifier(&init_weights(&cfg, 0), &head, &cfg, &classes, &dir)?;
/// assert!(files.onnx.is_file() && files.safetensors.is_file());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), patchmix_export::classifier::ClassifierError>(())
/// ```
pub fn export_classifier(
    encoder: &StateDict,
    head: &ClassifierHead,
    cfg: &VitConfig,
    classes: &[String],
    out_dir: &Path,
) -> Result<ClassifierFiles, ClassifierError> {
    if classes.len() != head.classes() {
        return Err(ClassifierError::Head(format!(
            "{} class names for a head of {} classes",
            classes.len(),
            head.classes()
        )));
    }
    let graph = classifier_graph(cfg, encoder, head)?;
    let classes_json = serde_json::to_string(classes).expect("strings serialise");
    let vit_json = serde_json::to_string(cfg).expect("a config serialises");
    std::fs::create_dir_all(out_dir).map_err(|source| ClassifierError::Io {
        action: "create the folder",
        path: out_dir.to_path_buf(),
        source,
    })?;

    let safetensors = out_dir.join(CLASSIFIER_SAFETENSORS);
    let meta = Metadata::from([
        (CLASSES_KEY.to_string(), classes_json.clone()),
        (VIT_KEY.to_string(), vit_json.clone()),
    ]);
    save_safetensors(
        &safetensors,
        &classifier_state_dict(encoder, head),
        Some(&meta),
    )?;

    let onnx = out_dir.join(CLASSIFIER_ONNX);
    let mut model = to_model_proto(&graph);
    for (key, value) in [(CLASSES_KEY, classes_json), (VIT_KEY, vit_json)] {
        model
            .metadata_props
            .push(tract_onnx::pb::StringStringEntryProto {
                key: key.to_string(),
                value,
            });
    }
    let bytes = prost::Message::encode_to_vec(&model);
    crate::atomic::write_atomic(&onnx, &bytes).map_err(|source| ClassifierError::Io {
        action: "write",
        path: onnx.clone(),
        source,
    })?;
    Ok(ClassifierFiles { onnx, safetensors })
}
