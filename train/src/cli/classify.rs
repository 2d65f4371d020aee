//! `patchmix classify`: top-1/top-5 accuracy and the confusion matrix of an ONNX classifier
//! (`classifier.onnx`: input `images` [batch, 3, H, W], output `logits` [batch, classes]) on a
//! labelled split, with tract or ONNX Runtime.
//!
//! Images are preprocessed as for evaluation (shorter side resized to `--resize`, default the
//! model's image side, centre crop, ImageNet mean/std), as `patchmix embed` and `patchmix
//! linear` do. The prediction is the largest logit (ties to the lower class); top-5 counts a
//! hit when fewer than 5 classes score above the label (so with 5 classes or fewer it is 100 %
//! by definition, reported as top-k with k = the class count). The model's declared shapes are
//! checked before anything runs: its output must be `[batch, classes]` with the data's class
//! count.

use anyhow::{Context, Result, anyhow, bail};
use patchmix_export::classifier::{ClassifierModel, Confusion, top5_k};
use patchmix_export::runtime::Runtime;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

use super::embed::{
    check_in_file, check_out_path, embed_dataset, labels_of, open_dataset, open_model,
    runtime_name, select_indices,
};

/// Arguments of `patchmix classify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX classifier (`classifier.onnx`, from `patchmix export --head` or a fine-tune).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The labelled split: `PATH[:train|:test]` (MNIST, CIFAR, ImageFolder, `synthetic:...`).
    #[arg(long, value_name = "DATASET")]
    pub data: String,
    /// Inference runtime: tract or ort.
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Images per model call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Shorter side before the centre crop (default: the model's image side).
    #[arg(long)]
    pub resize: Option<u32>,
    /// Use only N images, spread evenly over the split (image ⌊i·len/N⌋).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print the report as JSON on stdout instead of the text tables.
    #[arg(long)]
    pub json: bool,
    /// Also draw the confusion matrix as a PNG heat map at this path (written atomically).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// The JSON report.
#[derive(Serialize)]
struct JsonReport<'a> {
    model: String,
    data: &'a str,
    runtime: &'static str,
    count: u64,
    classes: usize,
    class_names: &'a [String],
    /// Top-1 accuracy (%).
    top1: f64,
    /// Top-5 accuracy (%), top-`top5_k` with fewer than 5 classes.
    top5: f64,
    top5_k: usize,
    /// `confusion[true][predicted]`.
    confusion: &'a [Vec<u64>],
    seconds: f64,
}

/// The confusion matrix as a text table: one row per true class, one column per predicted
/// class, then the row's total and recall.
fn table(matrix: &[Vec<u64>], names: &[String]) -> String {
    let short = |s: &str| -> String { s.chars().take(10).collect() };
    let cells = matrix
        .iter()
        .flatten()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1);
    let w = cells
        .max(names.iter().map(|n| short(n).len()).max().unwrap_or(1))
        .max(3);
    let first = names
        .iter()
        .map(|n| short(n).len())
        .max()
        .unwrap_or(4)
        .max(11);
    let mut out = format!("{:>first$} |", "true \\ pred");
    for n in names {
        out.push_str(&format!(" {:>w$}", short(n)));
    }
    out.push_str(" |  total | recall\n");
    for (t, (row, name)) in matrix.iter().zip(names).enumerate() {
        let total: u64 = row.iter().sum();
        out.push_str(&format!("{:>first$} |", short(name)));
        for c in row {
            out.push_str(&format!(" {c:>w$}"));
        }
        let diag = row[t];
        let recall = if total == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * diag as f64 / total as f64)
        };
        out.push_str(&format!(" | {total:>6} | {recall:>6}\n"));
    }
    out
}

/// Runs `patchmix classify`.
///
/// # Errors
/// A missing or unreadable model, a model whose output is not `[batch, classes]`, a class
/// count that disagrees with the data's, an unreadable or empty split, bad flags, an
/// unwritable `--plot`, or non-finite logits.
pub fn run(args: Args) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.resize == Some(0) {
        bail!("--resize must be at least 1");
    }
    if let Some(p) = &args.plot {
        check_out_path(p, "--plot")?;
    }
    check_in_file(
        &args.model,
        "--model",
        "give a classifier exported by `patchmix export --head` (classifier.onnx)",
    )?;
    let info = ClassifierModel::open(&args.model).map_err(|e| anyhow!("--model {e}"))?;
    let ds = open_dataset(&args.data, "--data")?;
    if info.classes != ds.num_classes() {
        bail!(
            "--model {} has {} classes (output `{}` is [batch, {}]) but --data {} labels {} classes; \
             use the split the classifier was trained for",
            args.model.display(),
            info.classes,
            info.output,
            info.classes,
            args.data,
            ds.num_classes()
        );
    }
    if info.output != "logits" {
        log::warn!(
            "--model {}: its output is `{}`, not `logits`; scoring it as {} class scores (is it an encoder?)",
            args.model.display(),
            info.output,
            info.classes
        );
    }
    if let Some(names) = &info.class_names
        && names.as_slice() != ds.class_names()
    {
        log::warn!(
            "--model {} names its classes {:?}, --data {} names them {:?}; scoring by label index",
            args.model.display(),
            names,
            args.data,
            ds.class_names()
        );
    }
    let indices = select_indices(ds.len(), args.limit)?;
    let mut model = open_model(&args.model, args.runtime)?;
    let start = Instant::now();
    let logits = embed_dataset(
        model.as_mut(),
        &ds,
        &indices,
        args.batch,
        args.resize,
        "classify",
    )?;
    let seconds = start.elapsed().as_secs_f64();
    if logits.ncols() != info.classes {
        bail!(
            "--model {}: the model returned {} logits per image, its declared output has {}",
            args.model.display(),
            logits.ncols(),
            info.classes
        );
    }
    let mut confusion = Confusion::new(info.classes);
    confusion
        .add(logits.view(), &labels_of(&ds, &indices))
        .map_err(|e| anyhow!("--model {}: {e}", args.model.display()))?;
    let names = ds.class_names();
    let runtime = runtime_name(args.runtime);
    let k = top5_k(info.classes);

    if let Some(p) = &args.plot {
        let title = format!(
            "{} on {} — top-1 {:.2}%",
            args.model.display(),
            args.data,
            confusion.top1()
        );
        patchmix_train::plot::draw_confusion(p, confusion.matrix(), names, &title)
            .map_err(|e| anyhow!("--plot: {e}"))?;
        eprintln!("wrote {}", p.display());
    }
    if args.json {
        let report = JsonReport {
            model: args.model.display().to_string(),
            data: &args.data,
            runtime,
            count: confusion.count(),
            classes: info.classes,
            class_names: names,
            top1: confusion.top1(),
            top5: confusion.top5(),
            top5_k: k,
            confusion: confusion.matrix(),
            seconds,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report)
                .context("internal: cannot serialise the report")?
        );
        return Ok(());
    }
    println!(
        "classifier {} ({runtime}) on {}: {} images, {} classes, {seconds:.1} s",
        args.model.display(),
        args.data,
        confusion.count(),
        info.classes
    );
    let top5_note = if k < 5 {
        format!(" (top-{k}: only {k} classes, so every label is in the top 5)")
    } else {
        String::new()
    };
    println!(
        "top-1 {:.2}%, top-5 {:.2}%{top5_note}",
        confusion.top1(),
        confusion.top5()
    );
    print!("{}", table(confusion.matrix(), names));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_true_classes_with_recall() {
        let names = vec!["a".to_string(), "bb".to_string()];
        let t = table(&[vec![3, 1], vec![0, 0]], &names);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].trim_end().ends_with("4 |  75.0%"), "{t}");
        assert!(lines[2].trim_end().ends_with("0 |      -"), "{t}");
    }
}
