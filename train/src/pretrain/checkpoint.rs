//! Checkpoints: the whole training state under the original training module's state_dict
//! names, plus a JSON of progress, written atomically as a directory with a `last` pointer.
//!
//! Layout of `RUN/checkpoints/step-00001234/`:
//! - `state.safetensors`: `base_encoder.*`, `predictor.*`, `momentum_encoder.*` parameters and BN
//!   buffers (`running_mean`, `running_var`, `num_batches_tracked`), `opt.exp_avg.<name>`,
//!   `opt.exp_avg_sq.<name>` and `opt.step`; fp16 runs add the loss scaler as `scaler.scale`,
//!   `scaler._growth_tracker` and `scaler.skipped` (PyTorch's `GradScaler` state names);
//! - `progress.json`: epoch, step within the epoch, global step, the seed (every random draw of
//!   a run is derived from the seed and the step, so this is the whole RNG state) and the config.
//!
//! The directory is written under a temporary name, fsynced, then renamed; `last` is replaced
//! atomically afterwards, so a crash leaves the previous checkpoint intact and pointed to.

use super::config::PretrainConfig;
use super::error::{PretrainError, StateDictError};
use crate::step::HostState;
use crate::step::{LossScaler, StateLayout, StepConfig, from_named, to_named};
use ndarray::ArrayD;
use patchmix_export::atomic::write_atomic;
use patchmix_export::weights::{
    IntStateDict, StateDict, load_safetensors, save_safetensors_with_ints,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch in progress (or the next one when `step_in_epoch` is 0).
    pub epoch: u64,
    /// Steps already done in `epoch`.
    pub step_in_epoch: u64,
    /// Optimizer steps done in total.
    pub global_step: u64,
    /// The run seed.
    pub seed: u64,
    /// The resolved configuration.
    pub config: PretrainConfig,
}

/// The state_dict of a host state (parameters, buffers, optimizer).
pub fn state_dict(
    cfg: &StepConfig,
    layout: &StateLayout,
    h: &HostState,
) -> (StateDict, IntStateDict) {
    let mut f = to_named(&layout.params, &h.params, "");
    f.extend(to_named(&layout.momentum, &h.momentum, ""));
    f.extend(to_named(&layout.buffers, &h.buffers, ""));
    f.extend(to_named(&layout.params, &h.exp_avg, "opt.exp_avg."));
    f.extend(to_named(&layout.params, &h.exp_avg_sq, "opt.exp_avg_sq."));
    let mut ints = IntStateDict::new();
    // BN counts every forward pass, including those of fp16 steps skipped for overflow.
    let iterations = h.step + h.scaler.map_or(0, |s| s.skipped);
    for (bn, passes) in layout.bn_passes(cfg) {
        ints.insert(
            format!("{bn}.num_batches_tracked"),
            ArrayD::from_elem(vec![], passes * iterations as i64),
        );
    }
    ints.insert("opt.step".into(), ArrayD::from_elem(vec![], h.step as i64));
    if let Some(s) = h.scaler {
        f.insert(SCALE.into(), ArrayD::from_elem(vec![], s.scale));
        ints.insert(
            GROWTH_TRACKER.into(),
            ArrayD::from_elem(vec![], i64::from(s.growth_tracker)),
        );
        ints.insert(SKIPPED.into(), ArrayD::from_elem(vec![], s.skipped as i64));
    }
    (f, ints)
}

/// Rebuilds a host state from a state_dict.
///
/// # Errors
/// A [`StateDictError`] naming the missing or mis-shaped tensor.
pub fn host_state(
    layout: &StateLayout,
    f: &StateDict,
    ints: &IntStateDict,
) -> Result<HostState, StateDictError> {
    let step = ints
        .get(OPT_STEP)
        .and_then(|a| a.iter().next().copied())
        .ok_or_else(|| StateDictError::Missing(OPT_STEP.into()))?;
    let named =
        |l, prefix| from_named(l, f, prefix).map_err(|e| StateDictError::Layout(e.to_string()));
    Ok(HostState {
        params: named(&layout.params, "")?,
        momentum: named(&layout.momentum, "")?,
        buffers: named(&layout.buffers, "")?,
        exp_avg: named(&layout.params, "opt.exp_avg.")?,
        exp_avg_sq: named(&layout.params, "opt.exp_avg_sq.")?,
        step: u64::try_from(step).map_err(|_| StateDictError::Negative(OPT_STEP.into()))?,
        scaler: scaler_state(f, ints)?,
    })
}

const OPT_STEP: &str = "opt.step";

const SCALE: &str = "scaler.scale";
const GROWTH_TRACKER: &str = "scaler._growth_tracker";
const SKIPPED: &str = "scaler.skipped";

/// The loss scaler saved by an fp16 run, if any.
fn scaler_state(f: &StateDict, ints: &IntStateDict) -> Result<Option<LossScaler>, StateDictError> {
    let Some(scale) = f.get(SCALE).and_then(|a| a.iter().next().copied()) else {
        return Ok(None);
    };
    if !(scale.is_finite() && scale > 0.0) {
        return Err(StateDictError::BadScale {
            name: SCALE,
            value: scale,
        });
    }
    let int = |name: &str| -> Result<i64, StateDictError> {
        ints.get(name)
            .and_then(|a| a.iter().next().copied())
            .ok_or_else(|| StateDictError::IncompleteScaler {
                present: SCALE,
                missing: name.into(),
            })
    };
    let growth_tracker = u32::try_from(int(GROWTH_TRACKER)?)
        .map_err(|_| StateDictError::OutOfRange(GROWTH_TRACKER.into()))?;
    let skipped =
        u64::try_from(int(SKIPPED)?).map_err(|_| StateDictError::Negative(SKIPPED.into()))?;
    Ok(Some(LossScaler {
        scale,
        growth_tracker,
        skipped,
    }))
}

/// Writes a checkpoint directory and points `last` at it.
///
/// # Errors
/// I/O errors naming the path.
pub fn write_checkpoint(
    run_dir: &Path,
    cfg: &StepConfig,
    layout: &StateLayout,
    h: &HostState,
    progress: &Progress,
) -> Result<PathBuf, PretrainError> {
    let root = run_dir.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(|e| PretrainError::io("create", &root, e))?;
    let name = format!("step-{:08}", progress.global_step);
    let final_dir = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| PretrainError::io("create", &tmp, e))?;
    let (f, ints) = state_dict(cfg, layout, h);
    let mut meta = std::collections::BTreeMap::new();
    meta.insert(
        "format".to_string(),
        "patchmix-rs checkpoint v1".to_string(),
    );
    save_safetensors_with_ints(tmp.join("state.safetensors"), &f, &ints, Some(&meta))?;
    let pj = tmp.join("progress.json");
    let json = serde_json::to_vec_pretty(progress).map_err(|source| PretrainError::Json {
        path: pj.clone(),
        source,
    })?;
    write_atomic(&pj, &json).map_err(|e| PretrainError::io("write", &pj, e))?;
    let toml_text = toml::to_string(&progress.config)?;
    let ct = tmp.join("config.toml");
    write_atomic(&ct, toml_text.as_bytes()).map_err(|e| PretrainError::io("write", &ct, e))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)
            .map_err(|e| PretrainError::io("replace", &final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|source| PretrainError::Rename {
        from: tmp.clone(),
        to: final_dir.clone(),
        source,
    })?;
    if let Ok(d) = std::fs::File::open(&root) {
        let _ = d.sync_all();
    }
    let last = root.join("last");
    write_atomic(&last, name.as_bytes()).map_err(|e| PretrainError::io("update", &last, e))?;
    Ok(final_dir)
}

/// Resolves `--resume DIR|auto`: a checkpoint directory, a run directory (its `last`), or
/// `auto` (the run directory's `last`, if any).
///
/// # Errors
/// [`PretrainError::NoCheckpoint`] when nothing resumable is found.
pub fn resolve_resume(arg: &str, run_dir: &Path) -> Result<Option<PathBuf>, PretrainError> {
    let from_run = |run: &Path| -> Option<PathBuf> {
        let root = run.join("checkpoints");
        let name = std::fs::read_to_string(root.join("last")).ok()?;
        let dir = root.join(name.trim());
        dir.join("progress.json").is_file().then_some(dir)
    };
    if arg == "auto" {
        return Ok(from_run(run_dir));
    }
    let p = PathBuf::from(arg);
    if p.join("progress.json").is_file() {
        return Ok(Some(p));
    }
    from_run(&p)
        .map(Some)
        .ok_or_else(|| PretrainError::NoCheckpoint { arg: arg.into() })
}

/// Loads a checkpoint directory.
///
/// # Errors
/// Unreadable or inconsistent files, naming them.
pub fn read_checkpoint(
    dir: &Path,
    layout: &StateLayout,
) -> Result<(HostState, Progress), PretrainError> {
    let pj = dir.join("progress.json");
    let text = std::fs::read(&pj).map_err(|e| PretrainError::io("read", &pj, e))?;
    let progress: Progress =
        serde_json::from_slice(&text).map_err(|source| PretrainError::Json {
            path: pj.clone(),
            source,
        })?;
    let st = dir.join("state.safetensors");
    let c = load_safetensors(&st)?;
    let h = host_state(layout, &c.tensors, &c.ints)
        .map_err(|source| PretrainError::CheckpointState { path: st, source })?;
    Ok((h, progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Precision;
    use crate::step::{Frame, build_step, init_state};

    fn fp16_state() -> (StepConfig, StateLayout, HostState) {
        let cfg = StepConfig {
            precision: Precision::Fp16,
            ..StepConfig::tiny(Frame::NoMomentum, 0.0)
        };
        let step = build_step(&cfg).unwrap();
        let mut h = init_state(&cfg, &step.layout, 0);
        h.step = 7;
        h.scaler = Some(LossScaler {
            scale: 512.0,
            growth_tracker: 3,
            skipped: 2,
        });
        (cfg, step.layout, h)
    }

    #[test]
    fn the_loss_scaler_round_trips_and_bn_counts_skipped_steps() {
        let (cfg, layout, h) = fp16_state();
        let (f, ints) = state_dict(&cfg, &layout, &h);
        assert_eq!(host_state(&layout, &f, &ints).unwrap(), h);
        // num_batches_tracked counts forward passes: 7 applied + 2 skipped steps, 4 passes
        // through the projector.
        let nbt = ints["base_encoder.head.1.num_batches_tracked"]
            .iter()
            .next()
            .copied();
        assert_eq!(nbt, Some(4 * 9));
        // fp32 states carry no scaler.
        let plain = HostState {
            scaler: None,
            ..h.clone()
        };
        let (f, ints) = state_dict(&cfg, &layout, &plain);
        assert!(!f.contains_key(SCALE));
        assert_eq!(host_state(&layout, &f, &ints).unwrap().scaler, None);
    }

    #[test]
    fn a_broken_scaler_is_an_error_naming_the_tensor() {
        let (cfg, layout, h) = fp16_state();
        let (mut f, mut ints) = state_dict(&cfg, &layout, &h);
        f.insert(SCALE.into(), ArrayD::from_elem(vec![], f32::INFINITY));
        let e = host_state(&layout, &f, &ints).unwrap_err().to_string();
        assert!(e.contains(SCALE), "{e}");
        f.insert(SCALE.into(), ArrayD::from_elem(vec![], 8.0));
        ints.remove(GROWTH_TRACKER);
        let e = host_state(&layout, &f, &ints).unwrap_err().to_string();
        assert!(e.contains(GROWTH_TRACKER), "{e}");
    }
}
