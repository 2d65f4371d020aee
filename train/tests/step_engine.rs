//! The compiled training step run through ONNX Runtime (CPU): the whole-step gradient against
//! finite differences, the loss falling on synthetic data, determinism, and both frames.

use patchmix_train::session::{SessionOptions, StepSession};
use patchmix_train::step::{
    BETA1, Frame, HostState, LocalCrops, StepConfig, build_step, init_state, prepare_batch,
    prepare_batch_with_local,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn tiny(frame: Frame, drop_path: f32) -> StepConfig {
    StepConfig::tiny(frame, drop_path)
}

/// A synthetic dataset: 8 smooth prototype images; a sample is a prototype plus noise, so two
/// views of one sample share structure that the encoder can learn to match.
struct Synthetic {
    protos: Vec<Vec<f32>>,
    img: usize,
}

impl Synthetic {
    fn new(img: usize) -> Synthetic {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let protos = (0..8)
            .map(|_| {
                let (a, b, c): (f32, f32, f32) = (
                    rng.random_range(0.5..3.0),
                    rng.random_range(0.5..3.0),
                    rng.random_range(0.0..6.0),
                );
                (0..3 * img * img)
                    .map(|i| {
                        let (ch, y, x) = (i / (img * img), (i / img) % img, i % img);
                        ((a * x as f32 / img as f32 * 6.0 + c).sin()
                            + (b * y as f32 / img as f32 * 6.0).cos())
                            * (1.0 + ch as f32 * 0.3)
                    })
                    .collect()
            })
            .collect();
        Synthetic { protos, img }
    }

    /// Two noisy views of B samples.
    fn views(&self, b: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<f32>) {
        let n = 3 * self.img * self.img;
        let (mut v1, mut v2) = (Vec::with_capacity(b * n), Vec::with_capacity(b * n));
        for _ in 0..b {
            let p = &self.protos[rng.random_range(0..self.protos.len())];
            for &x in p {
                v1.push(x + rng.random_range(-0.3..0.3f32));
            }
            for &x in p {
                v2.push(x + rng.random_range(-0.3..0.3f32));
            }
        }
        (v1, v2)
    }
}

fn session(cfg: &StepConfig, seed: u64) -> StepSession {
    let step = build_step(cfg).unwrap();
    let init = init_state(cfg, &step.layout, seed);
    StepSession::new(step, &SessionOptions::default(), &init).unwrap()
}

fn run_losses(cfg: &StepConfig, steps: usize, seed: u64, lr: f32) -> Vec<f32> {
    let data = Synthetic::new(cfg.vit.img);
    let mut s = session(cfg, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..steps)
        .map(|i| {
            let (v1, v2) = data.views(cfg.batch, &mut rng);
            let b = prepare_batch(cfg, v1, v2, seed * 1000 + i as u64, 0.0).unwrap();
            let x = b.inputs(lr, 0.05, 0.2, 0.99);
            let l = s.run(&x).unwrap();
            assert!(l.total.is_finite(), "step {i}: loss {l:?}");
            assert!(
                (l.total - (l.src + 0.5 * l.mix + 0.5 * l.mix2)).abs()
                    < 1e-4 * l.total.abs().max(1.0)
            );
            l.total
        })
        .collect()
}

#[test]
fn loss_falls_over_100_steps_on_synthetic_data() {
    let cfg = tiny(Frame::NoMomentum, 0.1);
    let losses = run_losses(&cfg, 100, 1, 2e-3);
    let head: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let tail: f32 = losses[90..].iter().sum::<f32>() / 10.0;
    assert!(
        tail < 0.8 * head,
        "loss did not fall: first 10 mean {head}, last 10 mean {tail}: {losses:?}"
    );
}

#[test]
fn same_seed_gives_identical_losses() {
    let cfg = tiny(Frame::NoMomentum, 0.1);
    assert_eq!(run_losses(&cfg, 5, 3, 1e-3), run_losses(&cfg, 5, 3, 1e-3));
    assert_ne!(run_losses(&cfg, 3, 3, 1e-3), run_losses(&cfg, 3, 4, 1e-3));
}

#[test]
fn momentum_frame_trains_and_updates_the_ema() {
    let cfg = tiny(Frame::Momentum, 0.1);
    let losses = run_losses(&cfg, 30, 5, 2e-3);
    assert!(losses.iter().all(|l| l.is_finite()));
    let step = build_step(&cfg).unwrap();
    assert!(!step.layout.momentum.is_empty());
}

/// Runs one step with lr = 0 and wd = 0: parameters stay put, and `exp_avg` after one step is
/// (1 − β₁)·g, which exposes the full gradient of the total loss.
fn loss_and_grad(
    cfg: &StepConfig,
    init: &HostState,
    b: &patchmix_train::step::PreparedBatch,
) -> (f32, Vec<f32>) {
    loss_and_grad_at(cfg, init, b, SessionOptions::default().opt_level)
}

fn loss_and_grad_at(
    cfg: &StepConfig,
    init: &HostState,
    b: &patchmix_train::step::PreparedBatch,
    level: u8,
) -> (f32, Vec<f32>) {
    let step = build_step(cfg).unwrap();
    let opts = SessionOptions {
        opt_level: level,
        ..SessionOptions::default()
    };
    let mut s = StepSession::new(step, &opts, init).unwrap();
    let x = b.inputs(0.0, 0.0, 0.2, 1.0);
    let l = s.run(&x).unwrap();
    let h = s.to_host().unwrap();
    assert_eq!(
        h.params, init.params,
        "lr = 0 must leave the parameters unchanged"
    );
    (
        l.total,
        h.exp_avg.iter().map(|m| m / (1.0 - BETA1 as f32)).collect(),
    )
}

/// The whole step's gradient against central finite differences of its loss, tensor by tensor
/// along random unit directions.
///
/// The momentum frame with μ = 1 is used: its keys come from the momentum encoder, which then
/// does not depend on the base parameters, so the finite differences of the loss are exactly
/// the gradient the step computes. (Without a momentum encoder the detached key passes share
/// the parameters, so finite differences of the loss would also see the stop-gradient paths.)
/// The CLS token and position embedding are re-drawn at std 0.5: at their init scale (1e-6,
/// 0.02) the CLS row entering the first LayerNorm is tiny and the loss too curved for f32
/// finite differences.
#[test]
fn whole_step_gradient_matches_finite_differences() {
    check_whole_step_gradient(&tiny(Frame::Momentum, 0.1));
}

/// The same check with two 4-pixel local crops (multi-crop): the local passes see the base
/// encoder through the bicubically resized position embedding, and their two loss terms join
/// the total.
#[test]
fn whole_step_gradient_with_local_crops_matches_finite_differences() {
    let mut cfg = tiny(Frame::Momentum, 0.1);
    cfg.local = Some(LocalCrops { count: 2, img: 4 });
    check_whole_step_gradient(&cfg);
}

fn check_whole_step_gradient(cfg: &StepConfig) {
    let cfg = cfg.clone();
    let step = build_step(&cfg).unwrap();
    let mut init = init_state(&cfg, &step.layout, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for name in ["base_encoder.cls_token", "base_encoder.pos_embed"] {
        let s = step.layout.params.get(name).unwrap();
        for v in &mut init.params[s.offset..s.offset + s.len] {
            *v = rng.random_range(-0.8..0.8f32);
        }
    }
    let data = Synthetic::new(cfg.vit.img);
    let (v1, v2) = data.views(cfg.batch, &mut rng);
    let local = cfg.local.map(|l| {
        (0..l.count * cfg.batch * 3 * l.img * l.img)
            .map(|_| rng.random_range(-1.5..1.5f32))
            .collect()
    });
    let b = prepare_batch_with_local(&cfg, v1, v2, local, 99, 0.0).unwrap();
    let (_, grad) = loss_and_grad(&cfg, &init, &b);
    let mut failures = Vec::new();
    // Finite differences through ReLU cross a kink now and then: with ~10³ pre-activations per
    // pass, a step of 2e-3 along a random direction moves one of them across 0 with a
    // probability of order one per tensor, and then the difference quotient averages two
    // slopes. A wrong gradient disagrees along every direction, a kink only along some, so a
    // tensor fails only when three independent random directions all disagree.
    for slot in &step.layout.params.slots {
        let mut tries = Vec::new();
        for _ in 0..3 {
            let raw: Vec<f32> = (0..slot.len)
                .map(|_| rng.random_range(-1.0..1.0f32))
                .collect();
            let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
            let dir: Vec<f32> = raw.iter().map(|v| v / norm).collect();
            let analytic: f64 = dir
                .iter()
                .zip(&grad[slot.offset..slot.offset + slot.len])
                .map(|(d, g)| (*d as f64) * (*g as f64))
                .sum();
            let eps = 2e-3f32;
            let shifted = |sign: f32| {
                let mut st = init.clone();
                for (p, d) in st.params[slot.offset..slot.offset + slot.len]
                    .iter_mut()
                    .zip(&dir)
                {
                    *p += sign * eps * d;
                }
                loss_and_grad(&cfg, &st, &b).0 as f64
            };
            let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps as f64);
            let err = (fd - analytic).abs() / fd.abs().max(analytic.abs()).max(2e-2);
            if err < 5e-2 {
                tries.clear();
                break;
            }
            tries.push(format!("{analytic:.5} vs {fd:.5} (rel {err:.3})"));
        }
        if !tries.is_empty() {
            failures.push(format!(
                "{}: directional derivative vs finite difference along 3 directions: {}",
                slot.name,
                tries.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} tensors disagree:\n{}",
        failures.len(),
        step.layout.params.slots.len(),
        failures.join("\n")
    );
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// All four ORT graph-optimisation levels give the same step, tensor by tensor.
///
/// A tensor whose gradient is exactly zero in exact arithmetic is compared against a floor of
/// 1e-5 of the whole gradient's norm: the final LayerNorm's bias is one (it shifts every
/// sample's CLS feature by the same vector, which the projector's bias-free Linear and batch-mode
/// BN remove), so its computed gradient is rounding noise that fused kernels legitimately change.
#[test]
fn ort_optimisation_levels_agree_on_the_step() {
    for frame in [Frame::NoMomentum, Frame::Momentum] {
        let cfg = tiny(frame, 0.1);
        let step = build_step(&cfg).unwrap();
        let init = init_state(&cfg, &step.layout, 11);
        let data = Synthetic::new(cfg.vit.img);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (v1, v2) = data.views(cfg.batch, &mut rng);
        let b = prepare_batch(&cfg, v1, v2, 99, 0.0).unwrap();
        let (l0, g0) = loss_and_grad_at(&cfg, &init, &b, 0);
        let floor = 1e-5 * norm(&g0);
        let nb = step.layout.params.get("base_encoder.norm.bias").unwrap();
        assert!(
            norm(&g0[nb.offset..nb.offset + nb.len]) < floor,
            "the final LayerNorm bias must get a zero gradient (BN removes constant shifts)"
        );
        for level in [1u8, 2, 3] {
            let (l, g) = loss_and_grad_at(&cfg, &init, &b, level);
            assert!(
                (l - l0).abs() < 1e-4 * l0.abs(),
                "level {level}: loss {l} vs {l0}"
            );
            for slot in &step.layout.params.slots {
                let a = &g0[slot.offset..slot.offset + slot.len];
                let c = &g[slot.offset..slot.offset + slot.len];
                let diff: Vec<f32> = a.iter().zip(c).map(|(x, y)| x - y).collect();
                let rel = norm(&diff) / norm(a).max(floor);
                assert!(
                    rel < 1e-3,
                    "{frame:?} level {level}: gradient of {} differs (rel {rel})",
                    slot.name
                );
            }
        }
    }
}

/// The multi-crop terms wired as the original: with the momentum encoder equal to the base
/// encoder (μ = 1, a fresh init), view 2 = view 1, mix1 = mix2, and both local crops equal to
/// view 1 at full size (their mixes equal to mix2), the keys k1 = k2 and the local queries equal
/// q1 (BN over stacked copies has the same batch statistics), so by hand
/// multi = CE(q1,k1,I) + CE(q1,k2,I) = 2·src and multi_mix = 2·mix, and the total adds both.
#[test]
fn local_crop_terms_reduce_to_the_global_terms_on_copies() {
    let mut cfg = tiny(Frame::Momentum, 0.0);
    cfg.local = Some(LocalCrops {
        count: 2,
        img: cfg.vit.img,
    });
    let step = build_step(&cfg).unwrap();
    let init = init_state(&cfg, &step.layout, 5);
    let data = Synthetic::new(cfg.vit.img);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (v1, _) = data.views(cfg.batch, &mut rng);
    let local: Vec<f32> = [v1.clone(), v1.clone()].concat();
    let mut b = prepare_batch_with_local(&cfg, v1.clone(), v1, Some(local), 3, 0.0).unwrap();
    b.images[2] = b.images[3].clone();
    let mix2 = b.images[3].clone();
    b.local.as_mut().unwrap()[1] = [mix2.clone(), mix2].concat();
    let mut s = StepSession::new(step, &SessionOptions::default(), &init).unwrap();
    let l = s.run(&b.inputs(0.0, 0.0, 0.2, 1.0)).unwrap();
    let close = |a: f32, b: f32| (a - b).abs() < 1e-4 * b.abs().max(1.0);
    assert!(
        close(l.multi, 2.0 * l.src),
        "multi {} vs 2·src {}",
        l.multi,
        l.src
    );
    assert!(
        close(l.multi_mix, 2.0 * l.mix),
        "multi_mix {} vs 2·mix {}",
        l.multi_mix,
        l.mix
    );
    assert!(close(
        l.total,
        l.src + 0.5 * l.mix + 0.5 * l.mix2 + l.multi + l.multi_mix
    ));
    assert!(l.src > 0.1 && l.mix > 0.1, "degenerate losses {l:?}");
}
