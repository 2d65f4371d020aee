//! The pretraining loop: data → PatchMix step in ORT → schedules, metrics, progress,
//! checkpoints, online kNN, and the final export.

use super::checkpoint::{Progress, read_checkpoint, resolve_resume, write_checkpoint};
use super::config::PretrainConfig;
use super::error::PretrainError;
use super::metrics::{
    Baselines, BaselinesRecord, KnnRecord, MetricsLog, MetricsRecord, StepRecord,
};
use super::monitor::{encoder_weights, knn_eval, ort_encoder};
use crate::augment::{AugmentConfig, MultiCrop, Pipeline};
use crate::data::{Loader, LoaderConfig, Shard};
use crate::device::DeviceOptions;
use crate::session::{Collectives, SessionOptions, StepSession};
use crate::step::{HostState, Losses};
use crate::step::{
    Precision, PreparedBatch, Ranks, StepConfig, StepGraph, VirtualRanks, build_rank_step,
    init_state, prepare_batch_on_ranks, prepare_rank_batch,
};
use patchmix_core::{cosine_schedule, momentum_schedule, temperature_schedule};
use patchmix_export::data::{Dataset, DatasetRef};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options of a run beyond its configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--resume DIR|auto`.
    pub resume: Option<String>,
    /// Show progress bars.
    pub progress: bool,
    /// Write an ORT profile into the run directory.
    pub profile: bool,
    /// This process's rank in a data-parallel world (`--dist`), `None` for one process. Every
    /// rank trains on its slice of each global batch; rank 0 alone writes the run directory
    /// (configuration, metrics, checkpoints, export), shows progress and evaluates.
    pub collectives: Option<Collectives>,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps done in total.
    pub global_step: u64,
    /// Last step's losses.
    pub last: Option<Losses>,
    /// The final kNN report, when an eval split exists.
    pub knn: Option<patchmix_export::knn::KnnReport>,
}

/// The schedules' values at a global step.
#[derive(Clone, Copy, Debug)]
pub struct Scalars {
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub wd: f64,
    /// Temperature.
    pub tau: f64,
    /// EMA momentum.
    pub mu: f64,
}

/// Evaluates every schedule for iteration `it` of `epoch` (per-iteration cosine learning rate
/// with warm-up and cosine weight decay, per-epoch temperature warm-up and momentum).
///
/// # Errors
/// Invalid schedule parameters.
pub fn scalars(
    cfg: &PretrainConfig,
    steps_per_epoch: u64,
    epoch: u64,
    it: u64,
) -> Result<Scalars, PretrainError> {
    let total = cfg.epochs * steps_per_epoch;
    let it = it.min(total.saturating_sub(1));
    Ok(Scalars {
        lr: cosine_schedule(
            cfg.scaled_lr(),
            cfg.min_lr,
            total,
            cfg.warmup_epochs * steps_per_epoch,
            0.0,
            it,
        )?,
        wd: cosine_schedule(cfg.weight_decay, cfg.weight_decay_end, total, 0, 0.0, it)?,
        tau: temperature_schedule(
            cfg.warmup_temperature,
            cfg.temperature,
            cfg.temperature_warmup_epochs,
            epoch,
        )?,
        mu: momentum_schedule(cfg.momentum, epoch as f64, cfg.epochs as f64)?,
    })
}

fn open_dataset(spec: &str) -> Result<Dataset, PretrainError> {
    let r = spec
        .parse::<DatasetRef>()
        .map_err(|e| PretrainError::DatasetSpec {
            spec: spec.into(),
            message: e.to_string(),
        })?;
    Ok(Dataset::open(&r)?)
}

fn check_run_dir(dir: &Path) -> Result<(), PretrainError> {
    std::fs::create_dir_all(dir).map_err(|source| PretrainError::CreateOutDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").map_err(|source| PretrainError::OutDirNotWritable {
        path: dir.to_path_buf(),
        source,
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The area fraction separating local from global crops when multi-crop is on and the
/// config leaves `global_crop` unset (the ImageNet recipe's 0.35).
pub const DEFAULT_GLOBAL_CROP: f64 = 0.35;

/// fp16 steps skipped in a row (each halving the loss scale, 2¹⁶ → 2⁻¹⁴ after 30) after which
/// a run stops instead of spinning without updates.
pub const MAX_CONSECUTIVE_SKIPS: u32 = 30;

/// A loader batch's local crops stacked crop-major (row j·B + b is crop j of image b), as
/// the step's `local` input; `None` without multi-crop.
pub fn local_crops(batch: &crate::data::Batch) -> Option<Vec<f32>> {
    if batch.locals.is_empty() {
        return None;
    }
    let mut v = Vec::with_capacity(batch.locals.iter().map(|a| a.len()).sum());
    for a in &batch.locals {
        v.extend(a.iter());
    }
    Some(v)
}

/// The seed of step `global_step`'s PatchMix permutations and drop-path masks.
pub fn step_seed(seed: u64, global_step: u64) -> u64 {
    crate::data::sample_seed(seed ^ 0x5041_5443_484d_4958, global_step, 0)
}

/// A loader batch's host inputs for the step: the views, and the local crops stacked
/// crop-major.
pub type RawViews = (Vec<f32>, Vec<f32>, Option<Vec<f32>>);

/// A loader batch as the step's host inputs ([`RawViews`]).
pub fn raw_views(batch: crate::data::Batch) -> RawViews {
    let local = local_crops(&batch);
    (
        batch.view1.into_raw_vec_and_offset().0,
        batch.view2.into_raw_vec_and_offset().0,
        local,
    )
}

/// Step `global_step`'s inputs (PatchMix images, targets, drop-path masks, all derived from
/// the run seed and the step; per virtual rank group when `virtual_ranks` > 1) and schedule
/// values. `sc` is the global step configuration (the whole batch); with a `shard` of W > 1
/// ranks the views hold this rank's rows only and the result is its share (see
/// [`prepare_rank_batch`]). A pure function of its arguments, so the training loop runs it
/// for the next step on another thread while the current step runs.
///
/// # Errors
/// Data or schedule errors.
pub fn prepare_step_inputs(
    cfg: &PretrainConfig,
    sc: &StepConfig,
    shard: Shard,
    steps_per_epoch: u64,
    (epoch, global_step): (u64, u64),
    (view1, view2, local): RawViews,
) -> Result<(PreparedBatch, Scalars), PretrainError> {
    let s = scalars(cfg, steps_per_epoch, epoch, global_step)?;
    let seed = step_seed(cfg.seed, global_step);
    let smoothing = cfg.target_smoothing();
    let b = if shard.world() > 1 {
        let ranks = real_ranks(sc, shard.world())?;
        prepare_rank_batch(
            sc,
            ranks,
            shard.rank(),
            view1,
            view2,
            local,
            seed,
            smoothing,
        )?
    } else {
        let ranks = cfg.ranks(sc)?;
        prepare_batch_on_ranks(sc, ranks, view1, view2, local, seed, smoothing)?
    };
    Ok((b, s))
}

/// The split of the global batch over `world` real ranks.
fn real_ranks(sc: &StepConfig, world: usize) -> Result<VirtualRanks, PretrainError> {
    VirtualRanks::new(world, sc.batch, sc.mix).map_err(|e| PretrainError::Ranks {
        ranks: world,
        message: e
            .to_string()
            .replace("virtual_ranks = ", "")
            .replace("virtual_ranks", "ranks"),
    })
}

/// A loader, step session and state for a configuration (fresh or resumed).
pub struct Trainer {
    /// The configuration.
    pub cfg: PretrainConfig,
    /// The loader.
    pub loader: Loader,
    /// The ORT step (this rank's, in a data-parallel world).
    pub session: StepSession,
    /// Where the run stands.
    pub progress: Progress,
    /// The global step configuration (the whole batch over all ranks).
    pub step_config: StepConfig,
    /// This rank's rows of each global batch.
    pub shard: Shard,
}

impl Trainer {
    /// Opens data, compiles the step and loads or initialises the state.
    ///
    /// # Errors
    /// Any setup problem, as a one-line message.
    pub fn new(cfg: &PretrainConfig, opts: &RunOptions) -> Result<Trainer, PretrainError> {
        cfg.validate()?;
        let sc = cfg.step_config()?;
        let (rank, world) = opts
            .collectives
            .as_ref()
            .map_or((0, 1), |c| (c.comm().rank(), c.comm().world_size()));
        if let Some(comm) = opts.collectives.as_ref().map(Collectives::comm)
            && world > 1
        {
            // Every rank must run the same recipe on the same data from the same state.
            let what = format!("{}\nresume = {:?}\n", toml::to_string(cfg)?, opts.resume);
            crate::dist::agree_on(comm.as_ref(), "configurations", what.as_bytes())?;
            real_ranks(&sc, world)?;
            if cfg.virtual_ranks != 1 && cfg.virtual_ranks != world {
                return Err(PretrainError::Ranks {
                    ranks: world,
                    message: format!(
                        "virtual_ranks = {} emulates another world; with real ranks set it to 1 or {world}",
                        cfg.virtual_ranks
                    ),
                });
            }
        }
        if rank == 0 {
            check_run_dir(&cfg.out_dir)?;
        }
        let ds = open_dataset(&cfg.data)?;
        if let Some((w, h)) = ds.image_size()
            && w != h
        {
            log::info!(
                "note: {} has {w}×{h} images; they are cropped and resized to {}",
                cfg.data,
                cfg.img
            );
        }
        let mut aug = AugmentConfig::new(cfg.img as u32, cfg.min_crop);
        if cfg.local_crops > 0 {
            aug.multi_crop = Some(MultiCrop {
                n_local: cfg.local_crops,
                local_size: cfg.local_size as u32,
                global_crop: cfg.global_crop.unwrap_or(DEFAULT_GLOBAL_CROP),
            });
        }
        let pipeline = Pipeline::new(aug)?;
        let loader = Loader::new(
            Arc::new(ds),
            pipeline,
            LoaderConfig {
                batch_size: cfg.batch,
                seed: cfg.seed,
                threads: cfg.loader_threads,
                prefetch: 2,
            },
        )?
        .sharded(Shard::new(rank, world, cfg.batch)?)?;
        // One rank's step over its b = B/W images (W = 1: the plain step, collectives-free,
        // unless the run has a communicator anyway: an NCCL world of one runs them).
        let rank_sc = StepConfig {
            batch: cfg.batch / world,
            ..sc.clone()
        };
        let ranks = Ranks {
            world_size: world,
            collectives: world > 1 || opts.collectives.is_some(),
        };
        let step: StepGraph = build_rank_step(&rank_sc, ranks, false)?;
        if sc.precision != Precision::Fp32 {
            log::info!(
                "precision {}: matrix products in half precision, f32 master weights and optimizer state{}",
                sc.precision,
                if sc.scales_loss() {
                    ", dynamic loss scaling"
                } else {
                    ""
                }
            );
        }
        let sopts = SessionOptions {
            threads: (cfg.threads > 0).then_some(cfg.threads),
            opt_level: SessionOptions::default().opt_level,
            profile: (opts.profile && rank == 0).then(|| cfg.out_dir.join("ort-profile")),
            collectives: opts.collectives.clone().filter(|_| ranks.collectives),
        };
        let resume_dir = match &opts.resume {
            Some(r) => resolve_resume(r, &cfg.out_dir)?,
            None => None,
        };
        let (state, progress) = match resume_dir {
            Some(dir) => {
                let (h, p) = read_checkpoint(&dir, &step.layout)?;
                if p.config.step_config()? != sc {
                    return Err(PretrainError::CheckpointMismatch { dir });
                }
                // The state is global (parameters, moments, BN statistics over the whole
                // batch), so a run may continue with another split into virtual ranks.
                if p.config.virtual_ranks != cfg.virtual_ranks {
                    log::info!(
                        "resuming with virtual_ranks = {} (the checkpoint ran with {})",
                        cfg.virtual_ranks,
                        p.config.virtual_ranks
                    );
                }
                log::info!(
                    "resuming from {} (epoch {}, step {} of it, global step {})",
                    dir.display(),
                    p.epoch,
                    p.step_in_epoch,
                    p.global_step
                );
                (h, p)
            }
            None => (
                init_state(&sc, &step.layout, cfg.seed),
                Progress {
                    epoch: 0,
                    step_in_epoch: 0,
                    global_step: 0,
                    seed: cfg.seed,
                    config: cfg.clone(),
                },
            ),
        };
        let dev = DeviceOptions {
            device: opts
                .collectives
                .as_ref()
                .map_or(cfg.device, |c| c.rank_device(cfg.device)),
            cuda_graph: cfg.cuda_graph,
            ..DeviceOptions::default()
        };
        let session = StepSession::new_on_device(step, &sopts, &dev, &state).map_err(|source| {
            PretrainError::Device {
                device: cfg.device.to_string(),
                source: Box::new(source),
            }
        })?;
        let shard = loader.shard();
        Ok(Trainer {
            cfg: cfg.clone(),
            loader,
            session,
            progress,
            step_config: sc,
            shard,
        })
    }

    /// Runs one step on a prepared loader batch.
    ///
    /// # Errors
    /// Data, schedule or engine errors.
    pub fn step(
        &mut self,
        view1: Vec<f32>,
        view2: Vec<f32>,
        local: Option<Vec<f32>>,
    ) -> Result<(Losses, Scalars), PretrainError> {
        let (b, s) = self.prepare(view1, view2, local)?;
        let l = self.run_prepared(&b, &s)?;
        Ok((l, s))
    }

    /// The next step's inputs (PatchMix images, targets, drop-path masks) and schedule values.
    /// `local` holds the multi-crop local crops, crop-major (see [`local_crops`]).
    ///
    /// # Errors
    /// Data or schedule errors.
    pub fn prepare(
        &self,
        view1: Vec<f32>,
        view2: Vec<f32>,
        local: Option<Vec<f32>>,
    ) -> Result<(PreparedBatch, Scalars), PretrainError> {
        prepare_step_inputs(
            &self.cfg,
            &self.step_config,
            self.shard,
            self.loader.steps_per_epoch() as u64,
            (self.progress.epoch, self.progress.global_step),
            (view1, view2, local),
        )
    }

    /// Runs one step on prepared inputs (without advancing `progress`).
    ///
    /// # Errors
    /// Engine errors.
    pub fn run_prepared(
        &mut self,
        b: &PreparedBatch,
        s: &Scalars,
    ) -> Result<Losses, PretrainError> {
        let x = b.inputs(s.lr as f32, s.wd as f32, s.tau as f32, s.mu as f32);
        Ok(self.session.run(&x)?)
    }

    /// The host copy of the state.
    ///
    /// # Errors
    /// Engine errors.
    pub fn host(&self) -> Result<HostState, PretrainError> {
        Ok(self.session.to_host()?)
    }

    fn checkpoint(&self) -> Result<PathBuf, PretrainError> {
        let h = self.host()?;
        let step = self.session.step_graph();
        write_checkpoint(
            &self.cfg.out_dir,
            &step.config,
            &step.layout,
            &h,
            &self.progress,
        )
    }
}

/// Runs (or resumes) a pretraining job.
///
/// # Errors
/// Any problem, as a one-line message; a NaN/Inf loss stops the run and keeps the last good
/// checkpoint.
pub fn run_pretrain(cfg: &PretrainConfig, opts: &RunOptions) -> Result<RunSummary, PretrainError> {
    let mut t = Trainer::new(cfg, opts)?;
    // In a data-parallel world every rank trains; rank 0 alone writes the run directory,
    // shows progress and evaluates (the state is the same on every rank).
    let lead = t.shard.rank() == 0;
    if t.shard.world() > 1 {
        log::info!(
            "rank {} of {}: {} images of each global batch of {}",
            t.shard.rank(),
            t.shard.world(),
            cfg.batch / t.shard.world(),
            cfg.batch
        );
    }
    let toml_text = toml::to_string(cfg)?;
    let config_path = cfg.out_dir.join("config.toml");
    if lead {
        log::info!("patchmix pretrain: resolved configuration\n{toml_text}");
        patchmix_export::atomic::write_atomic(&config_path, toml_text.as_bytes())
            .map_err(|e| PretrainError::io("write", &config_path, e))?;
    }
    let resumed = t.progress.global_step > 0;
    let mut metrics = if lead {
        Some(MetricsLog::open(
            &cfg.out_dir,
            resumed.then_some(t.progress.global_step),
        )?)
    } else {
        None
    };
    let eval = match &cfg.eval_data {
        Some(e) if lead => {
            let ev = open_dataset(e)?;
            super::eval_data::check_classes(t.loader.dataset(), &cfg.data, &ev, e)?;
            Some(ev)
        }
        _ => None,
    };
    let spe = t.loader.steps_per_epoch() as u64;
    let vit = cfg.vit()?;
    let mut last = None;
    let mut consecutive_skips = 0u32;
    let max_steps = cfg.max_steps.unwrap_or(u64::MAX);
    'epochs: while t.progress.epoch < cfg.epochs {
        let epoch = t.progress.epoch;
        let bar = if opts.progress && lead {
            let b = indicatif::ProgressBar::new(spe);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} {bar:25} {pos}/{len} {msg} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
            b.set_position(t.progress.step_in_epoch);
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut it = t
            .loader
            .epoch_from(epoch, t.progress.step_in_epoch as usize);
        let mut timer = Instant::now();
        // What the preparation thread needs, shared rather than cloned per step.
        let shared = Arc::new((t.cfg.clone(), t.step_config.clone(), t.shard));
        let mut next_batch = || -> Result<RawViews, PretrainError> {
            let batch = it.next().ok_or(PretrainError::LoaderEnded)??;
            Ok(raw_views(batch))
        };
        // The next step's PatchMix preparation runs on its own thread while this step runs
        // (it is a pure function of the seed and the step, so the results are unchanged).
        let mut pending: Option<
            std::thread::JoinHandle<Result<(PreparedBatch, Scalars), PretrainError>>,
        > = None;
        while t.progress.step_in_epoch < spe {
            if t.progress.global_step >= max_steps {
                bar.finish_and_clear();
                break 'epochs;
            }
            let (prepared, s) = match pending.take() {
                Some(h) => h.join().map_err(|_| PretrainError::PreparationPanicked)??,
                None => {
                    let (v1, v2, local) = next_batch()?;
                    t.prepare(v1, v2, local)?
                }
            };
            let next_step = t.progress.global_step + 1;
            if t.progress.step_in_epoch + 1 < spe && next_step < max_steps {
                let views = next_batch()?;
                let shared = Arc::clone(&shared);
                pending = Some(std::thread::spawn(move || {
                    let (c, sc, shard) = &*shared;
                    prepare_step_inputs(c, sc, *shard, spe, (epoch, next_step), views)
                }));
            }
            let scale_used = t.session.loss_scaler().map(|s| s.scale);
            let l = t.run_prepared(&prepared, &s)?;
            let secs = timer.elapsed().as_secs_f64();
            timer = Instant::now();
            // fp16: an overflow skips the update and halves the loss scale (PyTorch's
            // GradScaler); only a long run of them means the run cannot go on.
            consecutive_skips = if l.skipped { consecutive_skips + 1 } else { 0 };
            if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
                return Err(PretrainError::Fp16Overflow {
                    skips: consecutive_skips,
                    loss: l.total,
                    scale: t.session.loss_scaler().map_or(f32::NAN, |s| s.scale),
                    step: t.progress.global_step,
                });
            }
            if !l.total.is_finite() && !l.skipped {
                return Err(PretrainError::NonFiniteLoss {
                    loss: l.total,
                    step: t.progress.global_step,
                    epoch,
                    last_checkpoint: resolve_resume("auto", &cfg.out_dir).ok().flatten(),
                });
            }
            t.progress.global_step += 1;
            t.progress.step_in_epoch += 1;
            let ips = cfg.batch as f64 / secs.max(1e-9);
            let Some(metrics) = metrics.as_mut() else {
                last = Some(l);
                continue;
            };
            metrics.append(&MetricsRecord::Step(StepRecord {
                step: t.progress.global_step,
                epoch,
                loss: f64::from(l.total),
                src: f64::from(l.src),
                mix: f64::from(l.mix),
                mix2: f64::from(l.mix2),
                multi: Some(f64::from(l.multi)),
                multi_mix: Some(f64::from(l.multi_mix)),
                lr: s.lr,
                wd: s.wd,
                tau: s.tau,
                mu: s.mu,
                img_per_s: ips,
                skipped: Some(l.skipped),
                loss_scale: scale_used.map(f64::from),
            }))?;
            let multi = if cfg.local_crops > 0 {
                format!(" multi {:.3} multi-mix {:.3}", l.multi, l.multi_mix)
            } else {
                String::new()
            };
            bar.set_message(format!(
                "loss {:.4} (src {:.3} mix {:.3} mix2 {:.3}{multi}) {:.0} img/s",
                l.total, l.src, l.mix, l.mix2, ips
            ));
            bar.inc(1);
            last = Some(l);
        }
        bar.finish_and_clear();
        t.progress.epoch += 1;
        t.progress.step_in_epoch = 0;
        let done = t.progress.epoch;
        let mut knn_line = String::new();
        if let (Some(ev), true) = (
            &eval,
            cfg.knn_every > 0 && done % cfg.knn_every == 0 && done < cfg.epochs,
        ) {
            let h = t.host()?;
            let mut enc = ort_encoder(&vit, &encoder_weights(&t.session.step_graph().layout, &h))?;
            let r = knn_eval(&mut enc, cfg.img, t.loader.dataset(), ev, Some(10_000))?;
            if let Some(row) = r.row(20).or_else(|| r.rows.first()) {
                knn_line = format!(" | kNN@{} top-1 {:.2}%", row.k, row.top1);
                let record = KnnRecord::of_row(t.progress.global_step, done, row, false);
                if let Some(m) = metrics.as_mut() {
                    m.append(&MetricsRecord::Knn(record))?;
                }
            }
        }
        if let (Some(l), true) = (last, lead) {
            let multi = if cfg.local_crops > 0 {
                format!(", multi {:.4}, multi-mix {:.4}", l.multi, l.multi_mix)
            } else {
                String::new()
            };
            log::info!(
                "epoch {done}/{}: loss {:.4} (src {:.4}, mix {:.4}, mix2 {:.4}{multi}){knn_line}",
                cfg.epochs,
                l.total,
                l.src,
                l.mix,
                l.mix2
            );
        }
        if lead && done % cfg.checkpoint_every.max(1) == 0 && done < cfg.epochs {
            t.checkpoint()?;
        }
    }
    // The other ranks are done: the final checkpoint, export and evaluation are rank 0's.
    let Some(mut metrics) = metrics else {
        return Ok(RunSummary {
            run_dir: cfg.out_dir.clone(),
            global_step: t.progress.global_step,
            last,
            knn: None,
        });
    };
    // Final checkpoint, export and evaluation.
    let ck = t.checkpoint()?;
    log::info!("checkpoint: {}", ck.display());
    let h = t.host()?;
    let weights = encoder_weights(&t.session.step_graph().layout, &h);
    let wpath = cfg.out_dir.join("encoder.safetensors");
    patchmix_export::weights::save_safetensors(&wpath, &weights, None)?;
    let g = patchmix_export::vit::encoder_graph(&vit, &weights, false)?;
    let opath = cfg.out_dir.join("encoder.onnx");
    patchmix_export::onnx::write_onnx(&g, &opath)?;
    log::info!("exported {} and {}", opath.display(), wpath.display());
    let knn = match (&eval, t.progress.epoch >= cfg.epochs) {
        (Some(ev), true) => {
            let mut enc = ort_encoder(&vit, &weights)?;
            let r = knn_eval(&mut enc, cfg.img, t.loader.dataset(), ev, None)?;
            if let Some(row) = r.row(20) {
                let record = KnnRecord::of_row(t.progress.global_step, t.progress.epoch, row, true);
                metrics.append(&MetricsRecord::Knn(record))?;
            }
            log::info!(
                "kNN of the pretrained encoder on {}:\n{r}",
                cfg.eval_data.as_deref().unwrap_or("")
            );
            if cfg.compare_baselines {
                let random = patchmix_export::vit::init_weights(&vit, cfg.seed);
                let mut renc = ort_encoder(&vit, &random)?;
                let rr = knn_eval(&mut renc, cfg.img, t.loader.dataset(), ev, None)?;
                let pr = super::monitor::pixel_knn(t.loader.dataset(), ev, cfg.img)?;
                let top1 =
                    |r: &patchmix_export::knn::KnnReport| r.row(20).map_or(f64::NAN, |x| x.top1);
                let summary = Baselines {
                    pretrained: Some(top1(&r)),
                    random_init: Some(top1(&rr)),
                    raw_pixels: Some(top1(&pr)),
                };
                metrics.append(&MetricsRecord::Baselines(BaselinesRecord {
                    step: t.progress.global_step,
                    epoch: t.progress.epoch,
                    baselines: summary,
                }))?;
                let summary_path = cfg.out_dir.join("knn_summary.json");
                let summary_json =
                    serde_json::to_vec(&summary).map_err(|source| PretrainError::Json {
                        path: summary_path.clone(),
                        source,
                    })?;
                patchmix_export::atomic::write_atomic(&summary_path, &summary_json)
                    .map_err(|e| PretrainError::io("write", &summary_path, e))?;
                log::info!("kNN of a random-init encoder:\n{rr}\nkNN of raw pixels:\n{pr}");
                println!(
                    "kNN top-1 (k=20, T=0.07) on {}: pretrained {:.2}% | random init {:.2}% | raw pixels {:.2}%",
                    cfg.eval_data.as_deref().unwrap_or(""),
                    top1(&r),
                    top1(&rr),
                    top1(&pr)
                );
            }
            Some(r)
        }
        _ => None,
    };
    Ok(RunSummary {
        run_dir: cfg.out_dir.clone(),
        global_step: t.progress.global_step,
        last,
        knn,
    })
}
