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
//!
//! One job per file: [`Device`]'s spellings (`parse`), [`DeviceError`] (`error`), where ONNX
//! Runtime's CUDA build is found (`gpu_lookup`), which build is loaded for a request
//! ([`prepare`], `load`), the execution provider a session gets ([`register_execution_provider`],
//! `provider`), the pip/`ldd` diagnostics (`diagnostics`) and the CUDA preflight
//! ([`preflight_cuda`], `preflight`).

pub(crate) mod diagnostics;
mod error;
mod gpu_lookup;
mod load;
mod parse;
mod preflight;
mod provider;

pub use diagnostics::{
    LddError, find_library_in, missing_library_hint, nvidia_lib_dirs_under, parse_ldd_not_found,
    pip_cuda_lib_dirs, pip_package_for, provider_of, unresolved_libraries,
};
pub use error::DeviceError;
pub use gpu_lookup::{
    CUDA_PROVIDER_LIB, GPU_PACKAGE, GpuLookup, GpuLookupError, find_ort_gpu_library,
    find_ort_gpu_library_in, gpu_cache_dir, has_cuda_provider, locate_ort_gpu_library,
    nvidia_driver_present,
};
pub use load::{Prepared, prepare};
pub use parse::{DEVICE_FORMS, Device};
pub use preflight::{CudaPreflight, preflight_cuda, preflight_cuda_with};
pub use provider::{CudaOptions, cuda_execution_provider, register_execution_provider};

use std::fmt;

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
