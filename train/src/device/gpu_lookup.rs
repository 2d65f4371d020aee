//! Where ONNX Runtime's CUDA build (`onnxruntime-gpu==1.31.1`, CUDA 13) is found:
//! `ORT_DYLIB_PATH`, then an installed `onnxruntime-gpu` Python package (its `capi/` holds
//! `libonnxruntime_providers_cuda.so`), then the cache under `ort/1.31.1-gpu/`, and otherwise,
//! on a machine with an NVIDIA driver, the wheel is fetched with pip.

use patchmix_export::runtime::ort_env::{
    LIB_NAME, ORT_VERSION, OrtEnvError, SHARED_PROVIDER_LIB, cache_dir, fetch_wheel_library,
    python_package_library,
};
use std::path::{Path, PathBuf};

/// The CUDA execution provider's library, which ONNX Runtime loads from its own directory.
pub const CUDA_PROVIDER_LIB: &str = "libonnxruntime_providers_cuda.so";
/// The PyPI package of ONNX Runtime's CUDA 13 build.
pub const GPU_PACKAGE: &str = "onnxruntime-gpu";

/// Whether `lib`'s directory holds the CUDA execution provider (`libonnxruntime_providers_cuda.so`),
/// i.e. whether it is a CUDA build of ONNX Runtime.
pub fn has_cuda_provider(lib: &Path) -> bool {
    lib.parent()
        .is_some_and(|d| d.join(CUDA_PROVIDER_LIB).is_file())
}

/// The cache directory of the CUDA build: `<cache>/ort/1.31.1-gpu/`.
pub fn gpu_cache_dir() -> PathBuf {
    cache_dir().join("ort").join(format!("{ORT_VERSION}-gpu"))
}

/// Whether this machine has an NVIDIA kernel driver (`/proc/driver/nvidia/version` or
/// `/dev/nvidiactl`). Without one CUDA cannot run, so the GPU wheel is not fetched.
pub fn nvidia_driver_present() -> bool {
    Path::new("/proc/driver/nvidia/version").exists() || Path::new("/dev/nvidiactl").exists()
}

/// Where a CUDA build of ONNX Runtime was found, or what was looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuLookup {
    /// A library to load.
    Found {
        /// `libonnxruntime.so.1.31.1`.
        lib: PathBuf,
        /// Where it came from, in words (`ORT_DYLIB_PATH`, the `onnxruntime-gpu` Python
        /// package, the cache).
        source: String,
    },
    /// None found; one line per place looked at.
    NotFound {
        /// What was looked at and why it did not qualify.
        tried: Vec<String>,
    },
}

/// The lookup order of the CUDA build over given candidates, without fetching anything:
/// 1. `env_path` (`ORT_DYLIB_PATH`) when set: it wins even without a CUDA provider beside it
///    (the caller's preflight then says what is missing);
/// 2. `python_lib`, the library of the installed `onnxruntime*` Python package, when its
///    directory holds `libonnxruntime_providers_cuda.so` (the `onnxruntime-gpu` package);
/// 3. `cache_dir/libonnxruntime.so.1.31.1` with the CUDA provider beside it.
///
/// # Errors
/// [`OrtEnvError::DylibPathNotAFile`] when `env_path` is set but is not a file.
pub fn find_ort_gpu_library_in(
    env_path: Option<&Path>,
    python_lib: Option<&Path>,
    cache_dir: &Path,
) -> Result<GpuLookup, OrtEnvError> {
    if let Some(p) = env_path {
        if !p.is_file() {
            return Err(OrtEnvError::DylibPathNotAFile {
                path: p.to_path_buf(),
            });
        }
        return Ok(GpuLookup::Found {
            lib: p.to_path_buf(),
            source: "ORT_DYLIB_PATH".into(),
        });
    }
    let mut tried = vec!["ORT_DYLIB_PATH: not set".to_string()];
    match python_lib {
        Some(l) if has_cuda_provider(l) => {
            return Ok(GpuLookup::Found {
                lib: l.to_path_buf(),
                source: format!("the installed {GPU_PACKAGE} Python package"),
            });
        }
        Some(l) => tried.push(format!(
            "the installed onnxruntime Python package ({}) is the CPU build: no {CUDA_PROVIDER_LIB} beside it",
            l.display()
        )),
        None => tried.push(format!(
            "no {GPU_PACKAGE} (>= 1.31) Python package installed"
        )),
    }
    let lib = cache_dir.join(LIB_NAME);
    if lib.is_file() && has_cuda_provider(&lib) {
        return Ok(GpuLookup::Found {
            lib,
            source: format!("the cache ({})", cache_dir.display()),
        });
    }
    tried.push(format!(
        "the cache {}: no {LIB_NAME} with {CUDA_PROVIDER_LIB} beside it",
        cache_dir.display()
    ));
    Ok(GpuLookup::NotFound { tried })
}

/// Looks for the CUDA build in the order of [`find_ort_gpu_library_in`] with this process's
/// `ORT_DYLIB_PATH`, installed Python package and [`gpu_cache_dir`]; fetches nothing.
///
/// # Errors
/// [`OrtEnvError::DylibPathNotAFile`] when `ORT_DYLIB_PATH` is set but is not a file.
pub fn find_ort_gpu_library() -> Result<GpuLookup, OrtEnvError> {
    let env = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    let py = if env.is_some() {
        None
    } else {
        python_package_library()
    };
    find_ort_gpu_library_in(env.as_deref(), py.as_deref(), &gpu_cache_dir())
}

/// Finds the CUDA build ([`find_ort_gpu_library`]) or, when none is found and this machine has
/// an NVIDIA driver, fetches the `onnxruntime-gpu==1.31.1` wheel with pip into
/// [`gpu_cache_dir`] and extracts the main library and both provider libraries (saying so,
/// `log::info!`). The CUDA libraries themselves (cuDNN, cuBLAS, …) come from the `nvidia-*` pip
/// packages or the system; the training crate's device preflight checks them.
///
/// # Errors
/// [`GpuLookupError`] naming the CUDA provider library, every place looked at, and how to
/// provide it.
pub fn locate_ort_gpu_library() -> Result<PathBuf, GpuLookupError> {
    let tried = match find_ort_gpu_library()? {
        GpuLookup::Found { lib, .. } => return Ok(lib),
        GpuLookup::NotFound { tried } => tried,
    };
    if !nvidia_driver_present() {
        return Err(GpuLookupError::NoDriver { tried });
    }
    let dir = gpu_cache_dir();
    fetch_wheel_library(
        GPU_PACKAGE,
        &dir,
        &[LIB_NAME, SHARED_PROVIDER_LIB, CUDA_PROVIDER_LIB],
    )
    .map_err(|source| GpuLookupError::Fetch { source, tried })?;
    let lib = dir.join(LIB_NAME);
    if lib.is_file() && has_cuda_provider(&lib) {
        Ok(lib)
    } else {
        Err(GpuLookupError::MissingAfterExtraction { lib, dir })
    }
}

/// How to provide the CUDA build, for messages.
fn how_to_install() -> String {
    format!(
        "install ONNX Runtime's CUDA 13 build (`pip install {GPU_PACKAGE}=={ORT_VERSION}`), or set ORT_DYLIB_PATH to a CUDA build's {LIB_NAME} whose directory also holds {CUDA_PROVIDER_LIB} and {SHARED_PROVIDER_LIB}"
    )
}

/// No CUDA build of ONNX Runtime was found or could be fetched; each message names the CUDA
/// provider library, every place looked at, and how to provide it.
#[derive(Debug, thiserror::Error)]
pub enum GpuLookupError {
    /// `ORT_DYLIB_PATH` is set but is not a file.
    #[error(transparent)]
    Lookup(#[from] OrtEnvError),
    /// None found, and without an NVIDIA driver the wheel is not fetched.
    #[error(
        "cannot use CUDA: no ONNX Runtime CUDA build ({CUDA_PROVIDER_LIB}) was found:\n  - {}\nand this machine has no NVIDIA driver (no /proc/driver/nvidia/version, no /dev/nvidiactl), so the {GPU_PACKAGE} wheel is not fetched. On a GPU machine, {}; here, use --device cpu or --device auto",
        tried.join("\n  - "),
        how_to_install()
    )]
    NoDriver {
        /// What was looked at and why it did not qualify.
        tried: Vec<String>,
    },
    /// None found, and fetching the wheel failed.
    #[error(
        "{source}\n(looked for the CUDA build first: {}); {}",
        tried.join("; "),
        how_to_install()
    )]
    Fetch {
        /// Why the fetch failed.
        source: OrtEnvError,
        /// What was looked at before.
        tried: Vec<String>,
    },
    /// The fetched wheel did not hold the libraries.
    #[error(
        "{} or {CUDA_PROVIDER_LIB} is missing after extracting the {GPU_PACKAGE} wheel into {}",
        lib.display(),
        dir.display()
    )]
    MissingAfterExtraction {
        /// The main library expected.
        lib: PathBuf,
        /// The cache directory.
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"fake").unwrap();
    }

    #[test]
    fn gpu_lookup_prefers_ort_dylib_path_even_without_a_provider() {
        let t = tempfile::tempdir().unwrap();
        let env_lib = t.path().join("cpu").join(LIB_NAME);
        touch(&env_lib);
        let py = t.path().join("py/capi").join(LIB_NAME);
        touch(&py);
        touch(&py.with_file_name(CUDA_PROVIDER_LIB));
        let got = find_ort_gpu_library_in(Some(&env_lib), Some(&py), t.path()).unwrap();
        assert_eq!(
            got,
            GpuLookup::Found {
                lib: env_lib.clone(),
                source: "ORT_DYLIB_PATH".into()
            }
        );
        assert!(!has_cuda_provider(&env_lib));
        assert!(has_cuda_provider(&py));
    }

    #[test]
    fn gpu_lookup_rejects_a_missing_ort_dylib_path() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope.so");
        let e = find_ort_gpu_library_in(Some(&missing), None, t.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ORT_DYLIB_PATH") && e.contains("nope.so"), "{e}");
    }

    #[test]
    fn gpu_lookup_takes_the_gpu_python_package_then_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        let cached = cache.join(LIB_NAME);
        touch(&cached);
        touch(&cache.join(CUDA_PROVIDER_LIB));
        // The GPU package wins over the cache.
        let gpu_py = t.path().join("gpu/capi").join(LIB_NAME);
        touch(&gpu_py);
        touch(&gpu_py.with_file_name(CUDA_PROVIDER_LIB));
        match find_ort_gpu_library_in(None, Some(&gpu_py), &cache).unwrap() {
            GpuLookup::Found { lib, source } => {
                assert_eq!(lib, gpu_py);
                assert!(source.contains(GPU_PACKAGE), "{source}");
            }
            o => panic!("{o:?}"),
        }
        // A CPU package is skipped (and said so) in favour of the cache.
        let cpu_py = t.path().join("cpu/capi").join(LIB_NAME);
        touch(&cpu_py);
        match find_ort_gpu_library_in(None, Some(&cpu_py), &cache).unwrap() {
            GpuLookup::Found { lib, source } => {
                assert_eq!(lib, cached);
                assert!(source.contains("cache"), "{source}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn gpu_lookup_reports_every_place_when_nothing_qualifies() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        // A cached CPU library without the provider does not count.
        touch(&cache.join(LIB_NAME));
        let cpu_py = t.path().join("cpu/capi").join(LIB_NAME);
        touch(&cpu_py);
        match find_ort_gpu_library_in(None, Some(&cpu_py), &cache).unwrap() {
            GpuLookup::NotFound { tried } => {
                assert_eq!(tried.len(), 3, "{tried:?}");
                assert!(tried[0].contains("ORT_DYLIB_PATH"));
                assert!(tried[1].contains("CPU build") && tried[1].contains(CUDA_PROVIDER_LIB));
                assert!(tried[2].contains(&cache.display().to_string()));
            }
            o => panic!("{o:?}"),
        }
        match find_ort_gpu_library_in(None, None, &cache).unwrap() {
            GpuLookup::NotFound { tried } => assert!(tried[1].contains(GPU_PACKAGE)),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn gpu_cache_is_a_sibling_of_the_cpu_cache() {
        let g = gpu_cache_dir();
        assert_eq!(g.file_name().unwrap(), "1.31.1-gpu");
        assert_eq!(g.parent().unwrap(), cache_dir().join("ort"));
    }
}
