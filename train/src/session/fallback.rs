//! The CPU fallback of half-precision steps: a step with native half-precision products that
//! will run on the CPU is recompiled with the products emulated.

use super::error::EngineError;
use crate::device::Placement;
use crate::step::StepGraph;
use patchmix_export::graph::Compute;

/// ONNX Runtime's CPU EP computes no matrix product in half precision: it has no bf16
/// MatMul/Gemm, and it runs fp16 ones in f32 between casts that its graph transformer then
/// removes together with the graph's own round trips (checked with onnxruntime 1.31.1: an
/// fp16 Gemm between casts returns the f32 product unrounded). A native half-precision step
/// that will run on the CPU is therefore rebuilt with its products emulated (rounded to the
/// half type, computed in f32; the numbers of a half-precision run, at fp32 speed), saying so
/// (`log::info!`). Any other step is returned as it is.
pub(super) fn fit_to_device(
    step: StepGraph,
    placement: Placement,
) -> Result<StepGraph, EngineError> {
    let Compute::Native(dtype) = step.compute else {
        return Ok(step);
    };
    if placement != Placement::Cpu {
        return Ok(step);
    }
    log::info!(
        "patchmix: {} on the CPU: ONNX Runtime's CPU EP has no half-precision matrix kernels, so the products are emulated ({dtype:?} rounding, f32 kernels): the numbers of a half-precision run, no speed-up (the rounding casts make it slower than fp32)",
        step.config.precision
    );
    let ranks = crate::step::Ranks {
        world_size: step.world_size,
        collectives: step.collectives,
    };
    crate::step::build_rank_step(&step.config, ranks, true).map_err(|source| {
        EngineError::CpuRebuild {
            precision: step.config.precision,
            source,
        }
    })
}
