//! The CUDA preflight: before the CUDA provider is registered, check that it and the
//! libraries it links can be loaded, preload those found in pip's directories, and otherwise
//! say what is missing and how to provide it.

use super::diagnostics::{
    LOADER_HINT, find_library_in, missing_library_hint, pip_cuda_lib_dirs, pip_package_for,
    provider_of, unresolved_libraries,
};
use super::error::DeviceError;
use super::gpu_lookup::{CUDA_PROVIDER_LIB, GPU_PACKAGE, nvidia_driver_present};
use ort::ep;
use patchmix_export::runtime::ort_env::{ORT_VERSION, SHARED_PROVIDER_LIB};
use std::path::{Path, PathBuf};

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
    preflight_cuda_with(ort_lib, nvidia_driver_present(), &pip_cuda_lib_dirs(), true)
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
        .map_err(|e| DeviceError::CudaUnavailable(format!("{e}. {fix}")))?;
    let mut found = Vec::new();
    let mut still = Vec::new();
    for m in &missing {
        match find_library_in(m, pip_dirs) {
            Some(p) => found.push(p),
            None => still.push(m.clone()),
        }
    }
    if !still.is_empty() {
        return Err(DeviceError::CudaUnavailable(unresolved_message(
            &provider, &still, pip_dirs,
        )));
    }
    let preloaded = if found.is_empty() {
        Vec::new()
    } else {
        preload_in_order(with_cudnn_sublibraries(found), preload)?
    };
    Ok(CudaPreflight {
        provider,
        preloaded,
    })
}

/// The message for provider libraries that neither the loader nor pip's directories have: each
/// with what provides it, the pip command for all of them, and where was looked.
fn unresolved_message(provider: &Path, still: &[String], pip_dirs: &[PathBuf]) -> String {
    let mut msg = format!(
        "cannot use CUDA: ONNX Runtime's CUDA provider {} needs libraries that cannot be found:",
        provider.display()
    );
    for l in still {
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
    msg
}

/// `found` plus, beside a `libcudnn.so`, the cuDNN sub-libraries it loads with dlopen at run
/// time (which `ldd` does not list).
fn with_cudnn_sublibraries(mut found: Vec<PathBuf>) -> Vec<PathBuf> {
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
    found
}

/// Sorts `libs` dependencies first ([`load_rank`]) and, with `preload`, loads each into the
/// process; returns them in that order.
fn preload_in_order(mut libs: Vec<PathBuf>, preload: bool) -> Result<Vec<PathBuf>, DeviceError> {
    libs.sort_by_key(|p| load_rank(p));
    if preload {
        for p in &libs {
            ort::util::preload_dylib(p.clone()).map_err(|e| {
                let e = e.to_string();
                DeviceError::CudaUnavailable(format!(
                    "cannot preload {} for ONNX Runtime's CUDA provider: {e}{}",
                    p.display(),
                    missing_library_hint(&e)
                ))
            })?;
        }
    }
    Ok(libs)
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
