//! Drawing primitives shared by the charts: the bundled font, rendering an image to a PNG
//! file, and a panel of one metric against the step (raw values under their EMA).

use super::PlotError;
use super::axes::{fmt_num, fmt_step, segments, x_range, y_range};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `train/assets/fonts/LICENSE-DejaVu.txt`).
static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The font family all text uses.
pub(super) const FONT: &str = "sans-serif";

pub(super) fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Options(
            "internal: the bundled DejaVu Sans font could not be loaded".into(),
        ))
    }
}

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

pub(super) fn draw_err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Renders `draw` into a white `w × h` image and writes it to `path` as PNG (atomically).
pub(super) fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<(), PlotError> {
    let name = path.display().to_string();
    let len = w as usize * h as usize * 3;
    let mut buf = vec![255u8; len];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(draw_err)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(draw_err))
            .map_err(|message| PlotError::Draw {
                path: name.clone(),
                message,
            })?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| PlotError::Write {
        path: name.clone(),
        message: "internal: image buffer of the wrong size".into(),
    })?;
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| PlotError::Write {
            path: name.clone(),
            message: e.to_string(),
        })?;
    patchmix_export::atomic::write_atomic(path, &png).map_err(|e| PlotError::Write {
        path: name,
        message: e.to_string(),
    })
}

/// One curve of a panel.
pub(super) struct Curve<'a> {
    pub(super) ys: &'a [f64],
    pub(super) smooth: Option<&'a [f64]>,
    pub(super) color: RGBColor,
}

pub(super) fn no_data(area: &Area<'_>, title: &str, what: &str) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let caption =
        TextStyle::from((FONT, 20).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ));
    area.draw(&Text::new(title.to_string(), (w as i32 / 2, 8), caption))
        .map_err(draw_err)?;
    let style = TextStyle::from((FONT, 16).into_font())
        .color(&RGBColor(120, 120, 120))
        .pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ));
    area.draw(&Text::new(
        format!("no {what} logged"),
        (w as i32 / 2, h as i32 / 2),
        style,
    ))
    .map_err(draw_err)
}

/// A panel: one metric against the step, raw in a light tint, the EMA on top.
pub(super) fn step_panel(
    area: &Area<'_>,
    title: &str,
    xs: &[f64],
    curve: &Curve<'_>,
    smoothing: f64,
) -> Result<(), String> {
    let keep: Vec<f64> = match curve.smooth {
        Some(s) => s.to_vec(),
        None => curve.ys.to_vec(),
    };
    let Some(yr) = y_range(curve.ys, &keep) else {
        return no_data(area, title, title);
    };
    let xr = x_range(xs);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(8)
        .margin_right(20)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| fmt_step(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
        .light_line_style(RGBColor(244, 244, 244))
        .bold_line_style(RGBColor(222, 222, 222))
        .draw()
        .map_err(draw_err)?;
    let c = curve.color;
    let raw_style = match curve.smooth {
        Some(_) => c.mix(0.35).stroke_width(1),
        None => c.stroke_width(2),
    };
    let raw_label = if curve.smooth.is_some() { "raw" } else { title };
    for (i, seg) in segments(xs, curve.ys, yr).into_iter().enumerate() {
        if seg.len() == 1 {
            // A lone point draws no line: mark it.
            chart
                .draw_series(seg.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(draw_err)?;
        }
        let series = chart
            .draw_series(LineSeries::new(seg, raw_style))
            .map_err(draw_err)?;
        if i == 0 {
            series
                .label(raw_label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], raw_style));
        }
    }
    if let Some(s) = curve.smooth {
        let style = c.stroke_width(2);
        for (i, seg) in segments(xs, s, yr).into_iter().enumerate() {
            let series = chart
                .draw_series(LineSeries::new(seg, style))
                .map_err(draw_err)?;
            if i == 0 {
                series
                    .label(format!("EMA {}, zero-lag", fmt_num(smoothing)))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 14)?;
    }
    Ok(())
}

/// Draws the series labels of `chart` in the plots' one legend style.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, font_size))
        .draw()
        .map_err(draw_err)
}

pub(super) fn run_title(run: &str, what: &str) -> String {
    if run.is_empty() {
        what.to_string()
    } else {
        format!("{what} — {run}")
    }
}
