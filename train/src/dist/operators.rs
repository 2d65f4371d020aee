//! The step graph's collectives as ONNX Runtime custom operators (CPU kernels): `AllReduceSum`
//! and `AllGather` of [`COLLECTIVE_DOMAIN`], computed by a [`Communicator`].
//!
//! A session whose graph holds collectives registers [`collective_domain`]; its kernels copy the
//! input to the output and hand it to the communicator. ONNX Runtime must run the nodes in the
//! same order on every rank, or two ranks would wait in different collectives: the session is
//! built with sequential execution and one inter-op thread (see
//! `crate::session::SessionOptions::collectives`), which runs the nodes one at a time in a
//! deterministic topological order — the same on every rank, since every rank compiles and
//! optimises the same graph.

use super::comm::Communicator;
use ort::operator::{
    BoxedKernel, ComputeContext, KernelContext, Operator, OperatorDomain, OperatorInput,
    OperatorOutput,
};
use ort::value::TensorElementType;
use patchmix_export::graph::COLLECTIVE_DOMAIN;
use std::sync::Arc;

/// The custom-operator domain [`COLLECTIVE_DOMAIN`] with kernels on `comm`.
///
/// # Errors
/// ONNX Runtime's, when it cannot create the domain.
pub fn collective_domain(comm: Arc<dyn Communicator>) -> ort::Result<OperatorDomain> {
    OperatorDomain::new(COLLECTIVE_DOMAIN)?
        .add(AllReduceSum { comm: comm.clone() })?
        .add(AllGather { comm })
}

/// `AllReduceSum`: float32 in, float32 of the same shape out.
struct AllReduceSum {
    comm: Arc<dyn Communicator>,
}

/// `AllGather` (attribute `world_size`): axis 0 grows `world_size` times.
struct AllGather {
    comm: Arc<dyn Communicator>,
}

fn one_f32() -> [OperatorInput; 1] {
    [OperatorInput::required(TensorElementType::Float32)]
}

fn one_f32_out() -> [OperatorOutput; 1] {
    [OperatorOutput::required(TensorElementType::Float32)]
}

fn missing(what: &str) -> ort::Error {
    ort::Error::new(format!("collective kernel: missing {what}"))
}

/// Checks that an `AllGather` node's `world_size` attribute is the world it runs in (shared
/// by the CPU and the NCCL kernels).
pub(crate) fn check_gather_world(kctx: &KernelContext<'_>, world_size: usize) -> ort::Result<()> {
    let declared = kctx
        .get::<i64>("world_size")
        .ok_or_else(|| missing("attribute world_size"))?;
    if usize::try_from(declared).ok() == Some(world_size) {
        Ok(())
    } else {
        Err(ort::Error::new(format!(
            "AllGather was compiled for world_size {declared} but runs in a world of {world_size}"
        )))
    }
}

impl Operator for AllReduceSum {
    type Kernel<'attr> = BoxedKernel<'attr>;

    fn name(&self) -> &str {
        "AllReduceSum"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        one_f32()
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        one_f32_out()
    }

    fn create_kernel<'attr>(&self, _: &KernelContext<'attr>) -> ort::Result<Self::Kernel<'attr>> {
        let comm = self.comm.clone();
        Ok(Box::new(move |ctx: &ComputeContext| {
            let input = ctx.input(0)?.ok_or_else(|| missing("input"))?;
            let (shape, x) = input.try_extract_tensor::<f32>()?;
            let mut output = ctx
                .output(0, shape.to_vec())?
                .ok_or_else(|| missing("output"))?;
            let (_, y) = output.try_extract_tensor_mut::<f32>()?;
            y.copy_from_slice(x);
            comm.all_reduce_sum(y)
                .map_err(|e| ort::Error::new(e.to_string()))
        }))
    }
}

impl Operator for AllGather {
    type Kernel<'attr> = BoxedKernel<'attr>;

    fn name(&self) -> &str {
        "AllGather"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        one_f32()
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        one_f32_out()
    }

    fn create_kernel<'attr>(
        &self,
        kctx: &KernelContext<'attr>,
    ) -> ort::Result<Self::Kernel<'attr>> {
        let world_size = self.comm.world_size();
        check_gather_world(kctx, world_size)?;
        let comm = self.comm.clone();
        Ok(Box::new(move |ctx: &ComputeContext| {
            let input = ctx.input(0)?.ok_or_else(|| missing("input"))?;
            let (shape, x) = input.try_extract_tensor::<f32>()?;
            let mut gathered = shape.to_vec();
            let first = gathered
                .first_mut()
                .ok_or_else(|| missing("axis 0 of the input"))?;
            *first *= world_size as i64;
            let mut output = ctx.output(0, gathered)?.ok_or_else(|| missing("output"))?;
            let (_, y) = output.try_extract_tensor_mut::<f32>()?;
            comm.all_gather(x, y)
                .map_err(|e| ort::Error::new(e.to_string()))
        }))
    }
}
