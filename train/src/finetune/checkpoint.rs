//! The fine-tuning checkpoint: `checkpoint.safetensors` in the run directory, written
//! atomically after every epoch and where `--max-steps` stops: the flat parameters, AdamW
//! moments and model EMA (`params`, `exp_avg`, `exp_avg_sq`, `ema` [P]), the optimizer step
//! and where the run stands (`epoch`, `step_in_epoch`, `global_step`), and the fp16 loss
//! scaler (`scaler.scale`, `scaler.growth_tracker`, `scaler.skipped`). Batches, masks and the
//! lr are functions of (seed, epoch, step), so resuming from it continues bit-exactly.

use super::error::RunError;
use crate::step::{HostState, LossScaler};
use ndarray::ArrayD;
use patchmix_export::weights::{
    IntStateDict, StateDict, load_safetensors, save_safetensors_with_ints,
};
use std::path::Path;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The epoch to run next (or to continue).
    pub epoch: u64,
    /// The step within it to run next.
    pub step_in_epoch: u64,
    /// Steps taken.
    pub global_step: u64,
}

/// Writes the checkpoint.
///
/// # Errors
/// I/O errors naming the file.
pub fn save(path: &Path, h: &HostState, p: Progress) -> Result<(), RunError> {
    let vec = |v: &[f32]| ArrayD::from_shape_vec(vec![v.len()], v.to_vec()).expect("1-D");
    let mut f = StateDict::new();
    for (k, v) in [
        ("params", &h.params),
        ("exp_avg", &h.exp_avg),
        ("exp_avg_sq", &h.exp_avg_sq),
        ("ema", &h.momentum),
    ] {
        f.insert(k.into(), vec(v));
    }
    let mut i = IntStateDict::new();
    let scalar = |v: i64| ArrayD::from_elem(vec![], v);
    i.insert("opt.step".into(), scalar(h.step as i64));
    i.insert("epoch".into(), scalar(p.epoch as i64));
    i.insert("step_in_epoch".into(), scalar(p.step_in_epoch as i64));
    i.insert("global_step".into(), scalar(p.global_step as i64));
    if let Some(s) = h.scaler {
        f.insert("scaler.scale".into(), ArrayD::from_elem(vec![], s.scale));
        i.insert(
            "scaler.growth_tracker".into(),
            scalar(i64::from(s.growth_tracker)),
        );
        i.insert("scaler.skipped".into(), scalar(s.skipped as i64));
    }
    save_safetensors_with_ints(path, &f, &i, None).map_err(|e| RunError::Weights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a checkpoint for `params` parameters.
///
/// # Errors
/// [`RunError::Weights`] naming the file and the missing or mis-sized entry.
pub fn load(path: &Path, params: usize) -> Result<(HostState, Progress), RunError> {
    let err = |message: String| RunError::Weights {
        path: path.to_path_buf(),
        message,
    };
    let c = load_safetensors(path).map_err(|e| err(e.to_string()))?;
    let flat = |k: &str| -> Result<Vec<f32>, RunError> {
        let a = c
            .tensors
            .get(k)
            .ok_or_else(|| err(format!("no `{k}` tensor")))?;
        if a.len() != params {
            return Err(err(format!(
                "`{k}` has {} values, the run has {params} parameters",
                a.len()
            )));
        }
        Ok(a.iter().copied().collect())
    };
    let int = |k: &str| -> Result<u64, RunError> {
        c.ints
            .get(k)
            .and_then(|a| a.iter().next().copied())
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| err(format!("no `{k}` counter")))
    };
    let scaler = match c.tensors.get("scaler.scale") {
        Some(s) => Some(LossScaler {
            scale: s.iter().next().copied().unwrap_or(1.0),
            growth_tracker: int("scaler.growth_tracker")? as u32,
            skipped: int("scaler.skipped")?,
        }),
        None => None,
    };
    let h = HostState {
        params: flat("params")?,
        exp_avg: flat("exp_avg")?,
        exp_avg_sq: flat("exp_avg_sq")?,
        buffers: Vec::new(),
        momentum: flat("ema")?,
        step: int("opt.step")?,
        scaler,
    };
    let p = Progress {
        epoch: int("epoch")?,
        step_in_epoch: int("step_in_epoch")?,
        global_step: int("global_step")?,
    };
    Ok((h, p))
}
