//! The data-parallel collectives end to end in ONNX Runtime: graphs holding `AllReduceSum` and
//! `AllGather` run as custom operators on two ranks (threads of this process, `ThreadWorld`),
//! the AllReduceSum gradient rule against finite differences of the global loss, and the
//! failure modes (a peer that never arrives, a world-size mismatch).

use ort::session::Session;
use ort::value::Tensor;
use patchmix_export::graph::{DType, Graph, Shape, TensorData, ValueId};
use patchmix_export::onnx::to_onnx_bytes;
use patchmix_export::runtime::ort_env::ensure_ort;
use patchmix_train::autodiff::backward;
use patchmix_train::dist::{Communicator, ThreadWorld, collective_domain};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A session for `bytes` whose collectives run on `rank`.
fn session(bytes: &[u8], rank: Arc<dyn Communicator>) -> Session {
    let (_, env) = ensure_ort().expect("ONNX Runtime");
    Session::builder(&env)
        .unwrap()
        .with_parallel_execution(false)
        .unwrap()
        .with_operators(collective_domain(rank).unwrap())
        .unwrap()
        .commit_from_memory(bytes)
        .unwrap()
}

/// Runs `graph` on every rank of a fresh world of `world_size`, feeding `x` = `inputs[rank]`,
/// and returns each rank's outputs (flattened, in graph order) or its error message.
fn run_on_ranks(
    bytes: &[u8],
    inputs: &[Vec<f32>],
    shape: &[usize],
    timeout: Duration,
) -> Vec<Result<Vec<Vec<f32>>, String>> {
    let ranks = ThreadWorld::ranks_with_timeout(inputs.len(), timeout);
    std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .zip(inputs)
            .map(|(rank, x)| {
                s.spawn(move || {
                    let mut sess = session(bytes, Arc::new(rank));
                    let t = Tensor::from_array((shape.to_vec(), x.clone())).unwrap();
                    let outs = sess
                        .run(ort::inputs!["x" => t])
                        .map_err(|e| e.to_string())?;
                    Ok(outs
                        .iter()
                        .map(|(_, v)| v.try_extract_tensor::<f32>().unwrap().1.to_vec())
                        .collect())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn two_ranks_all_reduce_and_all_gather_through_onnx_runtime() {
    let mut g = Graph::new("collectives");
    let x = g.input("x", DType::F32, Shape::fixed(&[2, 3]));
    let sum = g.all_reduce_sum(x).unwrap();
    let gathered = g.all_gather(x, 2).unwrap();
    assert_eq!(g.fixed_shape(gathered).unwrap(), vec![4, 3]);
    g.output(sum, "sum");
    g.output(gathered, "gathered");
    let bytes = to_onnx_bytes(&g);

    let x0: Vec<f32> = (0..6).map(|i| i as f32).collect();
    let x1: Vec<f32> = (0..6).map(|i| 10.0 * i as f32 + 0.5).collect();
    let outs = run_on_ranks(
        &bytes,
        &[x0.clone(), x1.clone()],
        &[2, 3],
        Duration::from_secs(60),
    );
    let expected_sum: Vec<f32> = x0.iter().zip(&x1).map(|(a, b)| a + b).collect();
    let expected_gather: Vec<f32> = x0.iter().chain(&x1).copied().collect();
    for (rank, out) in outs.into_iter().enumerate() {
        let out = out.unwrap_or_else(|e| panic!("rank {rank}: {e}"));
        assert_eq!(out[0], expected_sum, "rank {rank}: the sum");
        assert_eq!(
            out[1], expected_gather,
            "rank {rank}: the gather, in rank order"
        );
    }
}

/// Per rank r: y = AllReduceSum(x_r), L_r = Σ c_r ⊙ y ⊙ y with a rank-specific c_r, so
/// ∂(Σ_s L_s)/∂x_r = Σ_s 2 c_s ⊙ y, which only the all-reduce of the output gradients gives.
fn rank_loss_graph(rank: usize) -> Vec<u8> {
    let mut g = Graph::new("rank_loss");
    let x = g.input("x", DType::F32, Shape::fixed(&[4]));
    let y = g.all_reduce_sum(x).unwrap();
    let c: Vec<f64> = (0..4)
        .map(|i| 0.25 + 0.5 * i as f64 + rank as f64)
        .collect();
    let c = g.constant(
        "c",
        &[4],
        TensorData::F32(c.iter().map(|&v| v as f32).collect()),
    );
    let yy = g.mul(y, y).unwrap();
    let weighted = g.mul(yy, c).unwrap();
    let loss = g.reduce_sum(weighted, &[0], false).unwrap();
    let grads: Vec<ValueId> = backward(&mut g, loss, &[x]).unwrap();
    g.output(loss, "loss");
    g.output(grads[0], "grad");
    to_onnx_bytes(&g)
}

#[test]
fn the_all_reduce_rule_matches_finite_differences_of_the_global_loss() {
    let graphs = [rank_loss_graph(0), rank_loss_graph(1)];
    let xs = [vec![0.3f32, -0.7, 1.1, 0.05], vec![-0.2f32, 0.4, 0.9, -1.3]];
    let ranks = |xs: &[Vec<f32>; 2]| -> (f64, [Vec<f32>; 2]) {
        let world = ThreadWorld::ranks(2);
        let outs: Vec<(f32, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = world
                .into_iter()
                .enumerate()
                .map(|(r, rank)| {
                    let (bytes, x) = (&graphs[r], xs[r].clone());
                    s.spawn(move || {
                        let mut sess = session(bytes, Arc::new(rank));
                        let t = Tensor::from_array((vec![4usize], x)).unwrap();
                        let outs = sess.run(ort::inputs!["x" => t]).unwrap();
                        let loss = outs["loss"].try_extract_tensor::<f32>().unwrap().1[0];
                        let grad = outs["grad"].try_extract_tensor::<f32>().unwrap().1.to_vec();
                        (loss, grad)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let global = outs.iter().map(|(l, _)| f64::from(*l)).sum();
        (global, [outs[0].1.clone(), outs[1].1.clone()])
    };
    let (_, analytic) = ranks(&xs);
    let h = 1e-2f32;
    for r in 0..2 {
        for e in 0..4 {
            let mut plus = xs.clone();
            let mut minus = xs.clone();
            plus[r][e] += h;
            minus[r][e] -= h;
            let fd = (ranks(&plus).0 - ranks(&minus).0) / (2.0 * f64::from(h));
            let an = f64::from(analytic[r][e]);
            let err = (fd - an).abs() / 1f64.max(fd.abs()).max(an.abs());
            assert!(
                err < 1e-3,
                "rank {r}, x[{e}]: analytic {an} vs finite difference {fd}"
            );
        }
    }
    // The rule sums over ranks: both ranks get the same gradient (y is shared) ...
    assert_eq!(analytic[0], analytic[1]);
}

#[test]
fn a_peer_that_never_arrives_fails_the_collective_naming_it_in_time() {
    let ranks = ThreadWorld::ranks_with_timeout(2, Duration::from_millis(300));
    let start = Instant::now();
    let mut x = vec![1.0f32; 3];
    let err = ranks[0].all_reduce_sum(&mut x).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        "all-reduce: rank 1 did not arrive within 300ms (did it fail?)"
    );
}

#[test]
fn ranks_that_disagree_on_the_length_get_an_error_naming_the_rank() {
    let ranks = ThreadWorld::ranks(2);
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .iter()
            .map(|rank| {
                s.spawn(move || {
                    let mut x = vec![0.0f32; 3 + rank.rank()];
                    rank.all_reduce_sum(&mut x).unwrap_err().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in errors {
        assert_eq!(e, "all-reduce: rank 1 passed 4 values, rank 0 passed 3");
    }
}

#[test]
fn an_all_gather_compiled_for_another_world_size_is_refused_at_session_build() {
    let mut g = Graph::new("gather");
    let x = g.input("x", DType::F32, Shape::fixed(&[2]));
    let y = g.all_gather(x, 4).unwrap();
    g.output(y, "y");
    let (_, env) = ensure_ort().unwrap();
    let rank: Arc<dyn Communicator> = Arc::new(ThreadWorld::ranks(1).remove(0));
    let result = Session::builder(&env)
        .unwrap()
        .with_operators(collective_domain(rank).unwrap())
        .unwrap()
        .commit_from_memory(&to_onnx_bytes(&g));
    let message = match result {
        Ok(mut s) => {
            // Some ORT versions create kernels lazily, at the first run.
            let t = Tensor::from_array((vec![2usize], vec![1.0f32, 2.0])).unwrap();
            s.run(ort::inputs!["x" => t]).unwrap_err().to_string()
        }
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("AllGather was compiled for world_size 4 but runs in a world of 1"),
        "{message}"
    );
}

#[test]
fn a_standard_op_graph_imports_no_custom_domain() {
    let mut g = Graph::new("plain");
    let x = g.input("x", DType::F32, Shape::fixed(&[2]));
    let y = g.add(x, x).unwrap();
    g.output(y, "y");
    let model = patchmix_export::onnx::to_model_proto(&g);
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!(model.opset_import[0].domain, "");

    let mut g = Graph::new("dp");
    let x = g.input("x", DType::F32, Shape::fixed(&[2]));
    let y = g.all_reduce_sum(x).unwrap();
    g.output(y, "y");
    let model = patchmix_export::onnx::to_model_proto(&g);
    let domains: Vec<&str> = model
        .opset_import
        .iter()
        .map(|o| o.domain.as_str())
        .collect();
    assert_eq!(domains, ["", "ai.patchmix.dist"]);
    assert_eq!(model.graph.unwrap().node[0].domain, "ai.patchmix.dist");
}
