//! Provisioning ONNX Runtime's shared library for `ort`'s `load-dynamic` mode.
//!
//! The library is looked for, in order:
//! 1. `ORT_DYLIB_PATH` (a file; an error if it is set but missing);
//! 2. an installed `onnxruntime` Python package of version ≥ 1.31 (`onnxruntime/capi/`);
//! 3. the cache, `$PATCHMIX_CACHE` or `$XDG_CACHE_HOME/patchmix` or `~/.cache/patchmix`,
//!    under `ort/<version>/`;
//! 4. otherwise the `onnxruntime==1.31.1` wheel is fetched with `pip download` into the cache
//!    and the library extracted from it (Python's `zipfile`), with a message on stderr.
//!
//! The CUDA build (`onnxruntime-gpu==1.31.1`, CUDA 13) is looked for by
//! [`locate_ort_gpu_library`]: `ORT_DYLIB_PATH`, then an installed `onnxruntime-gpu` Python
//! package (its `capi/` holds `libonnxruntime_providers_cuda.so`), then the cache under
//! `ort/1.31.1-gpu/`, and otherwise, on a machine with an NVIDIA driver, the wheel is fetched
//! with pip. `load-dynamic` loads **one** ONNX Runtime library per process, so the build must be
//! chosen before the first use: [`ensure_ort`] (CPU) and [`ensure_ort_from`] (a given library,
//! e.g. the CUDA build) share one slot, and the first call decides.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The ONNX Runtime release this crate is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";
const LIB_NAME: &str = "libonnxruntime.so.1.31.1";
/// The CUDA execution provider's library, which ONNX Runtime loads from its own directory.
pub const CUDA_PROVIDER_LIB: &str = "libonnxruntime_providers_cuda.so";
/// The provider bridge every shared execution provider needs, beside the main library.
pub const SHARED_PROVIDER_LIB: &str = "libonnxruntime_providers_shared.so";
/// The PyPI package of ONNX Runtime's CUDA 13 build.
pub const GPU_PACKAGE: &str = "onnxruntime-gpu";

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

fn load(lib: PathBuf) -> Result<(PathBuf, ort::environment::Environment), String> {
    let builder = ort::init_from(&lib)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?;
    let env = builder
        .with_name("patchmix")
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", lib.display()))?;
    Ok((lib, env))
}

/// Loads ONNX Runtime once per process and returns its environment (sessions are built from
/// it) and the library's path. If a library is already loaded (by this function or by
/// [`ensure_ort_from`]), that one is returned.
///
/// # Errors
/// A message naming the library that could not be found or loaded.
pub fn ensure_ort() -> Result<(PathBuf, ort::environment::Environment), String> {
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

/// Loads the ONNX Runtime library `lib` (e.g. the CUDA build from [`locate_ort_gpu_library`])
/// unless one is already loaded, and returns its environment.
///
/// # Errors
/// The library cannot be loaded, or another library is already loaded in this process (one
/// process can load only one: choose the device before the first use of ONNX Runtime).
pub fn ensure_ort_from(lib: &Path) -> Result<(PathBuf, ort::environment::Environment), String> {
    let loaded = ORT.get_or_init(|| load(lib.to_path_buf())).clone()?;
    let same =
        loaded.0 == lib || std::fs::canonicalize(&loaded.0).ok() == std::fs::canonicalize(lib).ok();
    if same {
        Ok(loaded)
    } else {
        Err(format!(
            "ONNX Runtime is already loaded from {} in this process, so {} cannot be loaded too (one process loads one ONNX Runtime library; choose the device before ONNX Runtime is first used)",
            loaded.0.display(),
            lib.display()
        ))
    }
}

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
/// `env_path` is set but is not a file.
pub fn find_ort_gpu_library_in(
    env_path: Option<&Path>,
    python_lib: Option<&Path>,
    cache_dir: &Path,
) -> Result<GpuLookup, String> {
    if let Some(p) = env_path {
        if !p.is_file() {
            return Err(format!(
                "ORT_DYLIB_PATH is set to {}, which is not a file",
                p.display()
            ));
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
/// `ORT_DYLIB_PATH` is set but is not a file.
pub fn find_ort_gpu_library() -> Result<GpuLookup, String> {
    let env = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    let py = if env.is_some() {
        None
    } else {
        from_python_package()
    };
    find_ort_gpu_library_in(env.as_deref(), py.as_deref(), &gpu_cache_dir())
}

/// Finds the CUDA build ([`find_ort_gpu_library`]) or, when none is found and this machine has
/// an NVIDIA driver, fetches the `onnxruntime-gpu==1.31.1` wheel with pip into
/// [`gpu_cache_dir`] and extracts the main library and both provider libraries (saying so on
/// stderr). The CUDA libraries themselves (cuDNN, cuBLAS, …) come from the `nvidia-*` pip
/// packages or the system; the training crate's device preflight checks them.
///
/// # Errors
/// A message naming the CUDA provider library, every place looked at, and how to provide it.
pub fn locate_ort_gpu_library() -> Result<PathBuf, String> {
    let tried = match find_ort_gpu_library()? {
        GpuLookup::Found { lib, .. } => return Ok(lib),
        GpuLookup::NotFound { tried } => tried,
    };
    let dir = gpu_cache_dir();
    let how = format!(
        "install ONNX Runtime's CUDA 13 build (`pip install {GPU_PACKAGE}=={ORT_VERSION}`), or set ORT_DYLIB_PATH to a CUDA build's {LIB_NAME} whose directory also holds {CUDA_PROVIDER_LIB} and {SHARED_PROVIDER_LIB}"
    );
    if !nvidia_driver_present() {
        return Err(format!(
            "cannot use CUDA: no ONNX Runtime CUDA build ({CUDA_PROVIDER_LIB}) was found:\n  - {}\nand this machine has no NVIDIA driver (no /proc/driver/nvidia/version, no /dev/nvidiactl), so the {GPU_PACKAGE} wheel is not fetched. On a GPU machine, {how}; here, use --device cpu or --device auto",
            tried.join("\n  - ")
        ));
    }
    fetch_wheel_library(
        GPU_PACKAGE,
        &dir,
        &[LIB_NAME, SHARED_PROVIDER_LIB, CUDA_PROVIDER_LIB],
    )
    .map_err(|e| {
        format!(
            "{e}\n(looked for the CUDA build first: {}); {how}",
            tried.join("; ")
        )
    })?;
    let lib = dir.join(LIB_NAME);
    if lib.is_file() && has_cuda_provider(&lib) {
        Ok(lib)
    } else {
        Err(format!(
            "{} or {CUDA_PROVIDER_LIB} is missing after extracting the {GPU_PACKAGE} wheel into {}",
            lib.display(),
            dir.display()
        ))
    }
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
        let e = find_ort_gpu_library_in(Some(&missing), None, t.path()).unwrap_err();
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
