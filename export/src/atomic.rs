//! Atomic file replacement for every file this project writes (models, weights, checkpoints,
//! metrics rewrites): a uniquely named sibling temp file is written, fsynced and renamed over
//! the target, then the directory is fsynced, so a crash leaves either the old or the new file,
//! never a torn one, and no temporary file is left behind on error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes the temporary file names of one process unique.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A failed atomic write: the step that failed, the destination and the I/O error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub(crate) struct AtomicWriteError {
    /// What was being done ("write", "sync", "rename into place", ...).
    pub(crate) action: &'static str,
    /// The destination file.
    pub(crate) path: PathBuf,
    /// The underlying I/O error.
    #[source]
    pub(crate) source: io::Error,
}

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
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes)).map_err(|e| io::Error::other(e.to_string()))
}

/// [`write_atomic`] with a caller-provided writer and a typed error (the weights module maps
/// it onto its own error; tests use the writer to inject failures).
///
/// On error the temporary file is removed and an existing `path` is left untouched.
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    replace_via_temp(path, |tmp, fail| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| fail("create a temporary file for", e))?;
        write(&mut file).map_err(|e| fail("write", e))?;
        file.sync_all().map_err(|e| fail("sync", e))
    })
}

/// Like [`write_atomic_with`] for writers that take a path, not a file (a C++ library that
/// opens the file itself): `write` creates the temporary path given, which is then synced,
/// renamed over `path`, and its directory synced. On error the temporary file is removed and
/// an existing `path` is left untouched.
#[cfg_attr(not(feature = "hnsw"), allow(dead_code))]
pub(crate) fn replace_atomic_via_path(
    path: &Path,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    replace_via_temp(path, |tmp, fail| {
        write(tmp).map_err(|e| fail("write", e))?;
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail("sync", e))
    })
}

/// The error of `action` on the file being replaced.
type Fail<'a> = &'a dyn Fn(&'static str, io::Error) -> AtomicWriteError;

/// The shared protocol: `fill` writes and syncs a fresh hidden temporary sibling of `path`,
/// which is then renamed over `path` and its directory synced; on error the temporary file
/// is removed and an existing `path` is left untouched.
fn replace_via_temp(
    path: &Path,
    fill: impl FnOnce(&Path, Fail<'_>) -> Result<(), AtomicWriteError>,
) -> Result<(), AtomicWriteError> {
    let fail = |action: &'static str, source: io::Error| AtomicWriteError {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        fail(
            "write",
            io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        )
    })?;
    let dir = parent_dir(path);
    let tmp = temp_sibling(&dir, file_name);
    let result = fill(&tmp, &fail)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| fail("rename into place", e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir).map_err(|e| fail("sync the directory of", e))
}

/// A fresh hidden temporary name beside `file_name` in `dir`.
fn temp_sibling(dir: &Path, file_name: &std::ffi::OsStr) -> PathBuf {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    dir.join(tmp_name)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened as files on Windows; rename is as durable as it gets there.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pm-atomic-unit-{tag}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn failed_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tmpdir("fail");
        let path = dir.join("w.safetensors");
        fs::write(&path, b"old contents").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cannot write") && msg.contains("w.safetensors"),
            "{msg}"
        );
        assert!(msg.contains("disk on fire"), "{msg}");
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        assert_eq!(entries(&dir), vec!["w.safetensors".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn successful_write_replaces_and_leaves_no_temp() {
        let dir = tmpdir("ok");
        let path = dir.join("w.bin");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        assert_eq!(entries(&dir), vec!["w.bin".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_error_message_names_the_step_and_the_file() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write /: the path has no file name",
            "{err}"
        );
    }

    #[test]
    fn failed_path_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tmpdir("via-path");
        let path = dir.join("g.hnsw");
        fs::write(&path, b"old graph").unwrap();
        let err = replace_atomic_via_path(&path, |tmp| {
            fs::write(tmp, b"half a gra")?;
            Err(io::Error::other("out of space"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out of space"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old graph");
        assert_eq!(entries(&dir), vec!["g.hnsw".to_string()]);
        replace_atomic_via_path(&path, |tmp| fs::write(tmp, b"new graph")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new graph");
        assert_eq!(entries(&dir), vec!["g.hnsw".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parent_of_bare_file_name_is_cwd() {
        assert_eq!(parent_dir(Path::new("w.safetensors")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("a/w.safetensors")), PathBuf::from("a"));
    }
}
