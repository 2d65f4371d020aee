//! Cross-crate end-to-end tests of patchmix-rs (`user_path.rs`): a user's whole path on CPU
//! through the library APIs of `patchmix-train` and `patchmix-export`. This library holds
//! only the helpers they share.
#![forbid(unsafe_code)]

use std::path::Path;

/// The `(global step, total loss)` pairs of a run's `metrics.jsonl`.
///
/// # Panics
/// When the file is missing or malformed (a test failure).
pub fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            Some((v.get("step")?.as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}
