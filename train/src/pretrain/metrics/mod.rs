//! `metrics.jsonl`: the typed records a run writes (read back by [`crate::plot`]) and the
//! append-only log that writes them.

mod log;
mod record;

pub use log::MetricsLog;
pub(crate) use record::kind_of;
pub use record::{Baselines, BaselinesRecord, KnnRecord, MetricsRecord, RecordError, StepRecord};
