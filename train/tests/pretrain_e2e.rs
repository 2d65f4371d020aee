//! A user's whole path on CPU with a tiny configuration, through the `patchmix` binary:
//! pretrain a few steps on synthetic data, stop mid-epoch, resume bit-exactly, dump a step in
//! both frames, export, check tract and ort agree on the exported encoder, and run kNN.

use std::path::Path;

mod common;
use common::patchmix;

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v.get("step")?.as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}

#[test]
fn pretrain_resume_export_and_knn() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let part = dir.path().join("part");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Uninterrupted: 2 epochs of 8 steps.
    let (ok, _, err) = patchmix(&[
        "pretrain",
        "--preset",
        "tiny-test",
        "--out",
        &s(&full),
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let want = losses(&full);
    assert_eq!(want.len(), 16, "{want:?}");
    assert!(full.join("encoder.onnx").is_file() && full.join("encoder.safetensors").is_file());

    // Interrupted mid-epoch at step 5, then resumed.
    let (ok, _, err) = patchmix(&[
        "pretrain",
        "--preset",
        "tiny-test",
        "--out",
        &s(&part),
        "--max-steps",
        "5",
        "--quiet",
    ]);
    assert!(ok, "{err}");
    assert_eq!(losses(&part).len(), 5);
    let last = std::fs::read_to_string(part.join("checkpoints/last")).unwrap();
    assert_eq!(last.trim(), "step-00000005");
    let (ok, _, err) = patchmix(&[
        "pretrain",
        "--preset",
        "tiny-test",
        "--out",
        &s(&part),
        "--resume",
        "auto",
        "--quiet",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming from"), "{err}");
    assert_eq!(
        losses(&part),
        want,
        "a resumed run must reproduce the uninterrupted losses exactly"
    );

    // The exported encoder: tract and ort agree, and kNN runs on it.
    let model = s(&full.join("encoder.onnx"));
    let ft = s(&dir.path().join("t.safetensors"));
    let fo = s(&dir.path().join("o.safetensors"));
    for (rt, out) in [("tract", &ft), ("ort", &fo)] {
        let (ok, _, err) = patchmix(&[
            "embed",
            "--model",
            &model,
            "--data",
            "synthetic:40,size=8:test",
            "--out",
            out,
            "--runtime",
            rt,
        ]);
        assert!(ok, "{rt}: {err}");
    }
    let a = patchmix_export::knn::FeatureIndex::load(&ft).unwrap();
    let b = patchmix_export::knn::FeatureIndex::load(&fo).unwrap();
    let diff = (&a.features() - &b.features()).mapv(|x| x * x).sum().sqrt();
    assert!(diff < 1e-3, "tract vs ort features differ by {diff}");
    let (ok, out, err) = patchmix(&[
        "knn",
        "--model",
        &model,
        "--train",
        "synthetic:64,size=8",
        "--test",
        "synthetic:40,size=8:test",
        "--k",
        "10,20",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("top-1"), "{out}");
}

#[test]
fn dump_step_writes_a_reproducible_step_in_both_frames() {
    let dir = tempfile::tempdir().unwrap();
    for frame in ["no-momentum", "momentum"] {
        let cfg = dir.path().join(format!("{frame}.toml"));
        let run = dir.path().join(format!("run-{frame}"));
        std::fs::write(
            &cfg,
            format!(
                "preset = \"tiny-test\"\nframe = \"{frame}\"\nout_dir = \"{}\"\n",
                run.display()
            ),
        )
        .unwrap();
        let dump = dir.path().join(format!("dump-{frame}"));
        let (ok, out, err) = patchmix(&[
            "pretrain",
            "--config",
            cfg.to_str().unwrap(),
            "--dump-step",
            dump.to_str().unwrap(),
        ]);
        assert!(ok, "{frame}: {err}");
        assert!(out.contains("dumped one step"), "{out}");
        let before =
            patchmix_export::weights::load_safetensors(dump.join("before.safetensors")).unwrap();
        let after =
            patchmix_export::weights::load_safetensors(dump.join("after.safetensors")).unwrap();
        let inputs =
            patchmix_export::weights::load_safetensors(dump.join("inputs.safetensors")).unwrap();
        for k in [
            "base_encoder.blocks.0.attn.qkv.weight",
            "base_encoder.head.0.weight",
            "base_encoder.head.1.running_mean",
            "predictor.0.weight",
            "opt.exp_avg.predictor.0.weight",
        ] {
            assert!(
                before.tensors.contains_key(k) && after.tensors.contains_key(k),
                "{frame}: {k} missing"
            );
        }
        // The first step's learning rate is 0 (linear warm-up from 0), so the step shows in the
        // optimizer state: the first moments become (1 − β₁)·g.
        let key = "opt.exp_avg.base_encoder.head.0.weight";
        assert!(before.tensors[key].iter().all(|&v| v == 0.0));
        assert!(
            after.tensors[key].iter().any(|&v| v != 0.0),
            "{frame}: the step must produce gradients"
        );
        assert_eq!(after.ints["opt.step"].iter().next().copied(), Some(1));
        assert_eq!(
            after.ints["base_encoder.head.1.num_batches_tracked"]
                .iter()
                .next()
                .copied(),
            Some(if frame == "momentum" { 2 } else { 4 })
        );
        if frame == "momentum" {
            assert!(
                after
                    .tensors
                    .contains_key("momentum_encoder.blocks.0.attn.qkv.weight")
            );
            assert_eq!(
                after.ints["momentum_encoder.head.1.num_batches_tracked"]
                    .iter()
                    .next()
                    .copied(),
                Some(3)
            );
        }
        for k in [
            "view1",
            "view2",
            "mix1",
            "mix2",
            "target_src",
            "target_mix",
            "target_mix2",
            "lr",
            "wd",
            "temperature",
            "momentum",
        ] {
            assert!(inputs.tensors.contains_key(k), "{frame}: input {k} missing");
        }
        let l: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dump.join("losses.json")).unwrap())
                .unwrap();
        let (src, mix, mix2, total) = (
            l["src"].as_f64().unwrap(),
            l["mix"].as_f64().unwrap(),
            l["mix2"].as_f64().unwrap(),
            l["total"].as_f64().unwrap(),
        );
        assert!((total - (src + mix / 2.0 + mix2 / 2.0)).abs() < 1e-4, "{l}");
    }
}

#[test]
fn bad_pretrain_inputs_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "preset = \"tiny-test\"\nlearning_rate = 3\n").unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // Multi-crop settings that cannot work (the tiny-test recipe: img 8, patch 2, m 2).
    let toml_case = |name: &str, body: &str| -> Vec<String> {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, format!("preset = \"tiny-test\"\n{body}")).unwrap();
        vec!["--config".into(), p.display().to_string()]
    };
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            toml_case("odd-local", "local_crops = 2\nlocal_size = 5\n"),
            "local crop size 5 must be a positive multiple of the patch size 2",
        ),
        (
            toml_case("small-local", "local_crops = 2\nlocal_size = 2\n"),
            "mix m = 2 exceeds the 1 tokens of a 2-pixel local crop",
        ),
        (
            toml_case(
                "bad-global",
                "local_crops = 2\nlocal_size = 4\nglobal_crop = 0.01\n",
            ),
            "global_crop 0.01 must be in",
        ),
        (
            toml_case("many-local", "local_crops = 65\nlocal_size = 4\n"),
            "local_crops = 65 is too many",
        ),
    ];
    cases.extend(vec![
        (
            vec!["--preset".into(), "nope".into()],
            "unknown preset `nope`",
        ),
        (
            vec!["--config".into(), bad_toml.display().to_string()],
            "unknown field `learning_rate`",
        ),
        (
            vec![
                "--preset".into(),
                "tiny-test".into(),
                "--data".into(),
                "/nonexistent/dataset".into(),
                "--out".into(),
                dir.path().join("r1").display().to_string(),
            ],
            "/nonexistent/dataset",
        ),
        (
            vec![
                "--preset".into(),
                "tiny-test".into(),
                "--batch".into(),
                "1".into(),
            ],
            "batch 1 is too small",
        ),
        (
            vec![
                "--preset".into(),
                "tiny-test".into(),
                "--out".into(),
                file.join("sub").display().to_string(),
            ],
            "output directory",
        ),
        (
            vec![
                "--preset".into(),
                "tiny-test".into(),
                "--device".into(),
                "cuda".into(),
            ],
            "--device cuda",
        ),
        (
            vec![
                "--preset".into(),
                "tiny-test".into(),
                "--out".into(),
                dir.path().join("r2").display().to_string(),
                "--resume".into(),
                "/nonexistent/run".into(),
            ],
            "no checkpoint there",
        ),
        (
            vec![
                "--preset".into(),
                "tiny-test".into(),
                "--precision".into(),
                "int8".into(),
            ],
            "--precision int8: unknown precision `int8` (expected fp32, bf16 or fp16)",
        ),
        (
            toml_case("bad-precision", "precision = \"half\"\n"),
            "unknown variant `half`",
        ),
    ]);
    for (args, want) in cases {
        let mut a = vec!["pretrain".to_string()];
        a.extend(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, _, err) = patchmix(&refs);
        assert!(!ok, "{a:?} should fail");
        assert!(err.contains(want), "{a:?}: expected `{want}` in: {err}");
        assert!(!err.contains("panicked"), "{a:?}: {err}");
        assert_eq!(
            err.trim()
                .lines()
                .filter(|l| l.starts_with("error"))
                .count(),
            1,
            "{a:?}: {err}"
        );
    }
}

/// Multi-crop (the ImageNet recipe's local crops) end to end: the loader makes the crops, the
/// step takes them as two extra base passes, and the dump has their inputs and loss terms.
#[test]
fn multi_crop_step_dumps_local_crops_and_their_loss_terms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("multi.toml");
    let run = dir.path().join("run-multi");
    std::fs::write(
        &cfg,
        format!(
            "preset = \"tiny-test\"\nframe = \"momentum\"\nlocal_crops = 2\nlocal_size = 4\nglobal_crop = 0.4\nout_dir = \"{}\"\n",
            run.display()
        ),
    )
    .unwrap();
    let dump = dir.path().join("dump-multi");
    let (ok, _, err) = patchmix(&[
        "pretrain",
        "--config",
        cfg.to_str().unwrap(),
        "--dump-step",
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let inputs =
        patchmix_export::weights::load_safetensors(dump.join("inputs.safetensors")).unwrap();
    let b = inputs.tensors["view1"].shape()[0];
    for k in ["local", "local_mix"] {
        assert_eq!(inputs.tensors[k].shape(), &[2 * b, 3, 4, 4], "{k}");
    }
    assert_ne!(inputs.tensors["local"], inputs.tensors["local_mix"]);
    let after = patchmix_export::weights::load_safetensors(dump.join("after.safetensors")).unwrap();
    // The predictor's BN ran in four passes: view1, mix2, the local crops and their mixes.
    assert_eq!(
        after.ints["predictor.1.num_batches_tracked"]
            .iter()
            .next()
            .copied(),
        Some(4)
    );
    let l: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dump.join("losses.json")).unwrap()).unwrap();
    let f = |k: &str| {
        l[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {l}"))
    };
    assert!(f("multi") > 0.0 && f("multi_mix") > 0.0, "{l}");
    let want = f("src") + f("mix") / 2.0 + f("mix2") / 2.0 + f("multi") + f("multi_mix");
    assert!((f("total") - want).abs() < 1e-4 * want, "{l}");
}

/// A diverging run stops at the first non-finite loss with one clear error that names the
/// last good checkpoint, and leaves that checkpoint intact.
#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-nan");
    let cfg = dir.path().join("nan.toml");
    std::fs::write(
        &cfg,
        format!(
            "preset = \"tiny-test\"\nbase_lr = 1e30\nepochs = 4\nout_dir = \"{}\"\n",
            run.display()
        ),
    )
    .unwrap();
    let (ok, _, err) = patchmix(&["pretrain", "--config", cfg.to_str().unwrap()]);
    assert!(!ok, "a run at lr 1e30 must diverge");
    assert!(err.contains("loss became"), "{err}");
    assert!(err.contains("stopping"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = std::fs::read_to_string(run.join("checkpoints").join("last"));
    if err.contains("The last good checkpoint is none") {
        assert!(last.is_err(), "no checkpoint was promised, none may exist");
    } else {
        let name = last.expect("the `last` pointer of the named checkpoint");
        let ck = run.join("checkpoints").join(name.trim());
        assert!(err.contains(&ck.display().to_string()), "{err}");
        patchmix_export::weights::load_safetensors(ck.join("state.safetensors"))
            .expect("the last good checkpoint stays loadable");
    }
}

/// fp16 does not stop at the first overflow (the loss scale backs off, as GradScaler's), but a
/// run whose activations overflow half precision at every scale stops with advice after
/// `MAX_CONSECUTIVE_SKIPS` skipped steps in a row, without a panic.
#[test]
fn an_fp16_run_that_always_overflows_stops_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-fp16-inf");
    let cfg = dir.path().join("fp16-inf.toml");
    std::fs::write(
        &cfg,
        format!(
            "preset = \"tiny-test\"\nprecision = \"fp16\"\nbase_lr = 1e30\nepochs = 10\nout_dir = \"{}\"\n",
            run.display()
        ),
    )
    .unwrap();
    let (ok, _, err) = patchmix(&["pretrain", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert!(!ok, "a run at lr 1e30 in fp16 must stop");
    assert!(
        err.contains("fp16: the gradients overflowed 30 steps in a row"),
        "{err}"
    );
    assert!(err.contains("use --precision bf16 or fp32"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Every step before the stop was logged, the skipped ones marked.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let skipped = metrics
        .lines()
        .filter(|l| l.contains("\"skipped\":true"))
        .count();
    assert!(skipped >= 29, "{skipped} skipped steps logged");
}

/// An ImageFolder dataset: images of another size than the recipe's are cropped and resized
/// (a note says so when the dataset has one fixed size; a folder may mix sizes), while a
/// corrupt image stops the run with one error that names the file.
#[test]
fn image_folders_of_any_size_train_and_a_corrupt_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("folder");
    for (class, sizes) in [("a", [(12u32, 10u32), (8, 8)]), ("b", [(20, 16), (9, 13)])] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..4 {
            let (w, h) = sizes[i % 2];
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 20) as u8, (y * 15) as u8, (i * 60) as u8])
            });
            img.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let run = dir.path().join("run-folder");
    let (ok, _, err) = patchmix(&[
        "pretrain",
        "--preset",
        "tiny-test",
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "4",
        "--max-steps",
        "2",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(ok, "mixed image sizes must train (resized): {err}");

    let bad = data.join("b").join("1.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n not really a png").unwrap();
    let (ok, _, err) = patchmix(&[
        "pretrain",
        "--preset",
        "tiny-test",
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "4",
        "--out",
        dir.path().join("run-bad").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok, "a corrupt image must stop the run");
    assert!(err.contains("1.png"), "the error must name the file: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Mixed precision through the binary: an fp16 run (emulated on the CPU) logs its loss scale
/// and skipped steps, stops mid-epoch, and resumes with the loss scaler restored, giving the
/// same losses as the uninterrupted run; bf16 trains too.
#[test]
fn fp16_runs_resume_with_their_loss_scaler_and_bf16_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let run = |out: &Path, extra: &[&str]| {
        let mut a = vec!["pretrain", "--preset", "tiny-test", "--quiet"];
        let o = s(out);
        a.extend(["--out", &o]);
        a.extend(extra);
        let (ok, _, err) = patchmix(&a);
        assert!(ok, "{a:?}: {err}");
        err
    };
    let full = dir.path().join("fp16-full");
    let err = run(&full, &["--precision", "fp16"]);
    assert!(err.contains("emulated"), "{err}");
    let want = losses(&full);
    assert_eq!(want.len(), 16);
    // Each record has the scale its step used; a skipped step halves it for the next.
    let metrics = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("loss_scale").is_some())
        .collect();
    assert_eq!(recs[0]["loss_scale"].as_f64(), Some(65536.0), "{}", recs[0]);
    for w in recs.windows(2) {
        let (a, b) = (w[0]["loss_scale"].as_f64(), w[1]["loss_scale"].as_f64());
        match w[0]["skipped"].as_bool() {
            Some(true) => assert_eq!(b, a.map(|x| x / 2.0), "{}", w[1]),
            Some(false) => assert_eq!(b, a, "{}", w[1]),
            None => panic!("no `skipped` in {}", w[0]),
        }
    }

    let part = dir.path().join("fp16-part");
    run(&part, &["--precision", "fp16", "--max-steps", "5"]);
    let ck = part.join("checkpoints/step-00000005/state.safetensors");
    let names = patchmix_export::weights::load_safetensors(&ck).unwrap();
    assert!(names.tensors.contains_key("scaler.scale"));
    assert!(names.ints.contains_key("scaler._growth_tracker"));
    run(&part, &["--precision", "fp16", "--resume", "auto"]);
    assert_eq!(losses(&part), want);

    let bf16 = dir.path().join("bf16");
    run(&bf16, &["--precision", "bf16"]);
    let l = losses(&bf16);
    assert_eq!(l.len(), 16);
    assert!(l.iter().all(|(_, x)| x.is_finite()));
}

/// Writes `n` 8×8 PNGs per class into `dir/<class>/`, each class a different colour.
fn class_folder(dir: &Path, classes: &[&str], n: usize) {
    for (c, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(8, 8, |x, y| {
                image::Rgb([(c * 80) as u8, (x * 30 + i as u32) as u8, (y * 30) as u8])
            });
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
}

/// The kNN monitor follows `--data`: a config naming the `demo` preset (whose eval data is
/// MNIST) trained on an image folder evaluates on that folder's test split; without one it
/// evaluates nothing and says so once; and a bank and queries of other classes are refused.
#[test]
fn the_knn_evaluation_follows_the_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    class_folder(&split.join("train"), &["ant", "bee", "cat"], 8);
    class_folder(&split.join("test"), &["ant", "bee", "cat"], 4);
    let flat = dir.path().join("flat");
    class_folder(&flat, &["ant", "bee", "cat"], 8);
    let other = dir.path().join("other");
    class_folder(&other.join("train"), &["ant", "bee", "dog"], 2);
    class_folder(&other.join("test"), &["ant", "bee", "dog"], 2);
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "preset = \"demo\"\nimg = 8\npatch = 2\ndim = 16\ndepth = 2\nheads = 2\nhidden = 32\nout = 16\nbatch = 8\nepochs = 1\nknn_every = 1\ncompare_baselines = false\n",
    )
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let run = |name: &str, extra: &[&str]| {
        let out = s(&dir.path().join(name));
        let mut a = vec!["pretrain", "--config", cfg.to_str().unwrap(), "--quiet"];
        a.extend(["--out", &out]);
        a.extend(extra);
        patchmix(&a)
    };

    // The same dataset's test split.
    let (ok, out, err) = run("run-split", &["--data", &s(&split)]);
    assert!(ok, "{err}");
    let test = format!("{}:test", split.display());
    assert!(err.contains(&format!("evaluating on {test}")), "{err}");
    assert!(
        err.contains(&format!("kNN of the pretrained encoder on {test}")),
        "{err}"
    );
    assert!(!err.contains("mnist10k"), "{err}");
    assert!(out.contains("top-1"), "{out}");
    let saved = std::fs::read_to_string(dir.path().join("run-split/config.toml")).unwrap();
    assert!(
        saved.contains(&format!("eval_data = \"{test}\"")),
        "{saved}"
    );

    // No test split: no evaluation, one warning.
    let (ok, out, err) = run("run-flat", &["--data", &s(&flat)]);
    assert!(ok, "{err}");
    assert_eq!(
        err.matches("warning: ").count(),
        1,
        "one warning expected: {err}"
    );
    assert!(
        err.contains(&format!(
            "warning: the training data {} has no separate test split",
            flat.display()
        )) && err.contains("the kNN monitor and the final evaluation are off"),
        "{err}"
    );
    assert!(!err.contains("kNN of the pretrained encoder"), "{err}");
    assert!(!out.contains("top-1"), "{out}");
    let metrics = std::fs::read_to_string(dir.path().join("run-flat/metrics.jsonl")).unwrap();
    assert!(!metrics.contains("knn"), "{metrics}");

    // Eval data given explicitly wins, and must label the same classes.
    let refusals = [
        (
            "synthetic:20,size=8:test".to_string(),
            "eval data synthetic:20,size=8:test has 10 classes but the training data".to_string(),
        ),
        (
            format!("{}:test", other.display()),
            "names its classes differently from the training data".to_string(),
        ),
    ];
    for (i, (eval, want)) in refusals.iter().enumerate() {
        let (ok, _, err) = run(
            &format!("run-refused-{i}"),
            &["--data", &s(&split), "--eval-data", eval],
        );
        assert!(!ok, "{eval} must be refused");
        assert!(err.contains(want), "{eval}: expected `{want}` in: {err}");
        assert!(err.contains("has 3") || i == 1, "{err}");
        assert!(err.contains("(`dog` vs `cat`)") || i == 0, "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
