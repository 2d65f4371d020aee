//! Atomic file replacement for every file this project writes (models, weights, checkpoints,
//! metrics rewrites): a uniquely named sibling temp file is written, fsynced and renamed over
//! the target, then the directory is fsynced, so a crash leaves either the old or the new file.
//! The implementation is [`crate::weights::write_atomic`]; this module gives it an `io::Result`
//! interface for callers outside the weights module.

use std::io;
use std::path::Path;

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// Any I/O error (its message names the file and the step that failed); the target is
/// untouched when one occurs.
///
/// # Examples
/// ```
/// let dir = std::env::temp_dir().join(format!("pm-atomic-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// patchmix_export::atomic::write_atomic(&dir.join("a.txt"), b"hello").unwrap();
/// assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello");
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::weights::write_atomic(path, bytes).map_err(|e| io::Error::other(e.to_string()))
}
