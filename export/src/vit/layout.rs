//! The timm `VisionTransformer` parameter layout: every `state_dict` name and its shape.

/// The timm `VisionTransformer` encoder layout (no head), in timm's `state_dict` order, for
/// [`crate::weights::check_against`]:
/// `embed_dim` `D`, `depth` blocks, square `patch_size` on 3-channel input, `num_patches`
/// patch tokens (e.g. 196 for 224/16), MLP ratio 4, `class_token=True`, qkv bias.
///
/// [`VitConfig::param_specs`](super::VitConfig::param_specs) is this layout at a
/// configuration's sizes.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vit::VitPreset;

    fn spec(name: &str, shape: &[usize]) -> (String, Vec<usize>) {
        (name.to_string(), shape.to_vec())
    }

    #[test]
    fn one_block_layout_in_timm_order() {
        let want = vec![
            spec("cls_token", &[1, 1, 8]),
            spec("pos_embed", &[1, 5, 8]),
            spec("patch_embed.proj.weight", &[8, 3, 4, 4]),
            spec("patch_embed.proj.bias", &[8]),
            spec("blocks.0.norm1.weight", &[8]),
            spec("blocks.0.norm1.bias", &[8]),
            spec("blocks.0.attn.qkv.weight", &[24, 8]),
            spec("blocks.0.attn.qkv.bias", &[24]),
            spec("blocks.0.attn.proj.weight", &[8, 8]),
            spec("blocks.0.attn.proj.bias", &[8]),
            spec("blocks.0.norm2.weight", &[8]),
            spec("blocks.0.norm2.bias", &[8]),
            spec("blocks.0.mlp.fc1.weight", &[32, 8]),
            spec("blocks.0.mlp.fc1.bias", &[32]),
            spec("blocks.0.mlp.fc2.weight", &[8, 32]),
            spec("blocks.0.mlp.fc2.bias", &[8]),
            spec("norm.weight", &[8]),
            spec("norm.bias", &[8]),
        ];
        assert_eq!(timm_vit_shapes(8, 1, 4, 4), want);
        let cfg = VitPreset::Tiny.with_overrides(8, 4, Some(8), Some(1), Some(2));
        assert_eq!(cfg.param_specs(), want);
    }

    #[test]
    fn param_specs_are_the_timm_layout_of_the_presets() {
        for preset in [VitPreset::Tiny, VitPreset::Small, VitPreset::Base] {
            for (img, patch) in [(224, 16), (32, 4), (28, 7)] {
                let cfg = preset.config(img, patch).unwrap();
                assert_eq!(
                    cfg.param_specs(),
                    timm_vit_shapes(cfg.dim, cfg.depth, cfg.patch, cfg.tokens()),
                    "{preset} at {img}/{patch}"
                );
            }
        }
    }
}
