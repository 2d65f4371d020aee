//! The errors of provisioning ONNX Runtime.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::ORT_VERSION;

/// ONNX Runtime could not be found, fetched or loaded; each message says what failed and how
/// to provide the library by hand. Cloneable, because the process-wide load result is shared.
#[derive(Clone, Debug, thiserror::Error)]
pub enum OrtEnvError {
    /// `ORT_DYLIB_PATH` names something that is not a file.
    #[error("ORT_DYLIB_PATH is set to {}, which is not a file", path.display())]
    DylibPathNotAFile {
        /// The value of `ORT_DYLIB_PATH`.
        path: PathBuf,
    },
    /// The cache directory could not be created.
    #[error("cannot create cache directory {}: {source}", dir.display())]
    CacheDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: Arc<io::Error>,
    },
    /// pip could not be started.
    #[error(
        "cannot run pip to fetch {package}: {source}; install it (`pip install {package}=={ORT_VERSION}`) or set ORT_DYLIB_PATH"
    )]
    PipSpawn {
        /// The PyPI package.
        package: String,
        /// Why.
        source: Arc<io::Error>,
    },
    /// pip ran but did not download the wheel.
    #[error(
        "pip could not download {package}=={ORT_VERSION}; install it or set ORT_DYLIB_PATH to libonnxruntime.so"
    )]
    PipDownload {
        /// The PyPI package.
        package: String,
    },
    /// Python could not be started to unpack the wheel.
    #[error("cannot run python to unpack the wheel: {source}")]
    PythonSpawn {
        /// Why.
        source: Arc<io::Error>,
    },
    /// The libraries could not be extracted from the wheel.
    #[error("could not extract {members:?} from the {package} wheel in {}", wheels.display())]
    Extract {
        /// The PyPI package.
        package: String,
        /// The files asked for.
        members: Vec<String>,
        /// Where the wheel was downloaded.
        wheels: PathBuf,
    },
    /// The library is still missing after extracting the wheel.
    #[error("{} is missing after extraction", lib.display())]
    MissingAfterExtraction {
        /// The library expected.
        lib: PathBuf,
    },
    /// The library could not be loaded.
    #[error("cannot load ONNX Runtime from {}: {message}", lib.display())]
    Load {
        /// The library.
        lib: PathBuf,
        /// ONNX Runtime's reason.
        message: String,
    },
    /// The library loaded, but its environment could not be started.
    #[error("cannot start ONNX Runtime from {}: {message}", lib.display())]
    Start {
        /// The library.
        lib: PathBuf,
        /// ONNX Runtime's reason.
        message: String,
    },
    /// Another ONNX Runtime library is already loaded in this process.
    #[error(
        "ONNX Runtime is already loaded from {} in this process, so {} cannot be loaded too (one process loads one ONNX Runtime library; choose the device before ONNX Runtime is first used)",
        loaded.display(),
        requested.display()
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for.
        requested: PathBuf,
    },
}
