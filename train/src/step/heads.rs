//! The projector and predictor MLPs with BatchNorm1d in training mode.

use super::build::Ranks;
use super::layout::Slot;
use patchmix_export::graph::{Compute, ElementwiseOp, Graph, GraphError, ShapeOp, ValueId};
use std::collections::BTreeMap;

/// PyTorch's BatchNorm1d epsilon.
pub const BN_EPS: f64 = 1e-5;
/// PyTorch's BatchNorm1d running-stat momentum.
pub const BN_MOMENTUM: f64 = 0.1;

/// Running statistics threaded through the passes of a step: each training-mode pass reads the
/// current value and replaces it with the updated one.
#[derive(Clone, Debug, Default)]
pub struct RunningStats {
    /// state_dict name (`…running_mean`/`…running_var`) → current value.
    pub current: BTreeMap<String, ValueId>,
}

/// BatchNorm1d in training mode over `x` [B, C]: normalise with the batch mean and the biased
/// variance (eps 1e-5), apply the affine transform when given, and update the running stats
/// with momentum 0.1 and the unbiased variance.
///
/// With collectives ([`Ranks`]; always for more than one rank) this is SyncBatchNorm: `x` holds this rank's B rows of a global batch
/// of B·W, and the statistics are over the global batch, from two all-reduces: Σx first, then
/// Σ(x − μ)² around the global mean. Two passes rather than one all-reduce of [Σx, Σx²]: the
/// second collective is C floats, a negligible cost, and it keeps the variance free of the
/// cancellation of E[x²] − μ² (large means, small variances), so the result equals the
/// one-process BatchNorm over the whole batch to rounding. The running variance uses the
/// global unbiased factor B·W/(B·W − 1), as PyTorch's SyncBatchNorm does; the backward pass
/// follows from the AllReduceSum rule.
///
/// # Errors
/// Shape mismatch, or a missing running stat.
pub fn batch_norm_train(
    g: &mut Graph,
    x: ValueId,
    affine: Option<(ValueId, ValueId)>,
    prefix: &str,
    stats: &mut RunningStats,
    ranks: Ranks,
) -> Result<ValueId, GraphError> {
    let b = (g.fixed_shape(x)?[0] * ranks.world_size) as f64;
    // The batch mean of the rows (over all ranks' rows when data-parallel).
    let batch_mean = |g: &mut Graph, v: ValueId| -> Result<ValueId, GraphError> {
        if !ranks.collectives {
            g.reduce_mean(v, &[0], true)
        } else {
            let local = g.reduce_sum(v, &[0], true)?;
            let global = g.all_reduce_sum(local)?;
            g.mul_scalar(global, 1.0 / b)
        }
    };
    let mean = batch_mean(g, x)?;
    let xc = g.sub(x, mean)?;
    let sq = g.mul(xc, xc)?;
    let var = batch_mean(g, sq)?;
    let ve = g.add_scalar(var, BN_EPS)?;
    let sd = g.unary(ElementwiseOp::Sqrt, ve)?;
    let inv = g.unary(ElementwiseOp::Reciprocal, sd)?;
    let mut y = g.mul(xc, inv)?;
    if let Some((w, bias)) = affine {
        y = g.mul(y, w)?;
        y = g.add(y, bias)?;
    }
    // Running stats (no gradient flows here).
    let c = g.fixed_shape(x)?[1] as i64;
    let mean_d = g.stop_gradient(mean)?;
    let var_d = g.stop_gradient(var)?;
    let mean1 = g.reshape(mean_d, &[c])?;
    let var1 = g.reshape(var_d, &[c])?;
    let unbiased = g.mul_scalar(var1, b / (b - 1.0).max(1.0))?;
    for (key, batch_stat) in [("running_mean", mean1), ("running_var", unbiased)] {
        let name = format!("{prefix}.{key}");
        let cur = *stats
            .current
            .get(&name)
            .ok_or_else(|| GraphError::Shape(format!("missing BN buffer `{name}`")))?;
        let kept = g.mul_scalar(cur, 1.0 - BN_MOMENTUM)?;
        let fresh = g.mul_scalar(batch_stat, BN_MOMENTUM)?;
        let next = g.add(kept, fresh)?;
        stats.current.insert(name, next);
    }
    Ok(y)
}

/// How a head runs: the precision of its products, and the data-parallel ranks its
/// BatchNorm statistics span (1: this process's batch; more: SyncBatchNorm).
#[derive(Clone, Copy, Debug)]
pub struct HeadCompute {
    /// The matrix products' precision.
    pub compute: Compute,
    /// The ranks the BatchNorm statistics span.
    pub ranks: Ranks,
}

/// An MLP head `Linear(no bias)–BN–ReLU … Linear–BN(affine=False)` as in MoCo v3's
/// `_build_mlp`; `layers` are (linear index, in, out, bn index, affine) under `prefix`. The
/// Linear products run in `how.compute`'s precision; BatchNorm and ReLU stay f32. With
/// `how.ranks` holding collectives every BatchNorm is synchronised (see [`batch_norm_train`]).
///
/// # Errors
/// A missing parameter or a shape mismatch.
pub fn mlp_head(
    g: &mut Graph,
    x: ValueId,
    prefix: &str,
    layers: &[(usize, usize, usize, usize, bool)],
    params: &BTreeMap<String, ValueId>,
    stats: &mut RunningStats,
    how: HeadCompute,
) -> Result<ValueId, GraphError> {
    let HeadCompute { compute, ranks } = how;
    let p = |n: String| {
        params
            .get(&n)
            .copied()
            .ok_or_else(|| GraphError::Shape(format!("missing parameter `{n}`")))
    };
    let mut h = x;
    for (i, &(li, _, _, bi, affine)) in layers.iter().enumerate() {
        h = compute.linear(g, h, p(format!("{prefix}.{li}.weight"))?, None)?;
        let aff = if affine {
            Some((
                p(format!("{prefix}.{bi}.weight"))?,
                p(format!("{prefix}.{bi}.bias"))?,
            ))
        } else {
            None
        };
        h = batch_norm_train(g, h, aff, &format!("{prefix}.{bi}"), stats, ranks)?;
        if i + 1 < layers.len() {
            h = g.unary(ElementwiseOp::Relu, h)?;
        }
    }
    Ok(h)
}

/// Slices every slot of a flat vector into its own value (Slice + Reshape).
///
/// # Errors
/// Never for a consistent layout.
pub fn unflatten(
    g: &mut Graph,
    flat: ValueId,
    slots: &[Slot],
) -> Result<BTreeMap<String, ValueId>, GraphError> {
    let mut out = BTreeMap::new();
    for s in slots {
        let v = g.scoped(&s.name, |g| -> Result<ValueId, GraphError> {
            let sl = g.op1(
                ShapeOp::Slice {
                    starts: vec![s.offset as i64],
                    ends: vec![(s.offset + s.len) as i64],
                    axes: vec![0],
                },
                &[flat],
            )?;
            if s.shape.len() == 1 {
                Ok(sl)
            } else {
                let shape: Vec<i64> = s.shape.iter().map(|&d| d as i64).collect();
                g.reshape(sl, &shape)
            }
        })?;
        out.insert(s.name.clone(), v);
    }
    Ok(out)
}

/// Concatenates values (flattened) in slot order into one flat vector.
///
/// # Errors
/// Never for values of the slots' sizes.
pub fn flatten(g: &mut Graph, values: &[ValueId]) -> Result<ValueId, GraphError> {
    let mut flat = Vec::with_capacity(values.len());
    for &v in values {
        flat.push(if g.shape(v).rank() == 1 {
            v
        } else {
            g.reshape(v, &[-1])?
        });
    }
    if flat.len() == 1 {
        return Ok(flat[0]);
    }
    g.op1(ShapeOp::Concat { axis: 0 }, &flat)
}
