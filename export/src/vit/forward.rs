//! The encoder's forward pass as IR nodes.
//!
//! Activations stay 2-D, `[B·N, D]` with N = T + 1 tokens, so that every Linear is one `Gemm`
//! (with `transB = 1` on the PyTorch-layout weight) and every LayerNorm works on the last axis;
//! only attention reshapes to `[B, H, N, Dₕ]`. All reshapes use `-1` for the batch, so the same
//! builder serves static training graphs and dynamic-batch exported models.

use super::config::VitConfig;
use crate::graph::{
    Compute, DType, ElementwiseOp, Graph, GraphError, NnOp, ShapeOp, TensorData, ValueId,
};
use std::collections::BTreeMap;

/// Options of one encoder pass.
#[derive(Clone, Debug, Default)]
pub struct ForwardOptions {
    /// Per-residual drop-path scales, two per block (attention, MLP), each `[B, 1, 1]`: the
    /// per-sample keep mask divided by the keep probability (timm's `drop_path`).
    pub drop_path: Option<Vec<ValueId>>,
    /// Also return the (normalised) patch tokens `[B, T, D]`.
    pub tokens: bool,
    /// Give LayerNorm nodes their `Mean`/`InvStdDev` outputs, for the compact backward.
    pub training: bool,
    /// The precision of the matrix products (patch embedding, qkv, attention, projection,
    /// MLP); everything else stays f32.
    pub compute: Compute,
}

/// Outputs of an encoder pass.
#[derive(Clone, Debug)]
pub struct EncoderOutputs {
    /// The final-normed CLS token `[B, D]`.
    pub cls: ValueId,
    /// The final-normed patch tokens `[B, T, D]` when asked for.
    pub tokens: Option<ValueId>,
}

fn param(params: &BTreeMap<String, ValueId>, name: &str) -> Result<ValueId, GraphError> {
    params
        .get(name)
        .copied()
        .ok_or_else(|| GraphError::Shape(format!("missing encoder parameter `{name}`")))
}

/// LayerNorm over the last axis with timm's eps 1e-6.
///
/// # Errors
/// Shape mismatch.
pub fn layer_norm(
    g: &mut Graph,
    x: ValueId,
    w: ValueId,
    b: ValueId,
    eps: f32,
    training: bool,
) -> Result<ValueId, GraphError> {
    let outs = g.node(
        NnOp::LayerNorm {
            axis: -1,
            epsilon: eps,
        },
        &[x, w, b],
        if training { 3 } else { 1 },
    )?;
    Ok(outs[0])
}

/// Builds one encoder pass over images `x` [B, 3, H, W] with parameters named as timm's
/// state_dict (see [`VitConfig::param_specs`]).
///
/// # Errors
/// [`GraphError`] when a parameter is missing or a shape does not fit.
pub fn encoder_forward(
    g: &mut Graph,
    cfg: &VitConfig,
    params: &BTreeMap<String, ValueId>,
    x: ValueId,
    opts: &ForwardOptions,
) -> Result<EncoderOutputs, GraphError> {
    let (d, p, grid, t) = (
        cfg.dim as i64,
        cfg.patch as i64,
        cfg.grid() as i64,
        cfg.tokens() as i64,
    );
    let n = t + 1;
    let heads = cfg.heads as i64;
    let dh = d / heads;
    if let Some(masks) = &opts.drop_path
        && masks.len() != 2 * cfg.depth
    {
        return Err(GraphError::Shape(format!(
            "{} drop-path masks for depth {}",
            masks.len(),
            cfg.depth
        )));
    }
    let p_ = |name: &str| param(params, name);
    let c = opts.compute;

    // Patch embedding: conv p×p stride p as patchify + Gemm on the [D, 3·p·p] weight view.
    let h = g.scoped("patch_embed", |g| -> Result<ValueId, GraphError> {
        let x6 = g.reshape(x, &[-1, 3, grid, p, grid, p])?;
        let xt = g.transpose(x6, &[0, 2, 4, 1, 3, 5])?;
        let patches = g.reshape(xt, &[-1, 3 * p * p])?;
        let w = g.reshape(p_("patch_embed.proj.weight")?, &[d, 3 * p * p])?;
        let tok = c.linear(g, patches, w, Some(p_("patch_embed.proj.bias")?))?;
        let tok3 = g.reshape(tok, &[-1, t, d])?;
        // Prepend a zero slot for the CLS token, then add [cls; 0] + pos_embed.
        let padded = g.op1(
            ShapeOp::Pad {
                pads: vec![0, 1, 0, 0, 0, 0],
            },
            &[tok3],
        )?;
        let zeros = g.op1(
            ShapeOp::Zeros {
                shape: vec![1, t, d],
                dtype: g.dtype(tok3),
            },
            &[],
        )?;
        let cls_row = g.op1(ShapeOp::Concat { axis: 1 }, &[p_("cls_token")?, zeros])?;
        let table = g.add(cls_row, p_("pos_embed")?)?;
        let h3 = g.add(padded, table)?;
        g.reshape(h3, &[-1, d])
    })?;

    let mut h = h;
    for i in 0..cfg.depth {
        let bp = |s: &str| p_(&format!("blocks.{i}.{s}"));
        h = g.scoped(&format!("blocks.{i}"), |g| -> Result<ValueId, GraphError> {
            // Attention.
            let y = layer_norm(
                g,
                h,
                bp("norm1.weight")?,
                bp("norm1.bias")?,
                1e-6,
                opts.training,
            )?;
            let a = g.scoped("attn", |g| -> Result<ValueId, GraphError> {
                // Low from the qkv product to the projection, except the softmax (f32).
                let y = c.enter(g, y)?;
                let qkv = c.linear_low(g, y, bp("attn.qkv.weight")?, Some(bp("attn.qkv.bias")?))?;
                let parts = g.node(
                    ShapeOp::Split {
                        axis: 1,
                        sizes: vec![d, d, d],
                    },
                    &[qkv],
                    3,
                )?;
                let q4 = g.reshape(parts[0], &[-1, n, heads, dh])?;
                let k4 = g.reshape(parts[1], &[-1, n, heads, dh])?;
                let v4 = g.reshape(parts[2], &[-1, n, heads, dh])?;
                let q = g.transpose(q4, &[0, 2, 1, 3])?;
                let q = c.mul_scalar_low(g, q, (dh as f64).powf(-0.5))?;
                let kt = g.transpose(k4, &[0, 2, 3, 1])?;
                let v = g.transpose(v4, &[0, 2, 1, 3])?;
                let scores = c.matmul_low(g, q, kt)?;
                let scores = c.exit(g, scores)?;
                let attn = g.op1(NnOp::Softmax { axis: -1 }, &[scores])?;
                let attn = c.enter(g, attn)?;
                let o = c.matmul_low(g, attn, v)?;
                let o = g.transpose(o, &[0, 2, 1, 3])?;
                let o = g.reshape(o, &[-1, d])?;
                let o = c.linear_low(g, o, bp("attn.proj.weight")?, Some(bp("attn.proj.bias")?))?;
                c.exit(g, o)
            })?;
            let a = match &opts.drop_path {
                Some(m) => {
                    let r = g.reshape(a, &[-1, n, d])?;
                    let r = g.mul(r, m[2 * i])?;
                    g.reshape(r, &[-1, d])?
                }
                None => a,
            };
            let h1 = g.add(h, a)?;
            // MLP.
            let y = layer_norm(
                g,
                h1,
                bp("norm2.weight")?,
                bp("norm2.bias")?,
                1e-6,
                opts.training,
            )?;
            let f = g.scoped("mlp", |g| -> Result<ValueId, GraphError> {
                let u = c.linear(g, y, bp("mlp.fc1.weight")?, Some(bp("mlp.fc1.bias")?))?;
                let u = g.unary(ElementwiseOp::GeluErf, u)?;
                c.linear(g, u, bp("mlp.fc2.weight")?, Some(bp("mlp.fc2.bias")?))
            })?;
            let f = match &opts.drop_path {
                Some(m) => {
                    let r = g.reshape(f, &[-1, n, d])?;
                    let r = g.mul(r, m[2 * i + 1])?;
                    g.reshape(r, &[-1, d])?
                }
                None => f,
            };
            g.add(h1, f)
        })?;
    }

    g.scoped("norm", |g| {
        let (w, b) = (p_("norm.weight")?, p_("norm.bias")?);
        if opts.tokens {
            let y = layer_norm(g, h, w, b, 1e-6, opts.training)?;
            let y3 = g.reshape(y, &[-1, n, d])?;
            let cls = g.op1(
                ShapeOp::Slice {
                    starts: vec![0],
                    ends: vec![1],
                    axes: vec![1],
                },
                &[y3],
            )?;
            let cls = g.reshape(cls, &[-1, d])?;
            let tok = g.op1(
                ShapeOp::Slice {
                    starts: vec![1],
                    ends: vec![n],
                    axes: vec![1],
                },
                &[y3],
            )?;
            Ok(EncoderOutputs {
                cls,
                tokens: Some(tok),
            })
        } else {
            // LayerNorm is per token, so normalising only the CLS rows gives the same CLS output.
            let h3 = g.reshape(h, &[-1, n, d])?;
            let cls = g.op1(
                ShapeOp::Slice {
                    starts: vec![0],
                    ends: vec![1],
                    axes: vec![1],
                },
                &[h3],
            )?;
            let cls = g.reshape(cls, &[-1, d])?;
            let y = layer_norm(g, cls, w, b, 1e-6, opts.training)?;
            Ok(EncoderOutputs {
                cls: y,
                tokens: None,
            })
        }
    })
}

/// Adds every tensor of a state dict as an f32 initializer and returns name → value.
pub fn add_initializers(
    g: &mut Graph,
    weights: &BTreeMap<String, ndarray::ArrayD<f32>>,
) -> BTreeMap<String, ValueId> {
    weights
        .iter()
        .map(|(name, arr)| {
            let data: Vec<f32> = arr.iter().copied().collect();
            let id = g.constant(name, arr.shape(), TensorData::F32(data));
            (name.clone(), id)
        })
        .collect()
}

/// The inference graph of an encoder: input `images` [batch, 3, H, W] (dynamic batch), output
/// `features` [batch, D] (the CLS token), plus `tokens` [batch, T, D] when asked for.
///
/// # Errors
/// [`GraphError`] when a weight is missing or has the wrong shape.
///
/// # Examples
/// ```
/// use patchmix_export::vit::{encoder_graph, init_weights, VitConfig};
/// let cfg = VitConfig { img: 8, patch: 4, dim: 8, depth: 1, heads: 2 };
/// let g = encoder_graph(&cfg, &init_weights(&cfg, 0), false).unwrap();
/// assert_eq!(g.outputs.len(), 1);
/// ```
pub fn encoder_graph(
    cfg: &VitConfig,
    weights: &BTreeMap<String, ndarray::ArrayD<f32>>,
    tokens: bool,
) -> Result<Graph, GraphError> {
    cfg.validate()
        .map_err(|e| GraphError::Shape(e.to_string()))?;
    for (name, shape) in cfg.param_specs() {
        match weights.get(&name) {
            None => return Err(GraphError::Shape(format!("missing weight `{name}`"))),
            Some(a) if a.shape() != shape.as_slice() => {
                return Err(GraphError::Shape(format!(
                    "weight `{name}` has shape {:?}, expected {shape:?}",
                    a.shape()
                )));
            }
            Some(_) => {}
        }
    }
    let mut g = Graph::new("patchmix_vit_encoder");
    let shape = crate::graph::Shape(vec![
        crate::graph::Dim::BATCH,
        3.into(),
        cfg.img.into(),
        cfg.img.into(),
    ]);
    let x = g.input("images", DType::F32, shape);
    let params = add_initializers(&mut g, weights);
    let out = encoder_forward(
        &mut g,
        cfg,
        &params,
        x,
        &ForwardOptions {
            tokens,
            ..Default::default()
        },
    )?;
    g.output(out.cls, "features");
    if let Some(t) = out.tokens {
        g.output(t, "tokens");
    }
    Ok(g)
}
