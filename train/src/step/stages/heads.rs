//! Stage 4, heads: the projector and the predictor MLPs on a pass's features, with their
//! BatchNorm running statistics threaded through (built from [`mlp_head`]).

use super::super::build::Ranks;
use super::super::config::StepConfig;
use super::super::heads::{HeadCompute, RunningStats, mlp_head};
use super::super::layout::{predictor_layers, projector_layers};
use patchmix_export::graph::{Compute, Graph, GraphError, ValueId};
use std::collections::BTreeMap;

/// The layer plan of an MLP head: (linear index, in, out, BN index, affine).
type HeadLayers = Vec<(usize, usize, usize, usize, bool)>;

/// The projector (`<encoder>.head`) and the predictor (`predictor`) of a step.
#[derive(Clone, Debug)]
pub(crate) struct Heads {
    projector: HeadLayers,
    predictor: HeadLayers,
    how: HeadCompute,
}

impl Heads {
    /// The heads of `cfg`, with their Linear products in `compute`'s precision.
    pub(crate) fn new(cfg: &StepConfig, compute: Compute, ranks: Ranks) -> Heads {
        Heads {
            projector: projector_layers(cfg),
            predictor: predictor_layers(cfg),
            how: HeadCompute { compute, ranks },
        }
    }

    /// The projector of `encoder` (`base_encoder` or `momentum_encoder`: its parameters are
    /// `<encoder>.head.*` in `params`), in scope `head`.
    ///
    /// In: CLS features [rows, D]. Out: keys [rows, o]; updates the head's running stats.
    ///
    /// # Errors
    /// A missing parameter or BN buffer, or a shape mismatch.
    pub(crate) fn project(
        &self,
        g: &mut Graph,
        features: ValueId,
        encoder: &str,
        params: &BTreeMap<String, ValueId>,
        stats: &mut RunningStats,
    ) -> Result<ValueId, GraphError> {
        g.scoped("head", |g| {
            mlp_head(
                g,
                features,
                &format!("{encoder}.head"),
                &self.projector,
                params,
                stats,
                self.how,
            )
        })
    }

    /// The predictor (`predictor.*` in `params`), in scope `predictor`.
    ///
    /// In: projections [rows, o]. Out: queries [rows, o]; updates the predictor's running
    /// stats.
    ///
    /// # Errors
    /// As [`Heads::project`].
    pub(crate) fn predict(
        &self,
        g: &mut Graph,
        projection: ValueId,
        params: &BTreeMap<String, ValueId>,
        stats: &mut RunningStats,
    ) -> Result<ValueId, GraphError> {
        g.scoped("predictor", |g| {
            mlp_head(
                g,
                projection,
                "predictor",
                &self.predictor,
                params,
                stats,
                self.how,
            )
        })
    }
}
