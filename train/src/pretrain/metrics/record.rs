//! The records of `metrics.jsonl`, one JSON object per line: the schema that `patchmix
//! pretrain` writes and `patchmix plot` reads.
//!
//! * [`StepRecord`]: one training step, `{"step", "epoch", "loss", "src", "mix", "mix2",
//!   "multi", "multi_mix", "lr", "wd", "tau", "mu", "img_per_s", "skipped", "loss_scale"}`
//!   (recognised by `"loss"`). Files of older versions lack `multi`, `multi_mix`, `skipped`
//!   and `loss_scale`; they read as `None`.
//! * [`KnnRecord`]: one kNN evaluation, `{"step", "epoch", "knn_k", "knn_top1",
//!   "knn_top5"[, "final": true]}` (recognised by `"knn_top1"`; accuracies in percent).
//! * [`BaselinesRecord`]: `{"step", "epoch", "baselines_knn20_top1": {"pretrained",
//!   "random_init", "raw_pixels"}}` (recognised by `"baselines_knn20_top1"`).
//!
//! Non-finite numbers are written as `null` (serde_json's rule) and a `null` or missing
//! number reads as `NaN` (a gap in a curve) or `None`. Reading is lenient about missing
//! fields but strict about types: a field of the wrong type is a [`RecordError`] naming it.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A field of a metrics record that cannot be read; displays as one line naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A field has the wrong JSON type (or a number out of range).
    #[error("\"{field}\" is {found}, expected {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// What the file has (`a string`, `-1`, ...).
        found: String,
        /// What the schema wants (`a number`, ...).
        expected: &'static str,
    },
    /// A record lacks a field its kind needs.
    #[error("a {kind} record (it has \"{marker}\") needs \"{field}\"")]
    Missing {
        /// The kind of record (`step`, `kNN`).
        kind: &'static str,
        /// The field that made it that kind.
        marker: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// An object of no known kind.
    #[error("not a metrics record: none of \"loss\", \"knn_top1\" or \"baselines_knn20_top1\"")]
    UnknownKind,
}

/// One training step (`NaN` where the file has `null` or no value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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
    /// Multi-crop: the local crops against the global views (0 without local crops; `None`
    /// in files of versions before multi-crop).
    pub multi: Option<f64>,
    /// Multi-crop: the mixed local crops against the global views (as `multi`).
    pub multi_mix: Option<f64>,
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
    /// fp16: the gradients overflowed, so the update was skipped (`None` in older files).
    pub skipped: Option<bool>,
    /// fp16: the loss scale the step used (`None` without loss scaling or in older files).
    pub loss_scale: Option<f64>,
}

/// One kNN evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KnnRecord {
    /// Global step at the evaluation (0 when absent).
    pub step: u64,
    /// Epochs done.
    pub epoch: u64,
    /// The `k` of the row (`None` when absent).
    #[serde(rename = "knn_k")]
    pub k: Option<u64>,
    /// Top-1 accuracy in percent (`NaN` for `null`).
    #[serde(rename = "knn_top1")]
    pub top1: f64,
    /// Top-5 accuracy in percent, when logged.
    #[serde(rename = "knn_top5")]
    pub top5: Option<f64>,
    /// Whether this is the final evaluation of the run (written only when true).
    #[serde(rename = "final", skip_serializing_if = "is_false")]
    pub is_final: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The kNN (k = 20) top-1 of the pretrained encoder and of the baselines, in percent (also
/// the content of `knn_summary.json`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Baselines {
    /// The pretrained encoder.
    pub pretrained: Option<f64>,
    /// A random-init encoder of the same architecture.
    pub random_init: Option<f64>,
    /// Raw pixels.
    pub raw_pixels: Option<f64>,
}

/// The record of the baseline comparison at the end of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselinesRecord {
    /// Global step (0 when absent).
    pub step: u64,
    /// Epochs done (0 when absent).
    pub epoch: u64,
    /// The accuracies.
    #[serde(rename = "baselines_knn20_top1")]
    pub baselines: Baselines,
}

/// Any line of `metrics.jsonl`, serialised as the record itself (no tag: the kind is told by
/// its fields, see the [module documentation](self)).
///
/// # Examples
///
/// ```
/// use patchmix_train::pretrain::metrics::{KnnRecord, MetricsRecord};
///
/// let r = MetricsRecord::Knn(KnnRecord {
///     step: 80, epoch: 5, k: Some(20), top1: 41.5, top5: Some(80.0), is_final: false,
/// });
/// let line = serde_json::to_string(&r)?;
/// assert_eq!(line, r#"{"step":80,"epoch":5,"knn_k":20,"knn_top1":41.5,"knn_top5":80.0}"#);
/// assert_eq!(serde_json::from_str::<MetricsRecord>(&line)?, r);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetricsRecord {
    /// A training step.
    Step(StepRecord),
    /// A kNN evaluation.
    Knn(KnnRecord),
    /// The baseline comparison.
    Baselines(BaselinesRecord),
}

impl MetricsRecord {
    /// Reads a record from a JSON object: `Ok(None)` for an object of no known kind (so that
    /// newer record kinds do not break older readers).
    ///
    /// # Errors
    /// A field of the wrong type, or a missing field the record's kind needs.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::pretrain::metrics::MetricsRecord;
    ///
    /// let obj = |s: &str| serde_json::from_str::<serde_json::Map<_, _>>(s).unwrap();
    /// let r = MetricsRecord::from_object(&obj(r#"{"step": 3, "loss": 5.5}"#))?;
    /// assert!(matches!(r, Some(MetricsRecord::Step(s)) if s.step == 3 && s.src.is_nan()));
    /// assert_eq!(MetricsRecord::from_object(&obj(r#"{"event": "resume"}"#))?, None);
    /// let e = MetricsRecord::from_object(&obj(r#"{"step": 3, "loss": "x"}"#)).unwrap_err();
    /// assert_eq!(e.to_string(), r#""loss" is a string, expected a number"#);
    /// # Ok::<(), patchmix_train::pretrain::metrics::RecordError>(())
    /// ```
    pub fn from_object(obj: &Map<String, Value>) -> Result<Option<MetricsRecord>, RecordError> {
        Ok(Some(if obj.contains_key(BASELINES) {
            MetricsRecord::Baselines(BaselinesRecord::from_object(obj)?)
        } else if obj.contains_key("knn_top1") {
            MetricsRecord::Knn(KnnRecord::from_object(obj)?)
        } else if obj.contains_key("loss") {
            MetricsRecord::Step(StepRecord::from_object(obj)?)
        } else {
            return Ok(None);
        }))
    }
}

const BASELINES: &str = "baselines_knn20_top1";

impl StepRecord {
    /// Reads a step record from a JSON object (see the [module documentation](self)).
    ///
    /// # Errors
    /// No `step`, or a field of the wrong type.
    pub fn from_object(obj: &Map<String, Value>) -> Result<StepRecord, RecordError> {
        let step = uint(obj, "step")?.ok_or(RecordError::Missing {
            kind: "step",
            marker: "loss",
            field: "step",
        })?;
        let f = |k: &str| num(obj, k).map(|v| v.unwrap_or(f64::NAN));
        Ok(StepRecord {
            step,
            epoch: uint(obj, "epoch")?.unwrap_or(0),
            loss: f("loss")?,
            src: f("src")?,
            mix: f("mix")?,
            mix2: f("mix2")?,
            multi: num(obj, "multi")?,
            multi_mix: num(obj, "multi_mix")?,
            lr: f("lr")?,
            wd: f("wd")?,
            tau: f("tau")?,
            mu: f("mu")?,
            img_per_s: f("img_per_s")?,
            skipped: boolean(obj, "skipped")?,
            loss_scale: num(obj, "loss_scale")?,
        })
    }
}

impl KnnRecord {
    /// The record of one row of a kNN report, at global step `step` after `epoch` epochs.
    pub fn of_row(
        step: u64,
        epoch: u64,
        row: &patchmix_export::knn::KnnRow,
        is_final: bool,
    ) -> KnnRecord {
        KnnRecord {
            step,
            epoch,
            k: Some(row.k as u64),
            top1: row.top1,
            top5: Some(row.top5),
            is_final,
        }
    }

    /// Reads a kNN record from a JSON object (see the [module documentation](self)).
    ///
    /// # Errors
    /// No `epoch`, or a field of the wrong type.
    pub fn from_object(obj: &Map<String, Value>) -> Result<KnnRecord, RecordError> {
        let epoch = uint(obj, "epoch")?.ok_or(RecordError::Missing {
            kind: "kNN",
            marker: "knn_top1",
            field: "epoch",
        })?;
        Ok(KnnRecord {
            step: uint(obj, "step")?.unwrap_or(0),
            epoch,
            k: uint(obj, "knn_k")?,
            top1: num(obj, "knn_top1")?.unwrap_or(f64::NAN),
            top5: num(obj, "knn_top5")?,
            is_final: boolean(obj, "final")?.unwrap_or(false),
        })
    }
}

impl Baselines {
    /// Reads the accuracies from a JSON object.
    ///
    /// # Errors
    /// A field of the wrong type.
    pub fn from_object(obj: &Map<String, Value>) -> Result<Baselines, RecordError> {
        Ok(Baselines {
            pretrained: num(obj, "pretrained")?,
            random_init: num(obj, "random_init")?,
            raw_pixels: num(obj, "raw_pixels")?,
        })
    }
}

impl BaselinesRecord {
    /// Reads a baselines record from a JSON object (see the [module documentation](self)).
    ///
    /// # Errors
    /// `baselines_knn20_top1` missing or not an object, or a field of the wrong type.
    pub fn from_object(obj: &Map<String, Value>) -> Result<BaselinesRecord, RecordError> {
        let baselines = match obj.get(BASELINES) {
            Some(Value::Object(b)) => Baselines::from_object(b)?,
            other => return Err(wrong_type(BASELINES, other, "an object")),
        };
        Ok(BaselinesRecord {
            step: uint(obj, "step")?.unwrap_or(0),
            epoch: uint(obj, "epoch")?.unwrap_or(0),
            baselines,
        })
    }
}

/// `Deserialize` through a JSON object and the record's `from_object`, so that serde and the
/// plotter read with the same rules and the same messages.
macro_rules! deserialize_via_object {
    ($t:ty, $read:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let obj = Map::<String, Value>::deserialize(d)?;
                $read(&obj).map_err(D::Error::custom)
            }
        }
    };
}

deserialize_via_object!(StepRecord, StepRecord::from_object);
deserialize_via_object!(KnnRecord, KnnRecord::from_object);
deserialize_via_object!(Baselines, Baselines::from_object);
deserialize_via_object!(BaselinesRecord, BaselinesRecord::from_object);
deserialize_via_object!(MetricsRecord, |o| MetricsRecord::from_object(o)
    .and_then(|r| r.ok_or(RecordError::UnknownKind)));

/// How an error message names a JSON value's type.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, v: Option<&Value>, expected: &'static str) -> RecordError {
    RecordError::WrongType {
        field: field.to_string(),
        found: v.map_or("missing", kind_of).to_string(),
        expected,
    }
}

/// A number field: `Ok(None)` when absent or `null`.
fn num(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, RecordError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        v => Err(wrong_type(key, v, "a number")),
    }
}

/// A non-negative integer field: `Ok(None)` when absent or `null`.
fn uint(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, RecordError> {
    const EXPECTED: &str = "a non-negative integer";
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(RecordError::WrongType {
            field: key.to_string(),
            found: n.to_string(),
            expected: EXPECTED,
        }),
        v => Err(wrong_type(key, v, EXPECTED)),
    }
}

/// A boolean field: `Ok(None)` when absent or `null`.
fn boolean(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, RecordError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        v => Err(wrong_type(key, v, "a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(multi: Option<f64>, loss_scale: Option<f64>) -> StepRecord {
        StepRecord {
            step: 7,
            epoch: 1,
            loss: f64::from(5.123_457_f32),
            src: 2.5,
            mix: 2.25,
            mix2: 1.0,
            multi,
            multi_mix: multi.map(|m| m / 2.0),
            lr: 1.5e-4,
            wd: 0.04,
            tau: 0.2,
            mu: 0.99,
            img_per_s: 312.5,
            skipped: Some(false),
            loss_scale,
        }
    }

    #[test]
    fn every_record_kind_round_trips() {
        let records = [
            MetricsRecord::Step(step(Some(0.75), Some(65536.0))),
            MetricsRecord::Step(step(Some(0.0), None)),
            MetricsRecord::Knn(KnnRecord {
                step: 16,
                epoch: 2,
                k: Some(20),
                top1: 40.25,
                top5: Some(80.5),
                is_final: true,
            }),
            MetricsRecord::Baselines(BaselinesRecord {
                step: 16,
                epoch: 2,
                baselines: Baselines {
                    pretrained: Some(40.25),
                    random_init: Some(30.0),
                    raw_pixels: None,
                },
            }),
        ];
        for r in records {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(
                serde_json::from_str::<MetricsRecord>(&line).unwrap(),
                r,
                "{line}"
            );
        }
    }

    /// The loop's records as the versions before the typed schema wrote them (`json!`, keys
    /// in alphabetical order, `f32` losses widened to `f64`) read field for field.
    #[test]
    fn lines_written_the_old_way_still_parse() {
        let (total, src, multi) = (5.123_457_f32, 2.5_f32, 0.0_f32);
        let old = json!({
            "step": 7, "epoch": 1, "loss": total, "src": src, "mix": 2.25_f32, "mix2": 1.0_f32,
            "multi": multi, "multi_mix": multi,
            "lr": 1.5e-4, "wd": 0.04, "tau": 0.2, "mu": 0.99, "img_per_s": 312.5,
            "skipped": true, "loss_scale": Some(1024.0_f32),
        });
        let r: StepRecord = serde_json::from_str(&old.to_string()).unwrap();
        assert_eq!(r.loss, f64::from(total));
        assert_eq!((r.multi, r.multi_mix), (Some(0.0), Some(0.0)));
        assert_eq!((r.skipped, r.loss_scale), (Some(true), Some(1024.0)));
        // The new writer gives the same object (key order aside).
        let new = serde_json::to_value(StepRecord {
            skipped: Some(true),
            loss_scale: Some(1024.0),
            ..step(Some(0.0), None)
        })
        .unwrap();
        assert_eq!(new, old);

        let old_knn = json!({"step": 16, "epoch": 2, "knn_k": 20, "knn_top1": 40.25, "knn_top5": 80.5, "final": true});
        let k: KnnRecord = serde_json::from_value(old_knn.clone()).unwrap();
        assert_eq!(serde_json::to_value(k).unwrap(), old_knn);
        let summary = json!({"pretrained": 40.25, "random_init": f64::NAN, "raw_pixels": 50.0});
        let old_base = json!({"step": 16, "epoch": 2, "baselines_knn20_top1": summary});
        let b: BaselinesRecord = serde_json::from_value(old_base.clone()).unwrap();
        assert_eq!(b.baselines.random_init, None);
        assert_eq!(serde_json::to_value(b).unwrap(), old_base);
    }

    /// Files of versions before multi-crop and mixed precision lack four fields.
    #[test]
    fn older_step_records_lack_the_newer_fields() {
        let line = r#"{"step":3,"epoch":0,"loss":5.5,"src":2,"mix":2,"mix2":1,"lr":1e-4,"wd":0.04,"tau":0.2,"mu":0.99,"img_per_s":100}"#;
        let r: StepRecord = serde_json::from_str(line).unwrap();
        assert_eq!(
            (r.multi, r.multi_mix, r.skipped, r.loss_scale),
            (None, None, None, None)
        );
        assert_eq!((r.step, r.loss), (3, 5.5));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        let e = StepRecord::from_object(&obj(json!({"step": 1, "loss": 1, "skipped": 1})));
        assert_eq!(
            e.unwrap_err().to_string(),
            "\"skipped\" is a number, expected a boolean"
        );
        let e = StepRecord::from_object(&obj(json!({"step": 1, "loss": 1, "loss_scale": "x"})));
        assert_eq!(
            e.unwrap_err().to_string(),
            "\"loss_scale\" is a string, expected a number"
        );
        assert_eq!(
            MetricsRecord::from_object(&obj(json!({"event": "resume"}))),
            Ok(None)
        );
        let e = serde_json::from_value::<MetricsRecord>(json!({"event": "resume"})).unwrap_err();
        assert!(e.to_string().starts_with("not a metrics record"), "{e}");
    }
}
