//! The fine-tuning run: the encoder weights in, the compiled step over the fine-tune loader
//! (RandAugment, erasing, Mixup/CutMix), top-1/top-5 of the model and its EMA on the test
//! split after every epoch, and the classifier's weights out.

use super::checkpoint::{self, Progress};
use super::config::FinetuneRunConfig;
use super::dump::write_dump;
use super::error::{FinetuneError, RunError};
use super::masks::{drop_path_masks, rank_masks};
use crate::augment::finetune::{FinetuneConfig as AugmentRecipe, FinetuneTransform};
use crate::augment::mixup::{Mixup, MixupConfig};
use crate::data::{FinetuneLoader, LoaderConfig, Shard};
use crate::device::DeviceOptions;
use crate::session::{Collectives, FinetuneFeeds, FinetuneSession, SessionOptions};
use crate::step::finetune::{HEAD_BIAS, HEAD_WEIGHT, classifier_weights, finetune_state};
use crate::step::{FinetuneLayout, HostState, Ranks, build_finetune_rank_step};
use ndarray::{Array2, Array4, Axis};
use patchmix_export::data::{Dataset, DatasetRef, Preprocess, Split};
use patchmix_export::runtime::{Embed, OrtEncoder};
use patchmix_export::vit::{VitConfig, encoder_graph, init_weights};
use patchmix_export::weights::{EncoderSource, StateDict, load_safetensors, select_encoder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How a run starts and what it does besides training.
#[derive(Clone, Debug, Default)]
pub struct FinetuneOptions {
    /// The pretrained encoder (`None` with `random_init`).
    pub weights: Option<PathBuf>,
    /// Which encoder of a two-encoder checkpoint (`None`: the momentum encoder where there is
    /// one, as the original).
    pub encoder: Option<EncoderSource>,
    /// Start from a random encoder of the same architecture (the baseline).
    pub random_init: bool,
    /// Stop after this many steps (writing a checkpoint there).
    pub max_steps: Option<u64>,
    /// Continue the run in the run directory from its `checkpoint.safetensors`.
    pub resume: bool,
    /// Run one step, dump it for `scripts/replay_finetune_step.py` into this directory, and
    /// stop.
    pub dump_step: Option<PathBuf>,
    /// ORT intra-op threads.
    pub threads: Option<usize>,
    /// No per-epoch lines on stdout.
    pub quiet: bool,
    /// Where the step runs (`cpu`, `cuda[:N]` — an error naming what is missing if CUDA
    /// cannot load — or `auto`), as in pretraining.
    pub device: crate::device::Device,
    /// This process's rank in a data-parallel world (`--dist`), `None` for one process (see
    /// [`crate::finetune`]).
    pub collectives: Option<Collectives>,
}

/// One evaluation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct EvalRecord {
    /// Epochs done.
    pub epoch: u64,
    /// Steps done.
    pub step: u64,
    /// The model's top-1 accuracy in %.
    pub top1: f64,
    /// The model's top-5 accuracy in %.
    pub top5: f64,
    /// The EMA's top-1 accuracy in %.
    pub ema_top1: f64,
    /// The EMA's top-5 accuracy in %.
    pub ema_top5: f64,
}

/// What a run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FinetuneSummary {
    /// Steps taken.
    pub steps: u64,
    /// Every evaluation, in order.
    pub evals: Vec<EvalRecord>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn data_err(spec: &str, message: impl ToString) -> RunError {
    RunError::Data {
        spec: spec.into(),
        message: message.to_string(),
    }
}

fn open(spec: &str) -> Result<Dataset, RunError> {
    let r: DatasetRef = spec.parse().map_err(|e| data_err(spec, e))?;
    let ds = Dataset::open(&r).map_err(|e| data_err(spec, e))?;
    if ds.is_empty() {
        return Err(data_err(spec, "the split is empty"));
    }
    Ok(ds)
}

/// The evaluation data: `eval_data`, else the training data's test split.
fn open_eval(cfg: &FinetuneRunConfig) -> Result<(String, Dataset), RunError> {
    if let Some(spec) = &cfg.eval_data {
        return Ok((spec.clone(), open(spec)?));
    }
    let spec = format!("{} (its test split)", cfg.data);
    let r: DatasetRef = cfg.data.parse().map_err(|e| data_err(&cfg.data, e))?;
    let ds = Dataset::open(&r.with_split(Split::Test)).map_err(|e| data_err(&spec, e))?;
    if ds.is_empty() {
        return Err(data_err(&spec, "the split is empty"));
    }
    Ok((spec, ds))
}

/// The encoder of a weights file: the momentum or base encoder of a training checkpoint
/// (`which`, default momentum where there is one), or a bare timm encoder, which must not
/// hold a classifier head.
///
/// # Errors
/// [`RunError::Weights`] naming the file: unreadable, the asked-for encoder absent, or a
/// head in it.
pub fn load_encoder_weights(
    path: &Path,
    which: Option<EncoderSource>,
) -> Result<StateDict, RunError> {
    let err = |message: String| RunError::Weights {
        path: path.to_path_buf(),
        message,
    };
    let sd = load_safetensors(path)
        .map_err(|e| err(e.to_string()))?
        .tensors;
    let has = |prefix: &str| {
        sd.keys()
            .any(|k| k.trim_start_matches("module.").starts_with(prefix))
    };
    let (base, momentum) = (has("base_encoder."), has("momentum_encoder."));
    if base || momentum {
        let which = which.unwrap_or(if momentum {
            EncoderSource::Momentum
        } else {
            EncoderSource::Base
        });
        if !has(which.prefix()) {
            return Err(err(format!(
                "--encoder {}: the file has no `{}*` tensors",
                if which == EncoderSource::Base {
                    "base"
                } else {
                    "momentum"
                },
                which.prefix()
            )));
        }
        return Ok(select_encoder(sd, which));
    }
    if let Some(k) = sd.keys().find(|k| k.starts_with("head.")) {
        return Err(err(format!(
            "holds a classifier head (`{k}`): fine-tuning starts from an encoder, e.g. a pretraining run's encoder.safetensors"
        )));
    }
    Ok(sd)
}

/// Top-1 and top-5 accuracy (%) of the classifier `flat` (in `layout`) on `ds`.
fn evaluate(
    vit: &VitConfig,
    layout: &FinetuneLayout,
    flat: &[f32],
    ds: &Dataset,
    pre: &Preprocess,
) -> Result<(f64, f64), RunError> {
    let eval_err = |e: String| data_err("evaluation", e);
    let mut sd = classifier_weights(layout, flat);
    let w = sd.remove(HEAD_WEIGHT).expect("head weight");
    let b = sd.remove(HEAD_BIAS).expect("head bias");
    let w = w.into_dimensionality::<ndarray::Ix2>().expect("2-D head");
    let g = encoder_graph(vit, &sd, false).map_err(|e| eval_err(e.to_string()))?;
    let mut enc = OrtEncoder::from_bytes(&patchmix_export::onnx::to_onnx_bytes(&g))
        .map_err(|e| eval_err(e.to_string()))?;
    let (img, per) = (vit.img, pre.floats_per_image());
    let (mut top1, mut top5) = (0usize, 0usize);
    let n = ds.len();
    let mut start = 0;
    while start < n {
        let idx: Vec<usize> = (start..(start + 256).min(n)).collect();
        let mut buf = vec![0.0f32; idx.len() * per];
        pre.fill_batch(ds, &idx, &mut buf)
            .map_err(|e| eval_err(e.to_string()))?;
        let x = Array4::from_shape_vec((idx.len(), 3, img, img), buf)
            .map_err(|e| eval_err(e.to_string()))?;
        let f: Array2<f32> = enc.embed(x.view()).map_err(|e| eval_err(e.to_string()))?;
        let logits = f.dot(&w.t()) + &b;
        for (row, &i) in logits.axis_iter(Axis(0)).zip(&idx) {
            let label = ds.label(i) as usize;
            let mine = row[label];
            // Rank of the true class: how many classes score strictly higher.
            let above = row.iter().filter(|&&v| v > mine).count();
            top1 += usize::from(above < 1);
            top5 += usize::from(above < 5);
        }
        start += idx.len();
    }
    Ok((
        100.0 * top1 as f64 / n as f64,
        100.0 * top5 as f64 / n as f64,
    ))
}

/// A step's feeds from its batch and drop-path masks.
fn feeds<'a>(
    cfg: &FinetuneRunConfig,
    b: &'a crate::data::FinetuneBatch,
    masks: &'a [f32],
    lr: f64,
) -> FinetuneFeeds<'a> {
    FinetuneFeeds {
        images: b.images.as_slice().expect("standard layout"),
        targets: b.targets.as_slice().expect("standard layout"),
        drop_path: (!masks.is_empty()).then_some(masks),
        lr: lr as f32,
        wd: cfg.weight_decay as f32,
        ema_decay: cfg.ema_decay as f32,
    }
}

fn append_jsonl(path: &Path, v: &serde_json::Value) -> Result<(), RunError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| FinetuneError::io("open", path, e))?;
    writeln!(f, "{v}").map_err(|e| FinetuneError::io("write", path, e))?;
    Ok(())
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(v).expect("serialisable");
    patchmix_export::atomic::write_atomic(path, text.as_bytes())
        .map_err(|e| FinetuneError::io("write", path, e))?;
    Ok(())
}

/// Rank `rank`'s rows of each global batch of `batch`, which must split over the `world`
/// ranks into even per-rank batches (each rank mixes its own batch).
fn rank_shard(rank: usize, world: usize, batch: usize) -> Result<Shard, RunError> {
    let err = |message: String| RunError::Config {
        field: "--batch",
        message,
    };
    if world > 1 && !batch.is_multiple_of(world) {
        return Err(err(format!(
            "the global batch {batch} does not split evenly over {world} ranks; use a multiple of {world}"
        )));
    }
    if world > 1 && !(batch / world).is_multiple_of(2) {
        return Err(err(format!(
            "the global batch {batch} over {world} ranks is {} images per rank, which must be even (each rank mixes its own batch: Mixup pairs sample i with b − 1 − i); use a multiple of {}",
            batch / world,
            2 * world
        )));
    }
    Shard::new(rank, world, batch).map_err(|e| err(e.to_string()))
}

/// Checks that every rank starts from the same state (a SHA-256 of its parameters, moments,
/// EMA and step count).
fn agree_on_state(collectives: Option<&Collectives>, h: &HostState) -> Result<(), RunError> {
    let Some(c) = collectives.filter(|c| c.comm().world_size() > 1) else {
        return Ok(());
    };
    let mut bytes = Vec::with_capacity(16 * h.params.len() + 8);
    for v in [&h.params, &h.exp_avg, &h.exp_avg_sq, &h.momentum] {
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    bytes.extend(h.step.to_le_bytes());
    crate::dist::agree_on(c.comm().as_ref(), "starting states", &bytes)?;
    Ok(())
}

/// Runs a fine-tuning run (on every rank of a data-parallel world; see [`crate::finetune`]).
///
/// # Errors
/// A [`RunError`] naming the file, field or step: unusable data (an empty split, a class
/// count that disagrees with `classes`), weights of another architecture or with a head, a
/// run directory that already holds a run, a batch that does not split evenly into even
/// per-rank batches, ranks started with different settings or states, engine failures, or a
/// non-finite loss.
pub fn run_finetune(
    cfg: &FinetuneRunConfig,
    opts: &FinetuneOptions,
) -> Result<FinetuneSummary, RunError> {
    let started = Instant::now();
    let (rank, world) = opts
        .collectives
        .as_ref()
        .map_or((0, 1), |c| (c.comm().rank(), c.comm().world_size()));
    let lead = rank == 0;
    if let Some(c) = opts.collectives.as_ref().filter(|_| world > 1) {
        // Every rank must run the same recipe on the same data from the same weights.
        let what = format!(
            "{}\nweights = {:?}\nencoder = {:?}\nrandom_init = {}\nmax_steps = {:?}\nresume = {}\ndump_step = {:?}\n",
            serde_json::to_string(cfg).expect("serialisable"),
            opts.weights,
            opts.encoder,
            opts.random_init,
            opts.max_steps,
            opts.resume,
            opts.dump_step
        );
        crate::dist::agree_on(c.comm().as_ref(), "configurations", what.as_bytes())?;
        if opts.dump_step.is_some() {
            return Err(RunError::Config {
                field: "--dump-step",
                message: format!(
                    "dumps one process's step; run it without the {world} ranks (--dist none)"
                ),
            });
        }
    }
    let shard = rank_shard(rank, world, cfg.batch)?;
    if cfg.data.is_empty() {
        return Err(RunError::Config {
            field: "data",
            message: format!("the preset `{}` needs --data PATH", cfg.preset),
        });
    }
    let train = Arc::new(open(&cfg.data)?);
    // Rank 0 alone evaluates.
    let eval = if lead { Some(open_eval(cfg)?) } else { None };
    let classes = train.num_classes();
    if let Some(want) = cfg.classes
        && want != classes
    {
        return Err(RunError::Config {
            field: "classes",
            message: format!(
                "the preset `{}` is for {want} classes, {} has {classes}",
                cfg.preset, cfg.data
            ),
        });
    }
    if let Some((eval_spec, eval)) = &eval
        && eval.num_classes() > classes
    {
        return Err(data_err(
            eval_spec,
            format!(
                "has {} classes, the training data {classes}",
                eval.num_classes()
            ),
        ));
    }
    // The global step configuration (the masks are drawn for it), and this rank's.
    let global_cfg = cfg.step_config(classes);
    global_cfg.validate().map_err(|e| RunError::Config {
        field: "step",
        message: e.to_string(),
    })?;
    let step_cfg = crate::step::FinetuneStepConfig {
        batch: cfg.batch / world,
        ..global_cfg.clone()
    };
    let encoder = match (&opts.weights, opts.random_init) {
        (Some(_), true) => {
            return Err(RunError::Config {
                field: "--random-init",
                message: "give --weights or --random-init, not both".into(),
            });
        }
        (Some(p), false) => load_encoder_weights(p, opts.encoder)?,
        (None, true) => init_weights(&cfg.vit, cfg.seed),
        (None, false) => {
            return Err(RunError::Config {
                field: "--weights",
                message: "fine-tuning needs encoder weights (or --random-init for the baseline)"
                    .into(),
            });
        }
    };
    // One rank's step over its b = B/W images (W = 1: the plain step, collectives-free,
    // unless the run has a communicator anyway: an NCCL world of one runs them).
    let ranks = Ranks {
        world_size: world,
        collectives: world > 1 || opts.collectives.is_some(),
    };
    let step = build_finetune_rank_step(&step_cfg, ranks, false).map_err(|e| RunError::Config {
        field: "step",
        message: e.to_string(),
    })?;
    let layout = step.layout.clone();
    let init =
        finetune_state(&step_cfg, &layout, &encoder, cfg.seed).map_err(|e| RunError::Weights {
            path: opts
                .weights
                .clone()
                .unwrap_or_else(|| PathBuf::from("<random init>")),
            message: e.to_string(),
        })?;
    let session_opts = SessionOptions {
        threads: opts.threads.filter(|&t| t > 0),
        collectives: opts.collectives.clone().filter(|_| ranks.collectives),
        ..SessionOptions::default()
    };
    let device = DeviceOptions {
        device: opts
            .collectives
            .as_ref()
            .map_or(opts.device, |c| c.rank_device(opts.device)),
        ..DeviceOptions::default()
    };
    let mut session = FinetuneSession::new(step, &session_opts, &device, &init)?;
    let recipe = AugmentRecipe::recipe(cfg.vit.img as u32);
    let transform = FinetuneTransform::new(recipe).map_err(|e| RunError::Config {
        field: "augmentation",
        message: e.to_string(),
    })?;
    let mixing = MixupConfig {
        // Mixing off: every batch is `Mix::Off`, i.e. label-smoothing targets.
        prob: if cfg.mixup { 1.0 } else { 0.0 },
        ..MixupConfig::default()
    };
    let mixup = Mixup::new(mixing).map_err(|e| RunError::Config {
        field: "mixup",
        message: e.to_string(),
    })?;
    let loader_cfg = LoaderConfig {
        batch_size: cfg.batch,
        seed: cfg.seed,
        ..LoaderConfig::default()
    };
    let loader = FinetuneLoader::new(train.clone(), transform, mixup, loader_cfg)
        .map_err(|e| data_err(&cfg.data, e))?
        .sharded(shard)
        .map_err(|e| data_err(&cfg.data, e))?;
    let rows = shard.rows(cfg.batch);
    let batch_feeds = |epoch: u64, step: usize, global: u64| -> Result<_, RunError> {
        let b = loader
            .batch(epoch, step)
            .map_err(|e| data_err(&cfg.data, e))?;
        let mut rng =
            ChaCha8Rng::seed_from_u64(cfg.seed ^ global.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Drawn per sample of the global batch; this rank's rows.
        let masks = rank_masks(
            &drop_path_masks(&global_cfg, &mut rng),
            cfg.batch,
            rows.clone(),
        );
        Ok((b, masks))
    };

    if let Some(dir) = &opts.dump_step {
        let (b, masks) = batch_feeds(0, 0, 0)?;
        write_dump(&mut session, &feeds(cfg, &b, &masks, cfg.lr_at(0)), dir)?;
        return Ok(FinetuneSummary {
            steps: 1,
            evals: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    let out = &cfg.out_dir;
    let metrics = out.join("metrics.jsonl");
    let ckpt = out.join("checkpoint.safetensors");
    let mut progress = Progress {
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
    };
    if opts.resume {
        let saved = out.join("config.json");
        let text =
            std::fs::read_to_string(&saved).map_err(|e| FinetuneError::io("read", &saved, e))?;
        let theirs: FinetuneRunConfig =
            serde_json::from_str(&text).map_err(|e| RunError::Weights {
                path: saved.clone(),
                message: e.to_string(),
            })?;
        if &theirs != cfg {
            return Err(RunError::Config {
                field: "--resume",
                message: format!(
                    "the settings differ from the run's {}; resume with the same preset and flags",
                    saved.display()
                ),
            });
        }
        let (h, p) = checkpoint::load(&ckpt, layout.params.len())?;
        agree_on_state(opts.collectives.as_ref(), &h)?;
        session.load(&h)?;
        progress = p;
        // Records after the checkpoint (a run that died later) are dropped: they are redone.
        let text = std::fs::read_to_string(&metrics).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= p.global_step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if lead {
            patchmix_export::atomic::write_atomic(&metrics, kept.as_bytes())
                .map_err(|e| FinetuneError::io("write", &metrics, e))?;
        }
    } else if lead {
        if metrics.exists() {
            return Err(RunError::Config {
                field: "--out",
                message: format!(
                    "{} already holds a fine-tuning run; choose another directory or --resume",
                    out.display()
                ),
            });
        }
        std::fs::create_dir_all(out).map_err(|e| FinetuneError::io("create", out, e))?;
        write_json(&out.join("config.json"), cfg)?;
    }
    if !opts.resume {
        agree_on_state(opts.collectives.as_ref(), &init)?;
    }
    if world > 1 && lead {
        log::info!(
            "{world} ranks: {} images of each global batch of {} per rank",
            cfg.batch / world,
            cfg.batch
        );
    }
    let pre = recipe.eval();
    let spe = loader.steps_per_epoch();
    let mut global = progress.global_step;
    let mut evals = Vec::new();
    for epoch in progress.epoch..cfg.epochs {
        let first = if epoch == progress.epoch {
            progress.step_in_epoch as usize
        } else {
            0
        };
        let lr = cfg.lr_at(epoch);
        let mut loss_sum = 0.0f64;
        let mut done = 0usize;
        let bar = if opts.quiet || !lead {
            indicatif::ProgressBar::hidden()
        } else {
            let b = indicatif::ProgressBar::new(spe as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} {bar:25} {pos}/{len} {msg} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
            b.set_position(first as u64);
            b
        };
        let mut stopped = false;
        let mut next = spe;
        for s in first..spe {
            if opts.max_steps.is_some_and(|m| global >= m) {
                stopped = true;
                next = s;
                break;
            }
            let (b, masks) = batch_feeds(epoch, s, global)?;
            let o = session.run(&feeds(cfg, &b, &masks, lr))?;
            global += 1;
            if !o.loss.is_finite() {
                return Err(RunError::NonFinite {
                    step: global,
                    epoch,
                    loss: o.loss,
                });
            }
            loss_sum += f64::from(o.loss);
            done += 1;
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", o.loss));
            if lead {
                append_jsonl(
                    &metrics,
                    &serde_json::json!({"kind": "step", "step": global, "epoch": epoch, "loss": o.loss, "lr": lr}),
                )?;
            }
        }
        bar.finish_and_clear();
        // The other ranks hold rank 0's state: only rank 0 evaluates and checkpoints, and
        // the others' next collective waits for it.
        let Some((_, eval)) = &eval else {
            if stopped || opts.max_steps.is_some_and(|m| global >= m) {
                break;
            }
            continue;
        };
        let h = session.to_host()?;
        let (top1, top5) = evaluate(&cfg.vit, &layout, &h.params, eval, &pre)?;
        let (ema_top1, ema_top5) = evaluate(&cfg.vit, &layout, &h.momentum, eval, &pre)?;
        let r = EvalRecord {
            epoch: epoch + 1,
            step: global,
            top1,
            top5,
            ema_top1,
            ema_top5,
        };
        append_jsonl(
            &metrics,
            &serde_json::json!({"kind": "eval", "epoch": r.epoch, "step": r.step, "top1": top1, "top5": top5, "ema_top1": ema_top1, "ema_top5": ema_top5}),
        )?;
        if !opts.quiet {
            println!(
                "epoch {:>3}/{}  step {global:>6}  loss {:.4}  lr {lr:.2e}  top-1 {top1:.2}  top-5 {top5:.2}  EMA top-1 {ema_top1:.2}  top-5 {ema_top5:.2}  ({:.0} s)",
                epoch + 1,
                cfg.epochs,
                loss_sum / done.max(1) as f64,
                started.elapsed().as_secs_f64()
            );
        }
        evals.push(r);
        let here = if next == spe {
            Progress {
                epoch: epoch + 1,
                step_in_epoch: 0,
                global_step: global,
            }
        } else {
            Progress {
                epoch,
                step_in_epoch: next as u64,
                global_step: global,
            }
        };
        checkpoint::save(&ckpt, &h, here)?;
        if stopped || opts.max_steps.is_some_and(|m| global >= m) {
            break;
        }
    }
    if !lead {
        return Ok(FinetuneSummary {
            steps: global,
            evals,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let h = session.to_host()?;
    // The model as `classifier.onnx` + `classifier.safetensors` (timm names with `head.*`,
    // class names in the metadata), for `patchmix classify` and timm; its EMA beside it.
    let mut encoder = classifier_weights(&layout, &h.params);
    let head = patchmix_export::classifier::ClassifierHead::from_state_dict(&encoder, "the model")?;
    encoder.retain(|name, _| !name.starts_with("head."));
    patchmix_export::classifier::export_classifier(
        &encoder,
        &head,
        &cfg.vit,
        train.class_names(),
        out,
    )?;
    let path = out.join("classifier_ema.safetensors");
    patchmix_export::weights::save_safetensors(
        &path,
        &classifier_weights(&layout, &h.momentum),
        None,
    )
    .map_err(FinetuneError::from)?;
    let summary = FinetuneSummary {
        steps: global,
        evals,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json(&out.join("summary.json"), &summary)?;
    Ok(summary)
}
