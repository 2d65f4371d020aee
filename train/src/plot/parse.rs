//! Reading a run's `metrics.jsonl` into its typed records ([`crate::pretrain::metrics`]):
//! line handling (blank lines, an unfinished last line, UTF-8), record kinds, and the step
//! records of a resumed run.

use super::PlotError;
use crate::pretrain::metrics::{Baselines, KnnRecord, MetricsRecord, StepRecord};
use serde_json::Value;
use std::path::Path;

/// The records of a `metrics.jsonl`, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Step records.
    pub steps: Vec<StepRecord>,
    /// kNN records.
    pub knn: Vec<KnnRecord>,
    /// The last baseline record, if any.
    pub baselines: Option<Baselines>,
    /// A fine-tuning run's per-epoch evaluations (`"kind": "eval"`).
    pub evals: Vec<super::EvalRecord>,
    /// Objects of no known kind (ignored).
    pub ignored: usize,
    /// Whether an unterminated, unparseable last line was skipped.
    pub skipped_partial_line: bool,
}

impl Metrics {
    /// Whether the run had local crops (multi-crop): some step has a non-zero `multi` or
    /// `multi_mix` (runs without them log zeros; older files do not log them at all).
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::plot::parse_metrics;
    ///
    /// let fp16 = "{\"step\":1,\"loss\":5,\"multi\":1.5,\"skipped\":true,\"loss_scale\":65536}\n\
    ///             {\"step\":2,\"loss\":5,\"multi\":1.5,\"skipped\":false,\"loss_scale\":32768}\n";
    /// let m = parse_metrics(fp16, "metrics.jsonl")?;
    /// assert!(m.has_multi_crop() && m.has_loss_scale());
    /// assert_eq!(m.skipped_steps(), 1);
    /// // Files of older versions have none of these fields.
    /// let old = parse_metrics("{\"step\":1,\"loss\":5}\n", "metrics.jsonl")?;
    /// assert!(!old.has_multi_crop() && !old.has_loss_scale());
    /// # Ok::<(), patchmix_train::plot::PlotError>(())
    /// ```
    pub fn has_multi_crop(&self) -> bool {
        self.steps.iter().any(|s| {
            [s.multi, s.multi_mix]
                .into_iter()
                .flatten()
                .any(|v| v.is_finite() && v != 0.0)
        })
    }

    /// Whether the run scaled its loss (fp16): some step has a `loss_scale`.
    pub fn has_loss_scale(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.loss_scale.is_some_and(f64::is_finite))
    }

    /// The steps whose update was skipped for an fp16 overflow.
    pub fn skipped_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.skipped == Some(true))
            .count()
    }
}

fn parse_err(path: &str, line: usize, message: impl Into<String>) -> PlotError {
    PlotError::Parse {
        path: path.to_string(),
        line,
        message: message.into(),
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
        if obj.get("kind").and_then(Value::as_str) == Some("eval") {
            let r = serde_json::from_value(Value::Object(obj))
                .map_err(|e| parse_err(path, i + 1, format!("an eval record: {e}")))?;
            m.evals.push(r);
            continue;
        }
        match MetricsRecord::from_object(&obj) {
            Ok(Some(MetricsRecord::Step(s))) => m.steps.push(s),
            Ok(Some(MetricsRecord::Knn(k))) => m.knn.push(k),
            Ok(Some(MetricsRecord::Baselines(b))) => m.baselines = Some(b.baselines),
            Ok(None) => m.ignored += 1,
            Err(e) => return Err(parse_err(path, i + 1, e.to_string())),
        }
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

/// Step records sorted by step; of several records of one step (a resumed run logs the steps
/// after its checkpoint again) the last one in the file wins.
pub(super) fn dedup_steps(steps: &[StepRecord]) -> Vec<StepRecord> {
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

/// How an error message names a JSON value's type.
fn kind_of(v: &Value) -> &'static str {
    crate::pretrain::metrics::kind_of(v)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            multi: None,
            multi_mix: None,
            skipped: None,
            loss_scale: None,
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
