//! `patchmix search`: the nearest gallery items of a query image.
//!
//! The query is embedded with `--model`, which must be the gallery's encoder (same SHA-256),
//! after the gallery's own preprocessing. The search is exact by default (blocked cosine
//! search over every item, the ground truth); `--ann` uses the gallery's HNSW graph
//! (memory-mapped) and re-scores what it finds exactly. Results are printed best first as a
//! table, or as `{"results": [{"id", "label", "score"}, …]}` with `--json`.

use anyhow::{Result, anyhow, bail};
use patchmix_export::index::{AnnLoad, Hit, SearchMethod};
use patchmix_export::runtime::Runtime;
use patchmix_train::query::{ImageLimits, decode_image, preprocess_batch};
use std::path::{Path, PathBuf};

use super::embed::{check_in_file, open_model};
use super::index::{fingerprint, load_gallery};

/// Arguments of `patchmix search`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gallery (from `patchmix index build`).
    #[arg(long, value_name = "FILE")]
    pub index: PathBuf,
    /// The gallery's ONNX encoder.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The query image (PNG or JPEG).
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Number of neighbours (at least 1, at most the gallery size).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Only items of this class (a class name, or a class number).
    #[arg(long, value_name = "L")]
    pub label: Option<String>,
    /// Search the HNSW graph instead of every item.
    #[arg(long)]
    pub ann: bool,
    /// With --ann: the candidate list size (ef; default: the gallery's).
    #[arg(long, requires = "ann", value_name = "EF")]
    pub ef: Option<usize>,
    /// The inference runtime: tract or ort.
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads and decodes a query image (format from its content, [`ImageLimits`] as the server's
/// defaults), with errors naming the file.
fn read_image(path: &Path) -> Result<image::RgbImage> {
    check_in_file(path, "--image", "give a PNG or JPEG file")?;
    let bytes = std::fs::read(path).map_err(|e| anyhow!("--image {}: {e}", path.display()))?;
    decode_image(&bytes, ImageLimits::default())
        .map_err(|e| anyhow!("--image {}: {e}", path.display()))
}

#[derive(serde::Serialize)]
struct Output<'a> {
    results: &'a [Hit],
}

/// Runs `patchmix search`.
///
/// # Errors
/// Bad flags, unreadable files, an encoder that is not the gallery's, a bad `--k` or `--label`.
pub fn run(args: Args) -> Result<()> {
    if args.k == 0 {
        bail!("--k 0: ask for at least 1 neighbour");
    }
    let gallery = load_gallery(
        &args.index,
        if args.ann {
            AnnLoad::View
        } else {
            AnnLoad::Skip
        },
    )?;
    let fp = fingerprint(&args.model)?;
    gallery
        .check_model(&fp, &args.model)
        .map_err(|e| anyhow!("--model: {e}"))?;
    let label = match &args.label {
        Some(l) => Some(
            gallery
                .resolve_label(l)
                .map_err(|e| anyhow!("--label: {e}"))?,
        ),
        None => None,
    };
    let image = read_image(&args.image)?;
    let mut encoder = open_model(&args.model, args.runtime)?;
    let pre = *gallery.preprocess();
    let c = pre.crop as usize;
    if encoder.image_size() != c {
        bail!(
            "--model {}: takes {s}×{s} images, the gallery was embedded at {c}×{c}",
            args.model.display(),
            s = encoder.image_size()
        );
    }
    let batch = preprocess_batch(&pre, std::slice::from_ref(&image))
        .map_err(|e| anyhow!("--image {}: {e}", args.image.display()))?;
    let query = encoder
        .embed(batch.view())
        .map_err(|e| anyhow!("--model {}: {e}", args.model.display()))?;
    let method = if args.ann {
        SearchMethod::Hnsw { expansion: args.ef }
    } else {
        SearchMethod::Exact
    };
    let hits = gallery
        .search(query.view(), args.k, label, method)
        .map_err(|e| match e {
            patchmix_export::index::GalleryError::InvalidK { .. } => anyhow!("--k: {e}"),
            other => anyhow!("--index {}: {other}", args.index.display()),
        })?;
    let hits = hits.into_iter().next().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string(&Output { results: &hits })?);
        return Ok(());
    }
    println!("{:>4}  {:>8}  {:<12}  id", "rank", "score", "label");
    for (i, h) in hits.iter().enumerate() {
        println!("{:>4}  {:>8.5}  {:<12}  {}", i + 1, h.score, h.label, h.id);
    }
    Ok(())
}
