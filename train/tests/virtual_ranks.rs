//! `--virtual-ranks W` through the `patchmix` binary: the flag and the config field, clear
//! errors for splits that do not fit, the field recorded with the run and its checkpoints, a
//! bit-exact resume of a two-rank run, a two-rank checkpoint resuming with one rank, and the
//! same flag on `bench step`.
//! (The step's numbers are checked against a PyTorch replay of two DDP ranks in
//! `torch_replay.rs`; the batch preparation by hand-worked cases in the library.)

use std::path::Path;

mod common;
use common::patchmix;

/// (step, loss, src, mix, mix2) of every step record in `run/metrics.jsonl`.
fn losses(run: &Path) -> Vec<(u64, [f64; 4])> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
            Some((
                v.get("step")?.as_u64()?,
                [f("loss")?, f("src")?, f("mix")?, f("mix2")?],
            ))
        })
        .collect()
}

fn tiny(out: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = out.to_str().unwrap();
    let args = [
        &["pretrain", "--preset", "tiny-test", "--out", out, "--quiet"][..],
        extra,
    ]
    .concat();
    patchmix(&args)
}

#[test]
fn splits_that_do_not_fit_are_one_line_errors_naming_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // tiny-test: batch 8, mix 2.
    for (w, want) in [
        (
            "3",
            "batch 8 does not split into virtual_ranks = 3 equal groups",
        ),
        ("0", "virtual_ranks must be ≥ 1"),
        (
            "8",
            "batch 8 / virtual_ranks 8 = 1 images per rank is fewer than mix m = 2",
        ),
    ] {
        let (ok, _, err) = tiny(&run, &["--virtual-ranks", w]);
        assert!(!ok, "--virtual-ranks {w} ran");
        assert!(err.contains(want), "--virtual-ranks {w}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The config field, checked the same way, and a wrong type names the file.
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "preset = \"tiny-test\"\nbatch = 10\nvirtual_ranks = 4\n",
    )
    .unwrap();
    let (ok, _, err) = patchmix(&["pretrain", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert!(!ok);
    assert!(
        err.contains("batch 10 does not split into virtual_ranks = 4"),
        "{err}"
    );
    std::fs::write(&cfg, "preset = \"tiny-test\"\nvirtual_ranks = \"two\"\n").unwrap();
    let (ok, _, err) = patchmix(&["pretrain", "--config", cfg.to_str().unwrap(), "--quiet"]);
    assert!(!ok);
    assert!(err.contains("c.toml"), "{err}");
}

/// A two-rank run records `virtual_ranks = 2` with its configuration and checkpoints, differs
/// from the one-rank run of the same seed (the groups mix differently), resumes bit-exactly
/// mid-epoch, and its checkpoint continues with one rank (the state is global).
#[test]
fn two_virtual_ranks_record_resume_bit_exactly_and_continue_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let (full, part, one) = (
        dir.path().join("full"),
        dir.path().join("part"),
        dir.path().join("one"),
    );
    let steps = ["--max-steps", "6"];
    let (ok, _, err) = tiny(&full, &[&steps[..], &["--virtual-ranks", "2"]].concat());
    assert!(ok, "{err}");
    let want = losses(&full);
    assert_eq!(want.len(), 6, "{want:?}");
    let config = std::fs::read_to_string(full.join("config.toml")).unwrap();
    assert!(config.contains("virtual_ranks = 2"), "{config}");
    let ckpt = std::fs::read_to_string(full.join("checkpoints/step-00000006/config.toml")).unwrap();
    assert!(ckpt.contains("virtual_ranks = 2"), "{ckpt}");

    let (ok, _, err) = tiny(&one, &steps);
    assert!(ok, "{err}");
    let single = losses(&one);
    assert_eq!(
        single[0].1[1], want[0].1[1],
        "same views, same first src loss"
    );
    assert_ne!(single[0].1[2], want[0].1[2], "but another mix");

    // Interrupted at step 3 and resumed (the flag again): the same losses, bit for bit.
    let (ok, _, err) = tiny(&part, &["--max-steps", "3", "--virtual-ranks", "2"]);
    assert!(ok, "{err}");
    let (ok, _, err) = tiny(
        &part,
        &[&steps[..], &["--virtual-ranks", "2", "--resume", "auto"]].concat(),
    );
    assert!(ok, "{err}");
    assert_eq!(
        losses(&part),
        want,
        "a resumed two-rank run must be bit-exact"
    );

    // The same checkpoint continued with one rank: it runs, from the same state, and its
    // steps are the one-rank ones (another mix than the two-rank continuation).
    let cont = dir.path().join("cont");
    copy_dir(&part.join("checkpoints/step-00000003"), &cont.join("ckpt"));
    let (ok, _, err) = tiny(
        &cont,
        &[
            &steps[..],
            &["--resume", cont.join("ckpt").to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("resuming with virtual_ranks = 1 (the checkpoint ran with 2)"),
        "{err}"
    );
    let tail = losses(&cont);
    assert_eq!(tail.len(), 3, "{tail:?}");
    assert_eq!(tail[0].0, 4);
    assert_ne!(tail[0].1, want[3].1);
    assert!(tail.iter().all(|(_, l)| l.iter().all(|v| v.is_finite())));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn bench_step_takes_the_flag_and_checks_the_split_before_building() {
    let (ok, out, err) = patchmix(&[
        "bench",
        "step",
        "--config",
        "tiny",
        "--virtual-ranks",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("img/s"), "{out}");
    let (ok, out, err) = patchmix(&["bench", "step", "--config", "tiny", "--virtual-ranks", "3"]);
    assert!(!ok);
    assert!(
        err.contains("--virtual-ranks 3: batch 8 does not split"),
        "{err}"
    );
    assert!(
        !out.contains("step graph"),
        "checked before compiling: {out}"
    );
}

/// `--dist`: an unknown backend, MPI in a build without it, and NCCL (in a build without it,
/// or not installed) are one-line errors saying what to do.
#[test]
fn dist_backends_that_cannot_run_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (ok, _, err) = tiny(&run, &["--dist", "gloo"]);
    assert!(!ok);
    assert!(
        err.contains("--dist gloo: expected none, mpi, nccl or auto"),
        "{err}"
    );
    let (ok, _, err) = tiny(&run, &["--dist", "nccl", "--max-steps", "1"]);
    assert!(!ok);
    assert!(
        err.contains("pip install nvidia-nccl-cu13")
            || (err.contains("built without NCCL support") && err.contains("--features nccl")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    if !cfg!(feature = "mpi") {
        let (ok, _, err) = tiny(&run, &["--dist", "mpi", "--max-steps", "1"]);
        assert!(!ok);
        assert!(
            err.contains("built without MPI support") && err.contains("--features mpi"),
            "{err}"
        );
    }
    // `none` and `auto` outside a launcher are one process.
    let (ok, _, err) = tiny(&run, &["--dist", "none", "--max-steps", "1"]);
    assert!(ok, "{err}");
}
