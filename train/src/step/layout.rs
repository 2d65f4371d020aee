//! Flat layouts of the trained state.
//!
//! All parameters live in one f32 vector, so AdamW runs as a handful of elementwise ops over
//! it. Weight-decayed tensors come first, then the rest (names ending in `.bias` and 1-D
//! tensors), so weight decay scales a prefix. Within each group the encoder and projector come
//! before the predictor, so the momentum encoder's counterpart is two contiguous ranges. BN
//! running statistics live in a second vector.

use super::config::{Frame, StepConfig};

/// One tensor inside a flat vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// The original training module's state_dict name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Offset in elements.
    pub offset: usize,
    /// Element count.
    pub len: usize,
}

/// A flat vector's slots in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// The slots, contiguous and in order.
    pub slots: Vec<Slot>,
}

impl Layout {
    pub(crate) fn push(&mut self, name: String, shape: Vec<usize>) {
        let offset = self.len();
        let len = shape.iter().product();
        self.slots.push(Slot {
            name,
            shape,
            offset,
            len,
        });
    }

    /// Total elements.
    pub fn len(&self) -> usize {
        self.slots.last().map_or(0, |s| s.offset + s.len)
    }

    /// Whether the layout is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot of a name.
    pub fn get(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.name == name)
    }
}

/// Whether AdamW decays a tensor: not for `.bias` names nor 1-D tensors.
pub fn is_decayed(name: &str, shape: &[usize]) -> bool {
    !name.ends_with(".bias") && shape.len() != 1
}

/// The projector's Linear and BN modules (indices as in `nn.Sequential`).
/// Returns (linear index, in, out, bn index, affine).
pub fn projector_layers(cfg: &StepConfig) -> Vec<(usize, usize, usize, usize, bool)> {
    let (d, h, o) = (cfg.vit.dim, cfg.hidden, cfg.out);
    vec![(0, d, h, 1, true), (3, h, h, 4, true), (6, h, o, 7, false)]
}

/// The predictor's Linear and BN modules.
pub fn predictor_layers(cfg: &StepConfig) -> Vec<(usize, usize, usize, usize, bool)> {
    let (h, o) = (cfg.hidden, cfg.out);
    vec![(0, o, h, 1, true), (3, h, o, 4, false)]
}

fn head_params(
    prefix: &str,
    layers: &[(usize, usize, usize, usize, bool)],
) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for &(li, fin, fout, bi, affine) in layers {
        v.push((format!("{prefix}.{li}.weight"), vec![fout, fin]));
        if affine {
            v.push((format!("{prefix}.{bi}.weight"), vec![fout]));
            v.push((format!("{prefix}.{bi}.bias"), vec![fout]));
        }
    }
    v
}

/// BN layers of a head as (state_dict prefix, channels).
pub fn head_bns(
    prefix: &str,
    layers: &[(usize, usize, usize, usize, bool)],
) -> Vec<(String, usize)> {
    layers
        .iter()
        .map(|&(_, _, fout, bi, _)| (format!("{prefix}.{bi}"), fout))
        .collect()
}

/// The layouts of a step: parameters, the momentum encoder (if any) and BN buffers.
#[derive(Clone, Debug)]
pub struct StateLayout {
    /// Trained parameters.
    pub params: Layout,
    /// Elements of `params` that are weight-decayed (a prefix).
    pub decayed: usize,
    /// Decayed encoder+projector elements (prefix of the decayed group).
    pub ema_decayed: usize,
    /// Non-decayed encoder+projector elements (prefix of the non-decayed group).
    pub ema_plain: usize,
    /// The momentum encoder's parameters (same order as its base counterparts).
    pub momentum: Layout,
    /// BN running statistics.
    pub buffers: Layout,
}

impl StateLayout {
    /// The layouts for a configuration.
    pub fn new(cfg: &StepConfig) -> StateLayout {
        let enc: Vec<(String, Vec<usize>)> = cfg
            .vit
            .param_specs()
            .into_iter()
            .map(|(n, s)| (format!("base_encoder.{n}"), s))
            .chain(head_params("base_encoder.head", &projector_layers(cfg)))
            .collect();
        let pred = head_params("predictor", &predictor_layers(cfg));
        let mut params = Layout::default();
        let mut momentum = Layout::default();
        let mut ema_decayed = 0;
        let mut ema_plain = 0;
        for decay in [true, false] {
            for (n, s) in enc.iter().filter(|(n, s)| is_decayed(n, s) == decay) {
                params.push(n.clone(), s.clone());
                if cfg.frame == Frame::Momentum {
                    momentum.push(
                        n.replacen("base_encoder.", "momentum_encoder.", 1),
                        s.clone(),
                    );
                }
                if decay {
                    ema_decayed += s.iter().product::<usize>();
                } else {
                    ema_plain += s.iter().product::<usize>();
                }
            }
            for (n, s) in pred.iter().filter(|(n, s)| is_decayed(n, s) == decay) {
                params.push(n.clone(), s.clone());
            }
        }
        let decayed = params
            .slots
            .iter()
            .filter(|s| is_decayed(&s.name, &s.shape))
            .map(|s| s.len)
            .sum();
        let mut buffers = Layout::default();
        let mut bns = head_bns("base_encoder.head", &projector_layers(cfg));
        bns.extend(head_bns("predictor", &predictor_layers(cfg)));
        if cfg.frame == Frame::Momentum {
            bns.extend(head_bns("momentum_encoder.head", &projector_layers(cfg)));
        }
        for (prefix, c) in bns {
            buffers.push(format!("{prefix}.running_mean"), vec![c]);
            buffers.push(format!("{prefix}.running_var"), vec![c]);
        }
        StateLayout {
            params,
            decayed,
            ema_decayed,
            ema_plain,
            momentum,
            buffers,
        }
    }

    /// BN layers and how many training-mode passes update each per step (for
    /// `num_batches_tracked`).
    pub fn bn_passes(&self, cfg: &StepConfig) -> Vec<(String, i64)> {
        let mut v = Vec::new();
        let (proj, pred, mom) = match cfg.frame {
            Frame::NoMomentum => (4, 2, 0),
            Frame::Momentum => (2, 2, 3),
        };
        // Multi-crop adds two base passes with the predictor (the crops and their mixes).
        let extra = if cfg.local.is_some() { 2 } else { 0 };
        let (proj, pred) = (proj + extra, pred + extra);
        for (p, _) in head_bns("base_encoder.head", &projector_layers(cfg)) {
            v.push((p, proj));
        }
        for (p, _) in head_bns("predictor", &predictor_layers(cfg)) {
            v.push((p, pred));
        }
        if mom > 0 {
            for (p, _) in head_bns("momentum_encoder.head", &projector_layers(cfg)) {
                v.push((p, mom));
            }
        }
        v
    }
}
