//! `mpirun -np 2 patchmix pretrain … --dist mpi` (feature `mpi`): the launch trains as the
//! one-process emulation of two ranks, rank 0 alone writes the run directory, a two-rank
//! resume is bit-exact and a two-rank checkpoint resumes in one process, ranks started with
//! different configurations are refused, and a rank killed mid-run ends the launch within
//! 60 s, named.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::patchmix;

fn mpirun_args(np: usize) -> Vec<String> {
    [
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &np.to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// `mpirun -np 2 patchmix ARGS`: (success, stdout + stderr).
fn mpirun(args: &[&str]) -> (bool, String) {
    let out = Command::new("mpirun")
        .args(mpirun_args(2))
        .arg(env!("CARGO_BIN_EXE_patchmix"))
        .args(args)
        .output()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn tiny(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "pretrain",
        "--preset",
        "tiny-test",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
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

/// (step, [loss, src, mix, mix2]) of every step record of `run/metrics.jsonl`.
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

fn assert_close(got: &[(u64, [f64; 4])], want: &[(u64, [f64; 4])], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?}\nvs\n{want:?}");
    for ((s, g), (t, w)) in got.iter().zip(want) {
        assert_eq!(s, t);
        for (a, b) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= tol * b.abs().max(1e-12),
                "step {s}: {g:?} vs {w:?}"
            );
        }
    }
}

#[test]
fn two_mpi_ranks_train_as_the_one_process_emulation_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (real, emul, part) = (
        dir.path().join("real"),
        dir.path().join("emulated"),
        dir.path().join("part"),
    );
    let (ok, text) = mpirun(&strs(&tiny(&real, &["--dist", "mpi", "--max-steps", "10"])));
    assert!(ok, "{text}");
    // Rank 0 alone prints the summary and writes the run directory: one record per step.
    assert_eq!(
        text.matches("pretraining finished after 10 steps").count(),
        1,
        "{text}"
    );
    let (ok, _, err) = patchmix(&strs(&tiny(
        &emul,
        &["--virtual-ranks", "2", "--max-steps", "10"],
    )));
    assert!(ok, "{err}");
    let got = losses(&real);
    assert_eq!(got.len(), 10);
    assert_close(&got, &losses(&emul), 1e-5);

    // A two-rank resume is bit-exact: 4 steps, then on to 10.
    let (ok, text) = mpirun(&strs(&tiny(&part, &["--dist", "mpi", "--max-steps", "4"])));
    assert!(ok, "{text}");
    let (ok, text) = mpirun(&strs(&tiny(
        &part,
        &["--dist", "mpi", "--max-steps", "10", "--resume", "auto"],
    )));
    assert!(ok, "{text}");
    assert_eq!(losses(&part), got, "resumed two-rank run");

    // The state is global: the two-rank checkpoint at step 4 resumes in one process.
    let one = dir.path().join("one");
    let ck = part.join("checkpoints").join("step-00000004");
    let (ok, _, err) = patchmix(&strs(&tiny(
        &one,
        &[
            "--virtual-ranks",
            "2",
            "--max-steps",
            "10",
            "--resume",
            ck.to_str().unwrap(),
        ],
    )));
    assert!(ok, "{err}");
    assert_close(&losses(&one), &got[4..], 1e-5);
}

#[test]
fn ranks_with_different_configurations_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny(&dir.path().join("run"), &["--dist", "mpi", "--seed", "1"]);
    let b = tiny(&dir.path().join("run"), &["--dist", "mpi", "--seed", "2"]);
    let exe = env!("CARGO_BIN_EXE_patchmix");
    let start = Instant::now();
    // An MPMD launch: rank 0 and rank 1 get different flags.
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1", exe])
        .args(&a)
        .args([":", "-np", "1", exe])
        .args(&b)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("different configurations: rank 1 differs from rank 0"),
        "{text}"
    );
    assert!(start.elapsed() < Duration::from_secs(60), "{text}");
}

#[test]
fn a_rank_killed_mid_run_ends_the_launch_within_60_s_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // Long enough to be mid-run when the kill comes.
    let args = tiny(&run, &["--dist", "mpi", "--epochs", "400"]);
    let mut child = Command::new("mpirun")
        .args(mpirun_args(2))
        .arg(env!("CARGO_BIN_EXE_patchmix"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training runs (rank 0 has written step records), then kill rank 1.
    let deadline = Instant::now() + Duration::from_secs(120);
    while losses_if_any(&run) < 3 {
        assert!(Instant::now() < deadline, "the run did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rank1 = rank_pid(child.id(), 1).expect("rank 1's process");
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &rank1.to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the launch still runs 60 s after rank 1 died");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("rank 1"),
        "mpirun should name rank 1:\n{text}"
    );
}

fn losses_if_any(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .map(|t| t.lines().filter(|l| l.contains("\"loss\"")).count())
        .unwrap_or(0)
}

/// The pid of the process of rank `rank` among the descendants of `root` (its
/// `OMPI_COMM_WORLD_RANK` in `/proc/PID/environ`).
fn rank_pid(root: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let mut frontier = vec![root];
    while let Some(pid) = frontier.pop() {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if pid != root && env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        frontier.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    None
}

#[test]
fn dist_none_under_a_multi_rank_launch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = mpirun(&strs(&tiny(
        &dir.path().join("run"),
        &["--dist", "none", "--max-steps", "1"],
    )));
    assert!(!ok);
    assert!(
        text.contains("--dist none, but an MPI launcher started 2 ranks"),
        "{text}"
    );
}
