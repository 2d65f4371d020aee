//! The compiled fine-tune step without PyTorch (what CI runs): its gradient against central
//! finite differences of its own loss, the layer-decay AdamW update of a first step against
//! the closed form, and the half-precision steps against the f32 one.

use patchmix_export::vit::init_weights;
use patchmix_train::device::DeviceOptions;
use patchmix_train::finetune::drop_path_masks;
use patchmix_train::session::{FinetuneFeeds, FinetuneSession, SessionOptions};
use patchmix_train::step::finetune::finetune_state;
use patchmix_train::step::{FinetuneStepConfig, HostState, Precision, build_finetune_step};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Inputs {
    images: Vec<f32>,
    targets: Vec<f32>,
    masks: Vec<f32>,
}

fn inputs(cfg: &FinetuneStepConfig) -> Inputs {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let images = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let mut targets = vec![0.0f32; cfg.batch * cfg.classes];
    for row in targets.chunks_mut(cfg.classes) {
        let (a, b) = (
            rng.random_range(0..cfg.classes),
            rng.random_range(0..cfg.classes),
        );
        row[a] += 0.7;
        row[b] += 0.3;
    }
    let masks = drop_path_masks(cfg, &mut rng);
    Inputs {
        images,
        targets,
        masks,
    }
}

fn feeds(x: &Inputs, lr: f32, wd: f32) -> FinetuneFeeds<'_> {
    FinetuneFeeds {
        images: &x.images,
        targets: &x.targets,
        drop_path: (!x.masks.is_empty()).then_some(x.masks.as_slice()),
        lr,
        wd,
        ema_decay: 0.5,
    }
}

fn session(cfg: &FinetuneStepConfig) -> (FinetuneSession, HostState) {
    let step = build_finetune_step(cfg, false).unwrap();
    let init = finetune_state(cfg, &step.layout, &init_weights(&cfg.vit, 2), 3).unwrap();
    let s = FinetuneSession::new(
        step,
        &SessionOptions::default(),
        &DeviceOptions::default(),
        &init,
    )
    .unwrap();
    (s, init)
}

#[test]
fn the_gradient_matches_finite_differences_and_the_update_the_closed_form() {
    let cfg = FinetuneStepConfig {
        drop_path: 0.5,
        ..FinetuneStepConfig::tiny(5)
    };
    let x = inputs(&cfg);
    let (mut s, init) = session(&cfg);
    let (lr, wd) = (1e-2f32, 0.1f32);
    s.run(&feeds(&x, lr, wd)).unwrap();
    let after = s.to_host().unwrap();
    let layout = s.step_graph().layout.clone();
    let scales = layout.lr_scale_vector();
    // First AdamW step: exp_avg = 0.1·g, exp_avg_sq = 0.001·g², and the update is
    // p·(1 − lr·s·wd·[decayed]) − lr·s·m̂/(√v̂ + eps) with m̂ = g, v̂ = g².
    let grad: Vec<f64> = after.exp_avg.iter().map(|&m| f64::from(m) / 0.1).collect();
    for i in 0..init.params.len() {
        let (p, g, sc) = (f64::from(init.params[i]), grad[i], f64::from(scales[i]));
        let decay = if i < layout.decayed {
            f64::from(wd)
        } else {
            0.0
        };
        let want =
            p * (1.0 - f64::from(lr) * sc * decay) - f64::from(lr) * sc * g / (g.abs() + 1e-8);
        let got = f64::from(after.params[i]);
        assert!(
            (got - want).abs() <= 1e-6 + 2e-3 * f64::from(lr) * sc,
            "element {i}: {got} vs {want} (g {g}, scale {sc})"
        );
        // The EMA (decay 0.5) of the updated parameters.
        let ema = 0.5 * p + 0.5 * got;
        assert!(
            (f64::from(after.momentum[i]) - ema).abs() <= 1e-6,
            "ema {i}"
        );
    }
    // Central differences of the step's own loss (the loss it reports is that of the
    // parameters before its update) on the largest gradient entries of several tensors.
    let loss_at = |s: &mut FinetuneSession, params: &[f32]| -> f64 {
        let h = HostState {
            params: params.to_vec(),
            ..init.clone()
        };
        s.load(&h).unwrap();
        f64::from(s.run(&feeds(&x, 0.0, 0.0)).unwrap().loss)
    };
    let mut checked = 0;
    for name in [
        "head.weight",
        "head.bias",
        "blocks.1.mlp.fc2.weight",
        "blocks.0.attn.qkv.weight",
        "patch_embed.proj.weight",
        "pos_embed",
        "norm.weight",
    ] {
        let slot = layout.params.get(name).unwrap();
        let i = (slot.offset..slot.offset + slot.len)
            .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
            .unwrap();
        let eps = 1e-2f32;
        let mut p = init.params.clone();
        p[i] += eps;
        let up = loss_at(&mut s, &p);
        p[i] -= 2.0 * eps;
        let down = loss_at(&mut s, &p);
        let fd = (up - down) / (2.0 * f64::from(eps));
        let rel = (fd - grad[i]).abs() / grad[i].abs().max(1e-3);
        assert!(
            rel < 0.05,
            "{name}[{i}]: finite difference {fd} vs {}",
            grad[i]
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn half_precision_steps_follow_the_f32_step() {
    let base = FinetuneStepConfig::tiny(5);
    let x = inputs(&base);
    let (mut s, _) = session(&base);
    let f32_loss = s.run(&feeds(&x, 1e-3, 0.05)).unwrap().loss;
    for precision in [Precision::Bf16, Precision::Fp16] {
        let cfg = FinetuneStepConfig {
            precision,
            ..base.clone()
        };
        let (mut s, _) = session(&cfg);
        let o = s.run(&feeds(&x, 1e-3, 0.05)).unwrap();
        assert!(!o.skipped, "{precision}");
        let rel = ((o.loss - f32_loss) / f32_loss).abs();
        assert!(rel < 2e-2, "{precision}: loss {} vs f32 {f32_loss}", o.loss);
        assert!(
            rel > 0.0,
            "{precision}: exactly the f32 loss, so no rounding happened"
        );
        let h = s.to_host().unwrap();
        assert_eq!(h.step, 1);
        assert_eq!(h.scaler.is_some(), precision == Precision::Fp16);
    }
}
