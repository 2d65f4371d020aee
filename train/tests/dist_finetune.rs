//! Data-parallel fine-tuning with thread ranks (a `ThreadWorld`: the code path of
//! `mpirun … patchmix finetune --dist mpi` apart from the transport, which
//! `mpi_finetune.rs` covers).
//!
//! * The compiled step: two ranks, each on its half of a global batch, against one process on
//!   the whole batch (label-smoothing targets, as with mixing off, and no BatchNorm in a ViT
//!   classifier, so W ranks are one process up to rounding): the losses of every step, and
//!   the parameters, both AdamW moments and the EMA after two steps; with drop path 0 and
//!   with drop path drawn per global sample.
//! * A multi-rank step without a communicator (or with one of another size) is refused.
//! * The run (`run_finetune`): two ranks with mixing off train as one process on the same
//!   global batch, rank 0 alone writes the run directory, both ranks resume from its
//!   checkpoint; a batch that does not split and ranks started differently are one-line
//!   errors.

use patchmix_export::vit::{VitConfig, init_weights};
use patchmix_train::device::DeviceOptions;
use patchmix_train::dist::ThreadWorld;
use patchmix_train::finetune::{
    FinetuneOptions, FinetuneRunConfig, FinetuneSummary, drop_path_masks, rank_masks, run_finetune,
};
use patchmix_train::session::{Collectives, FinetuneFeeds, FinetuneSession, SessionOptions};
use patchmix_train::step::finetune::finetune_state;
use patchmix_train::step::{
    FinetuneStepConfig, HostState, Ranks, build_finetune_rank_step, build_finetune_step,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;

#[path = "common/state_compare.rs"]
mod state_compare;
use state_compare::{analytic_zeros, rel_l2};

/// One step's global batch: images, label-smoothing (0.1) targets of random labels, and the
/// drop-path masks of the global batch.
struct Global {
    images: Vec<f32>,
    targets: Vec<f32>,
    masks: Vec<f32>,
}

fn global_batch(cfg: &FinetuneStepConfig, step: u64) -> Global {
    let mut rng = ChaCha8Rng::seed_from_u64(100 + step);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let images = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let s = 0.1f32;
    let mut targets = vec![s / cfg.classes as f32; cfg.batch * cfg.classes];
    for row in targets.chunks_mut(cfg.classes) {
        row[rng.random_range(0..cfg.classes)] += 1.0 - s;
    }
    let masks = drop_path_masks(cfg, &mut rng);
    Global {
        images,
        targets,
        masks,
    }
}

/// Rank `rank`'s rows (of `world`) of a global batch.
fn share(cfg: &FinetuneStepConfig, g: &Global, rank: usize, world: usize) -> Global {
    let b = cfg.batch / world;
    let rows = rank * b..(rank + 1) * b;
    let per = 3 * cfg.vit.img * cfg.vit.img;
    Global {
        images: g.images[rows.start * per..rows.end * per].to_vec(),
        targets: g.targets[rows.start * cfg.classes..rows.end * cfg.classes].to_vec(),
        masks: rank_masks(&g.masks, cfg.batch, rows),
    }
}

fn feeds(x: &Global) -> FinetuneFeeds<'_> {
    FinetuneFeeds {
        images: &x.images,
        targets: &x.targets,
        drop_path: (!x.masks.is_empty()).then_some(x.masks.as_slice()),
        lr: 1e-2,
        wd: 0.05,
        ema_decay: 0.9,
    }
}

fn initial(cfg: &FinetuneStepConfig) -> HostState {
    let layout = patchmix_train::step::FinetuneLayout::new(cfg);
    finetune_state(cfg, &layout, &init_weights(&cfg.vit, 2), 3).unwrap()
}

/// One process on the global batch: the loss of each of `steps` steps, and the state after
/// `at` steps.
fn one_process(cfg: &FinetuneStepConfig, steps: u64, at: u64) -> (Vec<f32>, HostState) {
    let step = build_finetune_step(cfg, false).unwrap();
    let mut s = FinetuneSession::new(
        step,
        &SessionOptions {
            threads: Some(1),
            ..SessionOptions::default()
        },
        &DeviceOptions::default(),
        &initial(cfg),
    )
    .unwrap();
    let mut losses = Vec::new();
    let mut state = None;
    for t in 0..steps {
        losses.push(s.run(&feeds(&global_batch(cfg, t))).unwrap().loss);
        if t + 1 == at {
            state = Some(s.to_host().unwrap());
        }
    }
    (losses, state.unwrap())
}

/// `world` thread ranks, each on its rows of the global batch: per rank, the losses and the
/// state after `at` steps.
fn thread_ranks(
    cfg: &FinetuneStepConfig,
    world: usize,
    steps: u64,
    at: u64,
) -> Vec<(Vec<f32>, HostState)> {
    let rank_cfg = FinetuneStepConfig {
        batch: cfg.batch / world,
        ..cfg.clone()
    };
    let comms = ThreadWorld::ranks(world);
    std::thread::scope(|sc| {
        let handles: Vec<_> = comms
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let rank_cfg = &rank_cfg;
                sc.spawn(move || {
                    let step = build_finetune_rank_step(rank_cfg, Ranks::of(world), false).unwrap();
                    let opts = SessionOptions {
                        threads: Some(1),
                        collectives: Some(Collectives::host(Arc::new(comm))),
                        ..SessionOptions::default()
                    };
                    let mut s =
                        FinetuneSession::new(step, &opts, &DeviceOptions::default(), &initial(cfg))
                            .unwrap();
                    let mut losses = Vec::new();
                    let mut state = None;
                    for t in 0..steps {
                        let mine = share(cfg, &global_batch(cfg, t), rank, world);
                        losses.push(s.run(&feeds(&mine)).unwrap().loss);
                        if t + 1 == at {
                            state = Some(s.to_host().unwrap());
                        }
                    }
                    (losses, state.unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two ranks against one process on `cfg`: every loss of 4 steps within 1e-5 relative, and
/// the state after 2 steps within 1e-5 relative L2.
fn two_ranks_match_one_process(cfg: &FinetuneStepConfig) {
    let (want_losses, want) = one_process(cfg, 4, 2);
    let ranks = thread_ranks(cfg, 2, 4, 2);
    // Every rank reports the loss of the global batch and holds the same state.
    assert_eq!(ranks[0].0, ranks[1].0);
    assert_eq!(ranks[0].1, ranks[1].1);
    let (got_losses, got) = &ranks[0];
    let mut worst = 0.0f64;
    for (t, (g, w)) in got_losses.iter().zip(&want_losses).enumerate() {
        let r = f64::from((g - w).abs()) / f64::from(w.abs()).max(1e-12);
        worst = worst.max(r);
        assert!(r <= 1e-5, "step {}: loss {g} vs {w} ({r:.2e})", t + 1);
    }
    eprintln!(
        "drop path {}: worst loss disagreement over 4 steps {worst:.2e}",
        cfg.drop_path
    );
    // The key third of each qkv bias has an analytically vanishing gradient: its float
    // gradient is rounding noise, which Adam's first steps normalise to ±lr (see
    // common/state_compare.rs).
    let layout = patchmix_train::step::FinetuneLayout::new(cfg);
    let noise = analytic_zeros(&layout.params);
    assert!(
        got.params != initial(cfg).params,
        "the parameters did not move"
    );
    for (name, a, b) in [
        ("params", &got.params, &want.params),
        ("exp_avg", &got.exp_avg, &want.exp_avg),
        ("exp_avg_sq", &got.exp_avg_sq, &want.exp_avg_sq),
        ("ema", &got.momentum, &want.momentum),
    ] {
        let d = rel_l2(a, b, |i| !noise[i]);
        eprintln!(
            "drop path {}: {name} after 2 steps: relative L2 {d:.2e}",
            cfg.drop_path
        );
        assert!(d <= 1e-5, "{name}: {d:.2e}");
    }
    assert_eq!(got.step, 2);
}

fn tiny(drop_path: f32) -> FinetuneStepConfig {
    FinetuneStepConfig {
        drop_path,
        ..FinetuneStepConfig::tiny(5)
    }
}

#[test]
fn two_ranks_step_as_one_process_without_drop_path() {
    two_ranks_match_one_process(&tiny(0.0));
}

#[test]
fn two_ranks_step_as_one_process_with_drop_path_drawn_per_global_sample() {
    two_ranks_match_one_process(&tiny(0.3));
}

#[test]
fn one_rank_compiles_the_unchanged_step() {
    let cfg = tiny(0.1);
    let a = build_finetune_step(&cfg, false).unwrap();
    let b = build_finetune_rank_step(&cfg, Ranks::of(1), false).unwrap();
    let bytes = |g: &patchmix_export::graph::Graph| patchmix_export::onnx::to_onnx_bytes(g);
    assert_eq!(bytes(&a.graph), bytes(&b.graph));
    assert!(!b.collectives);
    let two = build_finetune_rank_step(&cfg, Ranks::of(2), false).unwrap();
    assert_ne!(bytes(&a.graph), bytes(&two.graph));
}

#[test]
fn a_multi_rank_step_without_a_communicator_of_its_size_is_refused() {
    let cfg = FinetuneStepConfig {
        batch: 4,
        ..tiny(0.0)
    };
    let step = || build_finetune_rank_step(&cfg, Ranks::of(2), false).unwrap();
    let refuse = |opts: SessionOptions| -> String {
        match FinetuneSession::new(step(), &opts, &DeviceOptions::default(), &initial(&cfg)) {
            Ok(_) => panic!("a two-rank step ran with {:?}", opts.collectives),
            Err(e) => e.to_string(),
        }
    };
    let e = refuse(SessionOptions::default());
    assert!(
        e.contains("compiled for 2 data-parallel ranks") && e.contains("0: none given"),
        "{e}"
    );
    let three = ThreadWorld::ranks(3).remove(0);
    let e = refuse(SessionOptions {
        collectives: Some(Collectives::host(Arc::new(three))),
        ..SessionOptions::default()
    });
    assert!(e.contains("communicator has 3"), "{e}");
}

// ---- The run ----

/// A small run on synthetic 16-px data: a ViT with patch 4, D 16, depth 2; mixing off.
fn run_config(out: &Path, batch: usize) -> FinetuneRunConfig {
    let mut c = FinetuneRunConfig::preset("demo-ft").unwrap();
    c.data = "synthetic:48,size=16".into();
    c.eval_data = Some("synthetic:20,size=16".into());
    c.vit = VitConfig {
        img: 16,
        patch: 4,
        dim: 16,
        depth: 2,
        heads: 2,
    };
    c.classes = None;
    c.batch = batch;
    c.epochs = 2;
    c.warmup_epochs = 0;
    c.mixup = false;
    c.drop_path = 0.1;
    c.out_dir = out.to_path_buf();
    c
}

fn options(max_steps: u64, resume: bool) -> FinetuneOptions {
    FinetuneOptions {
        random_init: true,
        max_steps: Some(max_steps),
        resume,
        threads: Some(1),
        quiet: true,
        ..FinetuneOptions::default()
    }
}

/// `cfgs[r]` on thread rank r (one rank per configuration).
fn on_ranks(
    cfgs: &[&FinetuneRunConfig],
    opts: &FinetuneOptions,
) -> Vec<Result<FinetuneSummary, String>> {
    let comms = ThreadWorld::ranks(cfgs.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = comms
            .into_iter()
            .zip(cfgs)
            .map(|(comm, cfg)| {
                s.spawn(move || {
                    let o = FinetuneOptions {
                        collectives: Some(Collectives::host(Arc::new(comm))),
                        ..opts.clone()
                    };
                    run_finetune(cfg, &o).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// (step, loss) of every step record.
fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["kind"] == "step")
                .then(|| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        })
        .collect()
}

fn assert_close(got: &[(u64, f64)], want: &[(u64, f64)]) -> f64 {
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        want.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let mut worst = 0.0f64;
    for ((s, g), (_, w)) in got.iter().zip(want) {
        let r = (g - w).abs() / w.abs().max(1e-12);
        worst = worst.max(r);
        assert!(r <= 1e-5, "step {s}: loss {g} vs {w} ({r:.2e})");
    }
    worst
}

#[test]
fn two_ranks_fine_tune_as_one_process_and_resume_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // 48 images, batch 8: 6 steps per epoch; 8 steps cross into the second epoch.
    let one = run_config(&dir.path().join("one"), 8);
    let single = run_finetune(&one, &options(8, false)).unwrap();
    let want = step_losses(&one.out_dir);
    assert_eq!(want.len(), 8);

    let two = run_config(&dir.path().join("two"), 8);
    let s = on_ranks(&[&two, &two], &options(8, false));
    let (lead, other) = (s[0].as_ref().unwrap(), s[1].as_ref().unwrap());
    // Rank 0 alone evaluates and writes: one record per step, not two.
    let got = step_losses(&two.out_dir);
    let worst = assert_close(&got, &want);
    eprintln!("run: worst loss disagreement over 8 steps {worst:.2e}");
    assert_eq!(lead.evals.len(), single.evals.len());
    assert!(other.evals.is_empty());
    assert_eq!((lead.steps, other.steps), (8, 8));
    for (a, b) in lead.evals.iter().zip(&single.evals) {
        assert!((a.top1 - b.top1).abs() <= 5.0 + 1e-9, "{a:?} vs {b:?}");
    }
    assert!(two.out_dir.join("classifier.onnx").is_file());
    assert!(two.out_dir.join("summary.json").is_file());

    // Both ranks resume from rank 0's checkpoint: 4 steps, then on to 8.
    let part = run_config(&dir.path().join("part"), 8);
    for r in on_ranks(&[&part, &part], &options(4, false)) {
        r.unwrap();
    }
    for r in on_ranks(&[&part, &part], &options(8, true)) {
        r.unwrap();
    }
    let worst = assert_close(&step_losses(&part.out_dir), &want);
    eprintln!("resumed run: worst loss disagreement over 8 steps {worst:.2e}");
}

#[test]
fn a_batch_that_does_not_split_and_ranks_that_differ_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (batch, words) in [
        (9, "does not split evenly over 2 ranks"),
        (10, "5 images per rank, which must be even"),
    ] {
        let c = run_config(&dir.path().join("run"), batch);
        for e in on_ranks(&[&c, &c], &options(1, false)) {
            let e = e.unwrap_err();
            assert!(
                e.starts_with("--batch: ") && e.contains(&format!("global batch {batch}")),
                "{e}"
            );
            assert!(e.contains(words) && !e.contains('\n'), "{e}");
        }
    }
    let a = run_config(&dir.path().join("run"), 8);
    let b = FinetuneRunConfig {
        seed: a.seed + 1,
        ..a.clone()
    };
    for e in on_ranks(&[&a, &b], &options(1, false)) {
        let e = e.unwrap_err();
        assert!(
            e.contains("different configurations: rank 1 differs from rank 0") && !e.contains('\n'),
            "{e}"
        );
    }
    assert!(!dir.path().join("run").exists(), "a refused run wrote");
}
