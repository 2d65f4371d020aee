//! `patchmix bench loader`: throughput of the whole host-side input pipeline of a training
//! step — the real [`Loader`] (decode and augment two views per image, plus the multi-crop
//! local crops when the step has them, on `--threads` workers, prefetching on its producer
//! thread) followed by the host work the pretraining loop does before `Session::run` (the
//! local crops stacked crop-major, the PatchMix mixing of both views and the soft targets and
//! drop-path masks, through [`prepare_step_inputs`]), on the same named configurations
//! as `bench step`, so that the two img/s can be put side by side.
//!
//! With `--finetune` it also times, in the same run and on the same images, the fine-tuning
//! data path ([`FinetuneLoader`]: the recipe's per-image training transform — crop, flip,
//! RandAugment, normalise, random erasing — on a pool of the same size, then Mixup/CutMix and
//! the soft targets of the batch) and reports its img/s beside the pretraining loader's.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use patchmix_export::data::{Dataset, DatasetRef};
use patchmix_train::augment::finetune::{FinetuneConfig, FinetuneTransform};
use patchmix_train::augment::mixup::{Mixup, MixupConfig};
use patchmix_train::augment::{AugmentConfig, MultiCrop, Pipeline};
use patchmix_train::data::{FinetuneLoader, Loader, LoaderConfig, Shard, epoch_order};
use patchmix_train::pretrain::PretrainConfig;
use patchmix_train::pretrain::run::{DEFAULT_GLOBAL_CROP, prepare_step_inputs, raw_views};
use patchmix_train::step::{LocalCrops, StepConfig};

/// The recipe whose data settings (minimum crop area, label smoothing, seed) the benchmark
/// uses: the CIFAR ViT-T/2 one.
const RECIPE: &str = "cifar10-vit-tiny";
/// At most this many images are held in memory (CIFAR-10's train split); longer runs go
/// through several epochs, as training does.
const MAX_IMAGES: usize = 50_000;
/// The loader's prefetch depth in the pretraining loop.
const PREFETCH: usize = 2;
/// Largest batch of the synthetic data.
const MAX_BATCH: usize = 65_536;
/// Upper bound of `--threads` values.
const MAX_THREADS: usize = 1024;

/// Measure the host-side input pipeline (loader + PatchMix preparation) in img/s.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The step configuration, as `bench step` takes it (image and patch size, batch and m
    /// are what matter here).
    #[command(flatten)]
    pub step: super::bench_step::NamedStep,
    /// Measured batches per thread count (after the warm-up batches).
    #[arg(long, default_value_t = 10)]
    pub batches: usize,
    /// Warm-up batches before the measured ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Loader worker threads, one value or a comma list such as `1,2,4` (each is measured);
    /// default: one per core.
    #[arg(long)]
    pub threads: Option<String>,
    /// A dataset (`PATH[:train]`, as `pretrain --data`) instead of the synthetic CIFAR-like
    /// 32×32 images held in memory.
    #[arg(long, value_name = "PATH")]
    pub data: Option<String>,
    /// Multi-crop: local crops per image (0: none, as the named configurations).
    #[arg(long, default_value_t = 0)]
    pub local_crops: usize,
    /// Multi-crop: side of the local crops in pixels (a multiple of the patch size).
    #[arg(long, default_value_t = 16)]
    pub local_size: usize,
    /// Also time the fine-tuning data path (the recipe's training transform of every image,
    /// then Mixup/CutMix of the batch) on the same images and thread counts.
    #[arg(long)]
    pub finetune: bool,
    /// Print one JSON object per thread count, one per line, instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The step configuration of `--config`, as `bench step` builds it.
fn step_config(a: &Args) -> anyhow::Result<StepConfig> {
    let mut c = a.step.config()?;
    if a.local_crops > 0 {
        c.local = Some(LocalCrops {
            count: a.local_crops,
            img: a.local_size,
        });
    }
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// The `--threads` list (default: one per core).
fn thread_counts(spec: Option<&str>) -> anyhow::Result<Vec<usize>> {
    let Some(spec) = spec else {
        return Ok(vec![
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ]);
    };
    let counts = spec
        .split(',')
        .map(|s| {
            let s = s.trim();
            match s.parse::<usize>() {
                Ok(0) => bail!("--threads: 0 is not a thread count; give values ≥ 1 such as `1,2,4`"),
                Ok(n) if n > MAX_THREADS => {
                    bail!("--threads: {n} is too many (at most {MAX_THREADS})")
                }
                Ok(n) => Ok(n),
                Err(_) => bail!(
                    "--threads: `{s}` is not a thread count; give a positive integer or a comma list such as `1,2,4`"
                ),
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(counts)
}

/// One thread count's measurement.
struct Measured {
    threads: usize,
    /// Wall time of the measured batches through the training loop's host path.
    wall_s: f64,
    /// Of it, time the training thread waited for the loader's next batch.
    loader_wait_s: f64,
    /// Of it, time in the step's host preparation (crop stacking, PatchMix, targets, masks).
    prepare_s: f64,
    /// The same number of batches from the loader alone, one after the other.
    loader_alone_s: f64,
}

/// Where a global batch index falls: (epoch, step in the epoch).
fn position(g: usize, steps_per_epoch: usize) -> (u64, usize) {
    ((g / steps_per_epoch) as u64, g % steps_per_epoch)
}

fn measure(
    a: &Args,
    cfg: &StepConfig,
    dataset: &Arc<Dataset>,
    pipeline: &Pipeline,
    recipe: &PretrainConfig,
    threads: usize,
) -> anyhow::Result<Measured> {
    let loader = Loader::new(
        Arc::clone(dataset),
        pipeline.clone(),
        LoaderConfig {
            batch_size: cfg.batch,
            seed: recipe.seed,
            threads,
            prefetch: PREFETCH,
        },
    )?;
    let spe = loader.steps_per_epoch();
    let total = a.warmup + a.batches;

    // The loader alone: batches prepared on the calling thread with the loader's pool.
    let mut loader_alone_s = 0.0;
    for g in 0..total {
        let (epoch, step) = position(g, spe);
        let t = Instant::now();
        black_box(loader.batch(epoch, step)?);
        if g >= a.warmup {
            loader_alone_s += t.elapsed().as_secs_f64();
        }
    }

    // The pretraining loop's host path: the prefetching epoch iterator, then what
    // `run_pretrain` does with each batch before `Session::run` (on its own thread there,
    // overlapping the previous step; here in line, to time it).
    let mut wall = Instant::now();
    let (mut loader_wait_s, mut prepare_s) = (0.0, 0.0);
    let mut it = loader.epoch(0);
    for g in 0..total {
        let (epoch, step) = position(g, spe);
        if step == 0 && g > 0 {
            it = loader.epoch(epoch);
        }
        if g == a.warmup {
            wall = Instant::now();
            (loader_wait_s, prepare_s) = (0.0, 0.0);
        }
        let t0 = Instant::now();
        let batch = it.next().context("the loader ended early")??;
        let t1 = Instant::now();
        let prepared = prepare_step_inputs(
            recipe,
            cfg,
            Shard::WHOLE,
            spe as u64,
            (epoch, g as u64),
            raw_views(batch),
        )
        .map_err(anyhow::Error::msg)?;
        drop(black_box(prepared));
        let t2 = Instant::now();
        loader_wait_s += (t1 - t0).as_secs_f64();
        prepare_s += (t2 - t1).as_secs_f64();
    }
    let wall_s = wall.elapsed().as_secs_f64();
    drop(it);
    Ok(Measured {
        threads,
        wall_s,
        loader_wait_s,
        prepare_s,
        loader_alone_s,
    })
}

/// Seconds of the measured batches through the fine-tuning data path on `threads` workers:
/// [`FinetuneLoader::batch_in`] (the recipe's per-sample transform in parallel, then
/// Mixup/CutMix and the soft targets of the batch).
fn measure_finetune(
    a: &Args,
    cfg: &StepConfig,
    dataset: &Arc<Dataset>,
    seed: u64,
    threads: usize,
) -> anyhow::Result<f64> {
    let transform = FinetuneTransform::new(FinetuneConfig::recipe(cfg.vit.img as u32))?;
    let loader = FinetuneLoader::new(
        Arc::clone(dataset),
        transform,
        Mixup::new(MixupConfig::default())?,
        LoaderConfig {
            batch_size: cfg.batch,
            seed,
            threads,
            prefetch: PREFETCH,
        },
    )?;
    let spe = loader.steps_per_epoch();
    let mut order = epoch_order(dataset.len(), seed, 0);
    let mut secs = 0.0;
    for g in 0..a.warmup + a.batches {
        let (epoch, step) = position(g, spe);
        if step == 0 && g > 0 {
            order = epoch_order(dataset.len(), seed, epoch);
        }
        let t = Instant::now();
        black_box(loader.batch_in(&order, epoch, step)?);
        if g >= a.warmup {
            secs += t.elapsed().as_secs_f64();
        }
    }
    Ok(secs)
}

/// Runs the benchmark.
///
/// # Errors
/// Bad flags, unreadable data or pipeline errors.
pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = step_config(&a)?;
    let threads = thread_counts(a.threads.as_deref())?;
    if a.batches == 0 {
        bail!("--batches must be at least 1");
    }
    if a.finetune && !cfg.batch.is_multiple_of(2) {
        bail!(
            "--finetune needs an even batch (Mixup pairs sample i with B − 1 − i), not {}",
            cfg.batch
        );
    }
    let recipe = PretrainConfig::preset(RECIPE).map_err(anyhow::Error::msg)?;
    let total = a.warmup + a.batches;
    let (dataset, data_name) = match &a.data {
        Some(spec) => {
            let r: DatasetRef = spec
                .parse()
                .map_err(|e| anyhow::anyhow!("--data `{spec}`: {e}"))?;
            let ds = Dataset::open(&r)?;
            let name = ds.to_string();
            (ds, name)
        }
        None => {
            if cfg.batch > MAX_BATCH {
                bail!(
                    "--batch {} is too large for the in-memory data (at most {MAX_BATCH})",
                    cfg.batch
                );
            }
            let n = cfg.batch * (MAX_IMAGES / cfg.batch).clamp(1, total);
            (
                Dataset::cifar_like(n)?,
                format!("synthetic CIFAR-like 32×32, {n} images in memory"),
            )
        }
    };
    let dataset = Arc::new(dataset);
    let mut aug = AugmentConfig::new(cfg.vit.img as u32, recipe.min_crop);
    if let Some(l) = cfg.local {
        aug.multi_crop = Some(MultiCrop {
            n_local: l.count,
            local_size: l.img as u32,
            global_crop: recipe.global_crop.unwrap_or(DEFAULT_GLOBAL_CROP),
        });
    }
    let pipeline = Pipeline::new(aug)?;
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let local_desc = cfg.local.map_or("no local crops".to_string(), |l| {
        format!("{} local crops of {} px", l.count, l.img)
    });
    if !a.json {
        println!(
            "bench loader: config {} (img {}, patch {}, B {}, m {}, {local_desc}); {data_name}; \
             {} measured batches after {} warm-up; {profile} build",
            a.step.config, cfg.vit.img, cfg.vit.patch, cfg.batch, cfg.mix, a.batches, a.warmup
        );
        println!(
            "{:>7}  {:>14}  {:>13}  {:>13}  {:>10}  {:>10}  {:>10}",
            "threads", "pipeline img/s", "loader img/s", "prepare img/s", "wall", "wait", "prepare"
        );
    }
    let imgs = (a.batches * cfg.batch) as f64;
    let mut rows = Vec::new();
    for &t in &threads {
        let m = measure(&a, &cfg, &dataset, &pipeline, &recipe, t)?;
        let finetune_s = if a.finetune {
            Some(measure_finetune(&a, &cfg, &dataset, recipe.seed, t)?)
        } else {
            None
        };
        let img_per_s = imgs / m.wall_s;
        let loader_img_per_s = imgs / m.loader_alone_s;
        let prepare_img_per_s = imgs / m.prepare_s;
        if a.json {
            let line = serde_json::json!({
                "config": a.step.config,
                "batch": cfg.batch,
                "img": cfg.vit.img,
                "patch": cfg.vit.patch,
                "mix": cfg.mix,
                "local_crops": cfg.local.map_or(0, |l| l.count),
                "local_size": cfg.local.map(|l| l.img),
                "data": data_name,
                "threads": m.threads,
                "batches": a.batches,
                "warmup": a.warmup,
                "profile": profile,
                "img_per_s": img_per_s,
                "wall_s": m.wall_s,
                "loader_wait_s": m.loader_wait_s,
                "prepare_s": m.prepare_s,
                "prepare_fraction": m.prepare_s / m.wall_s,
                "loader_alone_s": m.loader_alone_s,
                "loader_img_per_s": loader_img_per_s,
                "prepare_img_per_s": prepare_img_per_s,
            });
            let mut line = line;
            if let Some(f) = finetune_s {
                line["finetune_s"] = serde_json::json!(f);
                line["finetune_img_per_s"] = serde_json::json!(imgs / f);
                line["finetune_vs_loader"] = serde_json::json!((imgs / f) / loader_img_per_s);
            }
            println!("{line}");
        } else {
            println!(
                "{:>7}  {:>14.1}  {:>13.1}  {:>13.1}  {:>7.1} ms  {:>7.1} ms  {:>7.1} ms",
                m.threads,
                img_per_s,
                loader_img_per_s,
                prepare_img_per_s,
                m.wall_s * 1e3,
                m.loader_wait_s * 1e3,
                m.prepare_s * 1e3
            );
            if let Some(f) = finetune_s {
                println!(
                    "{:>7}  fine-tuning path: {:.1} img/s ({:.2}× the pretraining loader's), {:.1} ms",
                    "",
                    imgs / f,
                    (imgs / f) / loader_img_per_s,
                    f * 1e3
                );
            }
        }
        rows.push((m.threads, img_per_s));
    }
    if !a.json {
        println!(
            "pipeline: the prefetching loader plus the step's host preparation, timed in line \
             (wait: blocked on the loader; prepare: PatchMix mixing, targets{}); loader: the \
             loader alone. `pretrain` prepares the next step on its own thread while a step \
             runs, so a training step takes at least max(loader time, prepare time, step time).",
            if cfg.has_drop_path() {
                ", drop-path masks"
            } else {
                ""
            }
        );
        if let (Some(first), true) = (rows.first(), rows.len() > 1) {
            for (t, ips) in &rows[1..] {
                println!(
                    "  scaling: {t} threads give {:.2}× the pipeline img/s of {} thread{}",
                    ips / first.1,
                    first.0,
                    if first.0 == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_lists_parse_and_reject_zero() {
        assert_eq!(thread_counts(Some("1,2, 4")).unwrap(), vec![1, 2, 4]);
        assert!(thread_counts(None).unwrap()[0] >= 1);
        for bad in ["0", "1,0", "", "x", "1,,2", "-1", "5000"] {
            let e = thread_counts(Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("--threads"), "{bad}: {e}");
        }
    }

    #[test]
    fn epochs_roll_over() {
        assert_eq!(position(0, 3), (0, 0));
        assert_eq!(position(4, 3), (1, 1));
    }
}
