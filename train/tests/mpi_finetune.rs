//! `mpirun -np 2 patchmix finetune … --dist mpi` (feature `mpi`): with mixing off two ranks
//! fine-tune as one process on the same global batch (every step's loss within 1e-5
//! relative), rank 0 alone writes the run directory, and a global batch that does not split
//! into even per-rank batches is a one-line error naming it.

use std::path::Path;
use std::process::Command;

mod common;
use common::patchmix;

/// `mpirun -np 2 patchmix ARGS`: (success, stdout + stderr).
fn mpirun(args: &[String]) -> (bool, String) {
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(env!("CARGO_BIN_EXE_patchmix"))
        .args(args)
        .output()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A three-step demo-ft run from a random encoder on synthetic 28-px data, mixing off, with
/// `--batch 16` unless `extra` gives one.
fn tiny(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "finetune",
        "--random-init",
        "--data",
        "synthetic:64,size=28",
        "--eval-data",
        "synthetic:20,size=28",
        "--no-mixup",
        "--max-steps",
        "3",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if !extra.contains(&"--batch") {
        v.extend(["--batch".to_string(), "16".to_string()]);
    }
    v.extend(extra.iter().map(ToString::to_string));
    v
}

/// (step, loss) of every step record of `run/metrics.jsonl`.
fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["kind"] != "step" {
                return None;
            }
            Some((v["step"].as_u64()?, v["loss"].as_f64()?))
        })
        .collect()
}

#[test]
fn two_mpi_ranks_fine_tune_as_one_process_on_the_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (two, one) = (dir.path().join("two"), dir.path().join("one"));
    let (ok, text) = mpirun(&tiny(&two, &["--dist", "mpi"]));
    assert!(ok, "{text}");
    // Rank 0 alone prints the summary and writes the run directory.
    assert_eq!(
        text.matches("fine-tuning finished after 3 steps").count(),
        1,
        "{text}"
    );
    let args = tiny(&one, &["--dist", "none"]);
    let (ok, _, err) = patchmix(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let (got, want) = (losses(&two), losses(&one));
    assert_eq!(got.len(), 3, "{got:?}");
    let mut worst = 0.0f64;
    for ((s, g), (t, w)) in got.iter().zip(&want) {
        assert_eq!(s, t);
        let r = (g - w).abs() / w.abs().max(1e-12);
        worst = worst.max(r);
        assert!(r <= 1e-5, "step {s}: loss {g} vs {w} ({r:.2e})");
    }
    eprintln!("mpirun -np 2 vs one process: worst loss disagreement over 3 steps {worst:.2e}");
    assert!(two.join("classifier.onnx").is_file());
}

#[test]
fn a_batch_that_does_not_split_is_a_one_line_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    for (batch, words) in [
        ("9", "does not split evenly over 2 ranks"),
        ("10", "5 images per rank, which must be even"),
    ] {
        let (ok, text) = mpirun(&tiny(&run, &["--dist", "mpi", "--batch", batch]));
        assert!(!ok, "{text}");
        let line = text
            .lines()
            .find(|l| l.contains("--batch: "))
            .unwrap_or_else(|| panic!("no --batch error: {text}"));
        assert!(
            line.contains(&format!("the global batch {batch}")) && line.contains(words),
            "{line}"
        );
        assert!(!run.exists(), "a refused run wrote");
    }
}
