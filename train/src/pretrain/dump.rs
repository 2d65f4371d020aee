//! `--dump-step DIR`: one step with everything needed to reproduce it in PyTorch.
//!
//! - `before.safetensors`, `after.safetensors`: every parameter and buffer under the original
//!   training module's state_dict names, `opt.exp_avg.<name>`, `opt.exp_avg_sq.<name>`,
//!   `opt.step`;
//! - `inputs.safetensors`: `view1`, `view2`, `mix1`, `mix2` [B,3,H,W], `target_src`,
//!   `target_mix`, `target_mix2` [B,N], the scalars `lr`, `wd`, `temperature`, `momentum`, the
//!   permutations `perm_mix1`/`perm_mix2`, and `drop_path.<pass>` [2·depth, B] when drop path
//!   is on;
//! - `losses.json`: `src`, `mix`, `mix2`, `total` (and `multi`, `multi_mix` with local crops);
//! - `step_config.json`: the step's architecture and frame, the serde JSON of its
//!   [`StepConfig`](crate::step::StepConfig): `vit` (`img`, `patch`, `dim`, `depth`,
//!   `heads`), `hidden`, `out`, `batch`, `mix` (m), `frame` (`no-momentum` or `momentum`),
//!   `drop_path` (the maximum rate), `local` (`null` or `{count, img}`) and `precision`; and
//!   the label smoothing the targets were built with, `src_smoothing` (the view-to-view
//!   target) and `smoothing` (the two mix targets); and `virtual_ranks` (W: the batch's groups
//!   of B/W images were PatchMixed separately with rank-offset targets, see
//!   [`crate::step::ranks`]).
//!
//! `scripts/replay_step.py DIR` rebuilds the step from these files in PyTorch autograd and
//! compares its losses, gradients and updated state with the engine's.

use super::checkpoint::state_dict;
use super::error::PretrainError;
use super::run::Trainer;
use crate::step::Losses;
use ndarray::ArrayD;
use patchmix_export::weights::{IntStateDict, StateDict, save_safetensors_with_ints};
use std::path::Path;

/// `step_config.json`: the step configuration plus the targets' label smoothing and the
/// virtual ranks.
fn step_config_json(
    sc: &crate::step::StepConfig,
    cfg: &super::PretrainConfig,
) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(sc)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("src_smoothing".into(), cfg.src_smoothing.into());
        o.insert("smoothing".into(), cfg.smoothing.into());
        o.insert("virtual_ranks".into(), cfg.virtual_ranks.into());
    }
    serde_json::to_string_pretty(&v)
}

/// Runs the next step of `t` and writes the dump into `dir`.
///
/// # Errors
/// Data, engine or I/O errors, naming the file.
pub fn dump_step(t: &mut Trainer, dir: &Path) -> Result<Losses, PretrainError> {
    std::fs::create_dir_all(dir).map_err(|e| PretrainError::io("create", dir, e))?;
    let step = t.session.step_graph().clone();
    let sc = &step.config;
    let config_path = dir.join("step_config.json");
    let config_json = step_config_json(sc, &t.cfg).map_err(|source| PretrainError::Json {
        path: config_path.clone(),
        source,
    })?;
    patchmix_export::atomic::write_atomic(&config_path, config_json.as_bytes())
        .map_err(|e| PretrainError::io("write", &config_path, e))?;
    let before = t.host()?;
    let (f, i) = state_dict(sc, &step.layout, &before);
    save_safetensors_with_ints(dir.join("before.safetensors"), &f, &i, None)?;

    let batch = t
        .loader
        .batch(t.progress.epoch, t.progress.step_in_epoch as usize)?;
    let (v1, v2, local) = super::run::raw_views(batch);
    let (b, s) = t.prepare(v1, v2, local)?;
    let l = t.run_prepared(&b, &s)?;
    t.progress.global_step += 1;
    t.progress.step_in_epoch += 1;

    let after = t.host()?;
    let (f, i) = state_dict(sc, &step.layout, &after);
    save_safetensors_with_ints(dir.join("after.safetensors"), &f, &i, None)?;

    let (bsz, img) = (sc.batch, sc.vit.img);
    let mut inputs = StateDict::new();
    let arr =
        |shape: Vec<usize>, v: &[f32]| ArrayD::from_shape_vec(shape, v.to_vec()).expect("shape");
    for (name, v) in crate::step::names::IMAGES.iter().zip(&b.images) {
        inputs.insert(name.to_string(), arr(vec![bsz, 3, img, img], v));
    }
    for (name, v) in crate::step::names::TARGETS.iter().zip(&b.targets) {
        inputs.insert(name.to_string(), arr(vec![bsz, bsz], v));
    }
    for (name, v) in [
        ("lr", s.lr),
        ("wd", s.wd),
        ("temperature", s.tau),
        ("momentum", s.mu),
    ] {
        inputs.insert(name.to_string(), ArrayD::from_elem(vec![], v as f32));
    }
    if let (Some(lc), Some(locals)) = (&sc.local, &b.local) {
        for (name, v) in crate::step::names::LOCAL_IMAGES.iter().zip(locals) {
            inputs.insert(
                name.to_string(),
                arr(vec![lc.count * bsz, 3, lc.img, lc.img], v),
            );
        }
    }
    for (pass, m) in sc.base_passes().iter().zip(&b.drop_path) {
        inputs.insert(
            format!("drop_path.{pass}"),
            arr(vec![2 * sc.vit.depth, sc.pass_rows(pass)], m),
        );
    }
    let mut ints = IntStateDict::new();
    for (name, p) in ["perm_mix1", "perm_mix2"].iter().zip(&b.perms) {
        ints.insert(
            name.to_string(),
            ArrayD::from_shape_vec(vec![p.len()], p.iter().map(|&v| v as i64).collect())
                .expect("shape"),
        );
    }
    save_safetensors_with_ints(dir.join("inputs.safetensors"), &inputs, &ints, None)?;
    let json = if sc.local.is_some() {
        serde_json::json!({"src": l.src, "mix": l.mix, "mix2": l.mix2, "multi": l.multi, "multi_mix": l.multi_mix, "total": l.total})
    } else {
        serde_json::json!({"src": l.src, "mix": l.mix, "mix2": l.mix2, "total": l.total})
    };
    patchmix_export::atomic::write_atomic(
        &dir.join("losses.json"),
        serde_json::to_string_pretty(&json)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| PretrainError::io("write", &dir.join("losses.json"), e))?;
    Ok(l)
}
