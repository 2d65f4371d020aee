//! Seedable initialisation exactly as the original (timm/MoCo v3 ViT).

use super::config::VitConfig;
use ndarray::ArrayD;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// How a Box–Muller draw picks the uniform `u1` of its radius `√(−2 ln u1)` (`u1` must be
/// positive). The two ways give different numbers for the same RNG state; each caller keeps
/// the one its results were recorded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadiusDraw {
    /// Draw `u1` from U[0, 1) again until it exceeds `f64::MIN_POSITIVE` (the encoder
    /// initialisation, [`normal`]).
    Redraw,
    /// `u1 = 1 − u` for one `u` from U[0, 1), so `u1 ∈ (0, 1]` (the linear probe's
    /// initialisation).
    Complement,
}

/// A draw from N(0, std²) by Box–Muller: `std · √(−2 ln u1) · cos(2π u2)`, `u1` drawn as
/// `radius` says, then `u2` from U[0, 1).
///
/// # Examples
/// ```
/// use patchmix_export::vit::{RadiusDraw, normal, normal_with};
/// use rand::SeedableRng;
/// use rand_chacha::ChaCha8Rng;
///
/// let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
/// assert_eq!(normal_with(&mut a, 1.0, RadiusDraw::Redraw), normal(&mut b));
/// let x = normal_with(&mut a, 0.01, RadiusDraw::Complement);
/// assert!(x.abs() < 0.1);
/// ```
pub fn normal_with(rng: &mut ChaCha8Rng, std: f64, radius: RadiusDraw) -> f64 {
    let u1: f64 = match radius {
        RadiusDraw::Redraw => loop {
            let u: f64 = rng.random();
            if u > f64::MIN_POSITIVE {
                break u;
            }
        },
        RadiusDraw::Complement => 1.0 - rng.random::<f64>(),
    };
    let u2: f64 = rng.random();
    std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A standard normal draw (Box–Muller, [`RadiusDraw::Redraw`]).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    normal_with(rng, 1.0, RadiusDraw::Redraw)
}

/// `n` draws of U(−bound, bound).
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect()
}

/// `n` draws of N(0, std²) truncated to [lo, hi] (absolute bounds, as timm's `trunc_normal_`).
pub fn trunc_normal(rng: &mut ChaCha8Rng, n: usize, std: f64, lo: f64, hi: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            loop {
                let x = normal(rng) * std;
                if (lo..=hi).contains(&x) {
                    break x as f32;
                }
            }
        })
        .collect()
}

/// Initial encoder weights under timm names:
/// - Linear weights xavier-uniform U(±√(6/(fan_in + fan_out))); the qkv weight [3D, D] uses the
///   bound √(6/(D + D)), treating q, k and v as separate D×D matrices (MoCo v3);
/// - biases zero; the patch-embed weight U(±√(6/(3p² + D))) (xavier on the flattened conv);
/// - `cls_token` N(0, 1e-6²); `pos_embed` truncated normal, std 0.02, bounds ±2;
/// - LayerNorm weight 1, bias 0.
///
/// The tensors are drawn in `param_specs` order from ChaCha8 seeded with `seed`.
///
/// # Examples
/// ```
/// use patchmix_export::vit::{init_weights, VitPreset};
/// let cfg = VitPreset::Tiny.config(32, 4).unwrap();
/// let w = init_weights(&cfg, 0);
/// assert_eq!(w["blocks.0.attn.qkv.weight"].shape(), &[576, 192]);
/// ```
pub fn init_weights(cfg: &VitConfig, seed: u64) -> BTreeMap<String, ArrayD<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = cfg.dim as f64;
    let mut out = BTreeMap::new();
    for (name, shape) in cfg.param_specs() {
        let n: usize = shape.iter().product();
        let data = if name == "cls_token" {
            (0..n).map(|_| (normal(&mut rng) * 1e-6) as f32).collect()
        } else if name == "pos_embed" {
            trunc_normal(&mut rng, n, 0.02, -2.0, 2.0)
        } else if name == "patch_embed.proj.weight" {
            let fan_in = (3 * cfg.patch * cfg.patch) as f64;
            uniform(&mut rng, n, (6.0 / (fan_in + d)).sqrt())
        } else if name.ends_with("attn.qkv.weight") {
            uniform(&mut rng, n, (6.0 / (d + d)).sqrt())
        } else if name.ends_with(".weight") && shape.len() == 2 {
            let (fan_out, fan_in) = (shape[0] as f64, shape[1] as f64);
            uniform(&mut rng, n, (6.0 / (fan_in + fan_out)).sqrt())
        } else if name.ends_with(".weight") {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        };
        let arr = ArrayD::from_shape_vec(shape, data).expect("spec shape matches data");
        out.insert(name, arr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two Box–Muller draws as they were written before they were merged.
    fn encoder_normal_reference(rng: &mut ChaCha8Rng) -> f64 {
        loop {
            let u1: f64 = rng.random();
            if u1 > f64::MIN_POSITIVE {
                let u2: f64 = rng.random();
                return (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            }
        }
    }

    fn probe_normal_reference(rng: &mut ChaCha8Rng, std: f64) -> f32 {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    #[test]
    fn both_radius_draws_keep_their_numbers() {
        for seed in [0, 1, 42] {
            let (mut a, mut b) = (
                ChaCha8Rng::seed_from_u64(seed),
                ChaCha8Rng::seed_from_u64(seed),
            );
            for _ in 0..1000 {
                assert_eq!(
                    normal(&mut a).to_bits(),
                    encoder_normal_reference(&mut b).to_bits()
                );
            }
            for std in [0.01, 0.5, 3.0] {
                for _ in 0..1000 {
                    let x = normal_with(&mut a, std, RadiusDraw::Complement) as f32;
                    assert_eq!(x.to_bits(), probe_normal_reference(&mut b, std).to_bits());
                }
            }
        }
    }
}
