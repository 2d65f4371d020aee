//! The initial state of a fine-tuning run: the pretrained encoder, a fresh head, zero AdamW
//! moments and the model EMA equal to the model.

use super::super::init::to_named;
use super::super::scaler::LossScaler;
use super::super::state::HostState;
use super::config::FinetuneStepConfig;
use super::layout::{FinetuneLayout, HEAD_BIAS, HEAD_WEIGHT};
use ndarray::ArrayD;
use patchmix_export::weights::{StateDict, StateDictDiff, diff_against};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Encoder weights that do not fit the fine-tune configuration's encoder.
#[derive(Clone, Debug, thiserror::Error)]
#[error("encoder weights do not fit the {what} encoder: {}", one_line(.diff))]
pub struct EncoderWeightsError {
    /// The configured architecture, in words.
    pub what: String,
    /// What differs.
    pub diff: StateDictDiff,
}

/// The differences in one line: the counts, then the first tensor of each kind.
fn one_line(d: &StateDictDiff) -> String {
    let mut parts = vec![format!(
        "{} missing, {} unexpected, {} with the wrong shape",
        d.missing.len(),
        d.unexpected.len(),
        d.mismatched.len()
    )];
    if let Some(m) = d.missing.first() {
        parts.push(format!("missing `{m}`"));
    }
    if let Some(u) = d.unexpected.first() {
        parts.push(format!("unexpected `{u}`"));
    }
    if let Some(m) = d.mismatched.first() {
        parts.push(format!(
            "`{}` has shape {:?}, expected {:?}",
            m.name, m.found, m.expected
        ));
    }
    parts.join("; ")
}

/// A fresh `Linear(D, classes)` head as the original makes it (`nn.Linear`'s default init:
/// weight and bias uniform in ±1/√D), drawn from `seed`: (`head.weight` [classes, D],
/// `head.bias` [classes]).
///
/// # Examples
/// ```
/// let (w, b) = patchmix_train::step::finetune::head_init(16, 10, 0);
/// assert_eq!((w.shape(), b.shape()), (&[10, 16][..], &[10][..]));
/// assert!(w.iter().chain(b.iter()).all(|v| v.abs() <= 0.25));
/// ```
pub fn head_init(dim: usize, classes: usize, seed: u64) -> (ArrayD<f32>, ArrayD<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6865_6164_5f69_6e69);
    let bound = 1.0 / (dim as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect()
    };
    let w = ArrayD::from_shape_vec(vec![classes, dim], draw(classes * dim)).expect("shape");
    let b = ArrayD::from_shape_vec(vec![classes], draw(classes)).expect("shape");
    (w, b)
}

/// The initial state of a fine-tuning run: `encoder` (timm names, exactly the configured
/// encoder's tensors) with a [`head_init`] head, AdamW moments 0, and the model EMA (in
/// [`HostState::momentum`]) a copy of the parameters.
///
/// # Errors
/// [`EncoderWeightsError`] listing missing, unexpected (a `head.*` included) and mis-shaped
/// tensors.
///
/// # Examples
/// ```
/// use patchmix_export::vit::init_weights;
/// use patchmix_train::step::finetune::{finetune_state, FinetuneStepConfig, FinetuneLayout};
/// let cfg = FinetuneStepConfig::tiny(10);
/// let layout = FinetuneLayout::new(&cfg);
/// let s = finetune_state(&cfg, &layout, &init_weights(&cfg.vit, 0), 0)?;
/// assert_eq!(s.momentum, s.params);
/// # Ok::<(), patchmix_train::step::finetune::EncoderWeightsError>(())
/// ```
pub fn finetune_state(
    cfg: &FinetuneStepConfig,
    layout: &FinetuneLayout,
    encoder: &StateDict,
    seed: u64,
) -> Result<HostState, EncoderWeightsError> {
    let diff = diff_against(encoder, &cfg.vit.param_specs());
    if !diff.is_empty() {
        let v = &cfg.vit;
        return Err(EncoderWeightsError {
            what: format!(
                "ViT (dim {}, depth {}, patch {}, img {})",
                v.dim, v.depth, v.patch, v.img
            ),
            diff,
        });
    }
    let (w, b) = head_init(cfg.vit.dim, cfg.classes, seed);
    let mut named: BTreeMap<&str, &ArrayD<f32>> =
        encoder.iter().map(|(k, v)| (k.as_str(), v)).collect();
    named.insert(HEAD_WEIGHT, &w);
    named.insert(HEAD_BIAS, &b);
    let mut params = vec![0.0f32; layout.params.len()];
    for s in &layout.params.slots {
        let a = named[s.name.as_str()];
        for (d, v) in params[s.offset..s.offset + s.len].iter_mut().zip(a.iter()) {
            *d = *v;
        }
    }
    Ok(HostState {
        exp_avg: vec![0.0; params.len()],
        exp_avg_sq: vec![0.0; params.len()],
        momentum: params.clone(),
        params,
        buffers: Vec::new(),
        step: 0,
        scaler: cfg.scales_loss().then(LossScaler::default),
    })
}

/// The model (or, from [`HostState::momentum`], the EMA) as timm-named tensors, head
/// included: what loads into timm's `VisionTransformer(num_classes=classes)` with
/// `strict=True`.
pub fn classifier_weights(layout: &FinetuneLayout, flat: &[f32]) -> StateDict {
    to_named(&layout.params, flat, "")
}
