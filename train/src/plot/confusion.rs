//! `patchmix classify --plot`: the confusion matrix as a heat map, rows the true class and
//! columns the predicted class, each cell shaded by its share of the row (the class's recall
//! on the diagonal) and labelled with its count.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::PlotError;
use super::panel::{Area, FONT, draw_err, register_font, render};

/// The side of the square image, in pixels, for `classes` classes: 60 px a cell plus the
/// margins, between 480 and 4000.
fn side(classes: usize) -> u32 {
    (classes as u32)
        .saturating_mul(60)
        .saturating_add(220)
        .clamp(480, 4000)
}

/// Draws `matrix[true][predicted]` with the class `names` (one per row) into a PNG at `path`,
/// written atomically, titled `title`.
///
/// # Errors
/// [`PlotError::Options`] when the matrix is empty, not square or does not have one name per
/// row; [`PlotError::Draw`]/[`PlotError::Write`] when drawing or writing fails.
///
/// # Examples
/// ```
/// let path = std::env::temp_dir().join(format!("pm-confusion-doc-{}.png", std::process::id()));
/// let names = vec!["a".to_string(), "b".to_string()];
/// patchmix_train::plot::draw_confusion(&path, &[vec![5, 1], vec![0, 4]], &names, "demo")?;
/// assert!(path.is_file());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), patchmix_train::plot::PlotError>(())
/// ```
pub fn draw_confusion(
    path: &Path,
    matrix: &[Vec<u64>],
    names: &[String],
    title: &str,
) -> Result<(), PlotError> {
    let n = matrix.len();
    if n == 0 || matrix.iter().any(|r| r.len() != n) || names.len() != n {
        return Err(PlotError::Options(format!(
            "a confusion matrix must be square with one name per class ({n} rows, {} names)",
            names.len()
        )));
    }
    register_font()?;
    let s = side(n);
    render(path, (s, s), |root| draw(root, matrix, names, title))
}

fn draw(root: &Area<'_>, matrix: &[Vec<u64>], names: &[String], title: &str) -> Result<(), String> {
    let n = matrix.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)
        .map_err(draw_err)?;
    // Labels at the cell centres; row 0 at the top.
    let label = |v: &f64, flip: bool| -> String {
        let i = v.floor() as usize;
        let i = if flip { n.saturating_sub(1 + i) } else { i };
        if (v - v.floor() - 0.5).abs() < 1e-6 && i < n {
            names[i].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted class")
        .y_desc("true class")
        .x_labels(2 * n + 1)
        .y_labels(2 * n + 1)
        .x_label_formatter(&|v| label(v, false))
        .y_label_formatter(&|v| label(v, true))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(draw_err)?;
    let font_size = if n <= 12 { 14 } else { 10 };
    for (t, row) in matrix.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let y = (n - 1 - t) as f64;
        for (p, &count) in row.iter().enumerate() {
            let share = if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            };
            let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
            let fill = if t == p {
                RGBColor(shade, shade, 255)
            } else {
                RGBColor(255, shade, shade)
            };
            let x = p as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    fill.filled(),
                )))
                .map_err(draw_err)?;
            if n <= 40 {
                let color = if share > 0.6 { WHITE } else { BLACK };
                let style = TextStyle::from((FONT, font_size).into_font())
                    .color(&color)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart
                    .draw_series(std::iter::once(Text::new(
                        count.to_string(),
                        (x + 0.5, y + 0.5),
                        style,
                    )))
                    .map_err(draw_err)?;
            }
        }
    }
    Ok(())
}
