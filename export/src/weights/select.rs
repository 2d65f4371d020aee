//! Picking the encoder out of a (possibly training) checkpoint's state dict.

use std::collections::BTreeMap;

/// Which encoder of a two-encoder training checkpoint [`select_encoder`] keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EncoderSource {
    /// The online encoder, `base_encoder.*` (what the paper evaluates). The default.
    #[default]
    Base,
    /// The EMA encoder, `momentum_encoder.*`.
    Momentum,
}

impl EncoderSource {
    /// The key prefix of this encoder in the official (MoCo v3-style) checkpoints.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Base => "base_encoder.",
            Self::Momentum => "momentum_encoder.",
        }
    }
}

/// Extracts the encoder from a (possibly training) checkpoint's state dict.
///
/// Steps, in order:
/// 1. strip every leading `module.` (from `DistributedDataParallel`);
/// 2. if any key starts with `which.prefix()` (`base_encoder.` by default, or
///    `momentum_encoder.`), keep only those keys, with the prefix removed — this drops the
///    other encoder, `predictor.*`, optimizer entries and the like; otherwise (a bare timm
///    checkpoint) keep every key as it is;
/// 3. drop classifier/projector keys: `head.*` and `fc.*` (but not `fc_norm.*`).
///
/// Generic over the value type, so it works on a [`StateDict`](super::StateDict) and an
/// [`IntStateDict`](super::IntStateDict) alike.
/// If `which` is not present but the other encoder is, its keys are kept under their
/// prefixed names, so [`check_against`](super::check_against) reports them as unexpected.
///
/// # Examples
///
/// ```
/// use patchmix_export::weights::{select_encoder, EncoderSource};
/// use std::collections::BTreeMap;
///
/// let sd = BTreeMap::from([
///     ("module.base_encoder.norm.weight".to_string(), 1),
///     ("module.base_encoder.head.0.weight".to_string(), 2),
///     ("module.momentum_encoder.norm.weight".to_string(), 3),
///     ("module.predictor.0.weight".to_string(), 4),
/// ]);
/// let enc = select_encoder(sd.clone(), EncoderSource::Base);
/// assert_eq!(enc, BTreeMap::from([("norm.weight".to_string(), 1)]));
/// let ema = select_encoder(sd, EncoderSource::Momentum);
/// assert_eq!(ema, BTreeMap::from([("norm.weight".to_string(), 3)]));
/// ```
#[must_use]
pub fn select_encoder<V>(sd: BTreeMap<String, V>, which: EncoderSource) -> BTreeMap<String, V> {
    let stripped = sd.into_iter().map(|(k, v)| {
        let mut key = k.as_str();
        while let Some(rest) = key.strip_prefix("module.") {
            key = rest;
        }
        (key.to_string(), v)
    });
    let prefix = which.prefix();
    let stripped: Vec<(String, V)> = stripped.collect();
    let has_prefix = stripped.iter().any(|(k, _)| k.starts_with(prefix));
    stripped
        .into_iter()
        .filter_map(|(k, v)| {
            if has_prefix {
                k.strip_prefix(prefix).map(|rest| (rest.to_string(), v))
            } else {
                Some((k, v))
            }
        })
        .filter(|(k, _)| !(k.starts_with("head.") || k.starts_with("fc.")))
        .collect()
}
