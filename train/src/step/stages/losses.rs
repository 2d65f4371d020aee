//! Stage 5, losses: the PatchMix soft-target contrastive terms and their total.

use super::super::build::Ranks;
use super::super::loss::soft_ce;
use super::passes::Embeddings;
use patchmix_export::graph::{Graph, GraphError, ShapeOp, ValueId};

/// The loss values of a step (scalars).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LossValues {
    /// CE(q_view1, k_view2, I).
    pub src: ValueId,
    /// CE(q_mix2, k_view1, T_mix).
    pub mix: ValueId,
    /// CE(q_mix2, k_mix1, T_mix2).
    pub mix2: ValueId,
    /// The multi-crop terms (crops, mixed crops).
    pub multi: Option<(ValueId, ValueId)>,
    /// src + mix/2 + mix2/2 (+ the multi-crop terms): what the backward pass starts from.
    pub total: ValueId,
}

/// The PatchMix loss `CE(q1, k2, I) + ½·CE(qm2, k1, T_mix) + ½·CE(qm2, km1, T_mix2)` (scope
/// `loss`) and, with local crops, the original's multi-crop terms (scope `loss_multi`)
/// added to the total.
///
/// In: the queries and keys, the three soft targets [B, B·W] and the temperature τ. Out: the
/// loss terms and the total, each the mean over this rank's rows.
///
/// With `world_size` W > 1 the (detached) keys of all ranks are gathered first, as the
/// original's `concat_all_gather`: each rank's queries meet all B·W keys.
///
/// # Errors
/// A shape mismatch.
pub(crate) fn patchmix_losses(
    g: &mut Graph,
    e: &Embeddings,
    targets: [ValueId; 3],
    tau: ValueId,
    ranks: Ranks,
) -> Result<LossValues, GraphError> {
    let gather = |g: &mut Graph, k: ValueId| {
        if ranks.collectives {
            g.all_gather(k, ranks.world_size)
        } else {
            Ok(k)
        }
    };
    let (k_view1, k_view2, k_mix1) = g.scoped("keys", |g| -> Result<_, GraphError> {
        Ok((
            gather(g, e.k_view1)?,
            gather(g, e.k_view2)?,
            gather(g, e.k_mix1)?,
        ))
    })?;
    let (src, mix, mix2, mut total) = g.scoped("loss", |g| -> Result<_, GraphError> {
        let l_src = soft_ce(g, e.q_view1, k_view2, targets[0], tau)?;
        let l_mix = soft_ce(g, e.q_mix2, k_view1, targets[1], tau)?;
        let l_mix2 = soft_ce(g, e.q_mix2, k_mix1, targets[2], tau)?;
        let half_mix = g.mul_scalar(l_mix, 0.5)?;
        let half_mix2 = g.mul_scalar(l_mix2, 0.5)?;
        let s = g.add(l_src, half_mix)?;
        let total = g.add(s, half_mix2)?;
        Ok((l_src, l_mix, l_mix2, total))
    })?;
    // The original's multi-crop terms: (1/n)·Σ_j [CE(q_j, k1, I) + CE(q_j, k2, I)] and the same
    // for the mixed crops with T_mix. A row-mean over the n·B stacked crops against the
    // targets tiled n times is exactly (1/n)·Σ_j of the per-crop means.
    let multi = match e.local {
        Some(local) => Some(g.scoped("loss_multi", |g| -> Result<_, GraphError> {
            let n = local.count;
            let tile = |g: &mut Graph, t: ValueId| {
                if n == 1 {
                    Ok(t)
                } else {
                    g.op1(ShapeOp::Concat { axis: 0 }, &vec![t; n])
                }
            };
            let eye_n = tile(g, targets[0])?;
            let mix_n = tile(g, targets[1])?;
            let a = soft_ce(g, local.crops, k_view1, eye_n, tau)?;
            let c = soft_ce(g, local.crops, k_view2, eye_n, tau)?;
            let multi = g.add(a, c)?;
            let a = soft_ce(g, local.mixed, k_view1, mix_n, tau)?;
            let c = soft_ce(g, local.mixed, k_view2, mix_n, tau)?;
            let multi_mix = g.add(a, c)?;
            Ok((multi, multi_mix))
        })?),
        None => None,
    };
    if let Some((m, mm)) = multi {
        let t = g.add(total, m)?;
        total = g.add(t, mm)?;
    }
    Ok(LossValues {
        src,
        mix,
        mix2,
        multi,
        total,
    })
}

/// The loss values averaged over the `world_size` ranks (one all-reduce each, then ÷W): the
/// global batch's mean, what every rank reports. The backward pass starts from this rank's
/// own total, not from these.
///
/// # Errors
/// A shape mismatch (never for scalar losses).
pub(crate) fn averaged_over_ranks(
    g: &mut Graph,
    l: &LossValues,
    ranks: Ranks,
) -> Result<LossValues, GraphError> {
    if !ranks.collectives {
        return Ok(*l);
    }
    let world_size = ranks.world_size;
    g.scoped("loss_global", |g| {
        let mut mean = |v: ValueId| -> Result<ValueId, GraphError> {
            let sum = g.all_reduce_sum(v)?;
            g.mul_scalar(sum, 1.0 / world_size as f64)
        };
        Ok(LossValues {
            src: mean(l.src)?,
            mix: mean(l.mix)?,
            mix2: mean(l.mix2)?,
            multi: match l.multi {
                Some((m, mm)) => Some((mean(m)?, mean(mm)?)),
                None => None,
            },
            total: mean(l.total)?,
        })
    })
}
