//! `patchmix finetune`: bad input is a one-line error naming the file or field (weights of
//! another architecture, a head in the weights, the wrong encoder of a checkpoint, a class
//! count that disagrees with the data, an empty split), a short run writes its metrics and
//! the classifier under timm's names and refuses to overwrite itself, and a `--dump-step` of
//! the CLI's own batch (RandAugment, erasing, Mixup/CutMix) replays in timm when it is
//! installed.

mod common;
use common::patchmix;
use ndarray::ArrayD;
use patchmix_export::vit::{VitConfig, init_weights};
use patchmix_export::weights::{StateDict, load_safetensors, save_safetensors};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo-ft encoder (img 28, patch 4, D 64, depth 4, heads 4).
fn demo_vit() -> VitConfig {
    VitConfig {
        img: 28,
        patch: 4,
        dim: 64,
        depth: 4,
        heads: 4,
    }
}

fn write(path: &Path, sd: &StateDict) -> String {
    save_safetensors(path, sd, None).unwrap();
    path.to_str().unwrap().to_string()
}

/// Small synthetic digits-sized data: 10 classes at 28 px.
const DATA: &str = "synthetic:64,size=28";

/// Runs `patchmix finetune ARGS`, expects a failure with a one-line message, returns it.
fn fails(args: &[&str]) -> String {
    let (ok, out, err) = patchmix(&[&["finetune"], args].concat());
    assert!(!ok, "succeeded: {out}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    lines[0].to_string()
}

#[test]
fn bad_input_is_a_one_line_error_naming_the_file_or_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let good = write(
        &dir.path().join("enc.safetensors"),
        &init_weights(&demo_vit(), 1),
    );

    // Weights of another architecture (D 32): the file and the tensors that differ.
    let other = VitConfig {
        dim: 32,
        heads: 4,
        ..demo_vit()
    };
    let p = write(
        &dir.path().join("small.safetensors"),
        &init_weights(&other, 1),
    );
    let e = fails(&[
        "--weights",
        &p,
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--out",
        out,
    ]);
    assert!(
        e.contains("small.safetensors")
            && e.contains("54 with the wrong shape")
            && e.contains("[1, 1, 32]"),
        "{e}"
    );

    // A classifier head in a bare encoder file.
    let mut with_head = init_weights(&demo_vit(), 1);
    with_head.insert("head.weight".into(), ArrayD::zeros(vec![10, 64]));
    let p = write(&dir.path().join("clf.safetensors"), &with_head);
    let e = fails(&[
        "--weights",
        &p,
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--out",
        out,
    ]);
    assert!(
        e.contains("clf.safetensors") && e.contains("head.weight"),
        "{e}"
    );

    // The momentum encoder of a checkpoint that has only a base encoder.
    let base: StateDict = init_weights(&demo_vit(), 1)
        .into_iter()
        .map(|(k, v)| (format!("base_encoder.{k}"), v))
        .collect();
    let p = write(&dir.path().join("ckpt.safetensors"), &base);
    let e = fails(&[
        "--weights",
        &p,
        "--encoder",
        "momentum",
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--out",
        out,
    ]);
    assert!(
        e.contains("ckpt.safetensors") && e.contains("momentum_encoder."),
        "{e}"
    );
    let e = fails(&[
        "--weights",
        &good,
        "--encoder",
        "ema",
        "--data",
        DATA,
        "--out",
        out,
    ]);
    assert!(e.contains("--encoder") && e.contains("ema"), "{e}");

    // A preset for 100 classes on data with 10.
    let e = fails(&[
        "--weights",
        &good,
        "--preset",
        "cifar100-vit-tiny-ft",
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--out",
        out,
    ]);
    assert!(
        e.contains("classes") && e.contains("100") && e.contains("10"),
        "{e}"
    );

    // An empty split.
    let e = fails(&[
        "--weights",
        &good,
        "--data",
        "synthetic:0,size=28",
        "--out",
        out,
    ]);
    assert!(e.contains("synthetic:0"), "{e}");

    // Neither weights nor --random-init; an unknown preset.
    let e = fails(&["--data", DATA, "--out", out]);
    assert!(e.contains("--weights"), "{e}");
    let e = fails(&["--weights", &good, "--preset", "cifar10-ft"]);
    assert!(e.contains("cifar10-ft") && e.contains("demo-ft"), "{e}");
    assert!(
        !Path::new(out).exists(),
        "a failed start left a run directory"
    );
}

#[test]
fn a_short_run_writes_metrics_and_a_timm_named_classifier_and_keeps_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = out.to_str().unwrap();
    let w = write(
        &dir.path().join("enc.safetensors"),
        &init_weights(&demo_vit(), 1),
    );
    let args = [
        "finetune",
        "--weights",
        &w,
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--out",
        o,
        "--batch",
        "16",
        "--epochs",
        "2",
        "--max-steps",
        "5",
        "--quiet",
    ];
    let (ok, stdout, err) = patchmix(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains("finished after 5 steps"), "{stdout}");
    // 64 images / 16 = 4 steps per epoch: an evaluation after each of the two epochs.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps = recs.iter().filter(|r| r["kind"] == "step").count();
    let evals: Vec<_> = recs.iter().filter(|r| r["kind"] == "eval").collect();
    assert_eq!((steps, evals.len()), (5, 2), "{metrics}");
    for e in &evals {
        for k in ["top1", "top5", "ema_top1", "ema_top5"] {
            let v = e[k].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&v), "{k}: {e}");
        }
        assert!(e["top5"].as_f64() >= e["top1"].as_f64(), "{e}");
    }
    // The first epoch trains at the warm-up lr 1e-6; the schedule is in the records.
    assert_eq!(recs[0]["lr"].as_f64().unwrap(), 1e-6);
    // The classifier: every encoder tensor plus the head, under timm's names.
    let clf = load_safetensors(out.join("classifier.safetensors"))
        .unwrap()
        .tensors;
    assert_eq!(clf.len(), demo_vit().param_specs().len() + 2);
    assert_eq!(clf["head.weight"].shape(), &[10, 64]);
    assert_eq!(clf["head.bias"].shape(), &[10]);
    assert!(out.join("classifier_ema.safetensors").is_file());
    // `classifier.onnx` scores the test split as the run's own last evaluation did.
    let model = out.join("classifier.onnx");
    let (ok, json, err) = patchmix(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--data",
        DATA,
        "--json",
    ]);
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&json).unwrap();
    let last = evals.last().unwrap();
    for k in ["top1", "top5"] {
        let (a, b) = (got[k].as_f64().unwrap(), last[k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-9, "{k}: classify {a} vs finetune {b}");
    }
    // `patchmix plot` draws the run's loss, lr and accuracy.
    let (ok, _, err) = patchmix(&["plot", o]);
    assert!(ok, "{err}");
    assert!(out.join("finetune.png").is_file());
    // A second run into the same directory is refused.
    let (ok, _, err) = patchmix(&args);
    assert!(!ok && err.contains("already holds"), "{err}");
}

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

#[test]
fn a_dumped_cli_step_replays_in_timm() {
    if !timm_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = write(
        &dir.path().join("enc.safetensors"),
        &init_weights(&demo_vit(), 1),
    );
    let dump = dir.path().join("dump");
    let d = dump.to_str().unwrap();
    let (ok, out, err) = patchmix(&[
        "finetune",
        "--weights",
        &w,
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--batch",
        "8",
        "--dump-step",
        d,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("dumped one step"), "{out}");
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("replay_finetune_step.py");
    let r = Command::new("python3")
        .arg(script)
        .arg(&dump)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["pass"], true, "{v}");
}

#[test]
fn a_resumed_run_continues_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let w = write(
        &dir.path().join("enc.safetensors"),
        &init_weights(&demo_vit(), 1),
    );
    let run = |out: &Path, extra: &[&str]| {
        let o = out.to_str().unwrap();
        let base = [
            "finetune",
            "--weights",
            &w,
            "--data",
            DATA,
            "--eval-data",
            DATA,
            "--out",
            o,
            "--batch",
            "16",
            "--epochs",
            "2",
            "--warmup-epochs",
            "1",
            "--quiet",
        ];
        let (ok, stdout, err) = patchmix(&[&base[..], extra].concat());
        assert!(ok, "{err}");
        stdout
    };
    let straight = dir.path().join("straight");
    run(&straight, &[]);
    // Stopped mid-epoch 1 (4 steps per epoch), then resumed to the end.
    let resumed = dir.path().join("resumed");
    run(&resumed, &["--max-steps", "6"]);
    assert!(resumed.join("checkpoint.safetensors").is_file());
    run(&resumed, &["--resume"]);
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    for f in [
        "classifier.safetensors",
        "classifier_ema.safetensors",
        "checkpoint.safetensors",
    ] {
        assert!(
            bytes(&straight.join(f)) == bytes(&resumed.join(f)),
            "{f} differs"
        );
    }
    let steps = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"kind\":\"step\""))
            .map(String::from)
            .collect()
    };
    assert_eq!(steps(&straight), steps(&resumed));
    assert_eq!(steps(&straight).len(), 8);
    // Resuming with other settings is refused, naming the flag.
    let o = resumed.to_str().unwrap();
    let (ok, _, err) = patchmix(&[
        "finetune",
        "--weights",
        &w,
        "--data",
        DATA,
        "--eval-data",
        DATA,
        "--out",
        o,
        "--batch",
        "8",
        "--epochs",
        "2",
        "--resume",
    ]);
    assert!(
        !ok && err.contains("--resume") && err.lines().count() == 1,
        "{err}"
    );
}

/// `--precision` and `--device` as in pretraining: a bf16 run on the CPU trains (emulated
/// half-precision products) and records its precision; a bad precision, and CUDA where it
/// cannot load, are one-line errors naming the flag.
#[test]
fn precision_and_device_flags_work_as_in_pretraining() {
    let dir = tempfile::tempdir().unwrap();
    let w = write(
        &dir.path().join("enc.safetensors"),
        &init_weights(&demo_vit(), 1),
    );
    let out = dir.path().join("bf16");
    let base = |out: &Path| -> Vec<String> {
        [
            "finetune",
            "--weights",
            &w,
            "--data",
            DATA,
            "--eval-data",
            DATA,
            "--batch",
            "16",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--quiet",
            "--out",
        ]
        .iter()
        .map(ToString::to_string)
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        patchmix(&a)
    };
    let (ok, _, err) = run([base(&out), vec!["--precision".into(), "bf16".into()]].concat());
    assert!(ok, "{err}");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"bf16\""), "{config}");
    let (ok, _, err) = run([
        base(&dir.path().join("x")),
        vec!["--precision".into(), "fp8".into()],
    ]
    .concat());
    assert!(!ok && err.contains("--precision fp8"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    if !std::path::Path::new("/dev/nvidiactl").exists() {
        let (ok, _, err) = run([
            base(&dir.path().join("y")),
            vec!["--device".into(), "cuda".into()],
        ]
        .concat());
        assert!(!ok && err.to_lowercase().contains("cuda"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
