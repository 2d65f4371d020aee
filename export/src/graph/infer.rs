//! Shape and type inference, one rule per op.

use super::GraphError;
use super::dtype::{DType, Dim, Shape};
use super::op::Op;

/// Normalises a possibly negative axis against a rank.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, GraphError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(GraphError::Shape(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    let rank = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.rank() >= rank {
            a.0[i + a.rank() - rank]
        } else {
            Dim::fixed(1)
        };
        let db = if i + b.rank() >= rank {
            b.0[i + b.rank() - rank]
        } else {
            Dim::fixed(1)
        };
        let d = if da == db || db == Dim::fixed(1) {
            da
        } else if da == Dim::fixed(1) {
            db
        } else {
            return Err(GraphError::Shape(format!("cannot broadcast {a} with {b}")));
        };
        out.push(d);
    }
    Ok(Shape(out))
}

fn reshape(input: &Shape, target: &[i64]) -> Result<Shape, GraphError> {
    let total = input
        .numel()
        .ok_or_else(|| GraphError::Shape(format!("shape {input} has batch² elements")))?;
    let mut dims = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => dims.push(*input.0.get(i).ok_or_else(|| {
                GraphError::Shape(format!(
                    "reshape {input} to {target:?}: 0 at axis {i} has no source"
                ))
            })?),
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                dims.push(Dim::fixed(1));
            }
            t if t > 0 => dims.push(Dim::fixed(t as usize)),
            _ => {
                return Err(GraphError::Shape(format!(
                    "reshape target {target:?} is invalid"
                )));
            }
        }
    }
    let known = Shape(dims.clone())
        .numel()
        .ok_or_else(|| GraphError::Shape("batch²".into()))?;
    if let Some(i) = infer_at {
        if known.batch && !total.batch || known.n == 0 || total.n % known.n != 0 {
            return Err(GraphError::Shape(format!(
                "cannot reshape {input} to {target:?}"
            )));
        }
        dims[i] = Dim {
            n: total.n / known.n,
            batch: total.batch && !known.batch,
        };
    } else if known != total {
        return Err(GraphError::Shape(format!(
            "cannot reshape {input} to {target:?}"
        )));
    }
    Ok(Shape(dims))
}

fn reduce(input: &Shape, axes: &[i64], keepdims: bool) -> Result<Shape, GraphError> {
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, input.rank()))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, d) in input.0.iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                out.push(Dim::fixed(1));
            }
        } else {
            out.push(*d);
        }
    }
    Ok(Shape(out))
}

fn slice_dim(d: Dim, start: i64, end: i64) -> Result<Dim, GraphError> {
    let n = d
        .as_fixed()
        .ok_or_else(|| GraphError::Shape("slice of a symbolic axis".into()))? as i64;
    let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
    let (s, e) = (clamp(start), clamp(end));
    Ok(Dim::fixed((e - s).max(0) as usize))
}

fn matmul(a: &Shape, b: &Shape) -> Result<Shape, GraphError> {
    if a.rank() < 2 || b.rank() < 2 {
        return Err(GraphError::Shape(format!(
            "MatMul needs rank ≥ 2, got {a} and {b}"
        )));
    }
    let (m, ka) = (a.0[a.rank() - 2], a.0[a.rank() - 1]);
    let (kb, n) = (b.0[b.rank() - 2], b.0[b.rank() - 1]);
    if ka != kb {
        return Err(GraphError::Shape(format!(
            "MatMul inner dimensions differ: {a} × {b}"
        )));
    }
    let batch = broadcast(
        &Shape(a.0[..a.rank() - 2].to_vec()),
        &Shape(b.0[..b.rank() - 2].to_vec()),
    )?;
    let mut out = batch.0;
    out.push(m);
    out.push(n);
    Ok(Shape(out))
}

/// Infers the output types and shapes of `op` applied to inputs of the given types and shapes.
///
/// # Errors
/// [`GraphError::Shape`] when the inputs do not fit the op.
pub fn infer(
    op: &Op,
    inputs: &[(DType, &Shape)],
    n_outputs: usize,
) -> Result<Vec<(DType, Shape)>, GraphError> {
    let arity = |n: usize| -> Result<(), GraphError> {
        if inputs.len() == n {
            Ok(())
        } else {
            Err(GraphError::Shape(format!(
                "{} takes {n} inputs, got {}",
                op.onnx_type(),
                inputs.len()
            )))
        }
    };
    let same_type = || -> Result<DType, GraphError> {
        let t = inputs[0].0;
        if inputs.iter().any(|(d, _)| *d != t) {
            return Err(GraphError::Shape(format!(
                "{} inputs differ in type",
                op.onnx_type()
            )));
        }
        Ok(t)
    };
    let one = |dt: DType, s: Shape| Ok(vec![(dt, s)]);
    match op {
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max => {
            arity(2)?;
            let t = same_type()?;
            one(t, broadcast(inputs[0].1, inputs[1].1)?)
        }
        Op::Pow => {
            arity(2)?;
            one(inputs[0].0, broadcast(inputs[0].1, inputs[1].1)?)
        }
        Op::Greater => {
            arity(2)?;
            same_type()?;
            one(DType::Bool, broadcast(inputs[0].1, inputs[1].1)?)
        }
        Op::Where => {
            arity(3)?;
            let s = broadcast(inputs[0].1, &broadcast(inputs[1].1, inputs[2].1)?)?;
            one(inputs[1].0, s)
        }
        Op::Neg
        | Op::Sqrt
        | Op::Exp
        | Op::Log
        | Op::Erf
        | Op::Relu
        | Op::Reciprocal
        | Op::Gelu
        | Op::Identity
        | Op::StopGradient => {
            arity(1)?;
            one(inputs[0].0, inputs[0].1.clone())
        }
        Op::Cast { to } => {
            arity(1)?;
            one(*to, inputs[0].1.clone())
        }
        Op::Reshape { shape } => {
            arity(1)?;
            one(inputs[0].0, reshape(inputs[0].1, shape)?)
        }
        Op::Transpose { perm } => {
            arity(1)?;
            let s = inputs[0].1;
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..s.rank()).collect::<Vec<_>>() {
                return Err(GraphError::Shape(format!(
                    "bad transpose perm {perm:?} for {s}"
                )));
            }
            one(inputs[0].0, Shape(perm.iter().map(|&p| s.0[p]).collect()))
        }
        Op::Slice { starts, ends, axes } => {
            arity(1)?;
            let mut s = inputs[0].1.clone();
            for ((&st, &en), &ax) in starts.iter().zip(ends).zip(axes) {
                let a = norm_axis(ax, s.rank())?;
                s.0[a] = slice_dim(s.0[a], st, en)?;
            }
            one(inputs[0].0, s)
        }
        Op::Concat { axis } => {
            let t = same_type()?;
            let first = inputs[0].1;
            let a = norm_axis(*axis, first.rank())?;
            let mut out = first.clone();
            let mut total = 0;
            for (_, s) in inputs {
                if s.rank() != first.rank()
                    || s.0
                        .iter()
                        .zip(&first.0)
                        .enumerate()
                        .any(|(i, (x, y))| i != a && x != y)
                {
                    return Err(GraphError::Shape(format!(
                        "Concat of {first} and {s} on axis {a}"
                    )));
                }
                total += s.0[a]
                    .as_fixed()
                    .ok_or_else(|| GraphError::Shape("concat on batch axis".into()))?;
            }
            out.0[a] = Dim::fixed(total);
            one(t, out)
        }
        Op::Split { axis, sizes } => {
            arity(1)?;
            let s = inputs[0].1;
            let a = norm_axis(*axis, s.rank())?;
            let n = s.0[a]
                .as_fixed()
                .ok_or_else(|| GraphError::Shape("split on batch axis".into()))?;
            if sizes.iter().sum::<i64>() != n as i64 || sizes.len() != n_outputs {
                return Err(GraphError::Shape(format!(
                    "split sizes {sizes:?} do not fit axis {a} of {s}"
                )));
            }
            Ok(sizes
                .iter()
                .map(|&k| {
                    let mut o = s.clone();
                    o.0[a] = Dim::fixed(k as usize);
                    (inputs[0].0, o)
                })
                .collect())
        }
        Op::Pad { pads } => {
            arity(1)?;
            let s = inputs[0].1;
            if pads.len() != 2 * s.rank() {
                return Err(GraphError::Shape(format!(
                    "pads {pads:?} do not fit rank {}",
                    s.rank()
                )));
            }
            let mut out = s.clone();
            for i in 0..s.rank() {
                let extra = pads[i] + pads[i + s.rank()];
                if extra != 0 {
                    let n = s.0[i]
                        .as_fixed()
                        .ok_or_else(|| GraphError::Shape("pad on batch axis".into()))?;
                    out.0[i] = Dim::fixed((n as i64 + extra) as usize);
                }
            }
            one(inputs[0].0, out)
        }
        Op::Expand { shape } => {
            arity(1)?;
            let target = Shape::fixed(&shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
            one(inputs[0].0, broadcast(inputs[0].1, &target)?)
        }
        Op::Unsqueeze { axes } => {
            arity(1)?;
            let s = inputs[0].1;
            let rank = s.rank() + axes.len();
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_, _>>()?;
            let mut src = s.0.iter();
            let out = (0..rank)
                .map(|i| {
                    if axes.contains(&i) {
                        Dim::fixed(1)
                    } else {
                        *src.next().unwrap_or(&Dim::fixed(1))
                    }
                })
                .collect();
            one(inputs[0].0, Shape(out))
        }
        Op::Gather { axis } => {
            arity(2)?;
            let (data, idx) = (inputs[0].1, inputs[1].1);
            let a = norm_axis(*axis, data.rank())?;
            let mut out = data.0[..a].to_vec();
            out.extend_from_slice(&idx.0);
            out.extend_from_slice(&data.0[a + 1..]);
            one(inputs[0].0, Shape(out))
        }
        Op::ScatterNdAdd => {
            arity(3)?;
            one(inputs[0].0, inputs[0].1.clone())
        }
        Op::ReduceSum { axes, keepdims } | Op::ReduceMean { axes, keepdims } => {
            arity(1)?;
            one(inputs[0].0, reduce(inputs[0].1, axes, *keepdims)?)
        }
        Op::MatMul => {
            arity(2)?;
            let t = same_type()?;
            one(t, matmul(inputs[0].1, inputs[1].1)?)
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            if inputs.len() != 2 && inputs.len() != 3 {
                return Err(GraphError::Shape("Gemm takes 2 or 3 inputs".into()));
            }
            let t = same_type()?;
            let (a, b) = (inputs[0].1, inputs[1].1);
            if a.rank() != 2 || b.rank() != 2 {
                return Err(GraphError::Shape(format!(
                    "Gemm needs 2-D operands, got {a} and {b}"
                )));
            }
            let (m, ka) = if *trans_a {
                (a.0[1], a.0[0])
            } else {
                (a.0[0], a.0[1])
            };
            let (kb, n) = if *trans_b {
                (b.0[1], b.0[0])
            } else {
                (b.0[0], b.0[1])
            };
            if ka != kb {
                return Err(GraphError::Shape(format!(
                    "Gemm inner dimensions differ: {a} × {b}"
                )));
            }
            let out = Shape(vec![m, n]);
            if inputs.len() == 3 {
                let c = broadcast(inputs[2].1, &out)?;
                if c != out {
                    return Err(GraphError::Shape(format!(
                        "Gemm bias {} does not fit {out}",
                        inputs[2].1
                    )));
                }
            }
            one(t, out)
        }
        Op::Softmax { axis } | Op::LogSoftmax { axis } => {
            arity(1)?;
            norm_axis(*axis, inputs[0].1.rank())?;
            one(inputs[0].0, inputs[0].1.clone())
        }
        Op::LayerNorm { axis, .. } => {
            arity(3)?;
            let s = inputs[0].1;
            let a = norm_axis(*axis, s.rank())?;
            let mut stat = s.clone();
            for d in stat.0.iter_mut().skip(a) {
                *d = Dim::fixed(1);
            }
            let mut outs = vec![(inputs[0].0, s.clone())];
            for _ in 1..n_outputs.min(3) {
                // `stash_type` 1: ORT keeps the statistics in f32 whatever the input type.
                outs.push((DType::F32, stat.clone()));
            }
            Ok(outs)
        }
        Op::Zeros { shape, dtype } => {
            arity(0)?;
            one(
                *dtype,
                Shape::fixed(&shape.iter().map(|&d| d as usize).collect::<Vec<_>>()),
            )
        }
    }
}
