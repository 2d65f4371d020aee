//! Training curves of a pretraining run: reads the run's `metrics.jsonl` (written by
//! `patchmix pretrain`) and draws PNG charts with plotters.
//!
//! Three kinds of records are understood, one JSON object per line:
//!
//! * step records, `{"step", "epoch", "loss", "src", "mix", "mix2", "lr", "wd", "tau", "mu",
//!   "img_per_s"}` (recognised by `"loss"`; a `null` or missing value is a gap in the curve);
//! * kNN records, `{"step", "epoch", "knn_k", "knn_top1", "knn_top5"[, "final": true]}`
//!   (recognised by `"knn_top1"`; accuracies in percent);
//! * the baseline record, `{"baselines_knn20_top1": {"pretrained", "random_init",
//!   "raw_pixels"}}`.
//!
//! Other objects are counted and ignored, so newer record kinds do not break older plotters.
//! Blank lines are skipped. A last line without its newline that does not parse (a run still
//! writing it) is skipped too; any other bad line is an error naming the file and line.
//!
//! The charts ([`plot_run`]):
//!
//! * `losses.png`: `loss`, `src`, `mix`, `mix2` against the step, one panel each, the raw
//!   values in a light tint under an exponential moving average (TensorBoard's debiased EMA,
//!   run forward and backward so that it does not lag: [`ema_zero_lag`]);
//! * `knn.png`: kNN top-1 (and top-5, dashed) against the epoch, one line per `k`, the final
//!   evaluation marked and the random-init and raw-pixel baselines as dashed horizontals
//!   (only when the run has kNN records);
//! * `schedules.png`: `lr`, `wd`, `tau`, `mu` against the step, one panel each.
//!
//! Text is drawn with the bundled DejaVu Sans (`train/assets/fonts/`, Bitstream Vera licence),
//! so no system font is needed. Images are rendered in memory and written atomically.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{Map, Value};

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `train/assets/fonts/LICENSE-DejaVu.txt`).
static FONT_TTF: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The font family all text uses.
const FONT: &str = "sans-serif";

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

/// One training step (`NaN` where the file has `null` or no value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// Global step (1-based in `patchmix pretrain`).
    pub step: u64,
    /// Epoch (0-based during the epoch).
    pub epoch: u64,
    /// Total loss.
    pub loss: f64,
    /// Loss of the source (unmixed) views.
    pub src: f64,
    /// Loss of the mixed views against the source views.
    pub mix: f64,
    /// Loss between the mixed views.
    pub mix2: f64,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub wd: f64,
    /// Softmax temperature.
    pub tau: f64,
    /// Momentum-encoder momentum.
    pub mu: f64,
    /// Throughput in images per second.
    pub img_per_s: f64,
}

/// One kNN evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnRecord {
    /// Global step at the evaluation (0 when absent).
    pub step: u64,
    /// Epochs done.
    pub epoch: u64,
    /// The `k` of the row (`None` when absent).
    pub k: Option<u64>,
    /// Top-1 accuracy in percent (`NaN` for `null`).
    pub top1: f64,
    /// Top-5 accuracy in percent, when logged.
    pub top5: Option<f64>,
    /// Whether this is the final evaluation of the run.
    pub is_final: bool,
}

/// The kNN (k = 20) top-1 of the pretrained encoder and of the baselines, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Baselines {
    /// The pretrained encoder.
    pub pretrained: Option<f64>,
    /// A random-init encoder of the same architecture.
    pub random_init: Option<f64>,
    /// Raw pixels.
    pub raw_pixels: Option<f64>,
}

/// The records of a `metrics.jsonl`, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Step records.
    pub steps: Vec<StepRecord>,
    /// kNN records.
    pub knn: Vec<KnnRecord>,
    /// The last baseline record, if any.
    pub baselines: Option<Baselines>,
    /// Objects of no known kind (ignored).
    pub ignored: usize,
    /// Whether an unterminated, unparseable last line was skipped.
    pub skipped_partial_line: bool,
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

fn parse_err(path: &str, line: usize, message: impl Into<String>) -> PlotError {
    PlotError::Parse {
        path: path.to_string(),
        line,
        message: message.into(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A number field: `Ok(None)` when absent or `null`.
fn num(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(format!("\"{key}\" is {}, expected a number", kind_of(v))),
    }
}

/// A non-negative integer field: `Ok(None)` when absent or `null`.
fn uint(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{key}\" is {n}, expected a non-negative integer")),
        Some(v) => Err(format!(
            "\"{key}\" is {}, expected a non-negative integer",
            kind_of(v)
        )),
    }
}

fn step_record(obj: &Map<String, Value>) -> Result<StepRecord, String> {
    let step = uint(obj, "step")?.ok_or("a step record (it has \"loss\") needs \"step\"")?;
    let f = |k: &str| num(obj, k).map(|v| v.unwrap_or(f64::NAN));
    Ok(StepRecord {
        step,
        epoch: uint(obj, "epoch")?.unwrap_or(0),
        loss: f("loss")?,
        src: f("src")?,
        mix: f("mix")?,
        mix2: f("mix2")?,
        lr: f("lr")?,
        wd: f("wd")?,
        tau: f("tau")?,
        mu: f("mu")?,
        img_per_s: f("img_per_s")?,
    })
}

fn knn_record(obj: &Map<String, Value>) -> Result<KnnRecord, String> {
    let epoch = uint(obj, "epoch")?.ok_or("a kNN record (it has \"knn_top1\") needs \"epoch\"")?;
    let is_final = match obj.get("final") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("\"final\" is {}, expected a boolean", kind_of(v))),
    };
    Ok(KnnRecord {
        step: uint(obj, "step")?.unwrap_or(0),
        epoch,
        k: uint(obj, "knn_k")?,
        top1: num(obj, "knn_top1")?.unwrap_or(f64::NAN),
        top5: num(obj, "knn_top5")?,
        is_final,
    })
}

fn baselines_record(obj: &Map<String, Value>) -> Result<Baselines, String> {
    match obj.get("baselines_knn20_top1") {
        Some(Value::Object(b)) => Ok(Baselines {
            pretrained: num(b, "pretrained")?,
            random_init: num(b, "random_init")?,
            raw_pixels: num(b, "raw_pixels")?,
        }),
        Some(v) => Err(format!(
            "\"baselines_knn20_top1\" is {}, expected an object",
            kind_of(v)
        )),
        None => Err("internal: no baselines_knn20_top1".into()),
    }
}

/// Parses the text of a `metrics.jsonl`; `path` only names the file in errors.
///
/// # Errors
///
/// [`PlotError::Parse`] (with the 1-based line) for a line that is not a JSON object or a
/// field of the wrong type; [`PlotError::Empty`] when there is no record at all.
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::parse_metrics;
///
/// let text = "{\"step\":1,\"epoch\":0,\"loss\":5.5,\"lr\":1e-4}\n\
///             {\"step\":1,\"epoch\":1,\"knn_k\":20,\"knn_top1\":41.5,\"knn_top5\":80.0}\n";
/// let m = parse_metrics(text, "metrics.jsonl")?;
/// assert_eq!((m.steps.len(), m.knn.len()), (1, 1));
/// assert!(m.steps[0].src.is_nan()); // not logged
///
/// let err = parse_metrics("{\"step\":1,\"loss\":\"x\"}\n", "m.jsonl").unwrap_err();
/// assert_eq!(err.to_string(), "m.jsonl line 1: \"loss\" is a string, expected a number");
/// # Ok::<(), patchmix_train::plot::PlotError>(())
/// ```
pub fn parse_metrics(text: &str, path: &str) -> Result<Metrics, PlotError> {
    let mut m = Metrics::default();
    let mut records = 0usize;
    let lines: Vec<&str> = text.split('\n').collect();
    let unterminated_last = !text.ends_with('\n');
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if unterminated_last && i + 1 == lines.len() => {
                m.skipped_partial_line = true;
                continue;
            }
            Err(e) => return Err(parse_err(path, i + 1, format!("not valid JSON: {e}"))),
        };
        let Value::Object(obj) = value else {
            return Err(parse_err(
                path,
                i + 1,
                format!("expected a JSON object, found {}", kind_of(&value)),
            ));
        };
        records += 1;
        let r = if obj.contains_key("baselines_knn20_top1") {
            baselines_record(&obj).map(|b| m.baselines = Some(b))
        } else if obj.contains_key("knn_top1") {
            knn_record(&obj).map(|k| m.knn.push(k))
        } else if obj.contains_key("loss") {
            step_record(&obj).map(|s| m.steps.push(s))
        } else {
            m.ignored += 1;
            Ok(())
        };
        r.map_err(|msg| parse_err(path, i + 1, msg))?;
    }
    if records == 0 {
        return Err(PlotError::Empty {
            path: path.to_string(),
        });
    }
    Ok(m)
}

/// Reads and parses a `metrics.jsonl` file.
///
/// # Errors
///
/// [`PlotError::Io`] when the file cannot be read (naming it); otherwise as [`parse_metrics`].
///
/// # Examples
///
/// ```no_run
/// let m = patchmix_train::plot::read_metrics(std::path::Path::new("runs/demo/metrics.jsonl"))?;
/// println!("{} steps", m.steps.len());
/// # Ok::<(), patchmix_train::plot::PlotError>(())
/// ```
pub fn read_metrics(path: &Path) -> Result<Metrics, PlotError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PlotError::Io {
        path: name.clone(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(parse_err(&name, line, "not valid UTF-8"));
        }
    };
    parse_metrics(&text, &name)
}

/// The EMA factor [`plot_run`] uses for `n` steps when none is given: `1 − 1/w` with a window
/// `w = n / 30` clamped to `[1, 300]` (no smoothing below 60 steps, 0.99 around 3 000).
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::auto_smoothing;
///
/// assert_eq!(auto_smoothing(10), 0.0);
/// assert!((auto_smoothing(3000) - 0.99).abs() < 1e-12);
/// ```
pub fn auto_smoothing(n: usize) -> f64 {
    let window = (n as f64 / 30.0).clamp(1.0, 300.0);
    1.0 - 1.0 / window
}

/// TensorBoard's debiased exponential moving average: `m ← s·m + (1 − s)·x`, reported as
/// `m / (1 − sᵗ)`; non-finite inputs give `NaN` there and leave the average unchanged.
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::ema;
///
/// let e = ema(&[1.0, 3.0, f64::NAN, 3.0], 0.5);
/// assert_eq!(e[0], 1.0); // debiased: the first value is kept
/// assert!((e[1] - 7.0 / 3.0).abs() < 1e-12);
/// assert!(e[2].is_nan());
/// ```
pub fn ema(values: &[f64], smoothing: f64) -> Vec<f64> {
    let s = smoothing.clamp(0.0, 1.0 - 1e-9);
    let (mut m, mut w) = (0.0f64, 0.0f64);
    values
        .iter()
        .map(|&x| {
            if !x.is_finite() {
                return f64::NAN;
            }
            m = s * m + (1.0 - s) * x;
            w = s * w + (1.0 - s);
            m / w
        })
        .collect()
}

/// The EMA run forward and then backward over the result (as `filtfilt`): the same smoothing
/// with no lag, so the smoothed curve stays centred on the raw one instead of trailing it.
///
/// # Examples
///
/// ```
/// use patchmix_train::plot::ema_zero_lag;
///
/// // A straight line is kept (a plain EMA would trail it by about 1/(1 − s) points).
/// let line: Vec<f64> = (0..200).map(f64::from).collect();
/// let s = ema_zero_lag(&line, 0.9);
/// assert!((s[100] - 100.0).abs() < 0.01);
/// assert!((patchmix_train::plot::ema(&line, 0.9)[100] - 91.0).abs() < 0.01);
/// ```
pub fn ema_zero_lag(values: &[f64], smoothing: f64) -> Vec<f64> {
    let mut fwd = ema(values, smoothing);
    fwd.reverse();
    let mut out = ema(&fwd, smoothing);
    out.reverse();
    out
}

fn register_font() -> Result<(), PlotError> {
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

/// Tick labels: short, with an exponent for very small or large values.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a < 1e-12 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.4}"))
    }
}

/// Step tick labels: `950`, `1.5k`, `12k`, `1.2M`; none for fractional steps below 1000 (a
/// short run's axis would otherwise repeat rounded labels).
fn fmt_step(v: f64) -> String {
    let a = v.abs();
    if a < 1e3 && (v - v.round()).abs() > 1e-6 {
        String::new()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6).replace(".0M", "M")
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else {
        format!("{v:.0}")
    }
}

/// `q`-quantile of the finite values (linear interpolation); `None` when there are none.
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// A padded `[lo, hi]` for finite values, ignoring the outer 1 % of `raw` (early spikes) but
/// always covering `keep` (the smoothed curve).
fn y_range(raw: &[f64], keep: &[f64]) -> Option<(f64, f64)> {
    let mut lo = quantile(raw, 0.01);
    let mut hi = quantile(raw, 0.99);
    for &x in keep.iter().filter(|x| x.is_finite()) {
        lo = Some(lo.map_or(x, |l| l.min(x)));
        hi = Some(hi.map_or(x, |h| h.max(x)));
    }
    let (lo, hi) = (lo?, hi?);
    Some(pad(lo, hi, 0.06))
}

fn pad(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
        (lo - frac * span, hi + frac * span)
    } else {
        let d = if lo.abs() > 1e-12 {
            lo.abs() * 0.05
        } else {
            1.0
        };
        (lo - d, hi + d)
    }
}

/// Splits `(x, y)` into runs of finite points (a `NaN` is a gap), clamping `y` to `[lo, hi]`.
fn segments(xs: &[f64], ys: &[f64], (lo, hi): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for (&x, &y) in xs.iter().zip(ys) {
        if x.is_finite() && y.is_finite() {
            cur.push((x, y.clamp(lo, hi)));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn draw_err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Renders `draw` into a white `w × h` image and writes it to `path` as PNG (atomically).
fn render(
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
struct Curve<'a> {
    ys: &'a [f64],
    smooth: Option<&'a [f64]>,
    color: RGBColor,
}

fn no_data(area: &Area<'_>, title: &str, what: &str) -> Result<(), String> {
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
fn step_panel(
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
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 14))
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}

fn x_range(xs: &[f64]) -> (f64, f64) {
    let lo = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::INFINITY, f64::min);
    let hi = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

/// Step records sorted by step; of several records of one step (a resumed run logs the steps
/// after its checkpoint again) the last one in the file wins.
fn dedup_steps(steps: &[StepRecord]) -> Vec<StepRecord> {
    let mut v: Vec<(usize, StepRecord)> = steps.iter().copied().enumerate().collect();
    v.sort_by_key(|(i, s)| (s.step, *i));
    let mut out: Vec<StepRecord> = Vec::with_capacity(v.len());
    for (_, s) in v {
        match out.last_mut() {
            Some(last) if last.step == s.step => *last = s,
            _ => out.push(s),
        }
    }
    out
}

const LOSS_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn run_title(run: &str, what: &str) -> String {
    if run.is_empty() {
        what.to_string()
    } else {
        format!("{what} — {run}")
    }
}

fn draw_losses(
    root: &Area<'_>,
    run: &str,
    steps: &[StepRecord],
    smoothing: f64,
) -> Result<(), String> {
    let area = root
        .titled(&run_title(run, "PatchMix losses"), (FONT, 26))
        .map_err(draw_err)?;
    let xs: Vec<f64> = steps.iter().map(|s| s.step as f64).collect();
    let cols: [(&str, Vec<f64>); 4] = [
        ("loss (total)", steps.iter().map(|s| s.loss).collect()),
        ("src", steps.iter().map(|s| s.src).collect()),
        ("mix", steps.iter().map(|s| s.mix).collect()),
        ("mix2", steps.iter().map(|s| s.mix2).collect()),
    ];
    for ((panel, (title, ys)), color) in area
        .split_evenly((2, 2))
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

fn draw_schedules(root: &Area<'_>, run: &str, steps: &[StepRecord]) -> Result<(), String> {
    let area = root
        .titled(&run_title(run, "PatchMix schedules"), (FONT, 26))
        .map_err(draw_err)?;
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

const KNN_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn draw_knn(
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 15))
        .draw()
        .map_err(draw_err)
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

    let losses = run_dir.join("losses.png");
    render(&losses, (w, h), |root| {
        draw_losses(root, &run, &steps, smoothing)
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
    render(&schedules, (w, h), |root| {
        draw_schedules(root, &run, &steps)
    })?;
    written.push(schedules);
    Ok(PlotSummary {
        written,
        metrics,
        smoothing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ticks() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.5e-4), "1.5e-4");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(150.0), "150");
        assert_eq!(fmt_step(950.0), "950");
        assert_eq!(fmt_step(1.5), "");
        assert_eq!(fmt_step(1500.0), "1.5k");
        assert_eq!(fmt_step(2000.0), "2k");
        assert_eq!(fmt_step(12_000.0), "12k");
    }

    #[test]
    fn quantiles_and_ranges() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&[f64::NAN], 0.5), None);
        let (lo, hi) = y_range(&v, &[]).unwrap();
        assert!(lo < 1.0 && hi > 99.0 && hi < 106.0);
        // A flat series still gets a non-empty range.
        let (lo, hi) = y_range(&[0.3, 0.3], &[]).unwrap();
        assert!(lo < 0.3 && hi > 0.3);
        let (lo, hi) = y_range(&[0.0, 0.0], &[]).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
    }

    #[test]
    fn segments_split_at_gaps() {
        let s = segments(
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            &[1.0, f64::NAN, 3.0, 9.0, f64::INFINITY],
            (0.0, 5.0),
        );
        assert_eq!(s, vec![vec![(1.0, 1.0)], vec![(3.0, 3.0), (4.0, 5.0)]]);
    }

    #[test]
    fn resumed_steps_keep_the_last_record() {
        let rec = |step, loss| StepRecord {
            step,
            epoch: 0,
            loss,
            src: 0.0,
            mix: 0.0,
            mix2: 0.0,
            lr: 0.0,
            wd: 0.0,
            tau: 0.0,
            mu: 0.0,
            img_per_s: 0.0,
        };
        let d = dedup_steps(&[
            rec(1, 1.0),
            rec(2, 2.0),
            rec(3, 3.0),
            rec(2, 20.0),
            rec(3, 30.0),
        ]);
        let got: Vec<(u64, f64)> = d.iter().map(|s| (s.step, s.loss)).collect();
        assert_eq!(got, vec![(1, 1.0), (2, 20.0), (3, 30.0)]);
    }

    #[test]
    fn partial_last_line_is_skipped_but_not_elsewhere() {
        let ok = "{\"step\":1,\"loss\":1.0}\n{\"step\":2,\"lo";
        let m = parse_metrics(ok, "m").unwrap();
        assert!(m.skipped_partial_line);
        assert_eq!(m.steps.len(), 1);
        let bad = "{\"step\":1,\"lo\n{\"step\":2,\"loss\":1.0}\n";
        let e = parse_metrics(bad, "m").unwrap_err().to_string();
        assert!(e.starts_with("m line 1: not valid JSON"), "{e}");
    }

    #[test]
    fn record_kinds_and_field_errors() {
        let text = concat!(
            "{\"step\":3,\"epoch\":1,\"loss\":null,\"src\":1}\n",
            "\n",
            "{\"event\":\"resume\"}\n",
            "{\"step\":3,\"epoch\":1,\"knn_k\":20,\"knn_top1\":50.5,\"knn_top5\":90,\"final\":true}\n",
            "{\"step\":3,\"epoch\":1,\"baselines_knn20_top1\":{\"pretrained\":50.5,\"random_init\":null,\"raw_pixels\":80}}\n",
        );
        let m = parse_metrics(text, "m").unwrap();
        assert_eq!(m.steps.len(), 1);
        assert!(m.steps[0].loss.is_nan());
        assert_eq!(m.steps[0].src, 1.0);
        assert_eq!(m.ignored, 1);
        assert!(m.knn[0].is_final && m.knn[0].k == Some(20));
        assert_eq!(
            m.baselines,
            Some(Baselines {
                pretrained: Some(50.5),
                random_init: None,
                raw_pixels: Some(80.0)
            })
        );
        for (text, want) in [
            (
                "[1,2]\n",
                "m line 1: expected a JSON object, found an array",
            ),
            (
                "{\"loss\":1}\n",
                "m line 1: a step record (it has \"loss\") needs \"step\"",
            ),
            (
                "{\"step\":-1,\"loss\":1}\n",
                "m line 1: \"step\" is -1, expected a non-negative integer",
            ),
            (
                "\n{\"knn_top1\":1}\n",
                "m line 2: a kNN record (it has \"knn_top1\") needs \"epoch\"",
            ),
            (
                "{\"baselines_knn20_top1\":3}\n",
                "m line 1: \"baselines_knn20_top1\" is a number, expected an object",
            ),
            ("\n\n", "m is empty: the run has not logged any metrics yet"),
        ] {
            assert_eq!(parse_metrics(text, "m").unwrap_err().to_string(), want);
        }
    }
}
