//! `patchmix linear`: linear evaluation of a frozen ONNX encoder (MoCo v3 / PatchMix protocol).
//!
//! A linear classifier `[D → C]` with bias is trained on the encoder's raw CLS features (no
//! feature normalisation, no BatchNorm: MoCo v3's ViT linear evaluation) with softmax
//! cross-entropy and SGD (momentum 0.9, weight decay 0, lr `--lr · --batch / 256` on a
//! per-epoch cosine schedule). See [`patchmix_train::linear`].
//!
//! Two modes:
//! * `--fast` (the default): both splits are embedded once with the evaluation preprocessing
//!   (resize the shorter side to `--resize`, default the model's image side, centre crop, ImageNet
//!   mean/std), optionally cached in `--cache DIR`, then the probe trains on the fixed features
//!   for `--epochs` (default 100);
//! * `--augment`: the training images are re-embedded every epoch after RandomResizedCrop
//!   (scale 0.08–1) + horizontal flip, as the original; slow, for small data (default 90 epochs,
//!   MoCo v3's schedule length). The test split is embedded once as in fast mode.
//!
//! `--save-head FILE` writes the final probe as a timm classifier head (`head.weight` [C, D],
//! `head.bias` [C], the class names in the metadata): the probe sits on the raw CLS features,
//! exactly what `patchmix export --head FILE` puts a `Linear(D, C)` on, so the exported
//! `classifier.onnx` scores what the probe scored.
//!
//! `--raw-pixels` replaces the encoder by the flattened preprocessed pixels (the baseline), and
//! `--limit N` uses N images of each split spread evenly over it (as `patchmix knn`).

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, ArrayView4};
use patchmix_export::classifier::{CLASSES_KEY, ClassifierHead};
use patchmix_export::data::{Dataset, ImageSizes, Preprocess};
use patchmix_export::runtime::{Embed, Runtime};
use patchmix_export::weights::{Metadata, save_safetensors};
use patchmix_train::linear::{
    EpochStats, FeatureCache, LinearProbe, ProbeConfig, ProbeReport, ProbeTrainer, TrainAugment,
    check_features, evaluate, train_probe_keeping,
};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use super::embed::{
    extract_features, labels_of, open_dataset, open_model, runtime_name, select_indices,
};

/// Arguments of `patchmix linear`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("features_from").required(true).args(["model", "raw_pixels"])))]
pub struct Args {
    /// The frozen ONNX encoder (from `patchmix export` or `patchmix pretrain`).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Probe the flattened preprocessed pixels instead of an encoder (the baseline).
    #[arg(long)]
    pub raw_pixels: bool,
    /// Training split: `PATH[:train|:test]` (MNIST, CIFAR, ImageFolder, `synthetic:...`).
    #[arg(long, value_name = "DATASET")]
    pub train: String,
    /// Test split: `PATH[:train|:test]`.
    #[arg(long, value_name = "DATASET")]
    pub test: String,
    /// Epochs (default: 100 with --fast, 90 with --augment).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size of the probe.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Base learning rate; the rate used is lr · batch / 256.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub wd: f64,
    /// Embed once without augmentation and train on the cached features (default).
    #[arg(long, conflicts_with = "augment")]
    pub fast: bool,
    /// Re-embed RandomResizedCrop + flip augmented training images every epoch (slow).
    #[arg(long)]
    pub augment: bool,
    /// Inference runtime: tract or ort.
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Seed of the probe's initialisation, the shuffles and the augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shorter side before the centre crop at evaluation (default: the image side).
    #[arg(long)]
    pub resize: Option<u32>,
    /// With --raw-pixels: the image side (default: the dataset's own size).
    #[arg(long)]
    pub img: Option<u32>,
    /// Images per encoder call.
    #[arg(long, default_value_t = 256)]
    pub embed_batch: usize,
    /// Use only N images of each split, spread evenly over it (image ⌊i·len/N⌋).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Cache the fixed features (test split; train split with --fast) in this folder.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the final probe as a timm head (`head.weight` [C, D], `head.bias` [C]) for
    /// `patchmix export --head` (safetensors, written atomically).
    #[arg(long, value_name = "FILE", requires = "model")]
    pub save_head: Option<PathBuf>,
}

/// Writes `probe` as a timm classifier head with the class names in the metadata.
fn save_head(
    path: &std::path::Path,
    probe: &LinearProbe,
    names: &[String],
    model: &str,
) -> Result<()> {
    let head = ClassifierHead::new(probe.weight.t().to_owned(), probe.bias.clone())
        .map_err(|e| anyhow!("--save-head {}: {e}", path.display()))?;
    let meta = Metadata::from([
        (
            CLASSES_KEY.to_string(),
            serde_json::to_string(names).context("internal: class names")?,
        ),
        (
            "patchmix.head.source".to_string(),
            format!("linear probe on {model}"),
        ),
    ]);
    save_safetensors(path, &head.to_state_dict(), Some(&meta))
        .map_err(|e| anyhow!("--save-head: {e}"))?;
    eprintln!(
        "wrote {}: head.weight [{}, {}] (the final probe)",
        path.display(),
        head.classes(),
        head.dim()
    );
    Ok(())
}

/// What turns a preprocessed batch into features.
enum Featurizer {
    Model(Box<dyn Embed + Send>),
    Pixels,
}

impl Featurizer {
    fn run(&mut self, images: ArrayView4<'_, f32>) -> Result<Array2<f32>> {
        match self {
            Featurizer::Model(m) => m.embed(images).map_err(|e| anyhow!("{e}")),
            Featurizer::Pixels => {
                let b = images.shape()[0];
                let n = images.len() / b.max(1);
                images
                    .as_standard_layout()
                    .into_owned()
                    .into_shape_with_order((b, n))
                    .map_err(|e| anyhow!("internal: cannot flatten a batch: {e}"))
            }
        }
    }
}

/// One split's features.
struct Split {
    features: Array2<f32>,
    labels: Vec<u32>,
}

/// The JSON report.
#[derive(Serialize)]
struct JsonReport<'a> {
    features: &'a str,
    mode: &'static str,
    train: &'a str,
    test: &'a str,
    train_images: usize,
    test_images: usize,
    dim: usize,
    classes: usize,
    config: ProbeConfig,
    lr: f64,
    seconds_features: f64,
    seconds_training: f64,
    #[serde(flatten)]
    report: &'a ProbeReport,
}

fn validate(args: &Args) -> Result<ProbeConfig> {
    let cfg = ProbeConfig {
        epochs: args.epochs.unwrap_or(if args.augment { 90 } else { 100 }),
        batch: args.batch,
        base_lr: args.lr,
        momentum: args.momentum,
        weight_decay: args.wd,
        seed: args.seed,
    };
    cfg.validate().map_err(|e| anyhow!("{e}"))?;
    if args.embed_batch == 0 {
        bail!("--embed-batch must be at least 1");
    }
    if args.resize == Some(0) || args.img == Some(0) {
        bail!("--resize and --img must be at least 1");
    }
    Ok(cfg)
}

/// Checks that train and test label the same classes.
fn check_classes(train: &Dataset, test: &Dataset, args: &Args) -> Result<()> {
    if train.num_classes() != test.num_classes() {
        bail!(
            "classes mismatch: --train {} has {} classes but --test {} has {}; both splits must label the same classes",
            args.train,
            train.num_classes(),
            args.test,
            test.num_classes()
        );
    }
    if train.class_names() != test.class_names() {
        let (a, b) = train
            .class_names()
            .iter()
            .zip(test.class_names())
            .find(|(a, b)| a != b)
            .map_or(("?", "?"), |(a, b)| (a.as_str(), b.as_str()));
        bail!(
            "classes mismatch: --train {} and --test {} name their classes differently (`{a}` vs `{b}`)",
            args.train,
            args.test
        );
    }
    Ok(())
}

/// The image side and preprocessing of the fixed (evaluation) features.
fn eval_preprocess(feat: &Featurizer, train: &Dataset, args: &Args) -> Result<Preprocess> {
    let img = match (feat, args.img) {
        (Featurizer::Model(m), _) => {
            u32::try_from(m.image_size()).context("the model's image side is too large")?
        }
        (Featurizer::Pixels, Some(i)) => i,
        (Featurizer::Pixels, None) => match train
            .common_image_size()
            .map_err(|e| anyhow!("--train {}: {e}", args.train))?
        {
            ImageSizes::Common((w, h)) => w.min(h),
            differ @ ImageSizes::Differ { .. } => bail!(
                "--train {}: {differ}; give --img for --raw-pixels",
                args.train
            ),
        },
    };
    Ok(Preprocess::new(args.resize.unwrap_or(img), img))
}

/// Describes how a split's fixed features are computed (the cache key).
fn describe(args: &Args, spec: &str, indices: &[usize], pre: &Preprocess) -> Result<String> {
    let source = match &args.model {
        Some(m) => {
            let meta = std::fs::metadata(m).with_context(|| format!("--model {}", m.display()))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let canon = m.canonicalize().unwrap_or_else(|_| m.clone());
            format!(
                "model {} ({} bytes, mtime {mtime}) via {}",
                canon.display(),
                meta.len(),
                runtime_name(args.runtime)
            )
        }
        None => "raw pixels".into(),
    };
    let idx_hash = indices.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &i| {
        (h ^ i as u64).wrapping_mul(0x0100_0000_01b3)
    });
    Ok(format!(
        "{source}; data {spec}; {} images (hash {idx_hash:016x}); {pre:?}",
        indices.len()
    ))
}

/// How fixed (evaluation) features are made: flags, preprocessing and the optional cache.
struct Fixed<'a> {
    args: &'a Args,
    pre: Preprocess,
    cache: Option<&'a FeatureCache>,
}

impl Fixed<'_> {
    /// Fixed features of one split (`what`: train or test), from the cache or computed (and
    /// then cached).
    fn features(
        &self,
        feat: &mut Featurizer,
        ds: &Dataset,
        spec: &str,
        what: &str,
        indices: &[usize],
    ) -> Result<Split> {
        let (args, pre, cache) = (self.args, self.pre, self.cache);
        let description = describe(args, spec, indices, &pre)?;
        if let Some(c) = cache
            && let Some((features, labels)) = c.load(&description).map_err(|e| anyhow!("{e}"))?
        {
            eprintln!(
                "{what}: {} cached features (D = {}) from {}",
                features.nrows(),
                features.ncols(),
                c.path_for(&description).display()
            );
            return Ok(Split { features, labels });
        }
        let start = Instant::now();
        let features = extract_features(ds, indices, args.embed_batch, pre, what, |b| feat.run(b))
            .with_context(|| format!("--{what} {spec}"))?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{what}: embedded {} images -> D = {} in {secs:.1} s ({:.0} img/s)",
            indices.len(),
            features.ncols(),
            indices.len() as f64 / secs.max(1e-9)
        );
        let labels = labels_of(ds, indices);
        if let Some(c) = cache {
            let p = c
                .store(&description, &features, &labels)
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!("{what}: cached in {}", p.display());
        }
        Ok(Split { features, labels })
    }
}

/// Augmented training features of one epoch (image order = `indices`).
fn augmented_features(
    feat: &mut Featurizer,
    ds: &Dataset,
    indices: &[usize],
    aug: &TrainAugment,
    args: &Args,
    epoch: usize,
) -> Result<Array2<f32>> {
    let mut rows: Vec<f32> = Vec::new();
    let mut dim = 0;
    for chunk in indices.chunks(args.embed_batch) {
        let images = aug
            .batch(ds, chunk, args.seed, epoch as u64)
            .map_err(|e| anyhow!("--train {}: {e}", args.train))?;
        let f = feat.run(images.view())?;
        if f.nrows() != chunk.len() || (dim != 0 && f.ncols() != dim) {
            bail!(
                "the encoder returned [{}, {}] features for {} images",
                f.nrows(),
                f.ncols(),
                chunk.len()
            );
        }
        dim = f.ncols();
        rows.extend(f.iter().copied());
    }
    Array2::from_shape_vec((indices.len(), dim), rows)
        .map_err(|e| anyhow!("internal: augmented feature matrix: {e}"))
}

fn epoch_bar(epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("linear [{bar:30}] epoch {pos}/{len} {msg} (eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Whether epoch `e` (1-based) of `n` is shown in the log and the table: all of them up to 20,
/// otherwise the first, every ⌈n/10⌉-th and the last.
fn shown(e: usize, n: usize) -> bool {
    n <= 20 || e == 1 || e == n || e.is_multiple_of(n.div_ceil(10))
}

fn epoch_line(s: &EpochStats) -> String {
    format!(
        "{:>6} | {:>9.3e} | {:>10.4} | {:>10.2}% | {:>9.2}% | {:>9.2}%",
        s.epoch, s.lr, s.train_loss, s.train_top1, s.test_top1, s.test_top5
    )
}

const HEADER: &str = " epoch |        lr | train loss | train top-1 | test top-1 | test top-5";

/// Logs an epoch to stderr: above the progress bar when it is visible, as a line otherwise.
fn log_epoch(bar: &ProgressBar, s: &EpochStats, epochs: usize) {
    bar.set_message(format!(
        "loss {:.4} test top-1 {:.2}%",
        s.train_loss, s.test_top1
    ));
    bar.inc(1);
    if shown(s.epoch, epochs) {
        if bar.is_hidden() {
            eprintln!("{}", epoch_line(s));
        } else {
            bar.println(epoch_line(s));
        }
    }
}

/// Runs `patchmix linear`.
///
/// # Errors
/// Bad flags, a missing or unloadable model, an unreadable dataset, train and test splits with
/// different classes, an unusable cache, non-finite features or a diverging loss.
pub fn run(args: Args) -> Result<()> {
    let cfg = validate(&args)?;
    if let Some(p) = &args.save_head {
        super::embed::check_out_path(p, "--save-head")?;
    }
    let mut feat = match &args.model {
        Some(m) => Featurizer::Model(open_model(m, args.runtime)?),
        None => Featurizer::Pixels,
    };
    let train_ds = open_dataset(&args.train, "--train")?;
    let test_ds = open_dataset(&args.test, "--test")?;
    check_classes(&train_ds, &test_ds, &args)?;
    let classes = train_ds.num_classes();
    let train_idx = select_indices(train_ds.len(), args.limit)?;
    let test_idx = select_indices(test_ds.len(), args.limit)?;
    let pre = eval_preprocess(&feat, &train_ds, &args)?;
    let cache = args
        .cache
        .as_deref()
        .map(FeatureCache::new)
        .transpose()
        .map_err(|e| anyhow!("--cache: {e}"))?;
    let what = match &args.model {
        Some(m) => format!("model {} ({})", m.display(), runtime_name(args.runtime)),
        None => "raw pixels (ImageNet-normalised)".into(),
    };

    let t0 = Instant::now();
    let fixed = Fixed {
        args: &args,
        pre,
        cache: cache.as_ref(),
    };
    let test = fixed.features(&mut feat, &test_ds, &args.test, "test", &test_idx)?;
    check_features(test.features.view(), &test.labels, classes, "test")
        .map_err(|e| anyhow!("{e}"))?;
    let dim = test.features.ncols();
    let mut seconds_features = t0.elapsed().as_secs_f64();

    let bar;
    let t1;
    let (report, probe) = if args.augment {
        let aug = TrainAugment::new(pre.crop);
        let labels = labels_of(&train_ds, &train_idx);
        let mut trainer = ProbeTrainer::new(dim, classes, cfg).map_err(|e| anyhow!("{e}"))?;
        t1 = Instant::now();
        bar = epoch_bar(cfg.epochs);
        if !bar.is_hidden() {
            bar.println(HEADER);
        } else {
            eprintln!("{HEADER}");
        }
        let mut epochs = Vec::with_capacity(cfg.epochs);
        for e in 0..cfg.epochs {
            let feats = augmented_features(&mut feat, &train_ds, &train_idx, &aug, &args, e)?;
            check_features(feats.view(), &labels, classes, "train").map_err(|e| anyhow!("{e}"))?;
            if feats.ncols() != dim {
                bail!(
                    "train features have D = {} but test features D = {dim}",
                    feats.ncols()
                );
            }
            let t = trainer
                .train_epoch(feats.view(), &labels, e)
                .map_err(|e| anyhow!("{e}"))?;
            let acc = evaluate(trainer.probe(), test.features.view(), &test.labels)
                .map_err(|e| anyhow!("{e}"))?;
            let s = EpochStats::of_epoch(e, &t, &acc);
            log_epoch(&bar, &s, cfg.epochs);
            epochs.push(s);
        }
        (
            ProbeReport::from_epochs(epochs).map_err(|e| anyhow!("{e}"))?,
            trainer.probe().clone(),
        )
    } else {
        let t = Instant::now();
        let train = fixed.features(&mut feat, &train_ds, &args.train, "train", &train_idx)?;
        seconds_features += t.elapsed().as_secs_f64();
        t1 = Instant::now();
        bar = epoch_bar(cfg.epochs);
        if !bar.is_hidden() {
            bar.println(HEADER);
        } else {
            eprintln!("{HEADER}");
        }
        train_probe_keeping(
            train.features.view(),
            &train.labels,
            test.features.view(),
            &test.labels,
            classes,
            cfg,
            |s| log_epoch(&bar, s, cfg.epochs),
        )
        .map_err(|e| anyhow!("{e}"))?
    };
    bar.finish_and_clear();
    let seconds_training = t1.elapsed().as_secs_f64();
    let mode = if args.augment { "augment" } else { "fast" };
    if let Some(p) = &args.save_head {
        save_head(p, &probe, train_ds.class_names(), &what)?;
    }

    if args.json {
        let j = JsonReport {
            features: &what,
            mode,
            train: &args.train,
            test: &args.test,
            train_images: train_idx.len(),
            test_images: test_idx.len(),
            dim,
            classes,
            config: cfg,
            lr: cfg.lr(),
            seconds_features,
            seconds_training,
            report: &report,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&j).context("internal: cannot serialise the report")?
        );
        return Ok(());
    }
    println!(
        "linear probe on {what}: D = {dim}, {classes} classes, {} train / {} test images ({mode} mode)",
        train_idx.len(),
        test_idx.len()
    );
    println!(
        "SGD: {} epochs, batch {}, lr {} (= {} · {}/256, cosine), momentum {}, wd {}; features {seconds_features:.1} s, training {seconds_training:.1} s",
        cfg.epochs,
        cfg.batch,
        cfg.lr(),
        cfg.base_lr,
        cfg.batch,
        cfg.momentum,
        cfg.weight_decay
    );
    println!("{HEADER}");
    for s in report.epochs.iter().filter(|s| shown(s.epoch, cfg.epochs)) {
        println!("{}", epoch_line(s));
    }
    println!(
        "final: test top-1 {:.2}%, top-5 {:.2}% (best top-1 {:.2}% at epoch {})",
        report.last.test_top1, report.last.test_top5, report.best.test_top1, report.best.epoch
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_epochs() {
        assert!((1..=20).all(|e| shown(e, 20)));
        let s: Vec<usize> = (1..=100).filter(|&e| shown(e, 100)).collect();
        assert_eq!(s, vec![1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        let s: Vec<usize> = (1..=25).filter(|&e| shown(e, 25)).collect();
        assert_eq!(s, vec![1, 3, 6, 9, 12, 15, 18, 21, 24, 25]);
    }
}
