//! `patchmix_core`, the Python module: the PatchMix plans, soft targets and schedules of
//! [`patchmix_core`], for numpy (and, through `.numpy()` / `torch.from_numpy`, PyTorch) pipelines.
//!
//! This crate only converts: every number comes from `patchmix-core`, which is tested on its own
//! (hand-worked cases, properties, the C ABI) — no PatchMix logic lives here.
//!
//! * [`plan`]: the `MixPlan` class (`from_seed`, `from_permutation`, `perm`, `source`,
//!   `apply_nchw`, `apply_patches`);
//! * [`targets`]: `origin_targets`, `mix_to_origin_targets`, `mix_to_mix_targets`;
//! * [`schedules`]: `cosine_schedule`, `momentum_schedule`, `temperature_schedule`;
//! * [`arrays`]: borrowing numpy arrays as slices (dtype dispatch, C-contiguity, no copies);
//! * [`errors`]: every core error as a `ValueError` naming the argument.
#![forbid(unsafe_code)]

mod arrays;
mod errors;
mod plan;
mod schedules;
mod targets;

use pyo3::prelude::*;

/// PatchMix index algebra from the tested Rust core: plans, soft targets, schedules.
#[pymodule]
fn patchmix_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<plan::PyMixPlan>()?;
    m.add_function(wrap_pyfunction!(targets::origin_targets, m)?)?;
    m.add_function(wrap_pyfunction!(targets::mix_to_origin_targets, m)?)?;
    m.add_function(wrap_pyfunction!(targets::mix_to_mix_targets, m)?)?;
    m.add_function(wrap_pyfunction!(schedules::cosine_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(schedules::momentum_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(schedules::temperature_schedule, m)?)?;
    Ok(())
}
