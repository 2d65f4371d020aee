//! `patchmix export`: writes a ViT encoder as an ONNX model (input `images` [batch, 3, H, W]
//! with a dynamic batch, output `features` [batch, D], the CLS token after the final LayerNorm;
//! plus `tokens` [batch, T, D] with `--tokens`).
//!
//! The weights come from a safetensors file under timm's names (`--weights`; a training
//! checkpoint's `module.`/`base_encoder.`/`momentum_encoder.` prefixes are understood and
//! `head.*`/`fc.*` dropped, see [`patchmix_export::weights::select_encoder`]) or from the
//! seeded timm-style initialisation (`--init random --seed N`, for tests and the random-encoder
//! baseline).
//!
//! The architecture is a preset (`vit-tiny` 192/12/3, `vit-small` 384/12/12, `vit-base`
//! 768/12/12) at `--img`/`--patch`, with `--dim`, `--depth` and `--heads` overriding the
//! preset's width, number of blocks and attention heads. The weights are checked against that
//! architecture and every difference is listed. The head count cannot be read from the
//! weights (the qkv matrix is `[3D, D]` for any head count), so it must be given right.
//!
//! With `--head FILE` (a safetensors file holding timm's `head.weight` [C, D] and `head.bias`
//! [C], e.g. from `patchmix linear --save-head`), the encoder and that head are written as a
//! classifier: `--out` is then a folder that receives `classifier.onnx` (output `logits`
//! [batch, C]) and `classifier.safetensors` (timm names, encoder + `head.*`), see
//! [`patchmix_export::classifier`]. The class names come from the head file's metadata (or are
//! the class indices).

use anyhow::{Result, anyhow, bail};
use patchmix_export::classifier::{CLASSES_KEY, ClassifierHead, export_classifier};
use patchmix_export::onnx::write_onnx;
use patchmix_export::vit::{VitConfig, VitPreset, encoder_graph, init_weights};
use patchmix_export::weights::{
    EncoderSource, StateDict, StateDictDiff, diff_against, load_safetensors, select_encoder,
};
use std::path::{Path, PathBuf};

use super::embed::check_out_path;

/// How to initialise the weights when no `--weights` file is given.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// timm's initialisation (truncated normal, std 0.02), seeded with `--seed`.
    Random,
}

/// Which encoder of a two-encoder checkpoint to export.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Source {
    /// The online encoder (`base_encoder.*`), what the paper evaluates.
    #[default]
    Base,
    /// The EMA encoder (`momentum_encoder.*`).
    Momentum,
}

/// Arguments of `patchmix export`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("weights_source").required(true).args(["weights", "init"])))]
pub struct Args {
    /// Encoder weights (safetensors, timm names; training checkpoints are accepted).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Initialise the weights instead of loading them.
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// Seed of `--init random`.
    #[arg(long, default_value_t = 0, requires = "init")]
    pub seed: u64,
    /// Architecture preset: vit-tiny, vit-small or vit-base.
    #[arg(long, default_value = "vit-tiny")]
    pub preset: String,
    /// Input image side in pixels.
    #[arg(long, default_value_t = 224)]
    pub img: usize,
    /// Patch side in pixels; must divide --img.
    #[arg(long, default_value_t = 16)]
    pub patch: usize,
    /// Override the preset's embedding width D.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Override the preset's number of blocks.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Override the preset's number of attention heads (must divide the width).
    #[arg(long)]
    pub heads: Option<usize>,
    /// Also output the patch tokens `tokens` [batch, T, D] after the final LayerNorm.
    #[arg(long)]
    pub tokens: bool,
    /// Which encoder of a checkpoint holding both to export.
    #[arg(long, value_enum, default_value_t = Source::Base)]
    pub source: Source,
    /// A classifier head (safetensors with `head.weight` [C, D] and `head.bias` [C]): write
    /// encoder + head as `classifier.onnx` and `classifier.safetensors` into the folder --out.
    #[arg(long, value_name = "FILE", conflicts_with = "tokens")]
    pub head: Option<PathBuf>,
    /// The ONNX file to write (atomically); with --head, the folder to write the classifier
    /// files into (created if missing).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Loads a classifier head and its class names (from the metadata, else the indices).
fn load_head(path: &Path) -> Result<(ClassifierHead, Vec<String>)> {
    super::embed::check_in_file(
        path,
        "--head",
        "give a safetensors file with head.weight and head.bias (e.g. from `patchmix linear --save-head`)",
    )?;
    let contents = load_safetensors(path).map_err(|e| anyhow!("--head: {e}"))?;
    let origin = format!("--head {}", path.display());
    let head =
        ClassifierHead::from_state_dict(&contents.tensors, &origin).map_err(|e| anyhow!("{e}"))?;
    let names = match contents.metadata.get(CLASSES_KEY) {
        Some(json) => {
            let names: Vec<String> = serde_json::from_str(json).map_err(|e| {
                anyhow!("{origin}: metadata `{CLASSES_KEY}` is not a JSON list of strings: {e}")
            })?;
            if names.len() != head.classes() {
                bail!(
                    "{origin}: metadata `{CLASSES_KEY}` names {} classes but head.weight has {} rows",
                    names.len(),
                    head.classes()
                );
            }
            names
        }
        None => (0..head.classes()).map(|c| c.to_string()).collect(),
    };
    Ok((head, names))
}

/// Writes encoder + head as a classifier into the folder `out`.
fn write_classifier(
    head_path: &Path,
    weights: &StateDict,
    preset: VitPreset,
    cfg: &VitConfig,
    origin: &str,
    out: &Path,
) -> Result<()> {
    if out.is_file() {
        bail!(
            "--out {}: is a file; with --head, --out is the folder that receives classifier.onnx and classifier.safetensors",
            out.display()
        );
    }
    let (head, names) = load_head(head_path)?;
    if head.dim() != cfg.dim {
        bail!(
            "--head {}: head.weight is [{}, {}] but the encoder width D is {} ({})",
            head_path.display(),
            head.classes(),
            head.dim(),
            cfg.dim,
            describe(preset, cfg)
        );
    }
    let files = export_classifier(weights, &head, cfg, &names, out)
        .map_err(|e| anyhow!("--out {}: {e}", out.display()))?;
    eprintln!(
        "wrote {} and {}: {} from {origin} with the {}-class head of {}; output logits [batch, {}]",
        files.onnx.display(),
        files.safetensors.display(),
        describe(preset, cfg),
        head.classes(),
        head_path.display(),
        head.classes()
    );
    Ok(())
}

/// The architecture the flags describe, checked.
///
/// # Errors
/// Unknown preset, zero sizes, a patch that does not divide the image, heads that do not divide
/// the width; each names the flags concerned.
pub(super) fn config_from_flags(
    preset: &str,
    img: usize,
    patch: usize,
    dim: Option<usize>,
    depth: Option<usize>,
    heads: Option<usize>,
) -> Result<(VitPreset, VitConfig)> {
    let preset: VitPreset = preset.parse().map_err(|e| anyhow!("--preset: {e}"))?;
    let cfg = preset.with_overrides(img, patch, dim, depth, heads);
    if cfg.img == 0 || cfg.patch == 0 {
        bail!(
            "--img ({}) and --patch ({}) must be at least 1",
            cfg.img,
            cfg.patch
        );
    }
    if !cfg.img.is_multiple_of(cfg.patch) {
        bail!(
            "--patch {} does not divide --img {}; choose a patch size that divides the image side (e.g. {})",
            cfg.patch,
            cfg.img,
            divisors_hint(cfg.img)
        );
    }
    if cfg.dim == 0 || cfg.depth == 0 || cfg.heads == 0 {
        bail!(
            "--dim ({}), --depth ({}) and --heads ({}) must be at least 1",
            cfg.dim,
            cfg.depth,
            cfg.heads
        );
    }
    if !cfg.dim.is_multiple_of(cfg.heads) {
        bail!(
            "--heads {} does not divide the width {} (--dim or the {preset} preset); pick a head count that divides it",
            cfg.heads,
            cfg.dim
        );
    }
    cfg.validate()
        .map_err(|e| anyhow!("invalid architecture: {e}"))?;
    Ok((preset, cfg))
}

/// A few patch sizes that divide `img`, for error messages.
fn divisors_hint(img: usize) -> String {
    let d: Vec<String> = [2, 4, 7, 8, 14, 16, 32]
        .iter()
        .filter(|&&p| p < img && img.is_multiple_of(p))
        .map(|p| p.to_string())
        .collect();
    if d.is_empty() {
        img.to_string()
    } else {
        d.join(", ")
    }
}

/// One line describing an architecture.
pub(super) fn describe(preset: VitPreset, cfg: &VitConfig) -> String {
    format!(
        "{preset} img {} patch {} (D {}, depth {}, heads {}, {} tokens, {:.2}M params)",
        cfg.img,
        cfg.patch,
        cfg.dim,
        cfg.depth,
        cfg.heads,
        cfg.tokens(),
        cfg.num_params() as f64 / 1e6
    )
}

/// What the weights themselves say about the architecture (width, depth, patch, image side).
fn infer_shape(sd: &StateDict) -> Option<String> {
    let pw = sd.get("patch_embed.proj.weight")?.shape().to_vec();
    let pos = sd.get("pos_embed")?.shape().to_vec();
    let (&dim, &patch) = (pw.first()?, pw.get(2)?);
    let tokens = pos.get(1)?.checked_sub(1)?;
    let grid = (tokens as f64).sqrt().round() as usize;
    let depth = (0..)
        .take_while(|i| sd.contains_key(&format!("blocks.{i}.norm1.weight")))
        .count();
    let img = if grid * grid == tokens {
        (grid * patch).to_string()
    } else {
        "?".into()
    };
    Some(format!(
        "--dim {dim} --depth {depth} --patch {patch} --img {img}"
    ))
}

/// The differences, on one line, at most `max` of them.
fn diff_line(diff: &StateDictDiff, max: usize) -> String {
    let mut items: Vec<String> = Vec::new();
    items.extend(
        diff.mismatched
            .iter()
            .map(|m| format!("{} is {:?}, expected {:?}", m.name, m.found, m.expected)),
    );
    items.extend(diff.missing.iter().map(|n| format!("{n} missing")));
    items.extend(diff.unexpected.iter().map(|n| format!("{n} unexpected")));
    let total = items.len();
    let mut line = items.into_iter().take(max).collect::<Vec<_>>().join("; ");
    if total > max {
        line.push_str(&format!("; … and {} more", total - max));
    }
    line
}

/// Loads `path`, keeps the chosen encoder and checks it against `cfg`.
///
/// # Errors
/// Unreadable or invalid file, or weights that do not match `cfg` (all differences listed on
/// one line, with the architecture the file appears to have).
pub(super) fn load_weights(
    path: &Path,
    source: Source,
    preset: VitPreset,
    cfg: &VitConfig,
) -> Result<StateDict> {
    super::embed::check_in_file(
        path,
        "--weights",
        "give a safetensors file of encoder weights",
    )?;
    let contents = load_safetensors(path).map_err(|e| anyhow!("--weights: {e}"))?;
    let which = match source {
        Source::Base => EncoderSource::Base,
        Source::Momentum => EncoderSource::Momentum,
    };
    let sd = select_encoder(contents.tensors, which);
    if sd.is_empty() {
        bail!(
            "--weights {}: no floating-point tensors left after selecting the {} encoder",
            path.display(),
            which.prefix().trim_end_matches('.')
        );
    }
    let diff = diff_against(&sd, &cfg.param_specs());
    if !diff.is_empty() {
        let hint = infer_shape(&sd)
            .map(|s| format!(" (the file looks like {s})"))
            .unwrap_or_default();
        bail!(
            "--weights {} does not match {}: {} with the wrong shape, {} missing, {} unexpected: {}{hint}",
            path.display(),
            describe(preset, cfg),
            diff.mismatched.len(),
            diff.missing.len(),
            diff.unexpected.len(),
            diff_line(&diff, 6)
        );
    }
    Ok(sd)
}

/// Runs `patchmix export`.
///
/// # Errors
/// Bad flags, unreadable or mismatched weights, or an unwritable `--out`.
pub fn run(args: Args) -> Result<()> {
    let (preset, cfg) = config_from_flags(
        &args.preset,
        args.img,
        args.patch,
        args.dim,
        args.depth,
        args.heads,
    )?;
    if args.head.is_none() {
        check_out_path(&args.out, "--out")?;
    }
    let (weights, origin) = match (&args.weights, args.init) {
        (Some(path), _) => (
            load_weights(path, args.source, preset, &cfg)?,
            path.display().to_string(),
        ),
        (None, Some(Init::Random)) => (
            init_weights(&cfg, args.seed),
            format!("random init, seed {}", args.seed),
        ),
        (None, None) => bail!("give --weights FILE or --init random"),
    };
    if let Some(head) = &args.head {
        return write_classifier(head, &weights, preset, &cfg, &origin, &args.out);
    }
    let graph = encoder_graph(&cfg, &weights, args.tokens)
        .map_err(|e| anyhow!("cannot build the encoder graph: {e}"))?;
    write_onnx(&graph, &args.out).map_err(|e| anyhow!("--out: {e}"))?;
    eprintln!(
        "wrote {}: {} from {origin}; output features [batch, {}]{}",
        args.out.display(),
        describe(preset, &cfg),
        cfg.dim,
        if args.tokens {
            format!(" and tokens [batch, {}, {}]", cfg.tokens(), cfg.dim)
        } else {
            String::new()
        }
    );
    Ok(())
}
