//! `patchmix plot` and [`patchmix_train::plot::plot_run`] on a synthetic `metrics.jsonl` shaped
//! like `patchmix pretrain`'s: the PNGs exist, have the right sizes and are not blank; bad
//! metrics files give a one-line error naming the file and line.

use patchmix_train::plot::{PlotError, PlotOptions, plot_run};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

/// A run of `epochs × steps_per_epoch` steps with noisy decaying losses, warm-up + cosine
/// schedules, a kNN evaluation every `knn_every` epochs, the final one and the baselines.
fn synthetic_metrics(epochs: u64, steps_per_epoch: u64, knn_every: u64) -> String {
    let total = epochs * steps_per_epoch;
    let mut out = String::new();
    let mut step = 0u64;
    for epoch in 0..epochs {
        for _ in 0..steps_per_epoch {
            step += 1;
            let t = step as f64 / total as f64;
            // Deterministic "noise".
            let noise = 0.15 * ((step as f64 * 12.9898).sin() * 43_758.545).fract();
            let decay = (-4.0 * t).exp();
            let (src, mix, mix2) = (
                2.0 + 3.0 * decay + noise,
                2.5 + 3.2 * decay + 1.2 * noise,
                1.5 + 2.0 * decay + 0.8 * noise,
            );
            let warm = (step as f64 / (0.1 * total as f64)).min(1.0);
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
            writeln!(
                out,
                "{{\"step\":{step},\"epoch\":{epoch},\"loss\":{},\"src\":{src},\"mix\":{mix},\"mix2\":{mix2},\"lr\":{},\"wd\":{},\"tau\":{},\"mu\":{},\"img_per_s\":{}}}",
                src + mix + mix2,
                1.5e-4 * warm * cos,
                0.04 + 0.06 * (1.0 - cos),
                0.2,
                1.0 - 0.01 * cos,
                300.0 + 20.0 * noise
            )
            .unwrap();
        }
        let done = epoch + 1;
        if done % knn_every == 0 && done < epochs {
            let acc = 40.0 + 50.0 * (1.0 - (-(done as f64) / 8.0).exp());
            writeln!(
                out,
                "{{\"step\":{step},\"epoch\":{done},\"knn_k\":20,\"knn_top1\":{acc},\"knn_top5\":{}}}",
                (acc + 8.0).min(100.0)
            )
            .unwrap();
        }
    }
    writeln!(
        out,
        "{{\"step\":{step},\"epoch\":{epochs},\"knn_k\":20,\"knn_top1\":88.5,\"knn_top5\":97.25,\"final\":true}}"
    )
    .unwrap();
    writeln!(
        out,
        "{{\"step\":{step},\"epoch\":{epochs},\"baselines_knn20_top1\":{{\"pretrained\":88.5,\"random_init\":71.2,\"raw_pixels\":80.4}}}}"
    )
    .unwrap();
    out
}

/// Decodes a PNG and returns (width, height, variance of the grey level, fraction of
/// non-white pixels).
fn png_stats(path: &Path) -> (u32, u32, f64, f64) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8();
    let n = f64::from(img.width() * img.height());
    let mean = img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / n;
    let var = img
        .pixels()
        .map(|p| (f64::from(p.0[0]) - mean).powi(2))
        .sum::<f64>()
        / n;
    let ink = img.pixels().filter(|p| p.0[0] < 250).count() as f64 / n;
    (img.width(), img.height(), var, ink)
}

#[test]
fn plots_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        synthetic_metrics(30, 40, 5),
    )
    .unwrap();
    let s = plot_run(dir.path(), &PlotOptions::default()).unwrap();
    let names: Vec<String> = s
        .written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["losses.png", "knn.png", "schedules.png"]);
    assert_eq!(s.metrics.steps.len(), 1200);
    assert_eq!(s.metrics.knn.len(), 6); // epochs 5..25 and the final one
    assert!(s.metrics.baselines.is_some());
    assert!(s.smoothing > 0.9 && s.smoothing < 1.0);
    for (name, w, h) in [
        ("losses.png", 1200, 800),
        ("knn.png", 1200, 600),
        ("schedules.png", 1200, 800),
    ] {
        let (iw, ih, var, ink) = png_stats(&dir.path().join(name));
        assert_eq!((iw, ih), (w, h), "{name}");
        assert!(var > 100.0, "{name}: grey-level variance {var}: blank?");
        assert!(
            ink > 0.01 && ink < 0.6,
            "{name}: {:.1}% of pixels drawn",
            100.0 * ink
        );
    }
}

/// The fields a multi-crop fp16 run adds to each step record, as `patchmix pretrain` writes
/// them: the local-crop loss terms, whether the update was skipped (gradient overflow) and
/// the loss scale the step used (halved after each skipped step).
fn with_multi_crop_and_fp16(text: &str, skipped: &[u64]) -> String {
    let mut scale = 65536.0;
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v.get("loss").is_none() {
                return format!("{l}\n");
            }
            let step = v["step"].as_u64().unwrap();
            let skip = skipped.contains(&step);
            let (multi, multi_mix) = (1.5 + 0.5 / step as f64, 1.8 + 0.6 / step as f64);
            let line = format!(
                "{},\"multi\":{multi},\"multi_mix\":{multi_mix},\"skipped\":{skip},\"loss_scale\":{scale}}}\n",
                l.trim_end_matches('}')
            );
            if skip {
                scale /= 2.0;
            }
            line
        })
        .collect()
}

#[test]
fn multi_crop_and_fp16_fields_are_read_and_drawn() {
    // Two run folders of the same name (the charts' titles name the run).
    let root = tempfile::tempdir().unwrap();
    let (plain_dir, dir) = (root.path().join("a/run"), root.path().join("b/run"));
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let plain = synthetic_metrics(4, 25, 2);
    std::fs::write(plain_dir.join("metrics.jsonl"), &plain).unwrap();
    let p = plot_run(&plain_dir, &PlotOptions::default()).unwrap();
    // Files of older versions lack the fields: nothing extra is drawn.
    assert!(p.metrics.steps.iter().all(|s| s.multi.is_none()
        && s.multi_mix.is_none()
        && s.skipped.is_none()
        && s.loss_scale.is_none()));
    assert!(!p.metrics.has_multi_crop() && !p.metrics.has_loss_scale());

    let text = with_multi_crop_and_fp16(&plain, &[5, 6, 40]);
    std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
    let s = plot_run(&dir, &PlotOptions::default()).unwrap();
    let m = &s.metrics;
    assert!(m.has_multi_crop() && m.has_loss_scale());
    assert_eq!(m.skipped_steps(), 3);
    assert_eq!(m.steps[4].loss_scale, Some(65536.0));
    assert_eq!(m.steps[6].loss_scale, Some(16384.0));
    assert_eq!(m.steps[0].multi, Some(2.0));
    for name in ["losses.png", "knn.png", "schedules.png"] {
        let (w, h, var, ink) = png_stats(&dir.join(name));
        assert_eq!(w, 1200, "{name}");
        assert_eq!(h, if name == "knn.png" { 600 } else { 800 }, "{name}");
        assert!(var > 100.0 && ink > 0.01 && ink < 0.6, "{name}");
        let a = image::open(dir.join(name)).unwrap().to_rgb8();
        let b = image::open(plain_dir.join(name)).unwrap().to_rgb8();
        // The multi-crop panels and the loss-scale panel change losses.png and
        // schedules.png; knn.png does not depend on them.
        assert_eq!(a == b, name == "knn.png", "{name}");
    }

    // A step line exactly as the versions before the typed schema wrote it (keys in
    // alphabetical order) reads field for field.
    let old = "{\"epoch\":0,\"img_per_s\":812.5,\"loss\":9.119190216064453,\"loss_scale\":null,\"lr\":0.0,\"mix\":3.1358234882354736,\"mix2\":3.0123450756073,\"mu\":0.99,\"multi\":0.0,\"multi_mix\":0.0,\"skipped\":false,\"src\":3.0572080612182617,\"step\":1,\"tau\":0.2,\"wd\":0.04}\n";
    std::fs::write(dir.join("metrics.jsonl"), old).unwrap();
    let s = plot_run(&dir, &PlotOptions::default()).unwrap();
    let r = s.metrics.steps[0];
    assert_eq!((r.step, r.epoch), (1, 0));
    assert!((r.loss - 9.119_190_216_064_453).abs() < 1e-12, "{}", r.loss);
    assert_eq!(
        (r.multi, r.skipped, r.loss_scale),
        (Some(0.0), Some(false), None)
    );
    assert!(!s.metrics.has_multi_crop() && !s.metrics.has_loss_scale());
}

#[test]
fn no_knn_records_no_knn_png_and_custom_size() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = synthetic_metrics(3, 10, 100)
        .lines()
        .filter(|l| !l.contains("knn"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
    let opts = PlotOptions {
        width: 640,
        height: 480,
        smoothing: Some(0.0),
    };
    let s = plot_run(dir.path(), &opts).unwrap();
    assert_eq!(s.written.len(), 2);
    assert!(!dir.path().join("knn.png").exists());
    let (w, h, var, _) = png_stats(&dir.path().join("losses.png"));
    assert_eq!((w, h), (640, 480));
    assert!(var > 100.0);
}

#[test]
fn single_step_and_gaps_still_plot() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"step\":1,\"epoch\":0,\"loss\":5.0,\"src\":null,\"mix\":2.0,\"mix2\":1.0,\"lr\":0.0,\"wd\":0.04,\"tau\":0.2,\"mu\":0.99}\n\
                {\"step\":1,\"epoch\":1,\"knn_k\":20,\"knn_top1\":12.5,\"knn_top5\":50.0,\"final\":true}\n";
    std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
    let s = plot_run(dir.path(), &PlotOptions::default()).unwrap();
    assert_eq!(s.written.len(), 3);
    for p in &s.written {
        assert!(png_stats(p).2 > 50.0, "{}", p.display());
    }
}

#[test]
fn bad_metrics_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("metrics.jsonl");
    let err = |text: Option<&str>| -> String {
        match text {
            Some(t) => std::fs::write(&m, t).unwrap(),
            None => {
                let _ = std::fs::remove_file(&m);
            }
        }
        let e = plot_run(dir.path(), &PlotOptions::default()).unwrap_err();
        let s = e.to_string();
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(s.contains("metrics.jsonl"), "{s}");
        s
    };
    assert!(err(None).starts_with("cannot read "));
    assert!(err(Some("")).ends_with("is empty: the run has not logged any metrics yet"));
    let e = err(Some(
        "{\"step\":1,\"loss\":1}\n{\"step\":2,\"loss\":1\n{\"step\":3,\"loss\":1}\n",
    ));
    assert!(e.contains("metrics.jsonl line 2: not valid JSON"), "{e}");
    let e = err(Some("{\"step\":1,\"loss\":1}\n\"hello\"\n"));
    assert!(
        e.ends_with("line 2: expected a JSON object, found a string"),
        "{e}"
    );
    let e = err(Some("{\"step\":1,\"loss\":1,\"lr\":\"fast\"}\n"));
    assert!(
        e.ends_with("line 1: \"lr\" is a string, expected a number"),
        "{e}"
    );
    let e = err(Some(
        "{\"step\":2,\"epoch\":1,\"knn_k\":20,\"knn_top1\":50}\n",
    ));
    assert!(e.contains("has no step records"), "{e}");
    let e = err(Some("{\"step\":1,\"loss\":1}\n\u{0}\u{ff}\n"));
    assert!(e.contains("line 2"), "{e}");
    std::fs::write(&m, [b'{', 0xff, b'}', b'\n']).unwrap();
    let e = plot_run(dir.path(), &PlotOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{} line 1: not valid UTF-8", m.display())
    );
    std::fs::write(&m, "{\"step\":1,\"loss\":1}\n").unwrap();
    for opts in [
        PlotOptions {
            width: 10,
            ..PlotOptions::default()
        },
        PlotOptions {
            smoothing: Some(1.0),
            ..PlotOptions::default()
        },
    ] {
        assert!(matches!(
            plot_run(dir.path(), &opts),
            Err(PlotError::Options(_))
        ));
    }
}

fn patchmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .args(args)
        .output()
        .expect("failed to run patchmix")
}

/// Runs a command that must fail with one `error: ...` line on stderr and nothing on stdout.
fn error_line(args: &[&str]) -> String {
    let out = patchmix(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "patchmix {args:?} should fail; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one-line error expected: {line}");
    assert!(line.starts_with("error: "), "{line}");
    line.to_string()
}

#[test]
fn cli_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        synthetic_metrics(4, 25, 2),
    )
    .unwrap();
    let out = patchmix(&["plot", d, "--smooth", "0.8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(stdout.lines().all(|l| Path::new(l).is_file()), "{stdout}");
    // The metrics file itself is accepted too.
    let file = dir.path().join("metrics.jsonl");
    assert!(patchmix(&["plot", file.to_str().unwrap()]).status.success());

    let missing = dir.path().join("nope");
    let e = error_line(&["plot", missing.to_str().unwrap()]);
    assert!(e.contains("no such run folder"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = error_line(&["plot", empty.path().to_str().unwrap()]);
    assert!(
        e.contains("metrics.jsonl") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::write(
        empty.path().join("metrics.jsonl"),
        "{\"step\":1,\"loss\":1}\nnot json\n",
    )
    .unwrap();
    let e = error_line(&["plot", empty.path().to_str().unwrap()]);
    assert!(e.contains("metrics.jsonl line 2: not valid JSON"), "{e}");
    let e = error_line(&["plot", d, "--smooth", "1.5"]);
    assert!(e.contains("smoothing 1.5"), "{e}");
}

/// A fine-tuning run's `metrics.jsonl` (as `patchmix finetune` writes it: step records with
/// the loss and lr, an `"kind": "eval"` record per epoch): one `finetune.png` with its
/// evaluations read; a malformed eval record is an error naming the line.
#[test]
fn a_fine_tuning_run_gets_its_own_chart() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for step in 1..=60u64 {
        let epoch = (step - 1) / 20;
        writeln!(
            text,
            "{{\"kind\":\"step\",\"step\":{step},\"epoch\":{epoch},\"loss\":{},\"lr\":{}}}",
            2.3 - 0.02 * step as f64 + 0.1 * (step as f64).sin(),
            1e-3 * (step as f64 / 60.0)
        )
        .unwrap();
        if step % 20 == 0 {
            let a = 20.0 + step as f64;
            writeln!(
                text,
                "{{\"kind\":\"eval\",\"epoch\":{epoch},\"step\":{step},\"top1\":{a},\"top5\":{},\"ema_top1\":{},\"ema_top5\":{}}}",
                a + 30.0,
                a - 5.0,
                a + 25.0
            )
            .unwrap();
        }
    }
    std::fs::write(dir.path().join("metrics.jsonl"), &text).unwrap();
    let s = plot_run(dir.path(), &PlotOptions::default()).unwrap();
    assert_eq!(s.written, [dir.path().join("finetune.png")]);
    assert_eq!(s.metrics.steps.len(), 60);
    assert_eq!(s.metrics.evals.len(), 3);
    assert_eq!(s.metrics.evals[2].top1, 80.0);
    assert_eq!(s.metrics.evals[2].ema_top5, 105.0);
    let (w, h, var, ink) = png_stats(&dir.path().join("finetune.png"));
    assert_eq!((w, h), (1200, 800));
    assert!(var > 100.0 && ink > 0.01 && ink < 0.6, "{var} {ink}");
    assert!(!dir.path().join("losses.png").exists());

    text.push_str("{\"kind\":\"eval\",\"epoch\":3,\"step\":61,\"top1\":\"high\"}\n");
    std::fs::write(dir.path().join("metrics.jsonl"), &text).unwrap();
    let e = plot_run(dir.path(), &PlotOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 64") && e.contains("an eval record"), "{e}");
}
