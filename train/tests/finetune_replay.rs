//! The engine's fine-tune step against an independent replay with timm and PyTorch
//! (`scripts/replay_finetune_step.py`): a dumped step (Mixup/CutMix targets, drop path,
//! layer-decay AdamW with non-zero moments, model EMA) must match timm's `VisionTransformer`,
//! `SoftTargetCrossEntropy`, `param_groups_layer_decay` + `torch.optim.AdamW` and `ModelEma`:
//! the loss to 1e-5 relative and every parameter, moment and EMA tensor to 1e-5 relative L2;
//! a dump with one tampered tensor must not.
//!
//! Needs a `python3` with `torch`, `safetensors` and `timm`; without them every test prints
//! `SKIPPED: …` and passes (CI has no PyTorch).

use patchmix_export::vit::init_weights;
use patchmix_export::weights::{load_safetensors, save_safetensors_with_ints};
use patchmix_train::augment::mixup::{Mixup, MixupConfig};
use patchmix_train::device::DeviceOptions;
use patchmix_train::finetune::{drop_path_masks, write_dump};
use patchmix_train::session::{FinetuneFeeds, FinetuneSession, SessionOptions};
use patchmix_train::step::finetune::finetune_state;
use patchmix_train::step::{FinetuneStepConfig, build_finetune_step};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn timm_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import torch, safetensors, timm"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with torch, safetensors and timm is not available");
    }
    ok
}

fn replay_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("replay_finetune_step.py")
}

/// Runs the replay on a dump: (exit code, its JSON object).
fn replay(dump: &Path) -> (i32, Value) {
    let out = Command::new("python3")
        .arg(replay_script())
        .arg(dump)
        .arg("--json")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "replay printed no JSON ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// One batch: random images, Mixup/CutMix with timm's recipe (α 0.8 / 1.0, switch 0.5,
/// smoothing 0.1) over random labels, and drop-path masks.
struct Batch {
    images: Vec<f32>,
    targets: Vec<f32>,
    masks: Vec<f32>,
}

fn batch(cfg: &FinetuneStepConfig, rng: &mut ChaCha8Rng) -> Batch {
    let img = cfg.vit.img;
    let mut images: Vec<f32> = (0..cfg.batch * 3 * img * img)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let labels: Vec<usize> = (0..cfg.batch)
        .map(|_| rng.random_range(0..cfg.classes))
        .collect();
    let mixup = Mixup::new(MixupConfig::default()).unwrap();
    let (_, targets) = mixup
        .mix_batch(rng, &mut images, 3, (img, img), &labels, cfg.classes)
        .unwrap();
    let masks = drop_path_masks(cfg, rng);
    Batch {
        images,
        targets,
        masks,
    }
}

fn feeds(b: &Batch) -> FinetuneFeeds<'_> {
    FinetuneFeeds {
        images: &b.images,
        targets: &b.targets,
        drop_path: (!b.masks.is_empty()).then_some(b.masks.as_slice()),
        lr: 2e-3,
        wd: 0.05,
        // Far from timm's 0.99996, so that one step moves the EMA measurably.
        ema_decay: 0.9,
    }
}

/// Dumps the second step of a run of `cfg` (the first gives non-zero AdamW moments and
/// t = 2) into `dir`.
fn dump(cfg: &FinetuneStepConfig, dir: &Path) {
    let step = build_finetune_step(cfg, false).unwrap();
    let init = finetune_state(cfg, &step.layout, &init_weights(&cfg.vit, 3), 4).unwrap();
    let mut s = FinetuneSession::new(
        step,
        &SessionOptions::default(),
        &DeviceOptions::default(),
        &init,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let first = batch(cfg, &mut rng);
    let out = s.run(&feeds(&first)).unwrap();
    assert!(out.loss.is_finite() && out.loss > 0.0, "{out:?}");
    let second = batch(cfg, &mut rng);
    let d = write_dump(&mut s, &feeds(&second), dir).unwrap();
    assert_eq!(d.after.step, 2);
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = &x[k];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} missing in {v}", path.join(".")))
}

#[test]
fn a_finetune_step_replays_in_timm_and_a_tampered_one_does_not() {
    if !timm_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let cfg = FinetuneStepConfig {
        classes: 7,
        // Block 1 drops a residual with probability 0.5, so some scales are 0 and some 2.
        drop_path: 0.5,
        ..FinetuneStepConfig::tiny(7)
    };
    let dir = root.path().join("dump");
    dump(&cfg, &dir);
    let (code, r) = replay(&dir);
    eprintln!("replay: {r}");
    assert_eq!(code, 0, "the replay disagrees with the engine: {r}");
    assert_eq!(r["pass"], true, "{r}");
    assert!(num(&r, &["worst", "loss", "err"]) <= 1e-5, "{r}");
    for cat in ["param", "exp_avg", "exp_avg_sq", "ema"] {
        assert!(num(&r, &["worst", cat, "err"]) <= 1e-5, "{cat}: {r}");
        // Every parameter tensor was compared (the encoder's and the head's two).
        let count = num(&r, &["worst", cat, "count"]) as usize;
        assert_eq!(count, cfg.vit.param_specs().len() + 2, "{cat}");
    }
    assert_eq!(r["step"]["engine"], 2);

    // Tamper with one tensor of the engine's result: the replay must fail on it.
    let after = dir.join("after.safetensors");
    let mut sd = load_safetensors(&after).unwrap();
    let w = sd.tensors.get_mut("blocks.0.attn.proj.weight").unwrap();
    w[[0, 0]] += 0.05;
    save_safetensors_with_ints(&after, &sd.tensors, &sd.ints, None).unwrap();
    let (code, r) = replay(&dir);
    assert_eq!(code, 1, "a tampered dump replayed: {r}");
    assert_eq!(
        r["worst"]["param"]["name"], "blocks.0.attn.proj.weight",
        "{r}"
    );
}
