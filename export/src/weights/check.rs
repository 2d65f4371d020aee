//! Comparing a state dict with an expected `(name, shape)` layout, and loading an encoder
//! checked against one.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use super::{EncoderSource, StateDict, WeightsError, load_safetensors, select_encoder};

/// One tensor whose shape differs from the expected one (see [`check_against`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The `state_dict` key.
    pub name: String,
    /// The shape found.
    pub found: Vec<usize>,
    /// The shape expected.
    pub expected: Vec<usize>,
}

/// All differences between a state dict and an expected layout, reported together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDictDiff {
    /// Expected keys that are absent.
    pub missing: Vec<String>,
    /// Keys present but not expected.
    pub unexpected: Vec<String>,
    /// Keys present with the wrong shape.
    pub mismatched: Vec<ShapeMismatch>,
}

impl StateDictDiff {
    /// `true` when the state dict matches exactly.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for StateDictDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} missing, {} unexpected, {} with the wrong shape",
            self.missing.len(),
            self.unexpected.len(),
            self.mismatched.len()
        )?;
        for name in &self.missing {
            write!(f, "\n  missing: {name}")?;
        }
        for name in &self.unexpected {
            write!(f, "\n  unexpected: {name}")?;
        }
        for m in &self.mismatched {
            write!(
                f,
                "\n  {}: shape {:?} expected {:?}",
                m.name, m.found, m.expected
            )?;
        }
        Ok(())
    }
}

/// Compares a state dict with an expected list of `(name, shape)`.
///
/// # Errors
///
/// [`WeightsError::Mismatch`] (origin `"state dict"`) listing every missing key, every
/// unexpected key and every shape mismatch at once, e.g.
/// `blocks.3.attn.qkv.weight: shape [576, 192] expected [384, 192]`.
///
/// # Examples
///
/// ```
/// use ndarray::ArrayD;
/// use patchmix_export::weights::{check_against, StateDict};
///
/// let sd = StateDict::from([("norm.weight".to_string(), ArrayD::zeros(vec![8]))]);
/// check_against(&sd, &[("norm.weight".to_string(), vec![8])]).unwrap();
/// let err = check_against(&sd, &[("norm.weight".to_string(), vec![4])]).unwrap_err();
/// assert!(err.to_string().contains("norm.weight: shape [8] expected [4]"));
/// ```
pub fn check_against(
    sd: &StateDict,
    expected: &[(String, Vec<usize>)],
) -> Result<(), WeightsError> {
    let diff = diff_against(sd, expected);
    if diff.is_empty() {
        Ok(())
    } else {
        Err(WeightsError::Mismatch {
            origin: "state dict".to_string(),
            diff,
        })
    }
}

/// The differences [`check_against`] reports, without making an error of them.
///
/// `missing` and `mismatched` follow the order of `expected`; `unexpected` is sorted.
#[must_use]
pub fn diff_against(sd: &StateDict, expected: &[(String, Vec<usize>)]) -> StateDictDiff {
    let mut diff = StateDictDiff::default();
    for (name, shape) in expected {
        match sd.get(name) {
            None => diff.missing.push(name.clone()),
            Some(a) if a.shape() != shape.as_slice() => diff.mismatched.push(ShapeMismatch {
                name: name.clone(),
                found: a.shape().to_vec(),
                expected: shape.clone(),
            }),
            Some(_) => {}
        }
    }
    let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    diff.unexpected = sd
        .keys()
        .filter(|k| !wanted.contains(k.as_str()))
        .cloned()
        .collect();
    diff
}

/// Loads encoder weights from a safetensors file: [`load_safetensors`], then
/// [`select_encoder`], then [`check_against`] `expected`, with errors naming `path`.
///
/// Integer tensors and metadata are ignored. Pass `expected` from [`timm_vit_shapes`](crate::vit::timm_vit_shapes).
///
/// # Errors
///
/// Any [`load_safetensors`] error, or [`WeightsError::Mismatch`] naming the file.
///
/// # Examples
///
/// ```no_run
/// use patchmix_export::weights::{load_encoder, timm_vit_shapes, EncoderSource};
/// let sd = load_encoder("checkpoint.safetensors", EncoderSource::Base, &timm_vit_shapes(192, 12, 16, 196))?;
/// # Ok::<(), patchmix_export::weights::WeightsError>(())
/// ```
pub fn load_encoder(
    path: impl AsRef<Path>,
    which: EncoderSource,
    expected: &[(String, Vec<usize>)],
) -> Result<StateDict, WeightsError> {
    let path = path.as_ref();
    let sd = select_encoder(load_safetensors(path)?.tensors, which);
    let diff = diff_against(&sd, expected);
    if diff.is_empty() {
        Ok(sd)
    } else {
        Err(WeightsError::Mismatch {
            origin: path.display().to_string(),
            diff,
        })
    }
}
