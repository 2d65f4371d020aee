//! Provisioning ONNX Runtime's shared library for `ort`'s `load-dynamic` mode.
//!
//! The library is looked for, in order ([`locate_ort_library`]):
//! 1. `ORT_DYLIB_PATH` (a file; an error if it is set but missing);
//! 2. an installed `onnxruntime` Python package of version ≥ 1.31 (`onnxruntime/capi/`);
//! 3. the cache, `$PATCHMIX_CACHE` or `$XDG_CACHE_HOME/patchmix` or `~/.cache/patchmix`,
//!    under `ort/<version>/`;
//! 4. otherwise the `onnxruntime==1.31.1` wheel is fetched with `pip download` into the cache
//!    and the library extracted from it (Python's `zipfile`), saying so (`log::info!`).
//!
//! The CUDA build is looked for by the training crate's device code, which loads it with
//! [`ensure_ort_from`]. `load-dynamic` loads **one** ONNX Runtime library per process, so the
//! build must be chosen before the first use: [`ensure_ort`] (CPU) and [`ensure_ort_from`] (a
//! given library, e.g. the CUDA build) share one slot, and the first call decides.

mod error;
mod fetch;
mod locate;

pub use error::OrtEnvError;
pub use fetch::fetch_wheel_library;
pub use locate::{cache_dir, locate_ort_library, python_package_library};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime release this crate is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";
/// The file name of ONNX Runtime's main library.
pub const LIB_NAME: &str = "libonnxruntime.so.1.31.1";
/// The provider bridge every shared execution provider needs, beside the main library.
pub const SHARED_PROVIDER_LIB: &str = "libonnxruntime_providers_shared.so";

type Loaded = (PathBuf, ort::environment::Environment);

static ORT: OnceLock<Result<Loaded, OrtEnvError>> = OnceLock::new();

fn load(lib: PathBuf) -> Result<Loaded, OrtEnvError> {
    let builder = ort::init_from(&lib).map_err(|e| OrtEnvError::Load {
        lib: lib.clone(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("patchmix")
        .build()
        .map_err(|e| OrtEnvError::Start {
            lib: lib.clone(),
            message: e.to_string(),
        })?;
    Ok((lib, env))
}

/// Loads ONNX Runtime once per process and returns its environment (sessions are built from
/// it) and the library's path. If a library is already loaded (by this function or by
/// [`ensure_ort_from`]), that one is returned.
///
/// # Errors
/// [`OrtEnvError`] naming the library that could not be found or loaded.
pub fn ensure_ort() -> Result<Loaded, OrtEnvError> {
    ORT.get_or_init(|| load(locate_ort_library()?)).clone()
}

/// The ONNX Runtime library this process has loaded, if any (`None` before the first
/// [`ensure_ort`] / [`ensure_ort_from`], or when loading failed).
pub fn loaded_ort() -> Option<PathBuf> {
    match ORT.get() {
        Some(Ok((lib, _))) => Some(lib.clone()),
        _ => None,
    }
}

/// Loads the ONNX Runtime library `lib` (e.g. a CUDA build) unless one is already loaded, and
/// returns its environment.
///
/// # Errors
/// [`OrtEnvError::Load`] or [`OrtEnvError::Start`] when the library cannot be loaded, or
/// [`OrtEnvError::AlreadyLoaded`] when another library is already loaded in this process (one
/// process can load only one: choose the device before the first use of ONNX Runtime).
pub fn ensure_ort_from(lib: &Path) -> Result<Loaded, OrtEnvError> {
    let loaded = ORT.get_or_init(|| load(lib.to_path_buf())).clone()?;
    let same =
        loaded.0 == lib || std::fs::canonicalize(&loaded.0).ok() == std::fs::canonicalize(lib).ok();
    if same {
        Ok(loaded)
    } else {
        Err(OrtEnvError::AlreadyLoaded {
            loaded: loaded.0,
            requested: lib.to_path_buf(),
        })
    }
}
