//! The engine's training step against an independent PyTorch autograd replay
//! (`scripts/replay_step.py`): dumps made through the `patchmix` binary in both frames, with
//! drop path and with multi-crop local crops, must match PyTorch's losses, gradients, AdamW
//! update, BN running statistics and momentum EMA, with the targets' label smoothing; a dump
//! with one tampered tensor must not. A step with two virtual ranks must match a replay of the
//! original's two DDP ranks.
//!
//! Needs a `python3` with `torch` and `safetensors`; without them every test prints
//! `SKIPPED: …` and passes (CI has no PyTorch).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn torch_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with torch and safetensors is not available");
    }
    ok
}

fn replay_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("replay_step.py")
}

mod common;
use common::patchmix;

/// Dumps one step of the `tiny-test` preset with the TOML overrides `body` into
/// `root/dump-NAME`, after `steps_before` ordinary steps (resumed from their checkpoint, so
/// the dumped step has a non-zero learning rate and AdamW moments), and returns the dump.
fn dump(root: &Path, name: &str, body: &str, steps_before: u64) -> PathBuf {
    let cfg = root.join(format!("{name}.toml"));
    let run = root.join(format!("run-{name}"));
    std::fs::write(
        &cfg,
        format!(
            "preset = \"tiny-test\"\n{body}\nout_dir = \"{}\"\n",
            run.display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let mut args = vec!["pretrain", "--config", cfg, "--quiet"];
    if steps_before > 0 {
        let n = steps_before.to_string();
        let (ok, _, err) = patchmix(&[&args[..], &["--max-steps", &n]].concat());
        assert!(ok, "{name}: the run before the dump failed: {err}");
        args.extend(["--resume", "auto"]);
    }
    let dump = root.join(format!("dump-{name}"));
    let d = dump.to_str().unwrap().to_string();
    let (ok, out, err) = patchmix(&[&args[..], &["--dump-step", &d]].concat());
    assert!(ok, "{name}: {err}");
    assert!(out.contains("dumped one step"), "{name}: {out}");
    assert!(dump.join("step_config.json").is_file(), "{name}");
    dump
}

/// Runs the replay on a dump: (exit code, its JSON object, stderr).
fn replay(dump: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = Command::new("python3")
        .arg(replay_script())
        .arg(dump)
        .arg("--json")
        .args(extra)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("replay_step.py printed no JSON ({e}): stdout {stdout}, stderr {stderr}")
    });
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = &x[k];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{} missing in the replay's JSON", path.join(".")))
}

/// Asserts that a dump replays: the script passes, and the measured agreement is well inside
/// what an f32 engine can give (loss terms to 1e-4 relative, gradients to 1e-3 relative L2).
fn assert_replays(dump: &Path, name: &str) -> Value {
    let (code, r, err) = replay(dump, &[]);
    assert_eq!(
        code, 0,
        "{name}: the PyTorch replay disagrees with the engine: {err}\n{r}"
    );
    assert_eq!(r["pass"], true, "{name}: {r}");
    assert!(
        num(&r, &["worst", "loss", "err"]) < 1e-4,
        "{name}: {}",
        r["worst"]
    );
    assert!(
        num(&r, &["worst", "gradient", "err"]) < 1e-3,
        "{name}: {}",
        r["worst"]
    );
    for cat in ["param", "exp_avg_sq", "bn"] {
        assert!(
            num(&r, &["worst", cat, "err"]) < 1e-2,
            "{name}: {cat}: {}",
            r["worst"]
        );
    }
    // Every trained tensor was compared, and every counter agrees exactly.
    let grads = r["gradients"].as_object().unwrap();
    assert!(grads.contains_key("base_encoder.pos_embed"), "{name}");
    assert!(grads.contains_key("predictor.3.weight"), "{name}");
    assert!(
        r["counters"]
            .as_object()
            .unwrap()
            .values()
            .all(|c| c["ok"] == true),
        "{name}: {}",
        r["counters"]
    );
    // The PatchMix images are the paper's mixing of the views under the dumped permutations.
    for k in ["mix1", "mix2"] {
        assert_eq!(
            r["inputs"][k]["max_abs_err"].as_f64(),
            Some(0.0),
            "{name}: {k}"
        );
    }
    let total = &r["losses"]["total"];
    assert!(
        (num(total, &["torch"]) - num(total, &["engine"])).abs() < 1e-4 * num(total, &["torch"])
    );
    r
}

#[test]
fn the_tiny_test_first_step_matches_pytorch_in_the_no_momentum_frame() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dump(dir.path(), "plain", "frame = \"no-momentum\"", 0);
    let r = assert_replays(&d, "no-momentum");
    assert_eq!(r["frame"], "no-momentum");
    assert!(r["state"].get("momentum").is_none());
    // The final LayerNorm's bias has an exactly-zero true gradient (the projector's first
    // BatchNorm removes any constant shift), so it is judged by absolute error.
    assert_eq!(
        r["gradients"]["base_encoder.norm.bias"]["metric"], "abs_l2/|g|",
        "{}",
        r["gradients"]["base_encoder.norm.bias"]
    );
}

#[test]
fn a_later_momentum_frame_step_matches_pytorch() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dump(
        dir.path(),
        "momentum",
        "frame = \"momentum\"\ndrop_path = 0.0",
        3,
    );
    let r = assert_replays(&d, "momentum");
    assert_eq!(r["frame"], "momentum");
    // The step ran with a learning rate, from non-zero moments (t = 4), and the EMA moved
    // the momentum encoder.
    assert_eq!(r["counters"]["opt.step"]["engine"], 4);
    assert!(
        num(&r, &["worst", "momentum", "err"]) < 1e-5,
        "{}",
        r["worst"]
    );
    assert!(
        r["state"]["momentum"]
            .as_object()
            .unwrap()
            .contains_key("momentum_encoder.head.6.weight")
    );
}

#[test]
fn a_step_with_strong_drop_path_matches_pytorch() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dump(
        dir.path(),
        "droppath",
        "frame = \"no-momentum\"\ndrop_path = 0.5",
        3,
    );
    let inputs = patchmix_export::weights::load_safetensors(d.join("inputs.safetensors")).unwrap();
    // Some residuals were dropped (rate 0.5 in the last block), so the masks matter.
    let m = &inputs.tensors["drop_path.view1"];
    assert!(
        m.iter().any(|&v| v == 0.0) && m.iter().any(|&v| v > 1.0),
        "{m}"
    );
    assert_replays(&d, "drop path");
}

#[test]
fn a_multi_crop_step_with_local_crops_matches_pytorch() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dump(
        dir.path(),
        "multi",
        "frame = \"momentum\"\nlocal_crops = 2\nlocal_size = 4\nglobal_crop = 0.4\ndrop_path = 0.3",
        2,
    );
    let r = assert_replays(&d, "multi-crop");
    for k in ["multi", "multi_mix"] {
        assert!(
            r["losses"][k]["rel_err"].as_f64().unwrap() < 1e-4,
            "{k}: {}",
            r["losses"]
        );
    }
}

/// The original smooths the view-to-view target with 0.1 (its `PatchMixer` default) and the
/// mix targets with the recipe's `smoothing`: the dump carries both, its targets are the
/// formulas, and PyTorch, building the targets from those formulas, agrees. A dump that
/// claims another smoothing than its targets were built with fails.
#[test]
fn steps_with_smoothed_targets_match_pytorch() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dump(
        dir.path(),
        "src-smoothed",
        "frame = \"no-momentum\"\nsrc_smoothing = 0.1",
        1,
    );
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("step_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["src_smoothing"], 0.1, "{cfg}");
    assert_eq!(cfg["smoothing"], 0.0, "{cfg}");
    let inputs = patchmix_export::weights::load_safetensors(d.join("inputs.safetensors")).unwrap();
    let t = &inputs.tensors["target_src"];
    let n = t.shape()[0];
    for ((r, c), &v) in t
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        let want = if r == c {
            0.9 + 0.1 / n as f32
        } else {
            0.1 / n as f32
        };
        assert!(
            (v - want).abs() < 1e-7,
            "target_src[{r}, {c}] = {v}, want {want}"
        );
    }
    let r = assert_replays(&d, "src smoothing 0.1");
    assert_eq!(r["inputs"]["target_src"]["smoothing"], 0.1);
    assert_eq!(r["inputs"]["target_src"]["ok"], true, "{}", r["inputs"]);
    assert_eq!(r["inputs"]["target_mix"]["smoothing"], 0.0);

    // The mix targets' own smoothing, with multi-crop (whose terms share the targets).
    let m = dump(
        dir.path(),
        "mix-smoothed",
        "frame = \"momentum\"\nsrc_smoothing = 0.0\nsmoothing = 0.2\nlocal_crops = 2\nlocal_size = 4\nglobal_crop = 0.4",
        0,
    );
    let r = assert_replays(&m, "mix smoothing 0.2");
    for (k, s) in [
        ("target_src", 0.0),
        ("target_mix", 0.2),
        ("target_mix2", 0.2),
    ] {
        assert_eq!(r["inputs"][k]["smoothing"], s, "{k}: {}", r["inputs"]);
        assert_eq!(r["inputs"][k]["ok"], true, "{k}: {}", r["inputs"]);
    }

    // A dump whose step_config.json denies the smoothing its targets carry.
    let cfg_path = d.join("step_config.json");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let mut lie: Value = serde_json::from_str(&text).unwrap();
    lie["src_smoothing"] = 0.0.into();
    std::fs::write(&cfg_path, lie.to_string()).unwrap();
    let (code, r, err) = replay(&d, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(r["inputs"]["target_src"]["ok"], false, "{}", r["inputs"]);
    assert!(err.contains("target_src"), "{err}");
}

/// The replay is a real check: tampering with one tensor of the engine's output, by an
/// amount far below what a training curve would show, makes it fail and name the tensor.
#[test]
fn a_tampered_step_fails_the_replay() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dump(dir.path(), "tamper", "frame = \"no-momentum\"", 0);
    let (code, _, err) = replay(&good, &[]);
    assert_eq!(code, 0, "{err}");

    let tamper = |name: &str, key: &str, f: &dyn Fn(f32) -> f32| -> PathBuf {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for file in [
            "before.safetensors",
            "inputs.safetensors",
            "losses.json",
            "step_config.json",
        ] {
            std::fs::copy(good.join(file), d.join(file)).unwrap();
        }
        let mut after =
            patchmix_export::weights::load_safetensors(good.join("after.safetensors")).unwrap();
        let t = after.tensors.get_mut(key).expect(key);
        t.mapv_inplace(f);
        patchmix_export::weights::save_safetensors_with_ints(
            d.join("after.safetensors"),
            &after.tensors,
            &after.ints,
            None,
        )
        .unwrap();
        d
    };
    // A gradient 1 % too large in one tensor (its first moment is (1 − β₁)·g at step 1).
    let d = tamper(
        "bad-grad",
        "opt.exp_avg.base_encoder.blocks.1.mlp.fc1.weight",
        &|v| v * 1.01,
    );
    let (code, r, err) = replay(&d, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(r["pass"], false);
    let g = &r["gradients"]["base_encoder.blocks.1.mlp.fc1.weight"];
    assert_eq!(g["ok"], false, "{g}");
    assert!(
        err.contains("base_encoder.blocks.1.mlp.fc1.weight"),
        "{err}"
    );
    // An updated BN running variance 0.1 % too large.
    let key = "base_encoder.head.4.running_var";
    let d = tamper("bad-bn", key, &|v| v * 1.001);
    let (code, r, err) = replay(&d, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        r["state"]["bn"][key]["ok"], false,
        "{}",
        r["state"]["bn"][key]
    );
    assert!(err.contains(key), "{err}");

    // A missing file is a clear error, not a traceback.
    std::fs::remove_file(d.join("losses.json")).unwrap();
    let (code, r, err) = replay(&d, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("losses.json") && err.contains("missing"),
        "{err}"
    );
    assert!(!err.contains("Traceback"), "{err}");
    assert!(r["error"].as_str().unwrap().contains("losses.json"));
    // So is a corrupt one.
    std::fs::write(d.join("losses.json"), "{}").unwrap();
    std::fs::write(d.join("inputs.safetensors"), b"not safetensors").unwrap();
    let (code, _, err) = replay(&d, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("inputs.safetensors"), "{err}");
}

/// Two virtual ranks (`--virtual-ranks 2`): the replay rebuilds the step the original runs on
/// two GPUs with DDP, from the original's semantics (each rank mixes its own 4 images with
/// targets shifted by 4·rank, its queries meet the gathered keys of both ranks, SyncBN over
/// all 8 rows, DDP's mean of the ranks' gradients), and agrees with the engine's one-process
/// emulation; a dump that claims one rank does not replay.
#[test]
fn steps_with_two_virtual_ranks_match_a_pytorch_replay_of_two_ddp_ranks() {
    if !torch_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let assert_two_ranks = |d: &Path, name: &str| -> Value {
        let r = assert_replays(d, name);
        assert_eq!(r["virtual_ranks"], 2, "{name}");
        assert!(
            num(&r, &["worst", "loss", "err"]) <= 1e-5,
            "{name}: {}",
            r["worst"]
        );
        for k in ["target_src", "target_mix", "target_mix2"] {
            assert_eq!(r["inputs"][k]["ok"], true, "{name}: {k}: {}", r["inputs"]);
        }
        r
    };
    // No momentum, the presets' src smoothing 0.1, from non-zero AdamW moments.
    let d = dump(
        dir.path(),
        "ranks2",
        "frame = \"no-momentum\"\nvirtual_ranks = 2",
        2,
    );
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("step_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["virtual_ranks"], 2, "{cfg}");
    let inputs = patchmix_export::weights::load_safetensors(d.join("inputs.safetensors")).unwrap();
    // Row 3, rank 0's last image, mixes with rank 0's image 0, not with rank 1's image 4.
    let t = &inputs.tensors["target_mix"];
    let (off, on) = (0.0f32, 0.5f32);
    assert_eq!(t[[3, 0]], on, "{t}");
    assert_eq!(t[[3, 4]], off, "{t}");
    assert_eq!(t[[7, 4]], on, "{t}");
    assert_two_ranks(&d, "two virtual ranks");

    // Momentum frame, drop path, two local crops per image and mix smoothing: every crop is
    // mixed within its rank's group, and each rank's crop rows meet every rank's keys.
    let m = dump(
        dir.path(),
        "ranks2-multi",
        "frame = \"momentum\"\nvirtual_ranks = 2\nsmoothing = 0.2\nlocal_crops = 2\nlocal_size = 4\nglobal_crop = 0.4\ndrop_path = 0.3",
        1,
    );
    let r = assert_two_ranks(&m, "two virtual ranks, multi-crop");
    for k in ["multi", "multi_mix"] {
        assert!(
            r["losses"][k]["rel_err"].as_f64().unwrap() <= 1e-5,
            "{k}: {}",
            r["losses"]
        );
    }

    // The same dump claiming one rank: its images and targets are not a one-rank PatchMix.
    let cfg_path = d.join("step_config.json");
    let mut lie: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    lie["virtual_ranks"] = 1.into();
    std::fs::write(&cfg_path, lie.to_string()).unwrap();
    let (code, r, err) = replay(&d, &[]);
    assert_eq!(code, 1, "{err}");
    for k in ["mix1", "mix2", "target_mix", "target_mix2"] {
        assert_eq!(r["inputs"][k]["ok"], false, "{k}: {}", r["inputs"]);
    }
    // And a split the batch does not allow is a clear error.
    lie["virtual_ranks"] = 3.into();
    std::fs::write(&cfg_path, lie.to_string()).unwrap();
    let (code, _, err) = replay(&d, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("virtual_ranks 3"), "{err}");
}
