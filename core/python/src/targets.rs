//! The soft contrastive targets: B × (B·world_size) float32 arrays, rows summing to 1.

use crate::errors::{core_error, non_negative};
use numpy::{PyArray2, PyArrayMethods};
use patchmix_core::{
    LabelSpec, fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets,
};
use pyo3::prelude::*;

/// The label layout for `batch` images on `rank` of `world_size`, smoothed by `smoothing`.
fn spec(batch: i64, world_size: i64, rank: i64, smoothing: f64) -> PyResult<LabelSpec> {
    LabelSpec::new(
        non_negative("batch", batch)?,
        non_negative("world_size", world_size)?,
        non_negative("rank", rank)?,
        smoothing,
    )
    .map_err(|e| core_error("batch", e))
}

/// A new B × N float32 array filled by `fill`.
fn filled<'py>(
    py: Python<'py>,
    spec: &LabelSpec,
    fill: impl FnOnce(&mut [f32]) -> Result<(), patchmix_core::Error>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let array = PyArray2::<f32>::zeros(py, [spec.batch(), spec.num_classes()], false);
    {
        let mut view = array.readwrite();
        let out = view
            .as_slice_mut()
            .map_err(|e| crate::errors::value_error("batch", e.to_string()))?;
        fill(out).map_err(|e| core_error("batch", e))?;
    }
    Ok(array)
}

/// View-to-view targets: row b is one-hot at column rank·B + b (smoothed), shape (B, B·world_size).
///
/// >>> import patchmix_core as pc
/// >>> pc.origin_targets(2).tolist()
/// [[1.0, 0.0], [0.0, 1.0]]
#[pyfunction]
#[pyo3(signature = (batch, *, world_size = 1, rank = 0, smoothing = 0.0))]
pub(crate) fn origin_targets(
    py: Python<'_>,
    batch: i64,
    world_size: i64,
    rank: i64,
    smoothing: f64,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let spec = spec(batch, world_size, rank, smoothing)?;
    filled(py, &spec, |out| fill_origin_targets(&spec, out))
}

/// Mix-to-origin targets: mixed image b is similar to images b … b+m−1 (mod B) of its rank,
/// 1/m each (smoothed), shape (B, B·world_size).
///
/// >>> import patchmix_core as pc
/// >>> pc.mix_to_origin_targets(3, 2).tolist()
/// [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]
#[pyfunction]
#[pyo3(signature = (batch, mix, *, world_size = 1, rank = 0, smoothing = 0.0))]
pub(crate) fn mix_to_origin_targets(
    py: Python<'_>,
    batch: i64,
    mix: i64,
    world_size: i64,
    rank: i64,
    smoothing: f64,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let spec = spec(batch, world_size, rank, smoothing)?;
    let mix = non_negative("mix", mix)?;
    filled(py, &spec, |out| fill_mix_to_origin_targets(&spec, mix, out))
}

/// Mix-to-mix targets: mixed image b is similar to mixed image b+d (mod B) of its rank with
/// weight (1 − |d|/m)/m for |d| < m (smoothed), shape (B, B·world_size).
///
/// >>> import patchmix_core as pc
/// >>> pc.mix_to_mix_targets(3, 2).tolist()
/// [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]]
#[pyfunction]
#[pyo3(signature = (batch, mix, *, world_size = 1, rank = 0, smoothing = 0.0))]
pub(crate) fn mix_to_mix_targets(
    py: Python<'_>,
    batch: i64,
    mix: i64,
    world_size: i64,
    rank: i64,
    smoothing: f64,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let spec = spec(batch, world_size, rank, smoothing)?;
    let mix = non_negative("mix", mix)?;
    filled(py, &spec, |out| fill_mix_to_mix_targets(&spec, mix, out))
}
