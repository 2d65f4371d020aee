//! Diagnostics for the CUDA provider's libraries: which pip package ships a library, what
//! `ldd` cannot resolve, and where pip installs NVIDIA's libraries.

use std::path::{Path, PathBuf};
use std::process::Command;

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

pub(super) const LOADER_HINT: &str = "patchmix preloads CUDA libraries it finds in the Python environment's site-packages/nvidia/*/lib; elsewhere add their directories to LD_LIBRARY_PATH before starting patchmix (the loader reads it only at process start)";

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

/// `ldd` could not tell which libraries a file needs.
#[derive(Debug, thiserror::Error)]
pub enum LddError {
    /// `ldd` could not be started.
    #[error("cannot run ldd on {}: {source}", lib.display())]
    Spawn {
        /// The file.
        lib: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `ldd` failed on the file.
    #[error("ldd cannot read {} ({stderr}), so it is not a usable shared library", lib.display())]
    NotSharedLibrary {
        /// The file.
        lib: PathBuf,
        /// What `ldd` said.
        stderr: String,
    },
}

/// Runs `ldd` on `lib` and returns the libraries it cannot resolve.
///
/// # Errors
/// [`LddError`] when `ldd` cannot run, or fails on the file (not a shared library).
pub fn unresolved_libraries(lib: &Path) -> Result<Vec<String>, LddError> {
    let out = Command::new("ldd")
        .arg(lib)
        .output()
        .map_err(|source| LddError::Spawn {
            lib: lib.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("=>") {
        return Err(LddError::NotSharedLibrary {
            lib: lib.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use ort::ep;

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
}
