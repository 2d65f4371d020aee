//! Compiles one whole PatchMix training step into a single graph: every encoder pass, the
//! heads, the loss, the backward pass, AdamW and (momentum frame) the EMA update.

use super::adamw::{AdamInputs, adamw};
use super::config::{Frame, StepConfig};
use super::heads::{RunningStats, flatten, mlp_head, unflatten};
use super::layout::{StateLayout, predictor_layers, projector_layers};
use super::loss::{scalar_input, soft_ce};
use crate::autodiff::{backward, sum_all};
use patchmix_export::graph::{
    Compute, DType, ElementwiseOp, Graph, GraphError, Shape, ShapeOp, ValueId,
};
use patchmix_export::vit::{ForwardOptions, VitConfig, encoder_forward, resized_pos_embed};
use std::collections::BTreeMap;

/// Graph input and output names of the step.
pub mod names {
    /// Flat parameters [P].
    pub const PARAMS: &str = "params";
    /// AdamW first moments [P].
    pub const EXP_AVG: &str = "exp_avg";
    /// AdamW second moments [P].
    pub const EXP_AVG_SQ: &str = "exp_avg_sq";
    /// BN running statistics [Q].
    pub const BUFFERS: &str = "buffers";
    /// Momentum-encoder parameters [Pm] (momentum frame).
    pub const MOMENTUM_PARAMS: &str = "momentum_params";
    /// Image inputs [B, 3, H, W].
    pub const IMAGES: [&str; 4] = ["view1", "view2", "mix1", "mix2"];
    /// Soft targets [B, N].
    pub const TARGETS: [&str; 3] = ["target_src", "target_mix", "target_mix2"];
    /// Scalars.
    pub const LR: &str = "lr";
    /// Weight decay scalar.
    pub const WD: &str = "wd";
    /// AdamW step t (f32 scalar).
    pub const STEP: &str = "step";
    /// Loss temperature τ.
    pub const TEMPERATURE: &str = "temperature";
    /// EMA momentum μ (momentum frame).
    pub const MOMENTUM: &str = "momentum";
    /// The loss scale (fp16 steps).
    pub const LOSS_SCALE: &str = "loss_scale";
    /// 1 when every gradient was finite and AdamW was applied, 0 when the step was skipped
    /// (fp16 steps; f32 scalar).
    pub const GRADS_FINITE: &str = "grads_finite";
    /// Drop-path masks of a base pass: `drop_path.<pass>` [2·depth, B, 1, 1].
    pub const DROP_PATH_PREFIX: &str = "drop_path.";
    /// Outputs: updated state then the losses.
    pub const STATE_OUTPUTS: [&str; 5] = [
        "params_out",
        "exp_avg_out",
        "exp_avg_sq_out",
        "buffers_out",
        "momentum_params_out",
    ];
    /// Loss outputs.
    pub const LOSSES: [&str; 4] = ["loss_src", "loss_mix", "loss_mix2", "loss"];
    /// Multi-crop inputs: the local crops and their PatchMix [n·B, 3, l, l] (crop-major).
    pub const LOCAL_IMAGES: [&str; 2] = ["local", "local_mix"];
    /// Multi-crop loss outputs.
    pub const LOSS_MULTI: [&str; 2] = ["loss_multi", "loss_multi_mix"];
}

/// A compiled step.
#[derive(Clone, Debug)]
pub struct StepGraph {
    /// The graph.
    pub graph: Graph,
    /// The flat layouts of the state.
    pub layout: StateLayout,
    /// The configuration it was built for.
    pub config: StepConfig,
    /// How its matrix products are computed (native or emulated half precision).
    pub compute: Compute,
}

fn encoder_params(all: &BTreeMap<String, ValueId>, prefix: &str) -> BTreeMap<String, ValueId> {
    all.iter()
        .filter_map(|(k, &v)| {
            k.strip_prefix(prefix)
                .filter(|r| !r.starts_with("head."))
                .map(|r| (r.to_string(), v))
        })
        .collect()
}

/// Builds the training step for a configuration.
///
/// # Errors
/// [`GraphError`] for an invalid configuration (as a shape error naming it).
///
/// # Examples
/// ```
/// use patchmix_export::vit::VitConfig;
/// use patchmix_train::step::{build_step, Frame, StepConfig};
/// let cfg = StepConfig {
///     vit: VitConfig { img: 8, patch: 4, dim: 8, depth: 1, heads: 2 },
///     hidden: 16, out: 8, batch: 4, mix: 2, frame: Frame::NoMomentum, drop_path: 0.0,
///     local: None, precision: Default::default(),
/// };
/// let step = build_step(&cfg).unwrap();
/// assert_eq!(step.graph.outputs.len(), 8);
/// ```
pub fn build_step(cfg: &StepConfig) -> Result<StepGraph, GraphError> {
    build_step_with(cfg, false)
}

/// Builds the training step, with its half-precision products emulated in f32 kernels when
/// `emulate_half` is set ([`Compute::Emulated`]: for execution providers without bf16
/// kernels, such as ONNX Runtime's CPU EP). Without it, half-precision products are native.
///
/// # Errors
/// As [`build_step`].
pub fn build_step_with(cfg: &StepConfig, emulate_half: bool) -> Result<StepGraph, GraphError> {
    cfg.validate().map_err(GraphError::Shape)?;
    let compute = Compute::of(cfg.precision, emulate_half);
    let layout = StateLayout::new(cfg);
    let mut g = Graph::new("patchmix_train_step");
    let (b, img) = (cfg.batch, cfg.vit.img);
    let f32v =
        |g: &mut Graph, name: &str, dims: &[usize]| g.input(name, DType::F32, Shape::fixed(dims));

    let p_flat = f32v(&mut g, names::PARAMS, &[layout.params.len()]);
    let m_flat = f32v(&mut g, names::EXP_AVG, &[layout.params.len()]);
    let v_flat = f32v(&mut g, names::EXP_AVG_SQ, &[layout.params.len()]);
    let buf_flat = f32v(&mut g, names::BUFFERS, &[layout.buffers.len()]);
    let mom_flat = (cfg.frame == Frame::Momentum)
        .then(|| f32v(&mut g, names::MOMENTUM_PARAMS, &[layout.momentum.len()]));
    let images: Vec<ValueId> = names::IMAGES
        .iter()
        .map(|n| f32v(&mut g, n, &[b, 3, img, img]))
        .collect();
    let targets: Vec<ValueId> = names::TARGETS
        .iter()
        .map(|n| f32v(&mut g, n, &[b, b]))
        .collect();
    let locals: Option<Vec<ValueId>> = cfg.local.map(|l| {
        names::LOCAL_IMAGES
            .iter()
            .map(|n| f32v(&mut g, n, &[l.count * b, 3, l.img, l.img]))
            .collect()
    });
    let lr = scalar_input(&mut g, names::LR);
    let wd = scalar_input(&mut g, names::WD);
    let step = scalar_input(&mut g, names::STEP);
    let tau = scalar_input(&mut g, names::TEMPERATURE);
    let mu = (cfg.frame == Frame::Momentum).then(|| scalar_input(&mut g, names::MOMENTUM));
    let loss_scale = cfg
        .scales_loss()
        .then(|| scalar_input(&mut g, names::LOSS_SCALE));
    let mut drop_masks: BTreeMap<&str, ValueId> = BTreeMap::new();
    if cfg.has_drop_path() {
        for pass in cfg.base_passes() {
            let v = f32v(
                &mut g,
                &format!("{}{pass}", names::DROP_PATH_PREFIX),
                &[2 * cfg.vit.depth, cfg.pass_rows(pass), 1, 1],
            );
            drop_masks.insert(pass, v);
        }
    }

    let params = g.scoped("params", |g| unflatten(g, p_flat, &layout.params.slots))?;
    let mut stats = RunningStats {
        current: g.scoped("buffers", |g| unflatten(g, buf_flat, &layout.buffers.slots))?,
    };

    // Momentum encoder: EMA of the base encoder and projector, before the step.
    let mom_params = match (mom_flat, mu) {
        (Some(mf), Some(mu)) => Some(g.scoped("ema", |g| -> Result<_, GraphError> {
            let (pd, ed, ep) = (
                layout.decayed as i64,
                layout.ema_decayed as i64,
                layout.ema_plain as i64,
            );
            let a = g.op1(
                ShapeOp::Slice {
                    starts: vec![0],
                    ends: vec![ed],
                    axes: vec![0],
                },
                &[p_flat],
            )?;
            let c = g.op1(
                ShapeOp::Slice {
                    starts: vec![pd],
                    ends: vec![pd + ep],
                    axes: vec![0],
                },
                &[p_flat],
            )?;
            let base = g.op1(ShapeOp::Concat { axis: 0 }, &[a, c])?;
            let kept = g.mul(mf, mu)?;
            let one = g.scalar_like(mu, 1.0);
            let w = g.sub(one, mu)?;
            let fresh = g.mul(base, w)?;
            let updated = g.add(kept, fresh)?;
            let map = unflatten(g, updated, &layout.momentum.slots)?;
            Ok((updated, map))
        })?),
        _ => None,
    };

    let base_enc = encoder_params(&params, "base_encoder.");
    // Local crops see the base encoder with its position embedding resized to their grid.
    let local_enc = match &cfg.local {
        Some(l) => {
            let mut enc = base_enc.clone();
            let resized = g.scoped("local_pos_embed", |g| {
                resized_pos_embed(
                    g,
                    base_enc["pos_embed"],
                    cfg.vit.grid(),
                    l.img / cfg.vit.patch,
                    cfg.vit.dim,
                )
            })?;
            enc.insert("pos_embed".into(), resized);
            let vit = VitConfig {
                img: l.img,
                ..cfg.vit
            };
            Some((vit, enc))
        }
        None => None,
    };
    let proj = projector_layers(cfg);
    let pred = predictor_layers(cfg);
    let pass_masks = |g: &mut Graph, pass: &str| -> Result<Option<Vec<ValueId>>, GraphError> {
        let Some(&m) = drop_masks.get(pass) else {
            return Ok(None);
        };
        let n = 2 * cfg.vit.depth;
        let parts = g.node(
            ShapeOp::Split {
                axis: 0,
                sizes: vec![1; n],
            },
            &[m],
            n,
        )?;
        parts
            .into_iter()
            .map(|p| g.reshape(p, &[cfg.pass_rows(pass) as i64, 1, 1]))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    // Base encoder + projector (+ predictor) on one input.
    let base_pass = |g: &mut Graph,
                     stats: &mut RunningStats,
                     pass: &str,
                     x: ValueId,
                     with_pred: bool|
     -> Result<(ValueId, Option<ValueId>), GraphError> {
        let (vit, enc) = match (&local_enc, pass) {
            (Some((vit, enc)), "local" | "local_mix") => (vit, enc),
            _ => (&cfg.vit, &base_enc),
        };
        g.scoped(pass, |g| {
            let drop_path = pass_masks(g, pass)?;
            let opts = ForwardOptions {
                drop_path,
                tokens: false,
                training: true,
                compute,
            };
            let feats = g
                .scoped("base_encoder", |g| encoder_forward(g, vit, enc, x, &opts))?
                .cls;
            let k = g.scoped("head", |g| {
                mlp_head(
                    g,
                    feats,
                    "base_encoder.head",
                    &proj,
                    &params,
                    stats,
                    compute,
                )
            })?;
            let q = if with_pred {
                Some(g.scoped("predictor", |g| {
                    mlp_head(g, k, "predictor", &pred, &params, stats, compute)
                })?)
            } else {
                None
            };
            Ok((k, q))
        })
    };

    let (q1, q_m2, k1, k2, k_m1) = match &mom_params {
        None => {
            let (k1, q1) = base_pass(&mut g, &mut stats, "view1", images[0], true)?;
            let (k2, _) = base_pass(&mut g, &mut stats, "view2", images[1], false)?;
            let (km1, _) = base_pass(&mut g, &mut stats, "mix1", images[2], false)?;
            let (_, qm2) = base_pass(&mut g, &mut stats, "mix2", images[3], true)?;
            let k2 = g.stop_gradient(k2)?;
            let km1 = g.stop_gradient(km1)?;
            let k1d = g.stop_gradient(k1)?;
            (q1.expect("pred"), qm2.expect("pred"), k1d, k2, km1)
        }
        Some((_, mom_map)) => {
            let menc = encoder_params(mom_map, "momentum_encoder.");
            let mom_pass = |g: &mut Graph,
                            stats: &mut RunningStats,
                            pass: &str,
                            x: ValueId|
             -> Result<ValueId, GraphError> {
                g.scoped(&format!("{pass}_momentum"), |g| {
                    let opts = ForwardOptions {
                        drop_path: None,
                        tokens: false,
                        training: false,
                        compute,
                    };
                    let feats = g
                        .scoped("momentum_encoder", |g| {
                            encoder_forward(g, &cfg.vit, &menc, x, &opts)
                        })?
                        .cls;
                    let k = g.scoped("head", |g| {
                        mlp_head(
                            g,
                            feats,
                            "momentum_encoder.head",
                            &proj,
                            mom_map,
                            stats,
                            compute,
                        )
                    })?;
                    g.stop_gradient(k)
                })
            };
            let (_, q1) = base_pass(&mut g, &mut stats, "view1", images[0], true)?;
            let k1 = mom_pass(&mut g, &mut stats, "view1", images[0])?;
            let k2 = mom_pass(&mut g, &mut stats, "view2", images[1])?;
            let km1 = mom_pass(&mut g, &mut stats, "mix1", images[2])?;
            let (_, qm2) = base_pass(&mut g, &mut stats, "mix2", images[3], true)?;
            (q1.expect("pred"), qm2.expect("pred"), k1, k2, km1)
        }
    };

    // Multi-crop: the local crops and their PatchMix through the base encoder, projector and
    // predictor (BN statistics over all n·B rows, after mix2, as the original's order).
    let local_q = match (&locals, &cfg.local) {
        (Some(x), Some(l)) => {
            let (_, lq) = base_pass(&mut g, &mut stats, "local", x[0], true)?;
            let (_, lmq) = base_pass(&mut g, &mut stats, "local_mix", x[1], true)?;
            Some((lq.expect("pred"), lmq.expect("pred"), l.count))
        }
        _ => None,
    };

    let (l_src, l_mix, l_mix2, mut total) = g.scoped("loss", |g| -> Result<_, GraphError> {
        let l_src = soft_ce(g, q1, k2, targets[0], tau)?;
        let l_mix = soft_ce(g, q_m2, k1, targets[1], tau)?;
        let l_mix2 = soft_ce(g, q_m2, k_m1, targets[2], tau)?;
        let half_mix = g.mul_scalar(l_mix, 0.5)?;
        let half_mix2 = g.mul_scalar(l_mix2, 0.5)?;
        let s = g.add(l_src, half_mix)?;
        let total = g.add(s, half_mix2)?;
        Ok((l_src, l_mix, l_mix2, total))
    })?;
    // The original's multi-crop terms: (1/n)·Σ_j [CE(q_j, k1, I) + CE(q_j, k2, I)] and the same
    // for the mixed crops with T_mix. A row-mean over the n·B stacked crops against the
    // targets tiled n times is exactly (1/n)·Σ_j of the per-crop means.
    let multi = match local_q {
        Some((lq, lmq, n)) => Some(g.scoped("loss_multi", |g| -> Result<_, GraphError> {
            let tile = |g: &mut Graph, t: ValueId| {
                if n == 1 {
                    Ok(t)
                } else {
                    g.op1(ShapeOp::Concat { axis: 0 }, &vec![t; n])
                }
            };
            let eye_n = tile(g, targets[0])?;
            let mix_n = tile(g, targets[1])?;
            let a = soft_ce(g, lq, k1, eye_n, tau)?;
            let c = soft_ce(g, lq, k2, eye_n, tau)?;
            let multi = g.add(a, c)?;
            let a = soft_ce(g, lmq, k1, mix_n, tau)?;
            let c = soft_ce(g, lmq, k2, mix_n, tau)?;
            let multi_mix = g.add(a, c)?;
            Ok((multi, multi_mix))
        })?),
        None => None,
    };
    if let Some((m, mm)) = multi {
        let t = g.add(total, m)?;
        total = g.add(t, mm)?;
    }

    // Backward with respect to every parameter view, then one flat gradient.
    let wrt: Vec<ValueId> = layout
        .params
        .slots
        .iter()
        .map(|s| params[&s.name])
        .collect();
    // fp16: the backward pass starts from loss·scale, so that small gradients survive in
    // half precision, and the gradient is unscaled in f32 before AdamW.
    let seed = match loss_scale {
        Some(s) => g.scoped("loss_scale", |g| g.mul(total, s))?,
        None => total,
    };
    let grads = backward(&mut g, seed, &wrt)?;
    let grad_flat = g.scoped("grad_flat", |g| flatten(g, &grads))?;
    let (grad_flat, finite) = match loss_scale {
        Some(s) => g.scoped("unscale", |g| -> Result<_, GraphError> {
            let inv = g.unary(ElementwiseOp::Reciprocal, s)?;
            let unscaled = g.mul(grad_flat, inv)?;
            // Σg − Σg is 0 when every gradient is finite and NaN otherwise (an Inf or NaN
            // anywhere makes the sum Inf or NaN); 1 > NaN is false.
            let sum = sum_all(g, unscaled)?;
            let zero_if_finite = g.sub(sum, sum)?;
            let one = g.scalar_like(sum, 1.0);
            let finite = g.op1(ElementwiseOp::Greater, &[one, zero_if_finite])?;
            Ok((unscaled, Some(finite)))
        })?,
        None => (grad_flat, None),
    };
    let (mut p_new, mut m_new, mut v_new) = g.scoped("adamw", |g| {
        adamw(
            g,
            (p_flat, m_flat, v_flat, grad_flat),
            layout.decayed,
            AdamInputs { lr, wd, step },
        )
    })?;
    // A step with an overflow leaves the parameters and moments as they were.
    let finite_out = match finite {
        Some(ok) => Some(g.scoped("skip_if_overflow", |g| -> Result<_, GraphError> {
            p_new = g.op1(ElementwiseOp::Where, &[ok, p_new, p_flat])?;
            m_new = g.op1(ElementwiseOp::Where, &[ok, m_new, m_flat])?;
            v_new = g.op1(ElementwiseOp::Where, &[ok, v_new, v_flat])?;
            g.op1(ElementwiseOp::Cast { to: DType::F32 }, &[ok])
        })?),
        None => None,
    };
    let buf_vals: Vec<ValueId> = layout
        .buffers
        .slots
        .iter()
        .map(|s| stats.current[&s.name])
        .collect();
    let buf_new = g.scoped("buffers_out", |g| flatten(g, &buf_vals))?;

    let outs = [
        Some(p_new),
        Some(m_new),
        Some(v_new),
        Some(buf_new),
        mom_params.map(|(u, _)| u),
    ];
    for (name, v) in names::STATE_OUTPUTS.iter().zip(outs) {
        if let Some(v) = v {
            let v = if g.value(v).kind == patchmix_export::graph::ValueKind::Input {
                g.op1(ElementwiseOp::Identity, &[v])?
            } else {
                v
            };
            g.output(v, name);
        }
    }
    for (name, v) in names::LOSSES.iter().zip([l_src, l_mix, l_mix2, total]) {
        g.output(v, name);
    }
    if let Some((m, mm)) = multi {
        g.output(m, names::LOSS_MULTI[0]);
        g.output(mm, names::LOSS_MULTI[1]);
    }
    if let Some(f) = finite_out {
        g.output(f, names::GRADS_FINITE);
    }
    Ok(StepGraph {
        graph: g,
        layout,
        config: cfg.clone(),
        compute,
    })
}
