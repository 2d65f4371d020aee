//! The step charts: `losses.png` (the loss terms, with the multi-crop terms when the run has
//! local crops) and `schedules.png` (the schedules, with the fp16 loss scale and skipped
//! steps when the run scaled its loss).

use super::axes::{fmt_step, pad, x_range};
use super::panel::{Area, Curve, FONT, draw_err, draw_legend, no_data, run_title, step_panel};
use super::smooth::ema_zero_lag;
use crate::pretrain::metrics::StepRecord;
use plotters::prelude::*;

const LOSS_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

/// `losses.png`: `loss`, `src`, `mix`, `mix2` in a 2×2 grid; with `multi_crop`, a 2×3 grid
/// adding `multi` and `multi_mix` (a step without them is a gap).
pub(super) fn draw_losses(
    root: &Area<'_>,
    run: &str,
    steps: &[StepRecord],
    smoothing: f64,
    multi_crop: bool,
) -> Result<(), String> {
    let area = root
        .titled(&run_title(run, "PatchMix losses"), (FONT, 26))
        .map_err(draw_err)?;
    let xs: Vec<f64> = steps.iter().map(|s| s.step as f64).collect();
    let nan = f64::NAN;
    let mut cols: Vec<(&str, Vec<f64>)> = vec![
        ("loss (total)", steps.iter().map(|s| s.loss).collect()),
        ("src", steps.iter().map(|s| s.src).collect()),
        ("mix", steps.iter().map(|s| s.mix).collect()),
        ("mix2", steps.iter().map(|s| s.mix2).collect()),
    ];
    if multi_crop {
        cols.push((
            "multi (local crops)",
            steps.iter().map(|s| s.multi.unwrap_or(nan)).collect(),
        ));
        cols.push((
            "multi_mix (mixed local crops)",
            steps.iter().map(|s| s.multi_mix.unwrap_or(nan)).collect(),
        ));
    }
    let grid = if multi_crop { (2, 3) } else { (2, 2) };
    for ((panel, (title, ys)), color) in area
        .split_evenly(grid)
        .iter()
        .zip(cols.iter())
        .zip(LOSS_COLORS)
    {
        let smooth = (smoothing > 0.0).then(|| ema_zero_lag(ys, smoothing));
        let curve = Curve {
            ys,
            smooth: smooth.as_deref(),
            color,
        };
        step_panel(panel, title, &xs, &curve, smoothing)?;
    }
    Ok(())
}

/// `schedules.png`: `lr`, `wd`, `tau`, `mu` in a 2×2 grid; with `loss_scale`, the grid takes
/// the upper two thirds and the fp16 loss scale with the skipped steps the lower third.
pub(super) fn draw_schedules(
    root: &Area<'_>,
    run: &str,
    steps: &[StepRecord],
    loss_scale: bool,
) -> Result<(), String> {
    let titled = root
        .titled(&run_title(run, "PatchMix schedules"), (FONT, 26))
        .map_err(draw_err)?;
    let area = if loss_scale {
        let (_, h) = titled.dim_in_pixel();
        let (upper, lower) = titled.split_vertically(h * 2 / 3);
        loss_scale_panel(&lower, steps)?;
        upper
    } else {
        titled
    };
    let xs: Vec<f64> = steps.iter().map(|s| s.step as f64).collect();
    let cols: [(&str, Vec<f64>); 4] = [
        ("learning rate (lr)", steps.iter().map(|s| s.lr).collect()),
        ("weight decay (wd)", steps.iter().map(|s| s.wd).collect()),
        ("temperature (tau)", steps.iter().map(|s| s.tau).collect()),
        ("EMA momentum (mu)", steps.iter().map(|s| s.mu).collect()),
    ];
    for ((panel, (title, ys)), color) in area
        .split_evenly((2, 2))
        .iter()
        .zip(cols.iter())
        .zip(LOSS_COLORS)
    {
        let curve = Curve {
            ys,
            smooth: None,
            color,
        };
        step_panel(panel, title, &xs, &curve, 0.0)?;
    }
    Ok(())
}

/// Superscript digits for the loss scale's `2ᵏ` tick labels.
fn superscript(k: i64) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut s: String = k
        .unsigned_abs()
        .to_string()
        .chars()
        .map(|c| DIGITS[c.to_digit(10).unwrap_or(0) as usize])
        .collect();
    if k < 0 {
        s.insert(0, '⁻');
    }
    s
}

/// The fp16 loss scale each step used, on a log₂ axis, with the skipped (overflowed) steps
/// marked at the scale that overflowed.
fn loss_scale_panel(area: &Area<'_>, steps: &[StepRecord]) -> Result<(), String> {
    let skipped: Vec<&StepRecord> = steps.iter().filter(|s| s.skipped == Some(true)).collect();
    let title = match skipped.len() {
        0 => "fp16 loss scale: no skipped steps".to_string(),
        1 => "fp16 loss scale: 1 skipped step (overflow)".to_string(),
        n => format!("fp16 loss scale: {n} skipped steps (overflow)"),
    };
    let log2 = |s: &StepRecord| s.loss_scale.filter(|v| *v > 0.0).map(f64::log2);
    let points: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| {
            log2(s)
                .filter(|v| v.is_finite())
                .map(|v| (s.step as f64, v))
        })
        .collect();
    if points.is_empty() {
        return no_data(area, &title, "loss scale");
    }
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (ylo, yhi) = pad(lo.floor(), hi.ceil(), 0.1);
    let xs: Vec<f64> = steps.iter().map(|s| s.step as f64).collect();
    let xr = x_range(&xs);
    let mut chart = ChartBuilder::on(area)
        .caption(&title, (FONT, 20))
        .margin(8)
        .margin_right(20)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(xr.0..xr.1, ylo..yhi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss scale")
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|v| fmt_step(*v))
        .y_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("2{}", superscript(v.round() as i64))
            } else {
                String::new()
            }
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
        .light_line_style(RGBColor(244, 244, 244))
        .bold_line_style(RGBColor(222, 222, 222))
        .draw()
        .map_err(draw_err)?;
    let line = RGBColor(31, 119, 180).stroke_width(2);
    chart
        .draw_series(LineSeries::new(points, line))
        .map_err(draw_err)?
        .label("loss scale used")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
    let red = RGBColor(214, 39, 40).stroke_width(2);
    let marks: Vec<(f64, f64)> = skipped
        .iter()
        .filter_map(|s| log2(s).map(|v| (s.step as f64, v)))
        .collect();
    if !marks.is_empty() {
        chart
            .draw_series(marks.into_iter().map(|p| Cross::new(p, 5, red)))
            .map_err(draw_err)?
            .label("skipped step (gradients overflowed)")
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, red));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 14)
}

#[cfg(test)]
mod tests {
    use super::superscript;

    #[test]
    fn loss_scale_ticks_are_powers_of_two() {
        assert_eq!(superscript(16), "¹⁶");
        assert_eq!(superscript(0), "⁰");
        assert_eq!(superscript(-14), "⁻¹⁴");
    }
}
