//! Append-only JSONL metrics (one object per line), truncated to a step on resume.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A metrics file.
pub struct Metrics {
    path: PathBuf,
    file: std::fs::File,
}

impl Metrics {
    /// Opens `RUN/metrics.jsonl`, keeping only the lines up to `keep_through_step` (all lines
    /// when `None`, none for a fresh run).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn open(run_dir: &Path, keep_through_step: Option<u64>) -> Result<Metrics, String> {
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
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(Metrics { path, file })
    }

    /// Appends one record.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn log(&mut self, record: &Value) -> Result<(), String> {
        writeln!(self.file, "{record}")
            .map_err(|e| format!("cannot append to {}: {e}", self.path.display()))
    }

    /// Reads every record of a run's metrics.
    ///
    /// # Errors
    /// An unreadable file or a malformed line, naming the line.
    pub fn read(run_dir: &Path) -> Result<Vec<Value>, String> {
        let path = run_dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
            })
            .collect()
    }
}
