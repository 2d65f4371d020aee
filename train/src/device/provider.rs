//! The execution provider a session gets: nothing for the CPU, ONNX Runtime's CUDA provider
//! (set to fail loudly) otherwise.

use super::diagnostics::missing_library_hint;
use super::error::DeviceError;
use super::load::Prepared;
use super::{Device, Placement};
use ort::ep::{self, ExecutionProviderDispatch};

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

/// Registers the execution provider of `prepared` on `builder`: nothing for the CPU (ORT's
/// default), the CUDA provider ([`cuda_execution_provider`], `device_id` taken from the
/// placement) otherwise. Returns the builder and the placement it got. For `auto`, a CUDA
/// provider that fails to register falls back to the CPU, saying so (`log::info!`).
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
                log::info!(
                    "patchmix: --device auto: using CUDA device {id} ({})",
                    prepared.lib.display()
                );
            }
            Ok((b, Placement::Cuda(id)))
        }
        Err(e) if prepared.requested == Device::Auto => {
            log::info!(
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
