//! NCCL (feature `nccl`) on a machine without a GPU: what runs without one — loading the
//! library through cudarc, its version, rank 0's unique id reaching every rank of a world over
//! its host communicator — and the errors of what cannot: a library that is not NCCL, and a
//! CPU session asked to run NCCL's kernels. The kernels themselves (AllReduceSum and AllGather
//! on ORT's CUDA stream) run in `scripts/gpu-check.sh` on a GPU host.
//!
//! The library comes from the `nvidia-nccl-cu13` wheel (`.ci/run` installs it); where it is not
//! installed these tests fail, saying so, rather than pass without checking anything.

use patchmix_train::dist::nccl::NcclWorld;
use patchmix_train::dist::nccl::ffi::NcclLib;
use patchmix_train::dist::{Communicator, ThreadWorld};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// libnccl.so.2 from the pip wheel.
fn nccl_path() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib', 'libnccl.so.2'))",
        ])
        .output()
        .expect("python3");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && path.is_file(),
        "libnccl.so.2 not found: `pip install nvidia-nccl-cu13` ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn the_wheels_library_loads_and_reports_its_version() {
    let lib = NcclLib::load(&nccl_path()).unwrap();
    let v = lib.version().unwrap();
    // NCCL 2.x encodes its version as major·10000 + minor·100 + patch.
    assert!((2_18_00..3_00_00).contains(&v), "version code {v}");
}

#[test]
fn rank_0s_unique_id_reaches_every_rank() {
    let lib = NcclLib::load(&nccl_path()).unwrap();
    let ranks = ThreadWorld::ranks(3);
    let ids: Vec<[u8; 128]> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                let lib = lib.clone();
                s.spawn(move || NcclWorld::join(lib, Arc::new(rank)).unwrap().id_bytes())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids[0].iter().any(|&b| b != 0), "an all-zero id");
    assert_eq!(ids[1], ids[0]);
    assert_eq!(ids[2], ids[0]);
    // Two worlds get two ids.
    let other = NcclWorld::join(lib, Arc::new(ThreadWorld::ranks(1).remove(0))).unwrap();
    assert_ne!(other.id_bytes(), ids[0]);
    assert_eq!((other.rank(), other.world_size()), (0, 1));
}

#[test]
fn a_library_that_is_not_nccl_is_an_error_not_a_panic() {
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libm.so.6");
    let err = NcclLib::load(&libm).unwrap_err();
    assert!(
        err.contains("lacks ncclGetVersion") && err.contains("is it NCCL?"),
        "{err}"
    );
    assert!(err.contains("pip install nvidia-nccl-cu13"), "{err}");
    let err = NcclLib::load(std::path::Path::new("/nonexistent/libnccl.so.2")).unwrap_err();
    assert!(
        err.starts_with("cannot open /nonexistent/libnccl.so.2"),
        "{err}"
    );
}

/// `patchmix pretrain --dist nccl --device cpu`: NCCL loads and the world starts (a world of
/// one), and the step is refused before it is built, in one line naming the way out.
#[test]
fn nccl_collectives_on_a_cpu_session_are_a_one_line_error() {
    let lib_dir = nccl_path().parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .args([
            "pretrain",
            "--preset",
            "tiny-test",
            "--max-steps",
            "1",
            "--quiet",
        ])
        .args(["--dist", "nccl", "--device", "cpu", "--out"])
        .arg(dir.path().join("run"))
        .env("LD_LIBRARY_PATH", &lib_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--dist nccl runs the collectives on the GPU")
            && err.contains("use --device cuda"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
