//! `finetune.png`: a fine-tuning run (`patchmix finetune`): the soft-target cross-entropy and
//! the learning rate against the step, and top-1 / top-5 of the model and of its EMA on the
//! test split against the epoch.

use super::axes::{fmt_num, pad, y_range};
use super::panel::{Area, Curve, FONT, draw_err, draw_legend, run_title, step_panel};
use super::smooth::ema_zero_lag;
use crate::pretrain::metrics::StepRecord;
use plotters::prelude::*;
use serde::Deserialize;

/// One per-epoch evaluation of a fine-tuning run (`{"kind": "eval", …}`; accuracies in %).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct EvalRecord {
    /// The epoch just finished (0-based).
    pub epoch: u64,
    /// Steps done.
    pub step: u64,
    /// The model's top-1.
    pub top1: f64,
    /// The model's top-5.
    pub top5: f64,
    /// The EMA's top-1.
    pub ema_top1: f64,
    /// The EMA's top-5.
    pub ema_top5: f64,
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);

pub(super) fn draw_finetune(
    root: &Area<'_>,
    run: &str,
    steps: &[StepRecord],
    evals: &[EvalRecord],
    smoothing: f64,
) -> Result<(), String> {
    let area = root
        .titled(&run_title(run, "fine-tuning"), (FONT, 26))
        .map_err(draw_err)?;
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = area.split_vertically(h / 2);
    let halves = top.split_evenly((1, 2));
    let xs: Vec<f64> = steps.iter().map(|s| s.step as f64).collect();
    let loss: Vec<f64> = steps.iter().map(|s| s.loss).collect();
    let smooth = (smoothing > 0.0).then(|| ema_zero_lag(&loss, smoothing));
    let curve = Curve {
        ys: &loss,
        smooth: smooth.as_deref(),
        color: BLUE,
    };
    step_panel(
        &halves[0],
        "cross-entropy (soft targets)",
        &xs,
        &curve,
        smoothing,
    )?;
    let lr: Vec<f64> = steps.iter().map(|s| s.lr).collect();
    let curve = Curve {
        ys: &lr,
        smooth: None,
        color: ORANGE,
    };
    step_panel(&halves[1], "learning rate", &xs, &curve, 0.0)?;
    draw_accuracy(&bottom, evals)
}

/// One accuracy line: its name, colour, whether dashed, and its value in a record.
type Series = (&'static str, RGBColor, bool, fn(&EvalRecord) -> f64);

/// Top-1 (solid) and top-5 (dashed) of the model (blue) and its EMA (orange) against the
/// number of epochs done.
fn draw_accuracy(area: &Area<'_>, evals: &[EvalRecord]) -> Result<(), String> {
    let done = |r: &EvalRecord| (r.epoch + 1) as f64;
    let last = evals.iter().map(done).fold(1.0, f64::max);
    let ys: Vec<f64> = evals
        .iter()
        .flat_map(|r| [r.top1, r.top5, r.ema_top1, r.ema_top5])
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = y_range(&ys, &ys).unwrap_or((0.0, 100.0));
    let (lo, hi) = pad(lo.max(0.0), hi.min(100.0).max(lo + 1.0), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption("test accuracy", (FONT, 20))
        .margin(8)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..last + 0.3, lo..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("epochs done")
        .y_desc("accuracy (%)")
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .light_line_style(RGBColor(244, 244, 244))
        .bold_line_style(RGBColor(222, 222, 222))
        .draw()
        .map_err(draw_err)?;
    let series: [Series; 4] = [
        ("model top-1", BLUE, false, |r| r.top1),
        ("model top-5", BLUE, true, |r| r.top5),
        ("EMA top-1", ORANGE, false, |r| r.ema_top1),
        ("EMA top-5", ORANGE, true, |r| r.ema_top5),
    ];
    for (name, color, dashed, pick) in series {
        let points: Vec<(f64, f64)> = evals
            .iter()
            .map(|r| (done(r), pick(r)))
            .filter(|p| p.1.is_finite())
            .collect();
        let style = if dashed {
            color.mix(0.6).stroke_width(2)
        } else {
            color.stroke_width(2)
        };
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, style)))
            .map_err(draw_err)?;
        let label = match points.last() {
            Some(&(_, v)) => format!("{name}: {v:.2}%"),
            None => name.to_string(),
        };
        if dashed {
            chart
                .draw_series(DashedLineSeries::new(points, 6, 4, style))
                .map_err(draw_err)?
        } else {
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(draw_err)?
        }
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 15)
}
