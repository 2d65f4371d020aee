//! `patchmix plot RUN_DIR`: draws `losses.png`, `knn.png` (when the run logged kNN
//! evaluations) and `schedules.png` from the run's `metrics.jsonl`, next to it. See
//! [`patchmix_train::plot`] for the records read and what each chart shows.

use anyhow::{Result, bail};
use patchmix_train::plot::{PlotOptions, plot_run};
use std::path::PathBuf;

/// Arguments of `patchmix plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder of `patchmix pretrain` (holding `metrics.jsonl`), or the metrics file.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// EMA factor of the smoothed loss curves, in [0, 1) (0: none; default: from the number of
    /// steps, about 0.99 for 3000 steps).
    #[arg(long, value_name = "S")]
    pub smooth: Option<f64>,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Image height in pixels (knn.png is three quarters of it).
    #[arg(long, default_value_t = 800)]
    pub height: u32,
}

/// Runs `patchmix plot`.
///
/// # Errors
/// A missing run folder or metrics file, a malformed line (named by file and line), no step
/// records, bad options, or a chart that cannot be written.
pub fn run(args: Args) -> Result<()> {
    let dir = if args.run_dir.is_file() {
        match args.run_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    } else {
        args.run_dir.clone()
    };
    if args.run_dir.is_file() && args.run_dir.file_name() != Some("metrics.jsonl".as_ref()) {
        bail!(
            "{}: give a run folder or its metrics.jsonl",
            args.run_dir.display()
        );
    }
    if !dir.is_dir() {
        bail!(
            "{}: no such run folder (give the --out folder of `patchmix pretrain`)",
            dir.display()
        );
    }
    let opts = PlotOptions {
        width: args.width,
        height: args.height,
        smoothing: args.smooth,
    };
    let summary = plot_run(&dir, &opts)?;
    let m = &summary.metrics;
    if m.skipped_partial_line {
        eprintln!(
            "note: skipped an unfinished last line of metrics.jsonl (the run is still writing)"
        );
    }
    let fp16 = if m.has_loss_scale() {
        format!(", {} skipped fp16 steps", m.skipped_steps())
    } else {
        String::new()
    };
    eprintln!(
        "{} step records{fp16}, {} kNN records{}; loss EMA {:.3}",
        m.steps.len(),
        m.knn.len(),
        if m.baselines.is_some() {
            ", baselines"
        } else {
            ""
        },
        summary.smoothing
    );
    for p in &summary.written {
        println!("{}", p.display());
    }
    Ok(())
}
