//! `AllReduceSum` and `AllGather` of the collective domain for ONNX Runtime's CUDA execution
//! provider: the kernels take the device pointers of their input and output and enqueue NCCL
//! on ORT's compute stream for the node (`ComputeContext::stream`), so the collective is
//! ordered with the step's other kernels on the device, and — with `--cuda-graph` — captured
//! into the step's CUDA graph with them. The node order is fixed as for the CPU kernels (see
//! [`crate::dist::operators`]).

use super::NcclWorld;
use super::ffi::DeviceF32;
use ort::operator::{
    BoxedKernel, ComputeContext, KernelContext, Operator, OperatorDomain, OperatorInput,
    OperatorOutput,
};
use ort::value::{TensorElementType, TensorValueType};
use patchmix_export::graph::COLLECTIVE_DOMAIN;
use std::sync::Arc;

/// ONNX Runtime's name of its CUDA execution provider.
pub const CUDA_EP: &str = "CUDAExecutionProvider";

/// The collective domain with NCCL kernels on the CUDA execution provider.
///
/// # Errors
/// ONNX Runtime's, when it cannot create the domain.
pub fn nccl_collective_domain(world: Arc<NcclWorld>) -> ort::Result<OperatorDomain> {
    OperatorDomain::new(COLLECTIVE_DOMAIN)?
        .add(AllReduceSum {
            world: world.clone(),
        })?
        .add(AllGather { world })
}

struct AllReduceSum {
    world: Arc<NcclWorld>,
}

struct AllGather {
    world: Arc<NcclWorld>,
}

fn missing(what: &str) -> ort::Error {
    ort::Error::new(format!("NCCL collective kernel: missing {what}"))
}

/// The input's device pointer and shape, the stream, and the output of `out_shape(shape)`.
fn device_buffers(
    ctx: &ComputeContext,
    out_shape: impl FnOnce(&[i64]) -> ort::Result<Vec<i64>>,
) -> ort::Result<DeviceF32> {
    let input = ctx
        .input(0)?
        .ok_or_else(|| missing("input"))?
        .downcast::<TensorValueType<f32>>()?;
    let shape: Vec<i64> = input.shape().to_vec();
    let count = shape.iter().product::<i64>();
    let count = usize::try_from(count).map_err(|_| missing("a valid input shape"))?;
    let send = input.data_ptr();
    let stream = ctx
        .stream()?
        .ok_or_else(|| missing("ONNX Runtime's CUDA stream (is the session on CUDA?)"))?;
    let output = ctx
        .output(0, out_shape(&shape)?)?
        .ok_or_else(|| missing("output"))?
        .downcast::<TensorValueType<f32>>()?;
    // The output buffer is ORT's allocation for this kernel to write; `data_ptr` reads its
    // address without touching the data (a device pointer here).
    Ok(DeviceF32 {
        send,
        recv: output.data_ptr().cast_mut(),
        count,
        stream: stream.as_ptr(),
    })
}

impl Operator for AllReduceSum {
    type Kernel<'attr> = BoxedKernel<'attr>;

    fn name(&self) -> &str {
        "AllReduceSum"
    }

    fn execution_provider_type(&self) -> Option<&str> {
        Some(CUDA_EP)
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [OperatorInput::required(TensorElementType::Float32)]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<Self::Kernel<'attr>> {
        let world = self.world.clone();
        Ok(Box::new(move |ctx: &ComputeContext| {
            let buf = device_buffers(ctx, |s| Ok(s.to_vec()))?;
            world
                .enqueue_all_reduce_sum(buf)
                .map_err(|e| ort::Error::new(e.to_string()))
        }))
    }
}

impl Operator for AllGather {
    type Kernel<'attr> = BoxedKernel<'attr>;

    fn name(&self) -> &str {
        "AllGather"
    }

    fn execution_provider_type(&self) -> Option<&str> {
        Some(CUDA_EP)
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [OperatorInput::required(TensorElementType::Float32)]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(
        &self,
        kctx: &KernelContext<'attr>,
    ) -> ort::Result<Self::Kernel<'attr>> {
        use crate::dist::Communicator as _;
        let world_size = self.world.world_size();
        crate::dist::operators::check_gather_world(kctx, world_size)?;
        let world = self.world.clone();
        Ok(Box::new(move |ctx: &ComputeContext| {
            let buf = device_buffers(ctx, |s| {
                let mut gathered = s.to_vec();
                let first = gathered
                    .first_mut()
                    .ok_or_else(|| missing("axis 0 of the input"))?;
                *first *= world_size as i64;
                Ok(gathered)
            })?;
            world
                .enqueue_all_gather(buf)
                .map_err(|e| ort::Error::new(e.to_string()))
        }))
    }
}
