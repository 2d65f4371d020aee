//! The classifier's inference graph: the encoder's CLS features, then the head's `Gemm`.

use super::{ClassifierError, ClassifierHead};
use crate::graph::{DType, Dim, Graph, Shape};
use crate::vit::{ForwardOptions, VitConfig, add_initializers, encoder_forward};
use crate::weights::{StateDict, diff_against};

/// The inference graph of encoder + head: input `images` [batch, 3, H, W] (dynamic batch),
/// output `logits` [batch, classes] = `features · head.weightᵀ + head.bias`, where `features`
/// is the encoder's CLS token after its final LayerNorm.
///
/// # Errors
/// [`ClassifierError::Head`] when the head's width is not the encoder's, or the encoder
/// weights do not match `cfg` (every difference listed); [`ClassifierError::Graph`] for an
/// invalid configuration.
///
/// # Examples
/// ```
/// use ndarray::{Array1, Array2};
/// use patchmix_export::classifier::{ClassifierHead, classifier_graph};
/// use patchmix_export::vit::{VitConfig, init_weights};
/// let cfg = VitConfig { img: 8, patch: 4, dim: 8, depth: 1, heads: 2 };
/// let head = ClassifierHead::new(Array2::zeros((3, 8)), Array1::zeros(3))?;
/// let g = classifier_graph(&cfg, &init_weights(&cfg, 0), &head)?;
/// assert_eq!(g.value(g.outputs[0]).name, "logits");
/// # Ok::<(), patchmix_export::classifier::ClassifierError>(())
/// ```
pub fn classifier_graph(
    cfg: &VitConfig,
    encoder: &StateDict,
    head: &ClassifierHead,
) -> Result<Graph, ClassifierError> {
    cfg.validate()
        .map_err(|e| ClassifierError::Head(format!("architecture: {e}")))?;
    if head.dim() != cfg.dim {
        return Err(ClassifierError::Head(format!(
            "{} is [{}, {}] but the encoder width D is {}",
            super::HEAD_WEIGHT,
            head.classes(),
            head.dim(),
            cfg.dim
        )));
    }
    let diff = diff_against(encoder, &cfg.param_specs());
    if !diff.is_empty() {
        return Err(ClassifierError::Head(format!(
            "the encoder weights do not match the architecture: {}",
            diff.to_string().replace('\n', ";")
        )));
    }
    let mut g = Graph::new("patchmix_vit_classifier");
    let shape = Shape(vec![Dim::BATCH, 3.into(), cfg.img.into(), cfg.img.into()]);
    let x = g.input("images", DType::F32, shape);
    let mut params = add_initializers(&mut g, encoder);
    params.extend(add_initializers(&mut g, &head.to_state_dict()));
    let out = encoder_forward(&mut g, cfg, &params, x, &ForwardOptions::default())?;
    let logits = g.scoped("head", |g| {
        g.linear(
            out.cls,
            params[super::HEAD_WEIGHT],
            Some(params[super::HEAD_BIAS]),
        )
    })?;
    g.output(logits, "logits");
    Ok(g)
}
