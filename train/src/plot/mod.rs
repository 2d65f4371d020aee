//! Training curves of a pretraining or fine-tuning run: reads the run's `metrics.jsonl` (written by
//! `patchmix pretrain`) and draws PNG charts with plotters.
//!
//! The records are those of [`crate::pretrain::metrics`], the schema the training loop
//! writes, one JSON object per line:
//!
//! * step records ([`StepRecord`], recognised by `"loss"`; a `null` or missing value is a gap
//!   in the curve; `multi`, `multi_mix`, `skipped` and `loss_scale` may be missing, as in
//!   files of older versions);
//! * kNN records ([`KnnRecord`], recognised by `"knn_top1"`; accuracies in percent);
//! * the baseline record (`{"baselines_knn20_top1": {"pretrained", "random_init",
//!   "raw_pixels"}}`, read as [`Baselines`]).
//!
//! Other objects are counted and ignored, so newer record kinds do not break older plotters.
//! Blank lines are skipped. A last line without its newline that does not parse (a run still
//! writing it) is skipped too; any other bad line is an error naming the file and line.
//!
//! The charts ([`plot_run`]):
//!
//! * `losses.png`: `loss`, `src`, `mix`, `mix2` against the step, one panel each, the raw
//!   values in a light tint under an exponential moving average (TensorBoard's debiased EMA,
//!   run forward and backward so that it does not lag: [`ema_zero_lag`]); a multi-crop run
//!   (some non-zero `multi` or `multi_mix`) adds panels for those two terms;
//! * `knn.png`: kNN top-1 (and top-5, dashed) against the epoch, one line per `k`, the final
//!   evaluation marked and the random-init and raw-pixel baselines as dashed horizontals
//!   (only when the run has kNN records);
//! * `schedules.png`: `lr`, `wd`, `tau`, `mu` against the step, one panel each; an fp16 run
//!   (steps with a `loss_scale`) adds a panel of the loss scale on a log₂ axis with the
//!   skipped (overflowed) steps marked and counted.
//!
//!
//! A fine-tuning run (`patchmix finetune`, whose `metrics.jsonl` has `"kind": "eval"` records)
//! gets one chart instead, `finetune.png`: the cross-entropy and the learning rate against the
//! step, and top-1/top-5 of the model and its EMA against the epoch.
//!
//! Text is drawn with the bundled DejaVu Sans (`train/assets/fonts/`, Bitstream Vera licence),
//! so no system font is needed. Images are rendered in memory and written atomically.

mod axes;
mod charts;
mod confusion;
mod finetune_chart;
mod knn_chart;
mod panel;
mod parse;
mod smooth;

use std::path::{Path, PathBuf};

pub use crate::pretrain::metrics::{Baselines, KnnRecord, StepRecord};
pub use confusion::draw_confusion;
pub use finetune_chart::EvalRecord;
pub use parse::{Metrics, parse_metrics, read_metrics};
pub use smooth::{auto_smoothing, ema, ema_zero_lag};

use charts::{draw_losses, draw_schedules};
use finetune_chart::draw_finetune;
use knn_chart::draw_knn;
use panel::{register_font, render};
use parse::dedup_steps;

/// Errors of reading metrics and drawing charts; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The metrics file (or run folder) could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a JSON object, or a field has the wrong type.
    #[error("{path} line {line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file has no records at all.
    #[error("{path} is empty: the run has not logged any metrics yet")]
    Empty {
        /// The file.
        path: String,
    },
    /// The file has records but no step (loss) record.
    #[error(
        "{path} has no step records (objects with \"step\" and \"loss\"), so there is nothing to plot"
    )]
    NoSteps {
        /// The file.
        path: String,
    },
    /// plotters failed while drawing.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The chart file.
        path: String,
        /// plotters' message.
        message: String,
    },
    /// A chart could not be encoded or written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The chart file.
        path: String,
        /// The cause.
        message: String,
    },
    /// Unusable options (size, smoothing).
    #[error("{0}")]
    Options(String),
}

/// Chart settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotOptions {
    /// Width of `losses.png` and `schedules.png` in pixels (`knn.png` uses the same).
    pub width: u32,
    /// Height of `losses.png` and `schedules.png` in pixels (`knn.png` uses three quarters).
    pub height: u32,
    /// EMA factor in `[0, 1)` (`0` is no smoothing); `None` picks one from the number of steps
    /// (see [`auto_smoothing`]).
    pub smoothing: Option<f64>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self {
            width: 1200,
            height: 800,
            smoothing: None,
        }
    }
}

/// What [`plot_run`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSummary {
    /// The PNG files written, in the order losses, kNN, schedules.
    pub written: Vec<PathBuf>,
    /// The metrics read.
    pub metrics: Metrics,
    /// The EMA factor used for the loss curves.
    pub smoothing: f64,
}

/// Draws the charts of a run folder from its `metrics.jsonl`: `losses.png`, `knn.png` (when
/// there are kNN records) and `schedules.png`, written next to the metrics file.
///
/// # Errors
///
/// [`PlotError::Io`]/[`PlotError::Parse`]/[`PlotError::Empty`] for a missing, unreadable or
/// malformed metrics file; [`PlotError::NoSteps`] when it has no step record;
/// [`PlotError::Options`] for a size under 200×150 or over 8000×8000 or a smoothing outside
/// `[0, 1)`; [`PlotError::Draw`]/[`PlotError::Write`] when drawing or writing fails.
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::{PlotOptions, plot_run};
///
/// let dir = std::env::temp_dir().join(format!("pm-plot-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let lines: String = (1..=50)
///     .map(|s| format!("{{\"step\":{s},\"epoch\":0,\"loss\":{},\"lr\":0.001}}\n", 5.0 / s as f64))
///     .collect();
/// std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
/// let summary = plot_run(&dir, &PlotOptions::default())?;
/// assert_eq!(summary.written.len(), 2); // no kNN records: no knn.png
/// assert!(dir.join("losses.png").is_file() && dir.join("schedules.png").is_file());
/// # Ok::<(), patchmix_train::plot::PlotError>(())
/// ```
pub fn plot_run(run_dir: &Path, opts: &PlotOptions) -> Result<PlotSummary, PlotError> {
    let (w, h) = (opts.width, opts.height);
    if !(200..=8000).contains(&w) || !(150..=8000).contains(&h) {
        return Err(PlotError::Options(format!(
            "image size {w}×{h}: width must be 200..8000 and height 150..8000 pixels"
        )));
    }
    if let Some(s) = opts.smoothing
        && !(s.is_finite() && (0.0..1.0).contains(&s))
    {
        return Err(PlotError::Options(format!(
            "smoothing {s}: must be in [0, 1) (0 = none, 0.9 = strong)"
        )));
    }
    let path = run_dir.join("metrics.jsonl");
    let metrics = read_metrics(&path)?;
    if metrics.steps.is_empty() {
        return Err(PlotError::NoSteps {
            path: path.display().to_string(),
        });
    }
    register_font()?;
    let run = run_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let steps = dedup_steps(&metrics.steps);
    let smoothing = opts
        .smoothing
        .unwrap_or_else(|| auto_smoothing(steps.len()));
    let mut written = Vec::new();

    if !metrics.evals.is_empty() {
        // A fine-tuning run: one chart of its loss, lr and test accuracy.
        let path = run_dir.join("finetune.png");
        render(&path, (w, h), |root| {
            draw_finetune(root, &run, &steps, &metrics.evals, smoothing)
        })?;
        written.push(path);
        return Ok(PlotSummary {
            written,
            metrics,
            smoothing,
        });
    }
    let losses = run_dir.join("losses.png");
    let multi_crop = metrics.has_multi_crop();
    render(&losses, (w, h), |root| {
        draw_losses(root, &run, &steps, smoothing, multi_crop)
    })?;
    written.push(losses);
    if !metrics.knn.is_empty() {
        let knn = run_dir.join("knn.png");
        let kh = (h * 3 / 4).max(150);
        render(&knn, (w, kh), |root| {
            draw_knn(root, &run, &metrics.knn, metrics.baselines)
        })?;
        written.push(knn);
    }
    let schedules = run_dir.join("schedules.png");
    let loss_scale = metrics.has_loss_scale();
    render(&schedules, (w, h), |root| {
        draw_schedules(root, &run, &steps, loss_scale)
    })?;
    written.push(schedules);
    Ok(PlotSummary {
        written,
        metrics,
        smoothing,
    })
}
