//! `knn.png`: kNN accuracy against the epoch, one line per `k`, the final evaluation
//! marked and the baselines as dashed horizontals.

use super::axes::{fmt_num, pad, x_range, y_range};
use super::panel::{Area, FONT, draw_err, draw_legend, run_title};
use crate::pretrain::metrics::{Baselines, KnnRecord};
use plotters::prelude::*;

const KNN_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

pub(super) fn draw_knn(
    root: &Area<'_>,
    run: &str,
    knn: &[KnnRecord],
    baselines: Option<Baselines>,
) -> Result<(), String> {
    let mut ks: Vec<Option<u64>> = knn.iter().map(|r| r.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let epochs: Vec<f64> = knn.iter().map(|r| r.epoch as f64).collect();
    // From epoch 0 (the start of training) to just past the last evaluation.
    let last = x_range(&epochs).1.max(1.0);
    let (x0, x1) = (0.0, last + (0.03 * last).max(0.3));
    let mut ys: Vec<f64> = knn.iter().map(|r| r.top1).collect();
    ys.extend(knn.iter().filter_map(|r| r.top5));
    let base_lines: Vec<(&str, f64)> = baselines
        .map(|b| {
            [("random init", b.random_init), ("raw pixels", b.raw_pixels)]
                .into_iter()
                .filter_map(|(n, v)| v.filter(|v| v.is_finite()).map(|v| (n, v)))
                .collect()
        })
        .unwrap_or_default();
    ys.extend(base_lines.iter().map(|(_, v)| *v));
    let (lo, hi) = y_range(&ys, &ys).unwrap_or((0.0, 100.0));
    let (lo, hi) = (lo.max(0.0), hi.min(100.0));
    let (lo, hi) = if hi - lo < 1.0 {
        pad(lo, hi.max(lo + 1.0), 0.5)
    } else {
        (lo, hi)
    };
    let title = run_title(run, "kNN accuracy");
    let mut chart = ChartBuilder::on(root)
        .caption(&title, (FONT, 26))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, lo..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
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
    for (ki, k) in ks.iter().enumerate() {
        let color = KNN_COLORS[ki % KNN_COLORS.len()];
        let mut rows: Vec<&KnnRecord> = knn.iter().filter(|r| r.k == *k).collect();
        rows.sort_by_key(|r| (r.epoch, r.is_final));
        let kname = k.map_or_else(String::new, |k| format!(" (k={k})"));
        let top1: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.top1.is_finite())
            .map(|r| (r.epoch as f64, r.top1))
            .collect();
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(top1.clone(), style))
            .map_err(draw_err)?
            .label(format!("top-1{kname}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(top1.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err)?;
        let top5: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| {
                r.top5
                    .filter(|v| v.is_finite())
                    .map(|v| (r.epoch as f64, v))
            })
            .collect();
        if !top5.is_empty() {
            let s5 = color.mix(0.6).stroke_width(2);
            chart
                .draw_series(top5.iter().map(|&p| Circle::new(p, 3, s5)))
                .map_err(draw_err)?;
            chart
                .draw_series(DashedLineSeries::new(top5, 6, 4, s5))
                .map_err(draw_err)?
                .label(format!("top-5{kname}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], s5));
        }
        for r in rows.iter().filter(|r| r.is_final && r.top1.is_finite()) {
            let p = (r.epoch as f64, r.top1);
            chart
                .draw_series([Circle::new(p, 6, color.stroke_width(2))])
                .map_err(draw_err)?;
            let anchor = plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Bottom,
            );
            chart
                .draw_series([Text::new(
                    format!("final {:.2}%", r.top1),
                    p,
                    TextStyle::from((FONT, 15).into_font())
                        .color(&color)
                        .pos(anchor),
                )])
                .map_err(draw_err)?;
        }
    }
    let gray = [RGBColor(110, 110, 110), RGBColor(170, 120, 60)];
    for ((name, v), color) in base_lines.iter().zip(gray) {
        let style = color.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new([(x0, *v), (x1, *v)], 10, 6, style))
            .map_err(draw_err)?
            .label(format!("{name} (kNN k=20): {v:.2}%"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 15)
}
