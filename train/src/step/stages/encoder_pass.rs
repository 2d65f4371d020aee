//! Stage 3, encoder pass: one batch of images through the base or the momentum ViT encoder,
//! giving its CLS features.

use super::super::config::StepConfig;
use patchmix_export::graph::{Compute, Graph, GraphError, ShapeOp, ValueId};
use patchmix_export::vit::{ForwardOptions, VitConfig, encoder_forward, resized_pos_embed};
use std::collections::BTreeMap;

/// The encoder's own parameters among `all`: the names under `prefix` (e.g.
/// `base_encoder.`), without the prefix and without the projector (`head.`).
pub(crate) fn encoder_params(
    all: &BTreeMap<String, ValueId>,
    prefix: &str,
) -> BTreeMap<String, ValueId> {
    all.iter()
        .filter_map(|(k, &v)| {
            k.strip_prefix(prefix)
                .filter(|r| !r.starts_with("head."))
                .map(|r| (r.to_string(), v))
        })
        .collect()
}

/// Splits a drop-path mask input `[2·depth, rows, 1, 1]` into one `[rows, 1, 1]` scale per
/// residual branch (attention then MLP of each block), as [`ForwardOptions::drop_path`]
/// takes them.
///
/// # Errors
/// A mask input of another shape.
pub(crate) fn split_drop_path(
    g: &mut Graph,
    masks: ValueId,
    depth: usize,
    rows: usize,
) -> Result<Vec<ValueId>, GraphError> {
    let n = 2 * depth;
    let parts = g.node(
        ShapeOp::Split {
            axis: 0,
            sizes: vec![1; n],
        },
        &[masks],
        n,
    )?;
    parts
        .into_iter()
        .map(|p| g.reshape(p, &[rows as i64, 1, 1]))
        .collect()
}

/// The encoders a step runs its passes through: the base encoder (also at the local-crop
/// resolution, with its position embedding resized) and, in the momentum frame, the momentum
/// encoder.
#[derive(Clone, Debug)]
pub(crate) struct Encoders<'a> {
    cfg: &'a StepConfig,
    compute: Compute,
    base: BTreeMap<String, ValueId>,
    /// The base encoder at the local-crop size (multi-crop).
    local: Option<(VitConfig, BTreeMap<String, ValueId>)>,
    momentum: Option<BTreeMap<String, ValueId>>,
    drop_path: &'a BTreeMap<&'static str, ValueId>,
}

impl<'a> Encoders<'a> {
    /// Picks the encoders' parameters out of the unpacked `params` (and the EMA-updated
    /// `momentum` parameters) and, with local crops, resizes the base position embedding to
    /// the local grid (scope `local_pos_embed`).
    ///
    /// In: the parameter views, the momentum parameter views, the drop-path mask inputs per
    /// base pass. Out: the encoders, ready for [`Encoders::base_features`] and
    /// [`Encoders::momentum_features`].
    ///
    /// # Errors
    /// A missing `base_encoder.pos_embed`, or a position embedding of the wrong shape.
    pub(crate) fn new(
        g: &mut Graph,
        cfg: &'a StepConfig,
        compute: Compute,
        params: &BTreeMap<String, ValueId>,
        momentum: Option<&BTreeMap<String, ValueId>>,
        drop_path: &'a BTreeMap<&'static str, ValueId>,
    ) -> Result<Self, GraphError> {
        let base = encoder_params(params, "base_encoder.");
        // Local crops see the base encoder with its position embedding resized to their grid.
        let local = match &cfg.local {
            Some(l) => {
                let pos_embed = *base.get("pos_embed").ok_or_else(|| {
                    GraphError::Shape("missing parameter `base_encoder.pos_embed`".into())
                })?;
                let mut enc = base.clone();
                let resized = g.scoped("local_pos_embed", |g| {
                    resized_pos_embed(
                        g,
                        pos_embed,
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
        Ok(Encoders {
            cfg,
            compute,
            base,
            local,
            momentum: momentum.map(|m| encoder_params(m, "momentum_encoder.")),
            drop_path,
        })
    }

    /// The drop-path scales of a base pass, one `[rows, 1, 1]` per residual branch, split
    /// from its mask input; `None` without drop path.
    fn drop_path_scales(
        &self,
        g: &mut Graph,
        pass: &str,
    ) -> Result<Option<Vec<ValueId>>, GraphError> {
        let Some(&m) = self.drop_path.get(pass) else {
            return Ok(None);
        };
        split_drop_path(g, m, self.cfg.vit.depth, self.cfg.pass_rows(pass)).map(Some)
    }

    /// The base encoder in training mode (with the pass's drop-path masks) on the images `x`
    /// of pass `pass` (`local`/`local_mix` use the local-crop encoder), in scope
    /// `base_encoder` under the caller's scope.
    ///
    /// In: images [rows, 3, H, W]. Out: CLS features [rows, D].
    ///
    /// # Errors
    /// A shape mismatch or a missing parameter.
    pub(crate) fn base_features(
        &self,
        g: &mut Graph,
        pass: &str,
        x: ValueId,
    ) -> Result<ValueId, GraphError> {
        let (vit, enc) = match (&self.local, pass) {
            (Some((vit, enc)), "local" | "local_mix") => (vit, enc),
            _ => (&self.cfg.vit, &self.base),
        };
        let drop_path = self.drop_path_scales(g, pass)?;
        let opts = ForwardOptions {
            drop_path,
            tokens: false,
            training: true,
            compute: self.compute,
        };
        Ok(
            g.scoped("base_encoder", |g| encoder_forward(g, vit, enc, x, &opts))?
                .cls,
        )
    }

    /// The momentum encoder (no drop path, no LayerNorm statistics outputs) on the images `x`,
    /// in scope `momentum_encoder` under the caller's scope.
    ///
    /// In: images [B, 3, H, W]. Out: CLS features [B, D].
    ///
    /// # Errors
    /// [`GraphError::Shape`] when the step has no momentum encoder; a shape mismatch or a
    /// missing parameter.
    pub(crate) fn momentum_features(
        &self,
        g: &mut Graph,
        x: ValueId,
    ) -> Result<ValueId, GraphError> {
        let enc = self.momentum.as_ref().ok_or_else(|| {
            GraphError::Shape("a momentum pass in a step without a momentum encoder".into())
        })?;
        let opts = ForwardOptions {
            drop_path: None,
            tokens: false,
            training: false,
            compute: self.compute,
        };
        Ok(g.scoped("momentum_encoder", |g| {
            encoder_forward(g, &self.cfg.vit, enc, x, &opts)
        })?
        .cls)
    }
}
