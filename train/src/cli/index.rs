//! `patchmix index build|add|remove|info`: the gallery index a retrieval service searches
//! ([`patchmix_export::index::Gallery`], a `.pmx` file).
//!
//! * `build` embeds a dataset with an encoder (as `patchmix embed` does) and writes the
//!   features, labels, an id per image (its file path for an ImageFolder, its decimal index
//!   otherwise, after `--id-prefix`), the encoder's SHA-256 and the preprocessing; with
//!   `--ann hnsw` also an HNSW graph beside it;
//! * `add` embeds more images with the same encoder (checked by its SHA-256) and appends them;
//!   ids must stay unique;
//! * `remove` deletes items by id; an unknown id is an error and nothing is removed;
//! * `info` prints what a gallery holds.
//!
//! Every write is atomic: a crash or `kill -9` leaves the old gallery or the new one.

use anyhow::{Result, anyhow, bail};
use ndarray::Array2;
use patchmix_export::data::{Dataset, Preprocess};
use patchmix_export::index::{
    AnnLoad, Gallery, GalleryError, HnswParams, ModelFingerprint, Quantization,
};
use patchmix_export::runtime::{Embed, Runtime};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::embed::{
    check_in_file, check_out_path, extract_features, open_dataset, open_model, runtime_name,
    select_indices,
};

/// Arguments of `patchmix index`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to do with the gallery.
    #[command(subcommand)]
    pub command: IndexCommand,
}

/// The gallery operations.
#[derive(clap::Subcommand, Debug)]
pub enum IndexCommand {
    /// Embed a dataset and write a gallery index (.pmx).
    Build(BuildArgs),
    /// Embed more images with the gallery's encoder and add them.
    Add(AddArgs),
    /// Remove items by id.
    Remove(RemoveArgs),
    /// Print what a gallery holds.
    Info(InfoArgs),
}

/// The approximate-search structures `--ann` can build.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnKind {
    /// An HNSW graph (usearch), written beside the gallery.
    Hnsw,
}

/// How images are embedded (shared by `build` and `add`).
#[derive(clap::Args, Debug)]
pub struct EmbedFlags {
    /// The ONNX encoder (from `patchmix export`).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The images: `PATH`, `PATH:train` or `PATH:test` (MNIST, CIFAR-10/100, ImageFolder or
    /// `synthetic:N,...`).
    #[arg(long, value_name = "DATASET")]
    pub data: String,
    /// The inference runtime: tract (pure Rust) or ort (ONNX Runtime, CPU).
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Images per encoder call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Use only N images, spread evenly over the dataset (image ⌊i·len/N⌋).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Put this before every id (e.g. `test-` to add MNIST's test split, whose ids 0, 1, …
    /// would collide with the train split's).
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub id_prefix: String,
}

/// Arguments of `patchmix index build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub embed: EmbedFlags,
    /// Where to write the gallery (.pmx).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Shorter side before the centre crop (default: the model's image side). Stored in the
    /// gallery: queries and added images are preprocessed the same way.
    #[arg(long)]
    pub resize: Option<u32>,
    /// Also build an approximate-search structure.
    #[arg(long, value_enum)]
    pub ann: Option<AnnKind>,
    /// HNSW: edges per node (M).
    #[arg(long, default_value_t = HnswParams::default().connectivity, requires = "ann")]
    pub connectivity: usize,
    /// HNSW: candidate list size while inserting (ef_construction).
    #[arg(long, default_value_t = HnswParams::default().expansion_add, requires = "ann")]
    pub expansion_add: usize,
    /// HNSW: default candidate list size while searching (ef).
    #[arg(long, default_value_t = HnswParams::default().expansion_search, requires = "ann")]
    pub expansion_search: usize,
    /// HNSW: vector storage in the graph (f32, f16, i8).
    #[arg(long, default_value = "f32", requires = "ann")]
    pub quantization: Quantization,
}

/// Arguments of `patchmix index add`.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The gallery to add to (rewritten atomically).
    #[arg(long, value_name = "FILE")]
    pub index: PathBuf,
    #[command(flatten)]
    pub embed: EmbedFlags,
}

/// Arguments of `patchmix index remove`.
#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// The gallery to remove from (rewritten atomically).
    #[arg(long, value_name = "FILE")]
    pub index: PathBuf,
    /// An id to remove (repeat the flag for several).
    #[arg(long = "id", value_name = "ID", required = true)]
    pub ids: Vec<String>,
}

/// Arguments of `patchmix index info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// The gallery.
    #[arg(long, value_name = "FILE")]
    pub index: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `patchmix index <command>`.
///
/// # Errors
/// Bad flags, unreadable files, an encoder that is not the gallery's, duplicate or unknown ids.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        IndexCommand::Build(a) => build(a),
        IndexCommand::Add(a) => add(a),
        IndexCommand::Remove(a) => remove(a),
        IndexCommand::Info(a) => info(a),
    }
}

/// The model's fingerprint, with the error naming `--model`.
pub(super) fn fingerprint(model: &Path) -> Result<ModelFingerprint> {
    check_in_file(model, "--model", "export one with `patchmix export`")?;
    ModelFingerprint::of_file(model).map_err(|e| anyhow!("--model: {e}"))
}

/// Loads a gallery, with errors naming `--index`.
pub(super) fn load_gallery(path: &Path, ann: AnnLoad) -> Result<Gallery> {
    check_in_file(path, "--index", "build one with `patchmix index build`")?;
    Gallery::load(path, ann).map_err(|e| anyhow!("--index: {e}"))
}

/// What [`embed_images`] returns.
struct Embedded {
    /// The dataset read.
    ds: Dataset,
    /// The images used.
    indices: Vec<usize>,
    /// Their features `[N, D]`.
    feats: Array2<f32>,
    /// Their gallery ids.
    ids: Vec<String>,
}

/// Embeds the selected images of `flags.data` with `pre`; returns the dataset, features and ids.
/// `check_ids` runs before the (long) embedding.
fn embed_images(
    flags: &EmbedFlags,
    encoder: &mut dyn Embed,
    pre: Preprocess,
    check_ids: impl Fn(&[String]) -> Result<()>,
) -> Result<Embedded> {
    let ds = open_dataset(&flags.data, "--data")?;
    let indices = select_indices(ds.len(), flags.limit)?;
    let ids: Vec<String> = indices
        .iter()
        .map(|&i| format!("{}{}", flags.id_prefix, ds.item_id(i)))
        .collect();
    check_ids(&ids)?;
    let start = Instant::now();
    let feats = extract_features(&ds, &indices, flags.batch, pre, "embed", |images| {
        encoder.embed(images).map_err(|e| anyhow!("{e}"))
    })?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "embedded {} images of {} in {secs:.1} s ({:.0} img/s, {}): D = {}",
        indices.len(),
        flags.data,
        indices.len() as f64 / secs.max(1e-9),
        runtime_name(flags.runtime),
        feats.ncols()
    );
    Ok(Embedded {
        ds,
        indices,
        feats,
        ids,
    })
}

fn check_batch(batch: usize) -> Result<()> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    Ok(())
}

fn build(args: BuildArgs) -> Result<()> {
    check_out_path(&args.out, "--out")?;
    check_batch(args.embed.batch)?;
    let fp = fingerprint(&args.embed.model)?;
    let mut encoder = open_model(&args.embed.model, args.embed.runtime)?;
    let img =
        u32::try_from(encoder.image_size()).map_err(|_| anyhow!("model image side too large"))?;
    if args.resize == Some(0) {
        bail!("--resize must be at least 1");
    }
    let pre = Preprocess::new(args.resize.unwrap_or(img), img);
    let Embedded {
        ds,
        indices,
        feats,
        ids,
    } = embed_images(&args.embed, encoder.as_mut(), pre, |_| Ok(()))?;
    let labels: Vec<u32> = indices.iter().map(|&i| ds.label(i)).collect();
    let mut gallery = Gallery::new(feats, labels, ids, ds.class_names().to_vec(), fp, pre)
        .map_err(|e| anyhow!("--data {}: {e}", args.embed.data))?
        .with_metadata("model", args.embed.model.display().to_string())
        .with_metadata("dataset", args.embed.data.clone())
        .with_metadata("runtime", runtime_name(args.embed.runtime));
    if args.ann == Some(AnnKind::Hnsw) {
        let params = HnswParams {
            connectivity: args.connectivity,
            expansion_add: args.expansion_add,
            expansion_search: args.expansion_search,
            quantization: args.quantization,
        };
        let start = Instant::now();
        gallery
            .build_hnsw(params)
            .map_err(|e| anyhow!("--ann hnsw: {e}"))?;
        eprintln!(
            "built the HNSW graph (M {}, ef_construction {}, {}) in {:.2} s",
            params.connectivity,
            params.expansion_add,
            params.quantization,
            start.elapsed().as_secs_f64()
        );
    }
    gallery.save(&args.out).map_err(|e| anyhow!("--out: {e}"))?;
    eprintln!(
        "wrote {} items, D = {}, {} classes{} -> {}",
        gallery.len(),
        gallery.dim(),
        gallery.classes().len(),
        if gallery.hnsw_params().is_some() {
            ", HNSW"
        } else {
            ""
        },
        args.out.display()
    );
    Ok(())
}

fn add(args: AddArgs) -> Result<()> {
    check_batch(args.embed.batch)?;
    let mut gallery = load_gallery(&args.index, AnnLoad::Load)?;
    let fp = fingerprint(&args.embed.model)?;
    gallery
        .check_model(&fp, &args.embed.model)
        .map_err(|e| anyhow!("--model: {e}"))?;
    let mut encoder = open_model(&args.embed.model, args.embed.runtime)?;
    let pre = *gallery.preprocess();
    if encoder.image_size() != pre.crop as usize {
        bail!(
            "--model {}: takes {}×{} images, the gallery was embedded at {}×{}",
            args.embed.model.display(),
            encoder.image_size(),
            encoder.image_size(),
            pre.crop,
            pre.crop
        );
    }
    let Embedded {
        ds,
        indices,
        feats,
        ids,
    } = embed_images(&args.embed, encoder.as_mut(), pre, |ids| {
        match ids.iter().find(|id| gallery.row_of(id).is_some()) {
            Some(id) => Err(anyhow!(
                "--data {}: {}",
                args.embed.data,
                GalleryError::DuplicateId(id.clone())
            )),
            None => Ok(()),
        }
    })?;
    // The dataset's class numbers map to the gallery's by name (new names are appended).
    let names = ds.class_names().to_vec();
    let labels: Vec<u32> = indices
        .iter()
        .map(|&i| gallery.class_label_or_insert(&names[ds.label(i) as usize]))
        .collect();
    gallery
        .add(feats.view(), &labels, &ids)
        .map_err(|e| anyhow!("--data {}: {e}", args.embed.data))?;
    gallery
        .save(&args.index)
        .map_err(|e| anyhow!("--index: {e}"))?;
    eprintln!(
        "added {} items -> {} ({} in all)",
        ids.len(),
        args.index.display(),
        gallery.len()
    );
    Ok(())
}

fn remove(args: RemoveArgs) -> Result<()> {
    let mut gallery = load_gallery(&args.index, AnnLoad::View)?;
    let ids: Vec<&str> = args.ids.iter().map(String::as_str).collect();
    gallery
        .remove(&ids)
        .map_err(|e| anyhow!("--id: {e}; nothing was removed"))?;
    gallery
        .save(&args.index)
        .map_err(|e| anyhow!("--index: {e}"))?;
    eprintln!(
        "removed {} items -> {} ({} left)",
        ids.len(),
        args.index.display(),
        gallery.len()
    );
    Ok(())
}

#[derive(serde::Serialize)]
struct Info<'a> {
    items: usize,
    dim: usize,
    classes: &'a [String],
    model_sha256: String,
    preprocess: &'a Preprocess,
    hnsw: Option<HnswParams>,
    metadata: &'a patchmix_export::weights::Metadata,
}

fn info(args: InfoArgs) -> Result<()> {
    let g = load_gallery(&args.index, AnnLoad::Skip)?;
    let info = Info {
        items: g.len(),
        dim: g.dim(),
        classes: g.classes(),
        model_sha256: g.model().to_string(),
        preprocess: g.preprocess(),
        hnsw: g.hnsw_params(),
        metadata: g.metadata(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!(
        "{}: {} items, D = {}, {} classes",
        args.index.display(),
        info.items,
        info.dim,
        info.classes.len()
    );
    println!("encoder sha256: {}", info.model_sha256);
    println!(
        "preprocess: resize {}, crop {}",
        info.preprocess.resize, info.preprocess.crop
    );
    match info.hnsw {
        Some(h) => println!(
            "HNSW: M {}, ef_construction {}, ef {}, {}",
            h.connectivity, h.expansion_add, h.expansion_search, h.quantization
        ),
        None => println!("HNSW: none (exact search only)"),
    }
    for (k, v) in info.metadata {
        println!("{k}: {v}");
    }
    Ok(())
}
