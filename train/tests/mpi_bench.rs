//! `mpirun -np 2 patchmix bench step … --dist mpi` (feature `mpi`): the two ranks measure the
//! step of the one-process emulation of two ranks (`--virtual-ranks 2`) on the same global
//! batch, rank 0 alone reports, each rank writes its own ORT profile, and the collectives'
//! share of the step is reported per rank; a global batch that does not split is refused.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

mod common;
use common::patchmix;

/// `mpirun -np 2 patchmix ARGS`: (success, stdout + stderr).
fn mpirun(args: &[&str]) -> (bool, String) {
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

fn bench(json: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "bench",
        "step",
        "--config",
        "tiny",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    v.extend(extra.iter().map(ToString::to_string));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn read(json: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// [total, src, mix, mix2] of every step (warm-up included) of the first run.
fn losses(doc: &Value) -> Vec<[f64; 4]> {
    doc["runs"][0]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| ["total", "src", "mix", "mix2"].map(|k| l[k].as_f64().unwrap()))
        .collect()
}

#[test]
fn two_mpi_ranks_measure_the_emulated_step_and_the_collectives_share() {
    let dir = tempfile::tempdir().unwrap();
    let (real, emul) = (dir.path().join("mpi.json"), dir.path().join("one.json"));
    let prefix = dir.path().join("prof");
    let (ok, text) = mpirun(&strs(&bench(
        &real,
        &["--dist", "mpi", "--profile", prefix.to_str().unwrap()],
    )));
    assert!(ok, "{text}");
    // Rank 0 alone prints the result.
    assert_eq!(text.matches("img/s").count(), 2, "{text}");
    let doc = read(&real);
    assert_eq!(doc["world"], 2, "{doc}");
    assert_eq!(doc["batch"], 8, "{doc}");
    assert_eq!(doc["rank_batch"], 4, "{doc}");
    // img/s counts the global batch.
    let run = &doc["runs"][0];
    let ips = run["img_per_s"].as_f64().unwrap();
    let med = run["median_step_s"].as_f64().unwrap();
    assert!((ips * med - 8.0).abs() < 1e-6, "{run}");
    // Each rank's profile, and the collectives' share of each rank's step.
    for r in 0..2 {
        let stem = format!("prof-rank{r}_");
        assert!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with(&stem)),
            "no profile of rank {r}"
        );
        let share = doc["collectives"][r]["share"].as_f64().unwrap();
        assert!(share > 0.0 && share < 1.0, "rank {r}: {doc}");
    }
    assert!(text.contains("rank 1: "), "{text}");

    // The same step as one process emulating the two ranks on the same global batch.
    let (ok, _, err) = patchmix(&strs(&bench(&emul, &["--virtual-ranks", "2"])));
    assert!(ok, "{err}");
    let (got, want) = (losses(&doc), losses(&read(&emul)));
    assert_eq!(got.len(), 3);
    assert_eq!(got.len(), want.len());
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "step {step}: {g:?} vs {w:?}"
            );
        }
    }
}

#[test]
fn a_global_batch_that_does_not_split_over_the_ranks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (ok, text) = mpirun(&strs(&bench(&json, &["--dist", "mpi", "--batch", "7"])));
    assert!(!ok, "{text}");
    assert!(
        text.contains("batch 7 does not split into 2 equal groups"),
        "{text}"
    );
    assert!(!json.exists());
}
