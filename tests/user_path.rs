//! A user's whole path on CPU with a tiny configuration, across the crates: pretrain a few
//! steps on synthetic data (`patchmix-train`), stop mid-epoch and resume bit-exactly, export the
//! encoder as ONNX, check that tract and ONNX Runtime give the same features
//! (`patchmix-export`), and run kNN on them.

use patchmix_e2e::losses;
use patchmix_export::data::{Dataset, DatasetRef};
use patchmix_export::knn::{FeatureIndex, knn_report};
use patchmix_export::runtime::{Embed, OrtEncoder, TractEncoder};
use patchmix_train::pretrain::monitor::embed_dataset;
use patchmix_train::pretrain::{PretrainConfig, RunOptions, run_pretrain};

fn tiny(out: &std::path::Path) -> PretrainConfig {
    let mut c = PretrainConfig::preset("tiny-test").expect("the tiny-test preset");
    c.out_dir = out.to_path_buf();
    c
}

fn quiet(resume: Option<&str>) -> RunOptions {
    RunOptions {
        resume: resume.map(str::to_string),
        progress: false,
        ..RunOptions::default()
    }
}

#[test]
fn pretrain_resume_export_tract_vs_ort_and_knn() {
    let dir = tempfile::tempdir().unwrap();
    let (full, part) = (dir.path().join("full"), dir.path().join("part"));

    // 1. Pretrain: 2 epochs of 8 steps on synthetic data.
    run_pretrain(&tiny(&full), &quiet(None)).expect("pretraining");
    let want = losses(&full);
    assert_eq!(want.len(), 16, "{want:?}");
    assert!(want.iter().all(|(_, l)| l.is_finite()));

    // 2. Stop mid-epoch at step 5, then resume: the same losses as without the interruption.
    let mut stopped = tiny(&part);
    stopped.max_steps = Some(5);
    run_pretrain(&stopped, &quiet(None)).expect("the interrupted run");
    assert_eq!(losses(&part).len(), 5);
    run_pretrain(&tiny(&part), &quiet(Some("auto"))).expect("the resumed run");
    assert_eq!(
        losses(&part),
        want,
        "a resumed run must reproduce the uninterrupted losses exactly"
    );

    // 3. The exported encoder.
    let onnx = std::fs::read(full.join("encoder.onnx")).expect("encoder.onnx was exported");
    let mut tract = TractEncoder::from_bytes(&onnx).expect("tract loads the encoder");
    let mut ort = OrtEncoder::from_bytes(&onnx).expect("ONNX Runtime loads the encoder");

    // 4. tract and ort give the same features.
    let img = tiny(&full).img;
    let open = |s: &str| Dataset::open(&s.parse::<DatasetRef>().unwrap()).unwrap();
    let (bank, test) = (
        open("synthetic:64,size=8"),
        open("synthetic:40,size=8:test"),
    );
    let (ft, labels) = embed_dataset(&mut tract as &mut dyn Embed, &test, img, None).unwrap();
    let (fo, _) = embed_dataset(&mut ort as &mut dyn Embed, &test, img, None).unwrap();
    assert_eq!(ft.dim(), (40, 16));
    let diff = (&ft - &fo).mapv(|x| x * x).sum().sqrt() / ft.mapv(|x| x * x).sum().sqrt();
    assert!(
        diff < 1e-4,
        "tract vs ort features differ (relative {diff})"
    );

    // 5. kNN on the features: the bank from the train split, the test split as queries.
    let (fb, lb) = embed_dataset(&mut ort as &mut dyn Embed, &bank, img, None).unwrap();
    let index = FeatureIndex::new(fb, lb, None).expect("a feature index");
    let report = knn_report(&index, ft.view(), &labels, &[10, 20], 0.07).expect("kNN");
    let row = report.row(20).expect("k = 20");
    assert!((0.0..=100.0).contains(&row.top1), "{report:?}");
    assert_eq!(report.rows.len(), 2);
}

/// The training loop prepares the next step's PatchMix inputs on another thread while a step
/// runs; the losses are exactly those of stepping a `Trainer` by hand, one batch at a time.
#[test]
fn the_overlapped_training_loop_matches_stepping_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("loop");
    let mut cfg = tiny(&run);
    cfg.epochs = 1;
    cfg.max_steps = Some(6);
    run_pretrain(&cfg, &quiet(None)).expect("pretraining");
    let by_loop: Vec<f64> = losses(&run).into_iter().map(|(_, l)| l).collect();
    assert_eq!(by_loop.len(), 6);

    cfg.out_dir = dir.path().join("hand");
    let mut t = patchmix_train::pretrain::Trainer::new(&cfg, &quiet(None)).expect("a trainer");
    let mut by_hand = Vec::new();
    for batch in t.loader.epoch(0).take(6) {
        let batch = batch.expect("a batch");
        let local = patchmix_train::pretrain::run::local_crops(&batch);
        let (v1, v2) = (
            batch.view1.into_raw_vec_and_offset().0,
            batch.view2.into_raw_vec_and_offset().0,
        );
        let (l, _) = t.step(v1, v2, local).expect("a step");
        t.progress.global_step += 1;
        t.progress.step_in_epoch += 1;
        by_hand.push(f64::from(l.total));
    }
    assert_eq!(by_loop, by_hand);
}
