//! Fetching an ONNX Runtime wheel with pip and extracting its libraries.

use super::locate::python;
use super::{ORT_VERSION, OrtEnvError};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Fetches the wheel of `package==ORT_VERSION` with pip into `dir` and extracts `member`s,
/// saying so (`log::info!`).
///
/// # Errors
/// [`OrtEnvError`] saying what failed and how to provide the library by hand.
pub fn fetch_wheel_library(package: &str, dir: &Path, members: &[&str]) -> Result<(), OrtEnvError> {
    std::fs::create_dir_all(dir).map_err(|e| OrtEnvError::CacheDir {
        dir: dir.to_path_buf(),
        source: Arc::new(e),
    })?;
    log::info!(
        "patchmix: ONNX Runtime not found; fetching the {package}=={ORT_VERSION} wheel with pip into {} (set ORT_DYLIB_PATH to skip this)",
        dir.display()
    );
    let wheels = dir.join("wheels");
    let status = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .arg(format!("{package}=={ORT_VERSION}"))
        .arg("-d")
        .arg(&wheels)
        .status()
        .map_err(|e| OrtEnvError::PipSpawn {
            package: package.to_string(),
            source: Arc::new(e),
        })?;
    if !status.success() {
        return Err(OrtEnvError::PipDownload {
            package: package.to_string(),
        });
    }
    let script = format!(
        "import glob, zipfile, os, sys\nw = sorted(glob.glob(os.path.join(sys.argv[1], '{}-{ORT_VERSION}-*.whl')))[-1]\nz = zipfile.ZipFile(w)\nfor m in sys.argv[3:]:\n    src = 'onnxruntime/capi/' + m\n    tmp = os.path.join(sys.argv[2], m + '.part')\n    open(tmp, 'wb').write(z.read(src))\n    os.replace(tmp, os.path.join(sys.argv[2], m))\n",
        package.replace('-', "_")
    );
    let status = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&wheels)
        .arg(dir)
        .args(members)
        .status()
        .map_err(|e| OrtEnvError::PythonSpawn {
            source: Arc::new(e),
        })?;
    if !status.success() {
        return Err(OrtEnvError::Extract {
            package: package.to_string(),
            members: members.iter().map(|m| m.to_string()).collect(),
            wheels,
        });
    }
    Ok(())
}
