//! `patchmix knn`: DINO's weighted kNN classifier (cosine similarity, votes
//! `exp(sim / T)`) of a test split against a train split, for several `k`, printed as a
//! `k | top-1 | top-5` table or as JSON ([`KnnReport`]).
//!
//! The features come from one of three sources:
//! * `--model encoder.onnx --train DATASET --test DATASET`: the encoder is run on both splits
//!   (as `patchmix embed` does);
//! * `--train-features F --test-features F`: feature files written by `patchmix embed`;
//! * `--raw-pixels --train DATASET --test DATASET`: the flattened resized and cropped pixels,
//!   scaled to [0, 1] (or ImageNet-normalised with `--pixel-norm imagenet`): the baseline a
//!   learned encoder must beat. On `data/mnist10k` (8k/2k, 28×28) this gives 94.55% top-1 at
//!   k=20, the figure of its README.

use anyhow::{Result, anyhow, bail};
use ndarray::Array2;
use patchmix_export::data::preprocess::{IMAGENET_MEAN, IMAGENET_STD};
use patchmix_export::data::{Dataset, ImageSizes, Preprocess};
use patchmix_export::knn::{DEFAULT_KS, DINO_TEMPERATURE, FeatureIndex, KnnReport, knn_report};
use patchmix_export::runtime::Runtime;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::embed::{
    check_in_file, embed_dataset, extract_features, labels_of, open_dataset, open_model,
    runtime_name, select_indices,
};

/// How raw pixels are scaled in `--raw-pixels` mode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelNorm {
    /// `v/255`, the plain pixel intensities (the default; the usual raw-pixel baseline, e.g.
    /// the 94.55% top-1 at k=20 of `data/mnist10k/README.md`).
    Unit,
    /// `(v/255 − mean) / std` with the ImageNet mean/std, exactly what an encoder sees.
    Imagenet,
}

/// Arguments of `patchmix knn`.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("features_from")
        .required(true)
        .args(["model", "raw_pixels", "train_features"])
))]
pub struct Args {
    /// The ONNX encoder (from `patchmix export`); needs --train and --test.
    #[arg(long, value_name = "FILE", requires_all = ["train", "test"])]
    pub model: Option<PathBuf>,
    /// Use the flattened preprocessed pixels as features; needs --train and --test.
    #[arg(long, requires_all = ["train", "test"])]
    pub raw_pixels: bool,
    /// Pre-computed train features (from `patchmix embed`); needs --test-features.
    #[arg(long, value_name = "FILE", requires = "test_features", conflicts_with_all = ["train", "test"])]
    pub train_features: Option<PathBuf>,
    /// Pre-computed test features (from `patchmix embed`).
    #[arg(long, value_name = "FILE", requires = "train_features")]
    pub test_features: Option<PathBuf>,
    /// The bank: `PATH[:train|:test]` (MNIST, CIFAR, ImageFolder, `synthetic:...`).
    #[arg(long, value_name = "DATASET")]
    pub train: Option<String>,
    /// The queries: `PATH[:train|:test]`.
    #[arg(long, value_name = "DATASET")]
    pub test: Option<String>,
    /// The k values, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_KS)]
    pub k: Vec<usize>,
    /// The vote temperature T.
    #[arg(long, default_value_t = DINO_TEMPERATURE)]
    pub temperature: f32,
    /// The inference runtime for --model: tract or ort.
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Images per encoder call (or per preprocessing batch with --raw-pixels).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Shorter side before the centre crop (default: the image side).
    #[arg(long, conflicts_with = "train_features")]
    pub resize: Option<u32>,
    /// With --raw-pixels: the image side (default: the dataset's own size, e.g. 28 for MNIST).
    #[arg(long, requires = "raw_pixels")]
    pub img: Option<u32>,
    /// With --raw-pixels: how pixels are scaled before the cosine similarity.
    #[arg(long, value_enum, default_value_t = PixelNorm::Unit)]
    pub pixel_norm: PixelNorm,
    /// Use only N images of each split, spread evenly over it (image ⌊i·len/N⌋), for quick runs.
    #[arg(long, value_name = "N", conflicts_with = "train_features")]
    pub limit: Option<usize>,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Features and labels of one split.
struct Split {
    features: Array2<f32>,
    labels: Vec<u32>,
    num_classes: usize,
}

fn load_features(path: &Path, flag: &str) -> Result<Split> {
    check_in_file(path, flag, "write one with `patchmix embed`")?;
    let index = FeatureIndex::load(path).map_err(|e| anyhow!("{flag}: {e}"))?;
    Ok(Split {
        features: index.features().to_owned(),
        labels: index.labels().to_vec(),
        num_classes: index.num_classes(),
    })
}

/// A dataset opened from a flag, with the images to use.
struct Opened {
    ds: Dataset,
    indices: Vec<usize>,
    spec: String,
    flag: &'static str,
}

fn open_split(spec: &str, flag: &'static str, limit: Option<usize>) -> Result<Opened> {
    let ds = open_dataset(spec, flag)?;
    let indices = select_indices(ds.len(), limit)?;
    Ok(Opened {
        ds,
        indices,
        spec: spec.to_string(),
        flag,
    })
}

fn featurize_split(
    o: &Opened,
    mut featurize: impl FnMut(&Dataset, &[usize], &str) -> Result<Array2<f32>>,
) -> Result<Split> {
    let start = Instant::now();
    let features = featurize(&o.ds, &o.indices, o.flag.trim_start_matches('-'))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} {}: {} images -> D = {} in {secs:.1} s ({:.0} img/s)",
        o.flag,
        o.spec,
        o.indices.len(),
        features.ncols(),
        o.indices.len() as f64 / secs.max(1e-9)
    );
    Ok(Split {
        features,
        labels: labels_of(&o.ds, &o.indices),
        num_classes: o.ds.num_classes(),
    })
}

/// The raw-pixel preprocessing for a dataset.
fn pixel_preprocess(ds: &Dataset, args: &Args, flag: &str) -> Result<Preprocess> {
    let img = match args.img {
        Some(i) => i,
        None => match ds.common_image_size().map_err(|e| anyhow!("{flag}: {e}"))? {
            ImageSizes::Common((w, h)) => w.min(h),
            differ @ ImageSizes::Differ { .. } => bail!(
                "{flag} {}: {differ}; give --img for --raw-pixels",
                ds.origin()
            ),
        },
    };
    if img == 0 {
        bail!("--img must be at least 1");
    }
    let mut pre = Preprocess::new(args.resize.unwrap_or(img), img);
    match args.pixel_norm {
        PixelNorm::Imagenet => {
            pre.mean = IMAGENET_MEAN;
            pre.std = IMAGENET_STD;
        }
        PixelNorm::Unit => {
            pre.mean = [0.0; 3];
            pre.std = [1.0; 3];
        }
    }
    Ok(pre)
}

fn flatten(images: ndarray::ArrayView4<'_, f32>) -> Result<Array2<f32>> {
    let b = images.shape()[0];
    let n = images.len() / b.max(1);
    images
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, n))
        .map_err(|e| anyhow!("internal: cannot flatten a batch: {e}"))
}

fn raw_pixel_features(
    ds: &Dataset,
    indices: &[usize],
    what: &str,
    args: &Args,
    flag: &str,
) -> Result<Array2<f32>> {
    let pre = pixel_preprocess(ds, args, flag)?;
    extract_features(ds, indices, args.batch, pre, what, flatten)
}

fn split_from_args(args: &Args) -> Result<(Split, Split, String)> {
    let (train_spec, test_spec) = (args.train.as_deref(), args.test.as_deref());
    if let (Some(tf), Some(qf)) = (&args.train_features, &args.test_features) {
        let train = load_features(tf, "--train-features")?;
        let test = load_features(qf, "--test-features")?;
        return Ok((
            train,
            test,
            format!("features {} / {}", tf.display(), qf.display()),
        ));
    }
    let (Some(train_spec), Some(test_spec)) = (train_spec, test_spec) else {
        bail!("give --train DATASET and --test DATASET (or --train-features and --test-features)");
    };
    // Open both splits (and the model) before the long part, so that a typo fails at once.
    let train_set = open_split(train_spec, "--train", args.limit)?;
    let test_set = open_split(test_spec, "--test", args.limit)?;
    if let Some(model) = &args.model {
        let mut encoder = open_model(model, args.runtime)?;
        let mut run = |ds: &Dataset, idx: &[usize], what: &str| {
            embed_dataset(encoder.as_mut(), ds, idx, args.batch, args.resize, what)
        };
        let train = featurize_split(&train_set, &mut run)?;
        let test = featurize_split(&test_set, &mut run)?;
        let what = format!("model {} ({})", model.display(), runtime_name(args.runtime));
        return Ok((train, test, what));
    }
    if args.raw_pixels {
        let train = featurize_split(&train_set, |ds, idx, what| {
            raw_pixel_features(ds, idx, what, args, "--train")
        })?;
        let test = featurize_split(&test_set, |ds, idx, what| {
            raw_pixel_features(ds, idx, what, args, "--test")
        })?;
        let norm = match args.pixel_norm {
            PixelNorm::Imagenet => "ImageNet-normalised",
            PixelNorm::Unit => "unit-scaled",
        };
        return Ok((train, test, format!("raw pixels ({norm})")));
    }
    bail!("give --model FILE, --raw-pixels or --train-features/--test-features")
}

/// Computes the report (features already extracted).
fn report(train: Split, test: Split, args: &Args) -> Result<KnnReport> {
    if train.features.ncols() != test.features.ncols() {
        bail!(
            "train features have D = {} but test features D = {}; they must come from the same encoder",
            train.features.ncols(),
            test.features.ncols()
        );
    }
    let classes = train.num_classes.max(test.num_classes);
    let index = FeatureIndex::new(train.features, train.labels, Some(classes))
        .map_err(|e| anyhow!("train features: {e}"))?;
    knn_report(
        &index,
        test.features.view(),
        &test.labels,
        &args.k,
        args.temperature,
    )
    .map_err(|e| anyhow!("{e}"))
}

/// Runs `patchmix knn`.
///
/// # Errors
/// Bad flags, unreadable model, dataset or feature files, or features that do not fit together.
pub fn run(args: Args) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.k.is_empty() || args.k.contains(&0) {
        bail!(
            "--k {:?}: give at least one k, each at least 1 (e.g. --k 10,20,100,200)",
            args.k
        );
    }
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!(
            "--temperature {}: must be positive and finite (DINO uses 0.07)",
            args.temperature
        );
    }
    let (train, test, what) = split_from_args(&args)?;
    let start = Instant::now();
    let report = report(train, test, &args)?;
    eprintln!(
        "kNN on {what}: search and vote in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    if args.json {
        println!("{}", report.to_json_pretty());
    } else {
        print!("{report}");
    }
    Ok(())
}
