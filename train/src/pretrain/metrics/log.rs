//! The append-only `metrics.jsonl` of a run (one [`MetricsRecord`] per line), truncated to a
//! step on resume.

use super::MetricsRecord;
use crate::pretrain::PretrainError;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metrics file of a run, open for appending.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `RUN/metrics.jsonl`, keeping only the lines up to `keep_through_step` (all lines
    /// when `None`, none for a fresh run).
    ///
    /// # Errors
    /// I/O errors naming the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_train::pretrain::metrics::{KnnRecord, MetricsLog, MetricsRecord};
    ///
    /// let dir = std::env::temp_dir().join(format!("pm-metrics-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let mut log = MetricsLog::open(&dir, None)?;
    /// log.append(&MetricsRecord::Knn(KnnRecord {
    ///     step: 8, epoch: 1, k: Some(20), top1: 12.5, top5: Some(50.0), is_final: false,
    /// }))?;
    /// let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    /// assert_eq!(text, "{\"step\":8,\"epoch\":1,\"knn_k\":20,\"knn_top1\":12.5,\"knn_top5\":50.0}\n");
    /// # Ok::<(), patchmix_train::pretrain::PretrainError>(())
    /// ```
    pub fn open(
        run_dir: &Path,
        keep_through_step: Option<u64>,
    ) -> Result<MetricsLog, PretrainError> {
        let path = run_dir.join("metrics.jsonl");
        let kept: Vec<String> = match keep_through_step {
            Some(step) => std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<Value>(l)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| s <= step)
                })
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        patchmix_export::atomic::write_atomic(&path, text.as_bytes())
            .map_err(|e| PretrainError::io("write", &path, e))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| PretrainError::io("open", &path, e))?;
        Ok(MetricsLog { path, file })
    }

    /// Appends one record as a line.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn append(&mut self, record: &MetricsRecord) -> Result<(), PretrainError> {
        let mut line = serde_json::to_vec(record).map_err(|source| PretrainError::Json {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| PretrainError::io("append to", &self.path, e))
    }
}
