//! Where the training step runs: the CPU, a CUDA GPU through ONNX Runtime's CUDA execution
//! provider, or `auto` (CUDA when it loads, else the CPU, saying which).
//!
//! ONNX Runtime's CUDA build (`onnxruntime-gpu==1.31.1`, CUDA 13) loads its CUDA provider,
//! `libonnxruntime_providers_cuda.so`, from the directory of `libonnxruntime.so`, and the
//! provider needs the CUDA 13 libraries (cudart, cuBLAS, cuFFT, cuRAND, cuDNN 9) at load time.
//! Before registering the provider, [`preflight_cuda`] checks both and explains what is
//! missing: the provider file (with the directory looked in), or the CUDA libraries the dynamic
//! loader cannot resolve (from `ldd`), with the pip packages that ship them. Libraries found in
//! the Python environment's `site-packages/nvidia/*/lib` are preloaded
//! ([`ort::util::preload_dylib`]), so `pip install` alone is enough; `LD_LIBRARY_PATH` works
//! too, set before the process starts. A requested CUDA device never silently falls back to
//! the CPU.

use ort::ep::{self, ExecutionProviderDispatch};
use patchmix_export::runtime::ort_env::{self, CUDA_PROVIDER_LIB, GPU_PACKAGE, ORT_VERSION};
use patchmix_export::runtime::ort_env::{GpuLookup, SHARED_PROVIDER_LIB};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// A requested device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// CUDA GPU number N through ONNX Runtime's CUDA execution provider; an error if it cannot
    /// be used.
    Cuda(u32),
    /// CUDA GPU 0 if the CUDA build and its libraries load, else the CPU (said on stderr).
    Auto,
}

/// The accepted spellings, for messages.
pub const DEVICE_FORMS: &str = "cpu, cuda, cuda:N (N = GPU index, e.g. cuda:1) or auto";

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || DeviceError::Parse {
            value: s.to_string(),
        };
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "auto" => Ok(Device::Auto),
            _ => match t.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(Device::Cuda).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a session actually runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// The CPU execution provider.
    Cpu,
    /// The CUDA execution provider on this GPU.
    Cuda(u32),
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Cpu => f.write_str("cpu"),
            Placement::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Where and how a step session runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceOptions {
    /// `cpu` (default), `cuda[:N]` (an error if CUDA cannot be used) or `auto`.
    pub device: Device,
    /// ORT's CUDA graph capture (CUDA only; the step is then one graph replay).
    pub cuda_graph: bool,
    /// TF32 tensor-core math for fp32 MatMul/Gemm on CUDA.
    pub tf32: bool,
    /// Run the IoBinding path (fixed ping-pong state buffers) on the CPU too. CUDA always
    /// uses it; on the CPU the default is the plain `Session::run` path.
    pub io_binding: bool,
}

/// Device errors.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A device string that is not one of the accepted forms.
    #[error("unknown device `{value}`: expected {DEVICE_FORMS}")]
    Parse {
        /// The rejected text.
        value: String,
    },
    /// CUDA was requested and cannot be used; the message says what is missing and how to
    /// provide it.
    #[error("{0}")]
    CudaUnavailable(String),
    /// ONNX Runtime could not be provisioned or loaded.
    #[error("{0}")]
    Setup(String),
}

/// CUDA execution-provider settings (default: GPU 0, no CUDA graphs, no TF32, ORT's arena
/// limit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CudaOptions {
    /// The GPU.
    pub device_id: u32,
    /// ORT's CUDA graph capture (`enable_cuda_graph`): the step is captured once and replayed;
    /// needs fixed shapes and bound input/output addresses (the session's IoBinding path).
    pub cuda_graph: bool,
    /// TF32 tensor-core math for fp32 MatMul/Gemm (`use_tf32`; ORT's default is off).
    pub tf32: bool,
    /// Cap of the CUDA memory arena in bytes (`gpu_mem_limit`; `None`: ORT's default).
    pub memory_limit: Option<usize>,
}

/// The CUDA execution provider with these options, set to fail loudly: registration errors
/// are returned, never turned into a silent CPU fallback.
pub fn cuda_execution_provider(o: &CudaOptions) -> ExecutionProviderDispatch {
    let mut cuda = ep::CUDA::default()
        .with_device_id(o.device_id as i32)
        .with_cuda_graph(o.cuda_graph)
        .with_tf32(o.tf32)
        // The step has no Conv (patch embedding is patchify + Gemm): skip cuDNN's search.
        .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Heuristic)
        // Grow the arena by what is asked, not to the next power of two, so peak memory is
        // what the step needs.
        .with_arena_extend_strategy(ep::ArenaExtendStrategy::SameAsRequested);
    if let Some(limit) = o.memory_limit {
        cuda = cuda.with_memory_limit(limit);
    }
    cuda.build().error_on_failure()
}

/// ONNX Runtime loaded for a device request, before any session exists.
pub struct Prepared {
    /// The ORT environment to build sessions from.
    pub env: ort::environment::Environment,
    /// The ORT library in use.
    pub lib: PathBuf,
    /// Where sessions will run (for `auto`, the CUDA provider may still fail when it is
    /// registered or the session is built; see [`register_execution_provider`]).
    pub placement: Placement,
    /// What was requested.
    pub requested: Device,
}

/// Loads the ONNX Runtime build that `device` needs (once per process) and decides the
/// placement: `cpu` loads the CPU build ([`ort_env::ensure_ort`]); `cuda[:N]` locates the CUDA
/// build ([`ort_env::locate_ort_gpu_library`]), runs [`preflight_cuda`] and loads it; `auto`
/// does the same without fetching anything and falls back to the CPU build with a message on
/// stderr when any of it fails. If ONNX Runtime is already loaded in this process, that library
/// is used.
///
/// # Errors
/// For `cuda`, [`DeviceError::CudaUnavailable`] saying what is missing and how to provide it;
/// [`DeviceError::Setup`] when ONNX Runtime cannot be loaded at all.
pub fn prepare(device: Device) -> Result<Prepared, DeviceError> {
    match device {
        Device::Cpu => {
            let (lib, env) = ort_env::ensure_ort().map_err(DeviceError::Setup)?;
            Ok(Prepared {
                env,
                lib,
                placement: Placement::Cpu,
                requested: device,
            })
        }
        Device::Cuda(id) => {
            let (lib, already) = match ort_env::loaded_ort() {
                Some(l) => (l, true),
                None => (
                    ort_env::locate_ort_gpu_library().map_err(DeviceError::CudaUnavailable)?,
                    false,
                ),
            };
            preflight_cuda(&lib).map_err(|e| match e {
                DeviceError::CudaUnavailable(m) if already => DeviceError::CudaUnavailable(format!(
                    "{m}\n(ONNX Runtime was already loaded in this process from {} before the device was set up; one process loads one ONNX Runtime library, so choose the device before ONNX Runtime is first used)",
                    lib.display()
                )),
                e => e,
            })?;
            let (lib, env) =
                ort_env::ensure_ort_from(&lib).map_err(DeviceError::CudaUnavailable)?;
            Ok(Prepared {
                env,
                lib,
                placement: Placement::Cuda(id),
                requested: device,
            })
        }
        Device::Auto => {
            let candidate = match ort_env::loaded_ort() {
                Some(l) => Ok(l),
                None => match ort_env::find_ort_gpu_library() {
                    Ok(GpuLookup::Found { lib, .. }) => Ok(lib),
                    Ok(GpuLookup::NotFound { tried }) => Err(format!(
                        "no ONNX Runtime CUDA build found ({})",
                        tried.join("; ")
                    )),
                    Err(e) => Err(e),
                },
            };
            let ready = candidate.and_then(|lib| {
                preflight_cuda(&lib).map_err(|e| e.to_string())?;
                ort_env::ensure_ort_from(&lib)
            });
            match ready {
                Ok((lib, env)) => Ok(Prepared {
                    env,
                    lib,
                    placement: Placement::Cuda(0),
                    requested: device,
                }),
                Err(why) => {
                    let (lib, env) = ort_env::ensure_ort().map_err(DeviceError::Setup)?;
                    eprintln!(
                        "patchmix: --device auto: using the CPU ({})",
                        first_line(&why)
                    );
                    Ok(Prepared {
                        env,
                        lib,
                        placement: Placement::Cpu,
                        requested: device,
                    })
                }
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Registers the execution provider of `prepared` on `builder`: nothing for the CPU (ORT's
/// default), the CUDA provider ([`cuda_execution_provider`], `device_id` taken from the
/// placement) otherwise. Returns the builder and the placement it got. For `auto`, a CUDA
/// provider that fails to register falls back to the CPU with a message on stderr.
///
/// # Errors
/// For `cuda[:N]`, [`DeviceError::CudaUnavailable`] with ONNX Runtime's reason and the hint of
/// [`missing_library_hint`].
pub fn register_execution_provider(
    builder: ort::session::builder::SessionBuilder,
    prepared: &Prepared,
    options: &CudaOptions,
) -> Result<(ort::session::builder::SessionBuilder, Placement), DeviceError> {
    let id = match prepared.placement {
        Placement::Cpu => return Ok((builder, Placement::Cpu)),
        Placement::Cuda(id) => id,
    };
    let o = CudaOptions {
        device_id: id,
        ..options.clone()
    };
    match builder.with_execution_providers([cuda_execution_provider(&o)]) {
        Ok(b) => {
            if prepared.requested == Device::Auto {
                eprintln!(
                    "patchmix: --device auto: using CUDA device {id} ({})",
                    prepared.lib.display()
                );
            }
            Ok((b, Placement::Cuda(id)))
        }
        Err(e) if prepared.requested == Device::Auto => {
            eprintln!(
                "patchmix: --device auto: using the CPU, because ONNX Runtime's CUDA provider did not register: {e}"
            );
            Ok((e.recover(), Placement::Cpu))
        }
        Err(e) => Err(DeviceError::CudaUnavailable(format!(
            "ONNX Runtime's CUDA execution provider failed to register for cuda:{id} ({}): {e}{}",
            prepared.lib.display(),
            missing_library_hint(&e.to_string())
        ))),
    }
}

/// For an ONNX Runtime error that names a shared library the loader could not open, the pip
/// package that provides it and how to make it visible (empty otherwise).
pub fn missing_library_hint(message: &str) -> String {
    let libs: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || c == ':' || c == '\'' || c == '"')
        .filter(|w| w.starts_with("lib") && w.contains(".so"))
        .filter(|w| !w.starts_with("libonnxruntime"))
        .collect();
    let mut out = String::new();
    for l in libs {
        out.push_str(&format!("\n  {l}: {}", provider_of(l)));
    }
    if !out.is_empty() {
        out.push_str(&format!("\n{LOADER_HINT}"));
    }
    out
}

const LOADER_HINT: &str = "patchmix preloads CUDA libraries it finds in the Python environment's site-packages/nvidia/*/lib; elsewhere add their directories to LD_LIBRARY_PATH before starting patchmix (the loader reads it only at process start)";

/// The pip package that ships a CUDA 13 library, or what provides it, for messages.
pub fn provider_of(soname: &str) -> String {
    match pip_package_for(soname) {
        Some(p) => format!("pip install \"{p}\""),
        None if soname.starts_with("libcuda.so") => {
            "the NVIDIA driver (no pip package): this machine or container has no usable NVIDIA driver".into()
        }
        None => "not a CUDA 13 pip library that patchmix knows; install it with the system's package manager".into(),
    }
}

/// The pip requirement that ships a CUDA 13 library needed by ONNX Runtime 1.31's CUDA
/// provider (`None` for the driver's `libcuda.so.1` and unknown names).
pub fn pip_package_for(soname: &str) -> Option<&'static str> {
    let base = soname.split(".so").next().unwrap_or(soname);
    Some(match base {
        "libcudart" => "nvidia-cuda-runtime==13.*",
        "libcublas" | "libcublasLt" => "nvidia-cublas==13.*",
        "libcufft" => "nvidia-cufft==12.*",
        "libcurand" => "nvidia-curand==10.4.*",
        "libnvrtc" | "libnvrtc-builtins" => "nvidia-cuda-nvrtc==13.*",
        "libnvJitLink" => "nvidia-nvjitlink==13.*",
        "libcusparse" => "nvidia-cusparse==12.*",
        b if b.starts_with("libcudnn") => "nvidia-cudnn-cu13",
        _ => return None,
    })
}

/// The libraries `ldd` reports as `not found`, in its order.
pub fn parse_ldd_not_found(ldd_output: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in ldd_output.lines() {
        if let Some((name, rest)) = line.split_once("=>")
            && rest.trim() == "not found"
        {
            let n = name.trim().to_string();
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Runs `ldd` on `lib` and returns the libraries it cannot resolve.
///
/// # Errors
/// `ldd` cannot run, or fails on the file (not a shared library).
pub fn unresolved_libraries(lib: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("ldd")
        .arg(lib)
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", lib.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("=>") {
        return Err(format!(
            "ldd cannot read {} ({}), so it is not a usable shared library",
            lib.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_ldd_not_found(&text))
}

/// The directories where pip installs NVIDIA's CUDA libraries in the Python environments
/// (`site-packages/nvidia/<pkg>/lib`, `site-packages/nvidia/cu13/lib`), plus the directories
/// in `PATCHMIX_CUDA_LIB_DIRS` (colon-separated).
pub fn pip_cuda_lib_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATCHMIX_CUDA_LIB_DIRS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let py = if Command::new("python3").arg("--version").output().is_ok() {
        "python3"
    } else {
        "python"
    };
    let roots = Command::new(py)
        .args([
            "-c",
            "import site, sys\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for root in roots.lines().map(str::trim).filter(|l| !l.is_empty()) {
        dirs.extend(nvidia_lib_dirs_under(&Path::new(root).join("nvidia")));
    }
    dirs.dedup();
    dirs
}

/// `lib` directories one or two levels under `nvidia_dir` (`nvidia/cudnn/lib`,
/// `nvidia/cu13/lib`), sorted.
pub fn nvidia_lib_dirs_under(nvidia_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(nvidia_dir) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let lib = e.path().join("lib");
        if lib.is_dir() {
            out.push(lib);
        }
    }
    out.sort();
    out
}

/// The first `dirs` entry holding `soname`.
pub fn find_library_in(soname: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(soname)).find(|p| p.is_file())
}

/// What [`preflight_cuda`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaPreflight {
    /// `libonnxruntime_providers_cuda.so`.
    pub provider: PathBuf,
    /// Libraries the loader could not resolve by itself, found in pip's `nvidia/*/lib`
    /// directories and preloaded.
    pub preloaded: Vec<PathBuf>,
}

/// Checks that the ONNX Runtime library `ort_lib` can run the CUDA execution provider, before
/// it is registered: the provider libraries beside it, an NVIDIA driver, and every library the
/// provider links (`ldd`). Missing CUDA libraries found in pip's `nvidia/*/lib` directories
/// ([`pip_cuda_lib_dirs`]) are preloaded.
///
/// # Errors
/// [`DeviceError::CudaUnavailable`] naming the missing file and the directory looked in, or the
/// unresolved libraries with the pip packages that provide them, and how to make them visible.
pub fn preflight_cuda(ort_lib: &Path) -> Result<CudaPreflight, DeviceError> {
    preflight_cuda_with(
        ort_lib,
        ort_env::nvidia_driver_present(),
        &pip_cuda_lib_dirs(),
        true,
    )
}

/// [`preflight_cuda`] with the driver check, the pip library directories and preloading given
/// (for tests).
///
/// # Errors
/// As [`preflight_cuda`].
pub fn preflight_cuda_with(
    ort_lib: &Path,
    driver_present: bool,
    pip_dirs: &[PathBuf],
    preload: bool,
) -> Result<CudaPreflight, DeviceError> {
    let dir = ort_lib
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let provider = dir.join(CUDA_PROVIDER_LIB);
    let fix = format!(
        "The CPU build of ONNX Runtime (the `onnxruntime` wheel) has no CUDA provider; the GPU build does: `pip install {GPU_PACKAGE}=={ORT_VERSION}` (then unset ORT_DYLIB_PATH, or point it at that package's onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}), or point ORT_DYLIB_PATH at another CUDA build of ONNX Runtime {ORT_VERSION} whose directory holds {CUDA_PROVIDER_LIB} and {SHARED_PROVIDER_LIB}. Without a GPU, use --device cpu (or auto)."
    );
    for f in [CUDA_PROVIDER_LIB, SHARED_PROVIDER_LIB] {
        if !dir.join(f).is_file() {
            return Err(DeviceError::CudaUnavailable(format!(
                "cannot use CUDA: ONNX Runtime's {f} is not in {} (the directory of the ONNX Runtime library in use, {}). {fix}",
                dir.display(),
                ort_lib.display()
            )));
        }
    }
    if !driver_present {
        return Err(DeviceError::CudaUnavailable(format!(
            "cannot use CUDA: {} is there, but this machine has no NVIDIA driver (no /proc/driver/nvidia/version, no /dev/nvidiactl), so CUDA cannot run here (in a container, start it with GPU access). Without a GPU, use --device cpu (or auto).",
            provider.display()
        )));
    }
    let missing = unresolved_libraries(&provider)
        .map_err(|e| DeviceError::CudaUnavailable(e + ". " + &fix))?;
    let mut found = Vec::new();
    let mut still = Vec::new();
    for m in &missing {
        match find_library_in(m, pip_dirs) {
            Some(p) => found.push(p),
            None => still.push(m.clone()),
        }
    }
    if !still.is_empty() {
        let mut msg = format!(
            "cannot use CUDA: ONNX Runtime's CUDA provider {} needs libraries that cannot be found:",
            provider.display()
        );
        for l in &still {
            msg.push_str(&format!("\n  {l}: {}", provider_of(l)));
        }
        let mut pkgs: Vec<&str> = Vec::new();
        for p in still.iter().filter_map(|l| pip_package_for(l)) {
            if !pkgs.contains(&p) {
                pkgs.push(p);
            }
        }
        if !pkgs.is_empty() {
            msg.push_str(&format!(
                "\nInstall them with `pip install {}`.",
                pkgs.iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        msg.push_str(&format!(
            "\nLooked in the loader's paths and in {}. {LOADER_HINT}.",
            if pip_dirs.is_empty() {
                "no pip nvidia/*/lib directory (none installed)".to_string()
            } else {
                pip_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        return Err(DeviceError::CudaUnavailable(msg));
    }
    let mut preloaded = Vec::new();
    if !found.is_empty() {
        // cuDNN loads its sub-libraries with dlopen at run time: preload the ones beside it.
        let mut extra = Vec::new();
        for f in &found {
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libcudnn.so"))
                && let Some(d) = f.parent()
            {
                for sub in ep::cuda::CUDNN_DYLIBS {
                    let p = d.join(sub);
                    if p.is_file() && !found.contains(&p) {
                        extra.push(p);
                    }
                }
            }
        }
        found.extend(extra);
        found.sort_by_key(|p| load_rank(p));
        for p in found {
            if preload {
                ort::util::preload_dylib(p.clone()).map_err(|e| {
                    let e = e.to_string();
                    DeviceError::CudaUnavailable(format!(
                        "cannot preload {} for ONNX Runtime's CUDA provider: {e}{}",
                        p.display(),
                        missing_library_hint(&e)
                    ))
                })?;
            }
            preloaded.push(p);
        }
    }
    Ok(CudaPreflight {
        provider,
        preloaded,
    })
}

/// Dependencies first: the order of `ort::ep::cuda::CUDA_DYLIBS` then `CUDNN_DYLIBS`, the rest
/// (e.g. nvJitLink, which cuFFT needs) before cuFFT.
fn load_rank(p: &Path) -> usize {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("libnvJitLink") {
        return 0;
    }
    let order = ep::cuda::CUDA_DYLIBS
        .iter()
        .chain(ep::cuda::CUDNN_DYLIBS)
        .position(|l| *l == name);
    order.map_or(
        1 + ep::cuda::CUDA_DYLIBS.len() + ep::cuda::CUDNN_DYLIBS.len(),
        |i| i + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_accepted_form() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:0".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!(" auto ".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!(Device::default(), Device::Cpu);
    }

    #[test]
    fn rejects_other_forms_naming_the_value_and_the_accepted_ones() {
        for bad in [
            "bogus", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cuda:1:2", "", "tpu",
        ] {
            let e = bad.parse::<Device>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
            assert!(
                e.contains("cpu") && e.contains("cuda:N") && e.contains("auto"),
                "{e}"
            );
        }
        // Larger than u32.
        assert!("cuda:99999999999".parse::<Device>().is_err());
    }

    #[test]
    fn display_round_trips_and_serde_uses_the_string_form() {
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(7), Device::Auto] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct C {
            device: Device,
        }
        let t = toml::to_string(&C {
            device: Device::Cuda(2),
        })
        .unwrap();
        assert_eq!(t.trim(), "device = \"cuda:2\"");
        let back: C = toml::from_str("device = \"auto\"").unwrap();
        assert_eq!(back.device, Device::Auto);
        let e = toml::from_str::<C>("device = \"gpu9\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpu9") && e.contains("cuda:N"), "{e}");
        assert_eq!(
            serde_json::to_string(&Device::Cuda(1)).unwrap(),
            "\"cuda:1\""
        );
    }

    #[test]
    fn ldd_not_found_lines_are_collected_once_in_order() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibcudart.so.13 => not found\n\
                   \tlibcublas.so.13 => not found\n\
                   \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\
                   \tlibcudart.so.13 => not found\n\
                   \tlibcudnn.so.9 => not found\n";
        assert_eq!(
            parse_ldd_not_found(out),
            ["libcudart.so.13", "libcublas.so.13", "libcudnn.so.9"]
        );
        assert!(parse_ldd_not_found("\tstatically linked\n").is_empty());
    }

    #[test]
    fn every_cuda_13_library_of_the_provider_has_a_pip_package() {
        for l in ep::cuda::CUDA_DYLIBS.iter().chain(ep::cuda::CUDNN_DYLIBS) {
            assert!(pip_package_for(l).is_some(), "{l}");
        }
        assert_eq!(
            pip_package_for("libcudart.so.13"),
            Some("nvidia-cuda-runtime==13.*")
        );
        assert_eq!(
            pip_package_for("libcublasLt.so.13"),
            Some("nvidia-cublas==13.*")
        );
        assert_eq!(
            pip_package_for("libcudnn_ops.so.9"),
            Some("nvidia-cudnn-cu13")
        );
        assert_eq!(pip_package_for("libcuda.so.1"), None);
        assert!(provider_of("libcuda.so.1").contains("driver"));
    }

    #[test]
    fn ort_load_errors_get_the_package_hint() {
        let h = missing_library_hint(
            "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory",
        );
        assert!(
            h.contains("libcublasLt.so.13") && h.contains("nvidia-cublas"),
            "{h}"
        );
        assert!(!h.contains("libonnxruntime_providers_cuda.so:"), "{h}");
        assert!(h.contains("LD_LIBRARY_PATH"), "{h}");
        assert_eq!(
            missing_library_hint("CUDA failure 100: no CUDA-capable device"),
            ""
        );
    }

    fn fake_ort_dir(with: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join(format!("libonnxruntime.so.{ORT_VERSION}"));
        std::fs::write(&lib, b"fake").unwrap();
        for f in with {
            std::fs::write(t.path().join(f), b"fake").unwrap();
        }
        (t, lib)
    }

    #[test]
    fn preflight_names_the_missing_provider_the_directory_and_the_fix() {
        let (t, lib) = fake_ort_dir(&[SHARED_PROVIDER_LIB]);
        let e = preflight_cuda_with(&lib, true, &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(CUDA_PROVIDER_LIB), "{e}");
        assert!(e.contains(&t.path().display().to_string()), "{e}");
        assert!(e.contains("pip install onnxruntime-gpu==1.31.1"), "{e}");
        assert!(e.contains("ORT_DYLIB_PATH"), "{e}");
        // The shared provider bridge is checked too.
        let (_t2, lib2) = fake_ort_dir(&[CUDA_PROVIDER_LIB]);
        let e = preflight_cuda_with(&lib2, true, &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(SHARED_PROVIDER_LIB), "{e}");
    }

    #[test]
    fn preflight_without_a_driver_says_so() {
        let (_t, lib) = fake_ort_dir(&[SHARED_PROVIDER_LIB, CUDA_PROVIDER_LIB]);
        let e = preflight_cuda_with(&lib, false, &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no NVIDIA driver"), "{e}");
    }

    #[test]
    fn preflight_rejects_a_provider_that_is_not_a_shared_library() {
        let (_t, lib) = fake_ort_dir(&[SHARED_PROVIDER_LIB, CUDA_PROVIDER_LIB]);
        let e = preflight_cuda_with(&lib, true, &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ldd") && e.contains(CUDA_PROVIDER_LIB), "{e}");
    }

    #[test]
    fn nvidia_lib_dirs_are_found_one_level_down() {
        let t = tempfile::tempdir().unwrap();
        let nv = t.path().join("nvidia");
        for d in ["cu13/lib", "cudnn/lib", "cudnn/include"] {
            std::fs::create_dir_all(nv.join(d)).unwrap();
        }
        std::fs::write(nv.join("cu13/lib/libcudart.so.13"), b"x").unwrap();
        let dirs = nvidia_lib_dirs_under(&nv);
        assert_eq!(dirs, [nv.join("cu13/lib"), nv.join("cudnn/lib")]);
        assert_eq!(
            find_library_in("libcudart.so.13", &dirs),
            Some(nv.join("cu13/lib/libcudart.so.13"))
        );
        assert_eq!(find_library_in("libcudnn.so.9", &dirs), None);
        assert!(nvidia_lib_dirs_under(&t.path().join("absent")).is_empty());
    }

    #[test]
    fn preload_order_puts_dependencies_first() {
        let mut v: Vec<PathBuf> = [
            "libcudnn_ops.so.9",
            "libcufft.so.12",
            "libcublas.so.13",
            "libcudnn.so.9",
            "libnvJitLink.so.13",
            "libcublasLt.so.13",
            "libcudart.so.13",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        v.sort_by_key(|p| load_rank(p));
        let names: Vec<_> = v.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "libnvJitLink.so.13",
                "libcudart.so.13",
                "libcublasLt.so.13",
                "libcublas.so.13",
                "libcufft.so.12",
                "libcudnn.so.9",
                "libcudnn_ops.so.9"
            ]
        );
    }
}
