//! Stages 3 and 4 in the PatchMix order: which images go through which encoder and heads,
//! giving the queries and the (detached) keys of the loss.

use super::super::heads::RunningStats;
use super::encoder_pass::Encoders;
use super::heads::Heads;
use super::inputs::GraphInputs;
use patchmix_export::graph::{Graph, GraphError, ValueId};
use std::collections::BTreeMap;

/// The queries and keys of one step. Keys carry no gradient.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Embeddings {
    /// Query of view1 [B, o].
    pub q_view1: ValueId,
    /// Query of mix2 [B, o].
    pub q_mix2: ValueId,
    /// Key of view1 [B, o].
    pub k_view1: ValueId,
    /// Key of view2 [B, o].
    pub k_view2: ValueId,
    /// Key of mix1 [B, o].
    pub k_mix1: ValueId,
    /// The local crops' queries (multi-crop).
    pub local: Option<LocalQueries>,
}

/// The queries of the local crops and of their PatchMix, [n·B, o] each (crop-major).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalQueries {
    /// Queries of the local crops.
    pub crops: ValueId,
    /// Queries of the mixed local crops.
    pub mixed: ValueId,
    /// Crops per image n.
    pub count: usize,
}

/// The passes of a step: each one runs an encoder and its heads in a scope named after the
/// pass (`view1`, …; `<pass>_momentum` for the momentum encoder).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Passes<'a> {
    /// The encoders.
    pub encoders: &'a Encoders<'a>,
    /// The projector and predictor.
    pub heads: &'a Heads,
    /// The base parameter views.
    pub params: &'a BTreeMap<String, ValueId>,
    /// The EMA-updated momentum parameter views (momentum frame).
    pub momentum: Option<&'a BTreeMap<String, ValueId>>,
}

impl Passes<'_> {
    fn base_projection(
        &self,
        g: &mut Graph,
        stats: &mut RunningStats,
        pass: &str,
        x: ValueId,
    ) -> Result<ValueId, GraphError> {
        let features = self.encoders.base_features(g, pass, x)?;
        self.heads
            .project(g, features, "base_encoder", self.params, stats)
    }

    /// Base encoder + projector on `x`: the pass's projection [rows, o].
    fn base_keys(
        &self,
        g: &mut Graph,
        stats: &mut RunningStats,
        pass: &str,
        x: ValueId,
    ) -> Result<ValueId, GraphError> {
        g.scoped(pass, |g| self.base_projection(g, stats, pass, x))
    }

    /// Base encoder + projector + predictor on `x`: (projection, query).
    fn base_queries(
        &self,
        g: &mut Graph,
        stats: &mut RunningStats,
        pass: &str,
        x: ValueId,
    ) -> Result<(ValueId, ValueId), GraphError> {
        g.scoped(pass, |g| {
            let k = self.base_projection(g, stats, pass, x)?;
            let q = self.heads.predict(g, k, self.params, stats)?;
            Ok((k, q))
        })
    }

    /// Momentum encoder + its projector on `x`: the detached key.
    fn momentum_keys(
        &self,
        g: &mut Graph,
        stats: &mut RunningStats,
        momentum: &BTreeMap<String, ValueId>,
        pass: &str,
        x: ValueId,
    ) -> Result<ValueId, GraphError> {
        g.scoped(&format!("{pass}_momentum"), |g| {
            let features = self.encoders.momentum_features(g, x)?;
            let k = self
                .heads
                .project(g, features, "momentum_encoder", momentum, stats)?;
            g.stop_gradient(k)
        })
    }

    /// Runs every pass of the step in the original's order (which fixes the order of the BN
    /// running-stat updates): without a momentum encoder view1, view2, mix1, mix2 through the
    /// base encoder, keys detached afterwards; with one view1 (base), view1, view2, mix1
    /// (momentum), mix2 (base). Then the local crops and their PatchMix (base, with
    /// predictor; BN statistics over all n·B rows).
    ///
    /// In: the image inputs and the running stats. Out: the queries and keys; `stats` holds
    /// the updated running statistics.
    ///
    /// # Errors
    /// A shape mismatch or a missing parameter.
    pub(crate) fn run(
        &self,
        g: &mut Graph,
        inputs: &GraphInputs,
        stats: &mut RunningStats,
    ) -> Result<Embeddings, GraphError> {
        let [view1, view2, mix1, mix2] = inputs.images;
        let (q_view1, q_mix2, k_view1, k_view2, k_mix1) = match self.momentum {
            None => {
                let (k1, q1) = self.base_queries(g, stats, "view1", view1)?;
                let k2 = self.base_keys(g, stats, "view2", view2)?;
                let km1 = self.base_keys(g, stats, "mix1", mix1)?;
                let (_, qm2) = self.base_queries(g, stats, "mix2", mix2)?;
                let k2 = g.stop_gradient(k2)?;
                let km1 = g.stop_gradient(km1)?;
                let k1d = g.stop_gradient(k1)?;
                (q1, qm2, k1d, k2, km1)
            }
            Some(momentum) => {
                let (_, q1) = self.base_queries(g, stats, "view1", view1)?;
                let k1 = self.momentum_keys(g, stats, momentum, "view1", view1)?;
                let k2 = self.momentum_keys(g, stats, momentum, "view2", view2)?;
                let km1 = self.momentum_keys(g, stats, momentum, "mix1", mix1)?;
                let (_, qm2) = self.base_queries(g, stats, "mix2", mix2)?;
                (q1, qm2, k1, k2, km1)
            }
        };
        let local = match inputs.locals {
            Some(images) => {
                let (_, crops) = self.base_queries(g, stats, "local", images.crops)?;
                let (_, mixed) = self.base_queries(g, stats, "local_mix", images.mixed)?;
                Some(LocalQueries {
                    crops,
                    mixed,
                    count: images.count,
                })
            }
            None => None,
        };
        Ok(Embeddings {
            q_view1,
            q_mix2,
            k_view1,
            k_view2,
            k_mix1,
            local,
        })
    }
}
