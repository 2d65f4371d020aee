//! Which ONNX Runtime build a device request loads (the load policy): the CPU build for
//! `cpu`, the CUDA build after the preflight for `cuda[:N]`, and for `auto` the CUDA build when
//! it is there and passes the preflight, else the CPU build.

use super::error::DeviceError;
use super::gpu_lookup::{GpuLookup, find_ort_gpu_library, locate_ort_gpu_library};
use super::preflight::preflight_cuda;
use super::{Device, Placement};
use patchmix_export::runtime::ort_env;
use std::path::PathBuf;

/// ONNX Runtime loaded for a device request, before any session exists.
pub struct Prepared {
    /// The ORT environment to build sessions from.
    pub env: ort::environment::Environment,
    /// The ORT library in use.
    pub lib: PathBuf,
    /// Where sessions will run (for `auto`, the CUDA provider may still fail when it is
    /// registered or the session is built; see [`super::register_execution_provider`]).
    pub placement: Placement,
    /// What was requested.
    pub requested: Device,
}

/// Loads the ONNX Runtime build that `device` needs (once per process) and decides the
/// placement: `cpu` loads the CPU build ([`ort_env::ensure_ort`]); `cuda[:N]` locates the CUDA
/// build ([`locate_ort_gpu_library`]), runs [`preflight_cuda`] and loads it; `auto` does the
/// same without fetching anything and falls back to the CPU build, saying so (`log::info!`),
/// when any of it fails. If ONNX Runtime is already loaded in this process, that library
/// is used.
///
/// # Errors
/// For `cuda`, [`DeviceError::CudaUnavailable`] saying what is missing and how to provide it;
/// [`DeviceError::Setup`] when ONNX Runtime cannot be loaded at all.
pub fn prepare(device: Device) -> Result<Prepared, DeviceError> {
    match device {
        Device::Cpu => {
            let (lib, env) = ort_env::ensure_ort()?;
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
                    locate_ort_gpu_library()
                        .map_err(|e| DeviceError::CudaUnavailable(e.to_string()))?,
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
            let (lib, env) = ort_env::ensure_ort_from(&lib)
                .map_err(|e| DeviceError::CudaUnavailable(e.to_string()))?;
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
                None => match find_ort_gpu_library() {
                    Ok(GpuLookup::Found { lib, .. }) => Ok(lib),
                    Ok(GpuLookup::NotFound { tried }) => Err(DeviceError::CudaUnavailable(
                        format!("no ONNX Runtime CUDA build found ({})", tried.join("; ")),
                    )),
                    Err(e) => Err(DeviceError::Setup(e)),
                },
            };
            let ready = candidate.and_then(|lib| {
                preflight_cuda(&lib)?;
                Ok(ort_env::ensure_ort_from(&lib)?)
            });
            match ready {
                Ok((lib, env)) => Ok(Prepared {
                    env,
                    lib,
                    placement: Placement::Cuda(0),
                    requested: device,
                }),
                Err(why) => {
                    let (lib, env) = ort_env::ensure_ort()?;
                    log::info!(
                        "patchmix: --device auto: using the CPU ({})",
                        first_line(&why.to_string())
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
