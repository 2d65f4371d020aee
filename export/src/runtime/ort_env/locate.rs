//! Finding the CPU build of ONNX Runtime: `ORT_DYLIB_PATH`, the installed Python package, the
//! cache, or a fetched wheel.

use super::fetch::fetch_wheel_library;
use super::{LIB_NAME, ORT_VERSION, OrtEnvError, SHARED_PROVIDER_LIB};
use std::path::PathBuf;
use std::process::Command;

/// The cache directory (`$PATCHMIX_CACHE`, `$XDG_CACHE_HOME/patchmix` or `~/.cache/patchmix`).
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PATCHMIX_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("patchmix");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("patchmix")
}

/// `python3` if it runs, else `python`.
pub(super) fn python() -> &'static str {
    if Command::new("python3").arg("--version").output().is_ok() {
        "python3"
    } else {
        "python"
    }
}

/// The `libonnxruntime.so.1*` of the installed `onnxruntime` (or `onnxruntime-gpu`) Python
/// package, if one of version ≥ 1.31 is installed.
///
/// # Examples
/// ```no_run
/// use patchmix_export::runtime::ort_env::python_package_library;
/// if let Some(lib) = python_package_library() {
///     println!("the Python package's ONNX Runtime: {}", lib.display());
/// }
/// ```
pub fn python_package_library() -> Option<PathBuf> {
    let out = Command::new(python())
        .args([
            "-c",
            "import onnxruntime as o, os; print(o.__version__); print(os.path.join(os.path.dirname(o.__file__), 'capi'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let version = lines.next()?.trim().to_string();
    let capi = PathBuf::from(lines.next()?.trim());
    let mut parts = version.split('.').filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next()?, parts.next()?);
    if (major, minor) < (1, 31) {
        return None;
    }
    std::fs::read_dir(&capi)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so.1"))
        })
}

/// Finds (or fetches) the CPU ONNX Runtime library.
///
/// # Errors
/// [`OrtEnvError`] naming what was tried and how to provide the library.
pub fn locate_ort_library() -> Result<PathBuf, OrtEnvError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(OrtEnvError::DylibPathNotAFile { path: p })
        };
    }
    if let Some(p) = python_package_library() {
        return Ok(p);
    }
    let dir = cache_dir().join("ort").join(ORT_VERSION);
    let lib = dir.join(LIB_NAME);
    if lib.is_file() {
        return Ok(lib);
    }
    fetch_wheel_library("onnxruntime", &dir, &[LIB_NAME, SHARED_PROVIDER_LIB])?;
    if lib.is_file() {
        Ok(lib)
    } else {
        Err(OrtEnvError::MissingAfterExtraction { lib })
    }
}
