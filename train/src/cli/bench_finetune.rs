//! `patchmix bench step --finetune`: throughput of the compiled fine-tune step (encoder with
//! drop path, head, soft-target CE, layer-decay AdamW, model EMA) on a bench configuration's
//! encoder and batch, 10 classes, with random images and Mixup-style soft targets.

use super::bench_step::Args;
use patchmix_export::vit::init_weights;
use patchmix_train::device::DeviceOptions;
use patchmix_train::finetune::drop_path_masks;
use patchmix_train::session::{FinetuneFeeds, FinetuneSession, SessionOptions};
use patchmix_train::step::finetune::finetune_state;
use patchmix_train::step::{FinetuneStepConfig, build_finetune_step};
use rand::{RngExt, SeedableRng};
use std::time::Instant;

/// Classes of the benchmarked head.
const CLASSES: usize = 10;

/// Runs the fine-tune bench.
///
/// # Errors
/// An unusable configuration or engine errors.
pub fn run(a: &Args) -> anyhow::Result<()> {
    let named = a.step.config()?;
    let cfg = FinetuneStepConfig {
        vit: named.vit.clone(),
        classes: CLASSES,
        batch: named.batch,
        // The recipe's drop path (timm's DropPath in the reference script).
        drop_path: 0.1,
        layer_decay: 0.75,
        precision: a.precision,
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let step = build_finetune_step(&cfg, false)?;
    let init = finetune_state(&cfg, &step.layout, &init_weights(&cfg.vit, 0), 0)?;
    println!(
        "fine-tune step, config {}: B {} img {} patch {} D {} depth {} heads {}, {} classes; {} parameters",
        a.step.config,
        cfg.batch,
        cfg.vit.img,
        cfg.vit.patch,
        cfg.vit.dim,
        cfg.vit.depth,
        cfg.vit.heads,
        CLASSES,
        step.layout.params.len()
    );
    let opts = SessionOptions {
        threads: a.threads,
        ..SessionOptions::default()
    };
    let dev = DeviceOptions {
        device: a.device,
        ..DeviceOptions::default()
    };
    let mut s = FinetuneSession::new(step, &opts, &dev, &init)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let images: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let mut targets = vec![0.01f32; cfg.batch * CLASSES];
    for (i, row) in targets.chunks_mut(CLASSES).enumerate() {
        row[i % CLASSES] += 0.6;
        row[(i + 3) % CLASSES] += 0.3;
    }
    let masks = drop_path_masks(&cfg, &mut rng);
    let feeds = FinetuneFeeds {
        images: &images,
        targets: &targets,
        drop_path: (!masks.is_empty()).then_some(masks.as_slice()),
        lr: 1e-3,
        wd: 0.05,
        ema_decay: 0.99996,
    };
    for _ in 0..a.warmup {
        s.run(&feeds)?;
    }
    let t = Instant::now();
    let mut last = 0.0;
    for _ in 0..a.steps {
        last = s.run(&feeds)?.loss;
    }
    let secs = t.elapsed().as_secs_f64();
    let ips = (a.steps * cfg.batch) as f64 / secs;
    println!(
        "{} steps in {:.3} s ({:.1} ms/step, last loss {last:.4}): {ips:.1} img/s",
        a.steps,
        secs,
        1e3 * secs / a.steps.max(1) as f64
    );
    Ok(())
}
