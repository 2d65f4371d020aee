//! Table-driven gradient checks: every differentiable op's rule against central finite
//! differences, run through ONNX Runtime's CPU provider (f64 where ORT has f64 kernels).
//!
//! Each case builds `loss = Σ op(inputs) ⊙ R` for a fixed random `R`, differentiates it with
//! [`backward`], and compares the analytic gradient with `(L(x + h) − L(x − h)) / 2h` on every
//! element of every differentiated input (the inputs are small).
//!
//! Each case names the op kinds it covers (`covering`), and
//! `every_differentiable_op_has_a_finite_difference_case` fails naming every op kind with a
//! differentiable input (as its autodiff family decides) that no case covers, so a new op cannot
//! land without its check.

use ndarray::ArrayD;
use ort::session::Session;
use ort::value::Tensor;
use patchmix_export::graph::{
    CollectiveKind, DType, ElementwiseKind as E, ElementwiseOp, Graph, NnKind as N, NnOp, Op,
    OpKind, ReduceKind as R, Shape, ShapeKind as S, ShapeOp, TensorData, ValueId,
};
use patchmix_export::onnx::to_onnx_bytes;
use patchmix_export::runtime::ort_env::ensure_ort;
use patchmix_train::autodiff::{backward, differentiable_input};
use patchmix_train::dist::{Communicator, ThreadWorld, collective_domain};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

type Build = fn(&mut Graph, &[ValueId]) -> ValueId;

struct Case {
    name: &'static str,
    dtype: DType,
    shapes: Vec<Vec<usize>>,
    /// Inputs to differentiate (others are fed but not checked).
    diff: Vec<usize>,
    build: Build,
    /// Keep inputs positive (for Sqrt, Log, Pow, Div denominators).
    positive: bool,
    /// Step and tolerance overrides (cases that round through f32).
    h_tol: Option<(f64, f64)>,
    /// The op kinds whose gradient rule this case checks (each must occur in its graph).
    covers: Vec<OpKind>,
}

impl Case {
    /// Declares that the case checks the gradient rule of `kind`.
    fn covering(mut self, kind: impl Into<OpKind>) -> Case {
        self.covers.push(kind.into());
        self
    }
}

fn case(name: &'static str, dtype: DType, shapes: &[&[usize]], build: Build) -> Case {
    Case {
        name,
        dtype,
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        diff: (0..shapes.len()).collect(),
        build,
        positive: false,
        h_tol: None,
        covers: Vec::new(),
    }
}

fn run(
    session: &mut Session,
    names: &[String],
    xs: &[ArrayD<f64>],
    dtype: DType,
) -> Vec<ArrayD<f64>> {
    let mut inputs: Vec<(String, ort::value::DynValue)> = Vec::new();
    for (n, x) in names.iter().zip(xs) {
        let v = match dtype {
            DType::F64 => Tensor::from_array(x.clone()).unwrap().into_dyn(),
            _ => Tensor::from_array(x.mapv(|v| v as f32)).unwrap().into_dyn(),
        };
        inputs.push((n.clone(), v));
    }
    let outs = session.run(inputs).unwrap();
    outs.iter()
        .map(|(_, v)| match dtype {
            DType::F64 => v.try_extract_array::<f64>().unwrap().to_owned(),
            _ => v.try_extract_array::<f32>().unwrap().mapv(|x| x as f64),
        })
        .collect()
}

fn check(c: &Case) {
    let (_, env) = ensure_ort().expect("ONNX Runtime");
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed ^ c.name.len() as u64);
    let mut g = Graph::new(c.name);
    let ins: Vec<ValueId> = c
        .shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.input(&format!("x{i}"), c.dtype, Shape::fixed(s)))
        .collect();
    let y = (c.build)(&mut g, &ins);
    for kind in &c.covers {
        assert!(
            g.nodes.iter().any(|n| n.op.kind() == *kind),
            "{}: claims to cover {kind:?} but builds no such node",
            c.name
        );
    }
    let yshape = g.fixed_shape(y).unwrap();
    let n: usize = yshape.iter().product();
    let r: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let rdata = match c.dtype {
        DType::F64 => TensorData::F64(r),
        _ => TensorData::F32(r.iter().map(|&v| v as f32).collect()),
    };
    let rv = g.constant("R", &yshape, rdata);
    let weighted = g.mul(y, rv).unwrap();
    let axes: Vec<i64> = (0..yshape.len() as i64).collect();
    let loss = if axes.is_empty() {
        weighted
    } else {
        g.reduce_sum(weighted, &axes, false).unwrap()
    };
    let wrt: Vec<ValueId> = c.diff.iter().map(|&i| ins[i]).collect();
    let grads = backward(&mut g, loss, &wrt).unwrap();
    g.output(loss, "loss");
    for (k, gv) in grads.iter().enumerate() {
        let id = if g.value(*gv).kind == patchmix_export::graph::ValueKind::Input {
            // A gradient that is an input itself (identity-like): route through Identity.
            g.op1(ElementwiseOp::Identity, &[*gv]).unwrap()
        } else {
            *gv
        };
        g.output(id, &format!("grad{k}"));
    }
    let bytes = to_onnx_bytes(&g);
    // The collectives' kernels, on a world of one rank (the two-rank check of the AllReduceSum
    // rule is `collectives.rs`'s finite-difference test).
    let world_of_one: Arc<dyn Communicator> = Arc::new(ThreadWorld::ranks(1).remove(0));
    let mut session = Session::builder(&env)
        .unwrap()
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Disable)
        .unwrap()
        .with_operators(collective_domain(world_of_one).unwrap())
        .unwrap()
        .commit_from_memory(&bytes)
        .unwrap_or_else(|e| panic!("{}: ORT rejected the graph: {e}", c.name));
    let names: Vec<String> = (0..ins.len()).map(|i| format!("x{i}")).collect();
    let xs: Vec<ArrayD<f64>> = c
        .shapes
        .iter()
        .map(|s| {
            ArrayD::from_shape_fn(s.clone(), |_| {
                let v: f64 = rng.random_range(-1.0..1.0);
                if c.positive { 0.5 + v.abs() } else { v }
            })
        })
        .collect();
    let outs = run(&mut session, &names, &xs, c.dtype);
    let (h, tol) = c.h_tol.unwrap_or(match c.dtype {
        DType::F64 => (1e-6, 1e-6),
        _ => (1e-2, 2e-2),
    });
    for (k, &i) in c.diff.iter().enumerate() {
        let analytic = &outs[1 + k];
        assert_eq!(
            analytic.shape(),
            xs[i].shape(),
            "{}: gradient shape of input {i}",
            c.name
        );
        for e in 0..xs[i].len() {
            let mut plus = xs.clone();
            let mut minus = xs.clone();
            plus[i].as_slice_mut().unwrap()[e] += h;
            minus[i].as_slice_mut().unwrap()[e] -= h;
            let lp = run(&mut session, &names, &plus, c.dtype)[0]
                .iter()
                .next()
                .copied()
                .unwrap();
            let lm = run(&mut session, &names, &minus, c.dtype)[0]
                .iter()
                .next()
                .copied()
                .unwrap();
            let fd = (lp - lm) / (2.0 * h);
            let an = analytic.as_slice().unwrap()[e];
            let err = (fd - an).abs() / (1.0f64).max(fd.abs()).max(an.abs());
            assert!(
                err < tol,
                "{}: d/dx{i}[{e}] analytic {an} vs finite difference {fd} (rel {err:.2e})",
                c.name
            );
        }
    }
}

fn cases() -> Vec<Case> {
    use DType::{F32, F64};
    let mut v = vec![
        case("MatMul 2-D", F64, &[&[3, 4], &[4, 2]], |g, x| {
            g.matmul(x[0], x[1]).unwrap()
        })
        .covering(N::MatMul),
        case(
            "MatMul batched, broadcast B",
            F64,
            &[&[2, 3, 4], &[4, 2]],
            |g, x| g.matmul(x[0], x[1]).unwrap(),
        )
        .covering(N::MatMul),
        case(
            "MatMul 4-D attention shape",
            F64,
            &[&[2, 2, 3, 4], &[2, 2, 4, 3]],
            |g, x| g.matmul(x[0], x[1]).unwrap(),
        )
        .covering(N::MatMul),
        case(
            "Gemm transB with bias (Linear)",
            F64,
            &[&[3, 4], &[5, 4], &[5]],
            |g, x| g.linear(x[0], x[1], Some(x[2])).unwrap(),
        )
        .covering(N::Gemm),
        case(
            "Linear over 260 rows (bias gradient as a ones·dY GEMV)",
            F64,
            &[&[260, 3], &[2, 3], &[2]],
            |g, x| g.linear(x[0], x[1], Some(x[2])).unwrap(),
        )
        .covering(N::Gemm),
        case(
            "Add broadcast over 2×130 leading rows (GEMV sum)",
            F64,
            &[&[2, 130, 3], &[3]],
            |g, x| g.add(x[0], x[1]).unwrap(),
        )
        .covering(E::Add),
        case("Gemm no transpose", F64, &[&[3, 4], &[4, 5]], |g, x| {
            g.op1(
                NnOp::Gemm {
                    trans_a: false,
                    trans_b: false,
                    alpha: 1.0,
                    beta: 1.0,
                },
                &[x[0], x[1]],
            )
            .unwrap()
        })
        .covering(N::Gemm),
        case(
            "Gemm transA alpha beta",
            F64,
            &[&[4, 3], &[4, 5], &[3, 5]],
            |g, x| {
                g.op1(
                    NnOp::Gemm {
                        trans_a: true,
                        trans_b: false,
                        alpha: 0.5,
                        beta: 2.0,
                    },
                    &[x[0], x[1], x[2]],
                )
                .unwrap()
            },
        )
        .covering(N::Gemm),
        case("Gemm transA transB", F64, &[&[4, 3], &[5, 4]], |g, x| {
            g.op1(
                NnOp::Gemm {
                    trans_a: true,
                    trans_b: true,
                    alpha: 1.5,
                    beta: 1.0,
                },
                &[x[0], x[1]],
            )
            .unwrap()
        })
        .covering(N::Gemm),
        case("Add broadcast", F64, &[&[2, 3, 4], &[3, 1]], |g, x| {
            g.add(x[0], x[1]).unwrap()
        })
        .covering(E::Add),
        case("Sub broadcast", F64, &[&[2, 3], &[3]], |g, x| {
            g.sub(x[0], x[1]).unwrap()
        })
        .covering(E::Sub),
        case("Mul broadcast", F64, &[&[2, 1, 4], &[3, 4]], |g, x| {
            g.mul(x[0], x[1]).unwrap()
        })
        .covering(E::Mul),
        case("Mul fan-out x·x", F64, &[&[5]], |g, x| {
            g.mul(x[0], x[0]).unwrap()
        })
        .covering(E::Mul),
        case(
            "AllReduceSum, world of one rank",
            F32,
            &[&[2, 3]],
            |g, x| g.all_reduce_sum(x[0]).unwrap(),
        )
        .covering(CollectiveKind::AllReduceSum),
        case("Identity", F64, &[&[2, 3]], |g, x| {
            g.op1(ElementwiseOp::Identity, &[x[0]]).unwrap()
        })
        .covering(E::Identity),
        case("Reshape", F64, &[&[2, 6]], |g, x| {
            g.reshape(x[0], &[3, -1]).unwrap()
        })
        .covering(S::Reshape),
        case("Transpose", F64, &[&[2, 3, 4]], |g, x| {
            g.transpose(x[0], &[2, 0, 1]).unwrap()
        })
        .covering(S::Transpose),
        case("Slice", F64, &[&[4, 5]], |g, x| {
            g.op1(
                ShapeOp::Slice {
                    starts: vec![1, -3],
                    ends: vec![3, 5],
                    axes: vec![0, 1],
                },
                &[x[0]],
            )
            .unwrap()
        })
        .covering(S::Slice),
        case("Concat", F64, &[&[2, 3], &[2, 2]], |g, x| {
            g.op1(ShapeOp::Concat { axis: 1 }, &[x[0], x[1]]).unwrap()
        })
        .covering(S::Concat),
        case("Split (one part unused)", F64, &[&[2, 6]], |g, x| {
            let parts = g
                .node(
                    ShapeOp::Split {
                        axis: 1,
                        sizes: vec![2, 3, 1],
                    },
                    &[x[0]],
                    3,
                )
                .unwrap();
            g.mul(parts[0], parts[0]).unwrap();
            let a = g.reduce_sum(parts[1], &[1], true).unwrap();
            g.add(parts[0], a).unwrap()
        })
        .covering(S::Split),
        case("Pad", F64, &[&[2, 3]], |g, x| {
            g.op1(
                ShapeOp::Pad {
                    pads: vec![0, 1, 1, 2],
                },
                &[x[0]],
            )
            .unwrap()
        })
        .covering(S::Pad),
        case("Expand", F64, &[&[3, 1]], |g, x| {
            g.op1(
                ShapeOp::Expand {
                    shape: vec![2, 3, 4],
                },
                &[x[0]],
            )
            .unwrap()
        })
        .covering(S::Expand),
        case("Unsqueeze", F64, &[&[3, 2]], |g, x| {
            g.op1(ShapeOp::Unsqueeze { axes: vec![0, 2] }, &[x[0]])
                .unwrap()
        })
        .covering(S::Unsqueeze),
        case("ReduceSum keepdims", F64, &[&[2, 3, 4]], |g, x| {
            g.reduce_sum(x[0], &[0, 2], true).unwrap()
        })
        .covering(R::ReduceSum),
        case("ReduceSum", F64, &[&[2, 3, 4]], |g, x| {
            g.reduce_sum(x[0], &[1], false).unwrap()
        })
        .covering(R::ReduceSum),
        case("ReduceMean", F64, &[&[2, 3, 4]], |g, x| {
            g.reduce_mean(x[0], &[-1], false).unwrap()
        })
        .covering(R::ReduceMean),
        case("Softmax", F64, &[&[3, 5]], |g, x| {
            g.op1(NnOp::Softmax { axis: -1 }, &[x[0]]).unwrap()
        })
        .covering(N::Softmax),
        case("Softmax 4-D", F64, &[&[2, 2, 3, 3]], |g, x| {
            g.op1(NnOp::Softmax { axis: -1 }, &[x[0]]).unwrap()
        })
        .covering(N::Softmax),
        case("LogSoftmax", F64, &[&[3, 5]], |g, x| {
            g.op1(NnOp::LogSoftmax { axis: 1 }, &[x[0]]).unwrap()
        })
        .covering(N::LogSoftmax),
        case("Relu", F64, &[&[4, 5]], |g, x| {
            g.unary(ElementwiseOp::Relu, x[0]).unwrap()
        })
        .covering(E::Relu),
        case("Sigmoid", F64, &[&[2, 5]], |g, x| {
            let y = g.mul_scalar(x[0], 3.0).unwrap();
            g.sigmoid(y).unwrap()
        })
        .covering(E::Sigmoid),
        case("Neg Exp", F64, &[&[6]], |g, x| {
            let n = g.unary(ElementwiseOp::Neg, x[0]).unwrap();
            g.unary(ElementwiseOp::Exp, n).unwrap()
        })
        .covering(E::Neg)
        .covering(E::Exp),
        case("Reciprocal", F64, &[&[6]], |g, x| {
            let y = g.add_scalar(x[0], 3.0).unwrap();
            g.unary(ElementwiseOp::Reciprocal, y).unwrap()
        })
        .covering(E::Reciprocal),
        case("Max with a constant (clamp_min)", F64, &[&[6]], |g, x| {
            let c = g.scalar(DType::F64, 0.1);
            g.op1(ElementwiseOp::Max, &[x[0], c]).unwrap()
        })
        .covering(E::Max),
        case("Where", F64, &[&[2, 3], &[2, 3]], |g, x| {
            let z = g.scalar(DType::F64, 0.0);
            let c = g.op1(ElementwiseOp::Greater, &[x[0], z]).unwrap();
            g.op1(ElementwiseOp::Where, &[c, x[0], x[1]]).unwrap()
        })
        .covering(E::Where),
        case("Gather axis 0 with repeats", F64, &[&[4, 3]], |g, x| {
            let idx = g.constant("idx", &[5], TensorData::I64(vec![0, 2, 2, 3, 0]));
            g.op1(ShapeOp::Gather { axis: 0 }, &[x[0], idx]).unwrap()
        })
        .covering(S::Gather),
        case(
            "Gemm fan-out into two consumers",
            F64,
            &[&[3, 4], &[4, 4]],
            |g, x| {
                let y = g.linear(x[0], x[1], None).unwrap();
                let z = g.linear(y, x[1], None).unwrap();
                g.add(y, z).unwrap()
            },
        )
        .covering(N::Gemm),
        case("Erf (f32)", F32, &[&[6]], |g, x| {
            g.unary(ElementwiseOp::Erf, x[0]).unwrap()
        })
        .covering(E::Erf),
        case("GELU exact (f32)", F32, &[&[8]], |g, x| {
            let y = g.mul_scalar(x[0], 2.0).unwrap();
            g.unary(ElementwiseOp::GeluErf, y).unwrap()
        })
        .covering(E::GeluErf),
        case(
            "LayerNorm with stats outputs",
            F64,
            &[&[3, 5], &[5], &[5]],
            |g, x| patchmix_export::vit::layer_norm(g, x[0], x[1], x[2], 1e-6, true).unwrap(),
        )
        .covering(N::LayerNorm),
        case(
            "LayerNorm over 260 rows (scale/bias gradients as GEMVs)",
            F64,
            &[&[260, 4], &[4], &[4]],
            |g, x| patchmix_export::vit::layer_norm(g, x[0], x[1], x[2], 1e-6, true).unwrap(),
        )
        .covering(N::LayerNorm),
        case(
            "LayerNorm recomputing stats",
            F64,
            &[&[2, 2, 4], &[4], &[4]],
            |g, x| patchmix_export::vit::layer_norm(g, x[0], x[1], x[2], 1e-5, false).unwrap(),
        )
        .covering(N::LayerNorm),
        case(
            "BatchNorm training mode (decomposed)",
            F64,
            &[&[4, 3], &[3], &[3]],
            |g, x| {
                // y = (x − mean_b) / √(var_b + eps) · γ + β with the biased batch variance.
                let mean = g.reduce_mean(x[0], &[0], true).unwrap();
                let xc = g.sub(x[0], mean).unwrap();
                let sq = g.mul(xc, xc).unwrap();
                let var = g.reduce_mean(sq, &[0], true).unwrap();
                let ve = g.add_scalar(var, 1e-5).unwrap();
                let sd = g.unary(ElementwiseOp::Sqrt, ve).unwrap();
                let xn = g.div(xc, sd).unwrap();
                let y = g.mul(xn, x[1]).unwrap();
                g.add(y, x[2]).unwrap()
            },
        ),
        case("L2 normalisation (F.normalize)", F64, &[&[3, 4]], |g, x| {
            let sq = g.mul(x[0], x[0]).unwrap();
            let s = g.reduce_sum(sq, &[1], true).unwrap();
            let n = g.unary(ElementwiseOp::Sqrt, s).unwrap();
            let eps = g.scalar(DType::F64, 1e-12);
            let n = g.op1(ElementwiseOp::Max, &[n, eps]).unwrap();
            g.div(x[0], n).unwrap()
        }),
    ];
    // Through a stop-gradient the value is used but not differentiated: only x0 is checked
    // here (its gradient is x1); `stop_gradient_cuts_only_its_path` checks x1.
    let mut sg = case("StopGradient (value passes)", F64, &[&[3], &[3]], |g, x| {
        let s = g.stop_gradient(x[1]).unwrap();
        g.mul(x[0], s).unwrap()
    })
    .covering(E::StopGradient);
    sg.diff = vec![0];
    v.push(sg);
    // Rounds through f32, so a larger step and tolerance.
    let mut cast = case("Cast f32 round trip (f64 graph)", F64, &[&[4]], |g, x| {
        let c = g
            .op1(ElementwiseOp::Cast { to: DType::F32 }, &[x[0]])
            .unwrap();
        let c = g.mul(c, c).unwrap();
        g.op1(ElementwiseOp::Cast { to: DType::F64 }, &[c]).unwrap()
    })
    .covering(E::Cast);
    cast.h_tol = Some((1e-3, 1e-3));
    v.push(cast);
    let mut positive = vec![
        case("Div broadcast", F64, &[&[2, 3], &[3]], |g, x| {
            g.div(x[0], x[1]).unwrap()
        })
        .covering(E::Div),
        case("Sqrt", F64, &[&[5]], |g, x| {
            g.unary(ElementwiseOp::Sqrt, x[0]).unwrap()
        })
        .covering(E::Sqrt),
        case("Log", F64, &[&[5]], |g, x| {
            g.unary(ElementwiseOp::Log, x[0]).unwrap()
        })
        .covering(E::Log),
        case("Pow constant exponent", F64, &[&[5]], |g, x| {
            let e = g.scalar(DType::F64, 2.5);
            g.op1(ElementwiseOp::Pow, &[x[0], e]).unwrap()
        })
        .covering(E::Pow),
    ];
    for c in &mut positive {
        c.positive = true;
    }
    v.append(&mut positive);
    v
}

#[test]
fn every_rule_matches_finite_differences() {
    let all = cases();
    assert!(all.len() >= 40, "the table covers every differentiable op");
    for c in &all {
        check(c);
    }
}

#[test]
fn every_differentiable_op_has_a_finite_difference_case() {
    let covered: Vec<OpKind> = cases().iter().flat_map(|c| c.covers.clone()).collect();
    // An op is differentiable when its family lets a gradient through any of its inputs.
    let differentiable = |op: &Op| (0..4).any(|i| differentiable_input(op, i));
    let missing: Vec<OpKind> = Op::one_of_each_kind()
        .iter()
        .filter(|op| differentiable(op) && !covered.contains(&op.kind()))
        .map(Op::kind)
        .collect();
    assert!(
        missing.is_empty(),
        "differentiable ops without a finite-difference case: {missing:?}"
    );
}

#[test]
fn unreachable_inputs_get_zero_gradients() {
    let mut g = Graph::new("z");
    let x = g.input("x", DType::F32, Shape::fixed(&[2]));
    let y = g.input("y", DType::F32, Shape::fixed(&[3]));
    let l = g.reduce_sum(x, &[0], false).unwrap();
    let gr = backward(&mut g, l, &[x, y]).unwrap();
    assert!(matches!(
        g.value(gr[1]).kind,
        patchmix_export::graph::ValueKind::NodeOutput { .. }
    ));
    assert_eq!(g.fixed_shape(gr[1]).unwrap(), vec![3]);
}

#[test]
fn detached_passes_emit_no_gradient_code() {
    // Two "passes" of the same weight; the second is cut by StopGradient, so the backward adds
    // exactly as many nodes as for the first pass alone.
    let build = |detached_second: bool| {
        let mut g = Graph::new("p");
        let w = g.input("w", DType::F32, Shape::fixed(&[4, 4]));
        let a = g.input("a", DType::F32, Shape::fixed(&[2, 4]));
        let y1 = g.linear(a, w, None).unwrap();
        let mut l = g.reduce_sum(y1, &[0, 1], false).unwrap();
        if detached_second {
            let y2 = g.linear(a, w, None).unwrap();
            let y2 = g.stop_gradient(y2).unwrap();
            let s = g.reduce_sum(y2, &[0, 1], false).unwrap();
            l = g.add(l, s).unwrap();
        }
        let before = g.nodes.len();
        backward(&mut g, l, &[w]).unwrap();
        g.nodes.len() - before
    };
    // The only extra backward node is the Add's gradient pass-through (none: Add of scalars
    // forwards the same gradient), so the counts are equal.
    assert_eq!(build(false), build(true));
}

#[test]
fn stop_gradient_cuts_only_its_path() {
    // L = Σ x0·sg(x1) + Σ x1²: dL/dx1 must be 2·x1 (not x0 + 2·x1).
    let (_, env) = ensure_ort().expect("ONNX Runtime");
    let mut g = Graph::new("sg");
    let x0 = g.input("x0", DType::F64, Shape::fixed(&[3]));
    let x1 = g.input("x1", DType::F64, Shape::fixed(&[3]));
    let s = g.stop_gradient(x1).unwrap();
    let p = g.mul(x0, s).unwrap();
    let q = g.mul(x1, x1).unwrap();
    let y = g.add(p, q).unwrap();
    let l = g.reduce_sum(y, &[0], false).unwrap();
    let gr = backward(&mut g, l, &[x1]).unwrap();
    g.output(gr[0], "grad");
    let mut session = Session::builder(&env)
        .unwrap()
        .commit_from_memory(&to_onnx_bytes(&g))
        .unwrap();
    let a = ndarray::arr1(&[1.0f64, -2.0, 0.5]).into_dyn();
    let b = ndarray::arr1(&[0.25f64, 3.0, -1.0]).into_dyn();
    let out = run(
        &mut session,
        &["x0".into(), "x1".into()],
        &[a, b.clone()],
        DType::F64,
    );
    assert_eq!(out[0], b.mapv(|v| 2.0 * v));
}
