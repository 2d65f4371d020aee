//! Provisioning ONNX Runtime's shared library for `ort`'s `load-dynamic` mode.
//!
//! The library is looked for, in order:
//! 1. `ORT_DYLIB_PATH` (a file; an error if it is set but missing);
//! 2. an installed `onnxruntime` Python package of version ≥ 1.31 (`onnxruntime/capi/`);
//! 3. the cache, `$PATCHMIX_CACHE` or `$XDG_CACHE_HOME/patchmix` or `~/.cache/patchmix`,
//!    under `ort/<version>/`;
//! 4. otherwise the `onnxruntime==1.31.1` wheel is fetched with `pip download` into the cache
//!    and the library extracted from it (Python's `zipfile`), with a message on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The ONNX Runtime release this crate is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";
const LIB_NAME: &str = "libonnxruntime.so.1.31.1";

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

fn python() -> &'static str {
    if Command::new("python3").arg("--version").output().is_ok() {
        "python3"
    } else {
        "python"
    }
}

fn from_python_package() -> Option<PathBuf> {
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

/// Fetches the wheel of `package==ORT_VERSION` with pip into `dir` and extracts `member`s.
///
/// # Errors
/// A message saying what failed and how to provide the library by hand.
pub fn fetch_wheel_library(package: &str, dir: &Path, members: &[&str]) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create cache directory {}: {e}", dir.display()))?;
    eprintln!(
        "patchmix: ONNX Runtime not found; fetching the {package}=={ORT_VERSION} wheel with pip into {} (set ORT_DYLIB_PATH to skip this)",
        dir.display()
    );
    let wheels = dir.join("wheels");
    let status = Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"])
        .arg(format!("{package}=={ORT_VERSION}"))
        .arg("-d")
        .arg(&wheels)
        .status()
        .map_err(|e| format!("cannot run pip to fetch {package}: {e}; install it (`pip install {package}=={ORT_VERSION}`) or set ORT_DYLIB_PATH"))?;
    if !status.success() {
        return Err(format!(
            "pip could not download {package}=={ORT_VERSION}; install it or set ORT_DYLIB_PATH to libonnxruntime.so"
        ));
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
        .map_err(|e| format!("cannot run python to unpack the wheel: {e}"))?;
    if !status.success() {
        return Err(format!(
            "could not extract {members:?} from the {package} wheel in {}",
            wheels.display()
        ));
    }
    Ok(())
}

/// Finds (or fetches) the CPU ONNX Runtime library.
///
/// # Errors
/// A message naming what was tried and how to provide the library.
pub fn locate_ort_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "ORT_DYLIB_PATH is set to {}, which is not a file",
                p.display()
            ))
        };
    }
    if let Some(p) = from_python_package() {
        return Ok(p);
    }
    let dir = cache_dir().join("ort").join(ORT_VERSION);
    let lib = dir.join(LIB_NAME);
    if lib.is_file() {
        return Ok(lib);
    }
    fetch_wheel_library(
        "onnxruntime",
        &dir,
        &[LIB_NAME, "libonnxruntime_providers_shared.so"],
    )?;
    if lib.is_file() {
        Ok(lib)
    } else {
        Err(format!("{} is missing after extraction", lib.display()))
    }
}

static ORT: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

/// Loads ONNX Runtime once per process and returns its environment (sessions are built from
/// it) and the library's path.
///
/// # Errors
/// A message naming the library that could not be found or loaded.
pub fn ensure_ort() -> Result<(PathBuf, ort::environment::Environment), String> {
    ORT.get_or_init(|| {
        let lib = locate_ort_library()?;
        let builder = ort::init_from(&lib)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?;
        let env = builder
            .with_name("patchmix")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", lib.display()))?;
        Ok((lib, env))
    })
    .clone()
}
