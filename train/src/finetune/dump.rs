//! One fine-tune step with everything needed to replay it in PyTorch
//! (`scripts/replay_finetune_step.py DIR`):
//!
//! - `step_config.json`: the step's [`FinetuneStepConfig`] (serde JSON: `vit`, `classes`,
//!   `batch`, `drop_path`, `layer_decay`, `precision`);
//! - `before.safetensors`, `after.safetensors`: the model under timm's names (head
//!   included), `opt.exp_avg.<name>`, `opt.exp_avg_sq.<name>`, `ema.<name>` and the integer
//!   `opt.step`; `after` also holds the step's `logits` [B, classes];
//! - `inputs.safetensors`: `images` [B,3,H,W], `targets` [B,classes], `drop_path`
//!   [2·depth, B] (drop path on), and the scalars `lr`, `wd`, `ema_decay`;
//! - `losses.json`: `{"loss": …}`.

use super::error::FinetuneError;
use crate::session::{FinetuneFeeds, FinetuneOutput, FinetuneSession};
use crate::step::finetune::classifier_weights;
use crate::step::{FinetuneLayout, FinetuneStepConfig, HostState};
use ndarray::ArrayD;
use patchmix_export::atomic::write_atomic;
use patchmix_export::weights::{IntStateDict, StateDict, save_safetensors_with_ints};
use std::path::Path;

/// What [`write_dump`] wrote.
#[derive(Clone, Debug)]
pub struct FinetuneDump {
    /// The step's output.
    pub output: FinetuneOutput,
    /// The state after the step.
    pub after: HostState,
}

fn state_tensors(layout: &FinetuneLayout, h: &HostState) -> (StateDict, IntStateDict) {
    let mut sd = classifier_weights(layout, &h.params);
    for (prefix, flat) in [
        ("opt.exp_avg.", &h.exp_avg),
        ("opt.exp_avg_sq.", &h.exp_avg_sq),
        ("ema.", &h.momentum),
    ] {
        for (k, v) in classifier_weights(layout, flat) {
            sd.insert(format!("{prefix}{k}"), v);
        }
    }
    let mut ints = IntStateDict::new();
    ints.insert("opt.step".into(), ArrayD::from_elem(vec![], h.step as i64));
    (sd, ints)
}

/// Runs the session's next step on `feeds` and writes the dump into `dir` (created if
/// needed; every file written atomically).
///
/// # Errors
/// Engine or I/O errors, naming the file.
pub fn write_dump(
    session: &mut FinetuneSession,
    feeds: &FinetuneFeeds<'_>,
    dir: &Path,
) -> Result<FinetuneDump, FinetuneError> {
    std::fs::create_dir_all(dir).map_err(|e| FinetuneError::io("create", dir, e))?;
    let step = session.step_graph().clone();
    let cfg: &FinetuneStepConfig = &step.config;
    let write = |name: &str, text: String| -> Result<(), FinetuneError> {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|e| FinetuneError::io("write", &path, e))
    };
    write(
        "step_config.json",
        serde_json::to_string_pretty(cfg).expect("a config serialises"),
    )?;
    let before = session.to_host()?;
    let (sd, ints) = state_tensors(&step.layout, &before);
    save_safetensors_with_ints(dir.join("before.safetensors"), &sd, &ints, None)?;

    let output = session.run(feeds)?;
    let after = session.to_host()?;
    let (mut sd, ints) = state_tensors(&step.layout, &after);
    let (b, img) = (cfg.batch, cfg.vit.img);
    let arr =
        |shape: Vec<usize>, v: &[f32]| ArrayD::from_shape_vec(shape, v.to_vec()).expect("shape");
    sd.insert("logits".into(), arr(vec![b, cfg.classes], &output.logits));
    save_safetensors_with_ints(dir.join("after.safetensors"), &sd, &ints, None)?;

    let mut inputs = StateDict::new();
    inputs.insert("images".into(), arr(vec![b, 3, img, img], feeds.images));
    inputs.insert("targets".into(), arr(vec![b, cfg.classes], feeds.targets));
    if let Some(m) = feeds.drop_path {
        inputs.insert("drop_path".into(), arr(vec![2 * cfg.vit.depth, b], m));
    }
    for (name, v) in [
        ("lr", feeds.lr),
        ("wd", feeds.wd),
        ("ema_decay", feeds.ema_decay),
    ] {
        inputs.insert(name.into(), ArrayD::from_elem(vec![], v));
    }
    save_safetensors_with_ints(
        dir.join("inputs.safetensors"),
        &inputs,
        &IntStateDict::new(),
        None,
    )?;
    write(
        "losses.json",
        serde_json::json!({ "loss": output.loss }).to_string(),
    )?;
    Ok(FinetuneDump { output, after })
}
