//! `patchmix embed`: runs an exported encoder over a dataset and writes a kNN feature index
//! (L2-normalised features `[N, D]` plus labels, the safetensors layout of
//! [`patchmix_export::knn::FeatureIndex`]).
//!
//! Images are preprocessed as for evaluation ([`Preprocess`]): the shorter side is resized to
//! `--resize` (default: the model's image side), the centre `img × img` is cropped and the
//! pixels are normalised with the ImageNet mean/std. Batches are prepared on a second thread
//! while the encoder runs on the current one. A progress bar goes to stderr when it is a
//! terminal.
//!
//! This module also holds the helpers `patchmix knn` shares: dataset opening with `--limit`,
//! the batched feature extraction loop and output-path checks.

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, Array4, ArrayView4};
use patchmix_export::data::{Dataset, DatasetRef, Preprocess};
use patchmix_export::knn::FeatureIndex;
use patchmix_export::runtime::{Embed, Runtime, open_encoder};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

/// Arguments of `patchmix embed`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX encoder (from `patchmix export`): input `images` [batch, 3, H, W], first output
    /// the features [batch, D].
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The dataset: `PATH`, `PATH:train` or `PATH:test` (MNIST, CIFAR-10/100, ImageFolder or
    /// `synthetic:N,...`).
    #[arg(long, value_name = "DATASET")]
    pub data: String,
    /// Where to write the feature index (safetensors: `features` F32 [N, D], `labels` I64 [N]).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The inference runtime: tract (pure Rust) or ort (ONNX Runtime, CPU).
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Images per encoder call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Shorter side before the centre crop (default: the model's image side, i.e. a plain resize
    /// of square images).
    #[arg(long)]
    pub resize: Option<u32>,
    /// Use only N images, spread evenly over the dataset (image ⌊i·len/N⌋), for quick runs.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// The name of a runtime, as given on the command line.
pub(super) fn runtime_name(r: Runtime) -> &'static str {
    match r {
        Runtime::Tract => "tract",
        Runtime::Ort => "ort",
    }
}

/// Fails early (before any long computation) when `path` cannot be created: its folder is
/// missing or is not a folder, or `path` itself is a folder.
pub(super) fn check_out_path(path: &Path, flag: &str) -> Result<()> {
    if path.as_os_str().is_empty() {
        bail!("{flag}: the output path is empty");
    }
    if path.is_dir() {
        bail!(
            "{flag} {}: is a directory; give a file name",
            path.display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{flag} {}: the folder {} does not exist; create it first",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

/// Fails early when `path` is not a readable file.
pub(super) fn check_in_file(path: &Path, flag: &str, hint: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => bail!("{flag} {}: not a file; {hint}", path.display()),
        Err(e) => bail!("{flag} {}: {e}; {hint}", path.display()),
    }
}

/// Opens a dataset reference given on the command line; errors name the flag.
pub(super) fn open_dataset(spec: &str, flag: &str) -> Result<Dataset> {
    let r: DatasetRef = spec.parse().map_err(|e| anyhow!("{flag}: {e}"))?;
    let ds = Dataset::open(&r).map_err(|e| anyhow!("{flag} {spec}: {e}"))?;
    if ds.is_empty() {
        bail!("{flag} {spec}: the dataset has no images");
    }
    Ok(ds)
}

/// The images to use: all of them, or `limit` spread evenly (image ⌊i·len/limit⌋).
pub(super) fn select_indices(len: usize, limit: Option<usize>) -> Result<Vec<usize>> {
    match limit {
        None => Ok((0..len).collect()),
        Some(0) => bail!("--limit must be at least 1"),
        Some(n) if n >= len => Ok((0..len).collect()),
        Some(n) => Ok((0..n)
            .map(|i| usize::try_from(i as u128 * len as u128 / n as u128).unwrap_or(len - 1))
            .collect()),
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(super) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{bar:30}] {pos}/{len} images, {elapsed} elapsed, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Preprocesses `indices` of `ds` in batches (on a helper thread, one batch ahead) and maps
/// each `[B, 3, crop, crop]` batch to `[B, D]` features with `f`; returns `[N, D]`.
///
/// # Errors
/// A preprocessing error (naming the dataset), an error of `f`, or batches of different widths.
pub(super) fn extract_features<F>(
    ds: &Dataset,
    indices: &[usize],
    batch: usize,
    pre: Preprocess,
    what: &str,
    mut f: F,
) -> Result<Array2<f32>>
where
    F: FnMut(ArrayView4<'_, f32>) -> Result<Array2<f32>>,
{
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let bar = progress(indices.len(), what);
    let mut rows: Vec<f32> = Vec::new();
    let mut dim: Option<usize> = None;
    let result = std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Result<Array4<f32>>>(1);
        scope.spawn(move || {
            for chunk in indices.chunks(batch) {
                let b = pre
                    .batch(ds, chunk)
                    .map_err(|e| anyhow!("{what} dataset {}: {e}", ds.origin()));
                let stop = b.is_err();
                if tx.send(b).is_err() || stop {
                    return;
                }
            }
        });
        for b in rx {
            let images = b?;
            let n = images.shape()[0];
            let feats = f(images.view())?;
            if feats.nrows() != n {
                bail!(
                    "the encoder returned {} rows for a batch of {n} images",
                    feats.nrows()
                );
            }
            match dim {
                None => {
                    dim = Some(feats.ncols());
                    rows.reserve(indices.len() * feats.ncols());
                }
                Some(d) if d != feats.ncols() => {
                    bail!(
                        "the encoder returned {} features per image, then {d}",
                        feats.ncols()
                    )
                }
                Some(_) => {}
            }
            rows.extend(feats.iter().copied());
            bar.inc(n as u64);
        }
        Ok(())
        // Dropping `rx` on an early error makes the producer's next send fail, so it stops.
    });
    bar.finish_and_clear();
    result?;
    let d = dim.unwrap_or(0);
    Array2::from_shape_vec((indices.len(), d), rows)
        .map_err(|e| anyhow!("internal: feature matrix has the wrong size: {e}"))
}

/// Runs `encoder` over `indices` of `ds` with the default evaluation preprocessing at the
/// model's image side (`resize`: shorter side before the crop, default the image side).
pub(super) fn embed_dataset(
    encoder: &mut dyn Embed,
    ds: &Dataset,
    indices: &[usize],
    batch: usize,
    resize: Option<u32>,
    what: &str,
) -> Result<Array2<f32>> {
    let img = u32::try_from(encoder.image_size()).context("model image side too large")?;
    let pre = Preprocess::new(resize.unwrap_or(img), img);
    extract_features(ds, indices, batch, pre, what, |images| {
        encoder.embed(images).map_err(|e| anyhow!("{e}"))
    })
}

/// Opens `model` with `runtime`, with errors naming the file.
pub(super) fn open_model(model: &Path, runtime: Runtime) -> Result<Box<dyn Embed + Send>> {
    check_in_file(model, "--model", "export one with `patchmix export`")?;
    open_encoder(model, runtime).map_err(|e| {
        let (rt, msg) = (runtime_name(runtime), e.to_string());
        let msg = if msg.starts_with(rt) {
            msg
        } else {
            format!("{rt}: {msg}")
        };
        anyhow!("--model {}: cannot load it: {msg}", model.display())
    })
}

/// Labels of `indices`.
pub(super) fn labels_of(ds: &Dataset, indices: &[usize]) -> Vec<u32> {
    indices.iter().map(|&i| ds.labels()[i]).collect()
}

/// Runs `patchmix embed`.
///
/// # Errors
/// Unreadable model or dataset, an unwritable `--out`, or an inference failure.
pub fn run(args: Args) -> Result<()> {
    check_out_path(&args.out, "--out")?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let mut encoder = open_model(&args.model, args.runtime)?;
    let ds = open_dataset(&args.data, "--data")?;
    let indices = select_indices(ds.len(), args.limit)?;
    let start = Instant::now();
    let feats = embed_dataset(
        encoder.as_mut(),
        &ds,
        &indices,
        args.batch,
        args.resize,
        "embed",
    )?;
    let secs = start.elapsed().as_secs_f64();
    let dim = feats.ncols();
    let index = FeatureIndex::new(feats, labels_of(&ds, &indices), Some(ds.num_classes()))
        .map_err(|e| anyhow!("{}: {e}", args.model.display()))?
        .with_metadata("model", args.model.display().to_string())
        .with_metadata("dataset", args.data.clone())
        .with_metadata("runtime", runtime_name(args.runtime));
    index.save(&args.out).map_err(|e| anyhow!("--out: {e}"))?;
    eprintln!(
        "embedded {} images of {} in {secs:.1} s ({:.0} img/s, {}): D = {dim}, {} classes -> {}",
        indices.len(),
        args.data,
        indices.len() as f64 / secs.max(1e-9),
        runtime_name(args.runtime),
        ds.num_classes(),
        args.out.display()
    );
    Ok(())
}
