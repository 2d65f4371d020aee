//! The collectives over Open MPI (feature `mpi`): each test launches this test binary under
//! `mpirun -np 2`, whose ranks run a step-like graph with `AllReduceSum` and `AllGather` in ONNX
//! Runtime on an `MpiWorld`; and a rank that fails must end the launch promptly, named.
//!
//! The `rank_*` functions are the ranks' side: `#[ignore]`d, they run only when the launching
//! test asks for them by name (with `PATCHMIX_MPI_RANK_TEST` set, so a stray
//! `cargo test -- --ignored` does not run them outside `mpirun`).

use ort::session::Session;
use ort::value::Tensor;
use patchmix_export::graph::{DType, Graph, Shape};
use patchmix_export::onnx::to_onnx_bytes;
use patchmix_export::runtime::ort_env::ensure_ort;
use patchmix_train::dist::mpi::MpiWorld;
use patchmix_train::dist::{Communicator, collective_domain};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RANK_TEST_ENV: &str = "PATCHMIX_MPI_RANK_TEST";

/// Runs the `rank_test` function of this binary on 2 ranks under mpirun; returns
/// (success, stdout + stderr, seconds).
fn mpirun(rank_test: &str) -> (bool, String, f64) {
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            rank_test,
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(RANK_TEST_ENV, rank_test)
        .output()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text, start.elapsed().as_secs_f64())
}

/// Whether this process is a rank launched for `name` (else the rank test returns at once).
fn launched_for(name: &str) -> bool {
    std::env::var(RANK_TEST_ENV).as_deref() == Ok(name)
}

#[test]
fn two_mpi_ranks_all_reduce_and_all_gather_through_onnx_runtime() {
    let (ok, text, _) = mpirun("rank_runs_the_collective_graph");
    assert!(ok, "mpirun failed:\n{text}");
    for rank in 0..2 {
        assert!(
            text.contains(&format!("rank {rank} of 2: collectives agree")),
            "rank {rank} did not report:\n{text}"
        );
    }
}

#[test]
#[ignore = "a rank of two_mpi_ranks_all_reduce_and_all_gather_through_onnx_runtime"]
fn rank_runs_the_collective_graph() {
    if !launched_for("rank_runs_the_collective_graph") {
        return;
    }
    let world = Arc::new(MpiWorld::init().unwrap());
    let (rank, size) = (world.rank(), world.world_size());
    assert_eq!(size, 2);
    let mut g = Graph::new("collectives");
    let x = g.input("x", DType::F32, Shape::fixed(&[2, 3]));
    let sum = g.all_reduce_sum(x).unwrap();
    let gathered = g.all_gather(x, size).unwrap();
    g.output(sum, "sum");
    g.output(gathered, "gathered");
    let (_, env) = ensure_ort().unwrap();
    let comm: Arc<dyn Communicator> = world.clone();
    let mut session = Session::builder(&env)
        .unwrap()
        .with_parallel_execution(false)
        .unwrap()
        .with_operators(collective_domain(comm).unwrap())
        .unwrap()
        .commit_from_memory(&to_onnx_bytes(&g))
        .unwrap();
    // Rank r holds r·10 + i; the sum is 10 + 2i, the gather both in rank order.
    let local = |r: usize| -> Vec<f32> { (0..6).map(|i| (r * 10 + i) as f32).collect() };
    let t = Tensor::from_array((vec![2usize, 3], local(rank))).unwrap();
    let outs = session.run(ort::inputs!["x" => t]).unwrap();
    let sum = outs["sum"].try_extract_tensor::<f32>().unwrap().1.to_vec();
    let gathered = outs["gathered"]
        .try_extract_tensor::<f32>()
        .unwrap()
        .1
        .to_vec();
    let expected_sum: Vec<f32> = (0..6).map(|i| (10 + 2 * i) as f32).collect();
    let expected_gather: Vec<f32> = local(0).into_iter().chain(local(1)).collect();
    assert_eq!(sum, expected_sum);
    assert_eq!(gathered, expected_gather);
    println!("rank {rank} of {size}: collectives agree");
}

#[test]
fn a_failing_rank_ends_the_launch_within_60_s_and_is_named() {
    let (ok, text, seconds) = mpirun("rank_one_fails_before_the_collective");
    assert!(!ok, "the launch should fail:\n{text}");
    assert!(seconds < 60.0, "took {seconds:.1} s:\n{text}");
    assert!(text.contains("rank 1 failed: injected fault"), "{text}");
}

#[test]
#[ignore = "a rank of a_failing_rank_ends_the_launch_within_60_s_and_is_named"]
fn rank_one_fails_before_the_collective() {
    if !launched_for("rank_one_fails_before_the_collective") {
        return;
    }
    let world = MpiWorld::init().unwrap();
    if world.rank() == 1 {
        eprintln!("rank 1 failed: injected fault");
        world.abort(3);
    }
    // Rank 0 waits in a collective that rank 1 never joins: only the abort ends it.
    let mut x = vec![1.0f32; 4];
    world.all_reduce_sum(&mut x).unwrap();
    std::thread::sleep(Duration::from_secs(120));
    panic!("rank 0 was not ended by rank 1's abort");
}
