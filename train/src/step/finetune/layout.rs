//! The flat parameter layout of a fine-tuning step and timm's layer-decay parameter groups.
//!
//! The encoder (timm names) and the head (`head.weight`, `head.bias`) live in one f32 vector,
//! weight-decayed tensors first, so weight decay scales a prefix as in pretraining. Each slot
//! has timm's layer id, whose `layer_decay^(num_layers − id)` scales its learning rate.

use super::super::layout::Layout;
use super::config::FinetuneStepConfig;

/// The head's weight name (timm's `VisionTransformer.head`).
pub const HEAD_WEIGHT: &str = "head.weight";
/// The head's bias name.
pub const HEAD_BIAS: &str = "head.bias";

/// timm's weight-decay rule for fine-tuning (`param_groups_layer_decay`): no decay for 1-D
/// tensors, biases, and the model's `no_weight_decay()` set (`pos_embed`, `cls_token`).
pub fn is_decayed(name: &str, shape: &[usize]) -> bool {
    !(shape.len() == 1 || name.ends_with(".bias") || name == "pos_embed" || name == "cls_token")
}

/// timm's layer id of a `VisionTransformer` parameter for layer decay: 0 for the stem
/// (`cls_token`, `pos_embed`, `patch_embed.*`), i + 1 for `blocks.i.*`, `depth` for the final
/// `norm.*` (timm groups it with the last block), `depth + 1` for the head and anything else.
///
/// # Examples
/// ```
/// use patchmix_train::step::layer_id;
/// assert_eq!(layer_id("pos_embed", 12), 0);
/// assert_eq!(layer_id("blocks.3.attn.qkv.weight", 12), 4);
/// assert_eq!(layer_id("norm.weight", 12), 12);
/// assert_eq!(layer_id("head.bias", 12), 13);
/// ```
pub fn layer_id(name: &str, depth: usize) -> usize {
    if name == "cls_token" || name == "pos_embed" || name.starts_with("patch_embed.") {
        return 0;
    }
    if let Some(rest) = name.strip_prefix("blocks.")
        && let Some(i) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok())
    {
        return i + 1;
    }
    if name.starts_with("norm.") {
        return depth;
    }
    depth + 1
}

/// One run of consecutive elements of the flat vector with the same lr scale and decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleRun {
    /// Elements in the run.
    pub len: usize,
    /// The lr scale (`layer_decay^(num_layers − layer id)`).
    pub lr_scale: f32,
    /// Whether the run is weight-decayed.
    pub decayed: bool,
}

/// The flat layout of a fine-tune step's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneLayout {
    /// Encoder and head parameters (timm names), decayed ones first.
    pub params: Layout,
    /// Elements of `params` that are weight-decayed (a prefix).
    pub decayed: usize,
    /// The lr scale of each slot of `params`, in slot order.
    pub lr_scales: Vec<f32>,
}

impl FinetuneLayout {
    /// The layout for a configuration.
    pub fn new(cfg: &FinetuneStepConfig) -> FinetuneLayout {
        let specs: Vec<(String, Vec<usize>)> = cfg
            .vit
            .param_specs()
            .into_iter()
            .chain([
                (HEAD_WEIGHT.to_string(), vec![cfg.classes, cfg.vit.dim]),
                (HEAD_BIAS.to_string(), vec![cfg.classes]),
            ])
            .collect();
        let mut params = Layout::default();
        let mut lr_scales = Vec::new();
        for decay in [true, false] {
            for (n, s) in specs.iter().filter(|(n, s)| is_decayed(n, s) == decay) {
                params.push(n.clone(), s.clone());
                lr_scales.push(cfg.layer_scale(layer_id(n, cfg.vit.depth)));
            }
        }
        let decayed = params
            .slots
            .iter()
            .filter(|s| is_decayed(&s.name, &s.shape))
            .map(|s| s.len)
            .sum();
        FinetuneLayout {
            params,
            decayed,
            lr_scales,
        }
    }

    /// The runs of equal (lr scale, decay) over the flat vector, in order, merged where
    /// neighbouring slots agree.
    pub fn scale_runs(&self) -> Vec<ScaleRun> {
        let mut runs: Vec<ScaleRun> = Vec::new();
        for (slot, &lr_scale) in self.params.slots.iter().zip(&self.lr_scales) {
            let decayed = slot.offset < self.decayed;
            match runs.last_mut() {
                Some(r) if r.lr_scale == lr_scale && r.decayed == decayed => r.len += slot.len,
                _ => runs.push(ScaleRun {
                    len: slot.len,
                    lr_scale,
                    decayed,
                }),
            }
        }
        runs
    }

    /// The per-element lr scale vector `[P]` (what the graph builds from
    /// [`FinetuneLayout::scale_runs`]).
    pub fn lr_scale_vector(&self) -> Vec<f32> {
        self.scale_runs()
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.lr_scale, r.len))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The groups timm 1.0's `param_groups_layer_decay(vit, 0.05, vit.no_weight_decay(),
    /// 0.75)` gives for a depth-2 ViT (printed from timm, as (lr_scale, weight_decay, names)).
    #[test]
    fn groups_match_timm_for_depth_two() {
        let cfg = FinetuneStepConfig::tiny(10);
        let l = FinetuneLayout::new(&cfg);
        let group = |name: &str| {
            let i = l.params.slots.iter().position(|s| s.name == name).unwrap();
            (l.lr_scales[i], l.params.slots[i].offset < l.decayed)
        };
        for n in ["cls_token", "pos_embed", "patch_embed.proj.bias"] {
            assert_eq!(group(n), (0.421875, false), "{n}");
        }
        assert_eq!(group("patch_embed.proj.weight"), (0.421875, true));
        assert_eq!(group("blocks.0.norm1.weight"), (0.5625, false));
        assert_eq!(group("blocks.0.mlp.fc2.weight"), (0.5625, true));
        assert_eq!(group("blocks.1.attn.proj.bias"), (0.75, false));
        assert_eq!(group("blocks.1.attn.qkv.weight"), (0.75, true));
        assert_eq!(group("norm.weight"), (0.75, false));
        assert_eq!(group("norm.bias"), (0.75, false));
        assert_eq!(group(HEAD_WEIGHT), (1.0, true));
        assert_eq!(group(HEAD_BIAS), (1.0, false));
        // The decayed tensors form a prefix, and the runs cover the vector.
        assert!(
            l.params
                .slots
                .iter()
                .all(|s| (s.offset < l.decayed) == is_decayed(&s.name, &s.shape))
        );
        assert_eq!(l.lr_scale_vector().len(), l.params.len());
    }
}
