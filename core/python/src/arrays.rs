//! numpy arrays as Rust slices, without copies: the dtype dispatch (float32, float16, uint8),
//! the C-contiguity rule, and the output array (new, or the caller's `out`).
//!
//! A non-contiguous or Fortran-ordered array is an error rather than a silent copy: the caller
//! decides whether to pay for `np.ascontiguousarray`. (numpy's own `as_slice` accepts Fortran
//! order too, which would read the pixels in the wrong order, so C order is checked here.)

use crate::errors::{core_error, value_error};
use half::f16;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A gather from one buffer into another of the same length, for any element type.
pub(crate) trait Gather: Sync {
    /// Writes the gathered `input` into `output`.
    fn run<E: Copy + Send + Sync>(
        &self,
        input: &[E],
        output: &mut [E],
    ) -> Result<(), patchmix_core::Error>;
}

/// Applies the gather that `gather_for` makes for `input`'s shape (or its error) to `input`, a
/// C-contiguous float32, float16 or uint8 array, and returns the result: a new array of the same shape and dtype, or
/// `out` when given (same shape and dtype, C-contiguous, not `input` itself). The GIL is released
/// while the gather runs.
pub(crate) fn gather_array<'py, G: Gather>(
    argument: &str,
    input: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    gather_for: impl FnOnce(&[usize]) -> PyResult<G>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(array) = input.cast::<PyArrayDyn<f32>>() {
        typed(argument, array, out, gather_for)
    } else if let Ok(array) = input.cast::<PyArrayDyn<f16>>() {
        typed(argument, array, out, gather_for)
    } else if let Ok(array) = input.cast::<PyArrayDyn<u8>>() {
        typed(argument, array, out, gather_for)
    } else if let Ok(array) = input.cast::<PyUntypedArray>() {
        Err(value_error(
            argument,
            format!(
                "dtype {} is not supported (float32, float16 or uint8)",
                array.dtype()
            ),
        ))
    } else {
        Err(value_error(
            argument,
            format!("expected a numpy.ndarray, got {}", input.get_type().name()?),
        ))
    }
}

fn typed<'py, E: Element + Copy + Send + Sync, G: Gather>(
    argument: &str,
    input: &Bound<'py, PyArrayDyn<E>>,
    out: Option<&Bound<'py, PyAny>>,
    gather_for: impl FnOnce(&[usize]) -> PyResult<G>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = input.py();
    let gather = gather_for(input.shape())?;
    require_c_contiguous(argument, input)?;
    let output = match out {
        None => PyArrayDyn::<E>::zeros(py, input.shape(), false),
        Some(out) => {
            let out = out.cast::<PyArrayDyn<E>>().map_err(|_| {
                value_error(
                    "out",
                    format!(
                        "must be a numpy.ndarray with the dtype of {argument} ({})",
                        input.dtype()
                    ),
                )
            })?;
            if out.shape() != input.shape() {
                return Err(value_error(
                    "out",
                    format!(
                        "shape {:?} differs from {argument}'s shape {:?}",
                        out.shape(),
                        input.shape()
                    ),
                ));
            }
            require_c_contiguous("out", out)?;
            out.clone()
        }
    };
    let source = input
        .try_readonly()
        .map_err(|e| value_error(argument, format!("cannot be read: {e}")))?;
    let mut target = output
        .try_readwrite()
        .map_err(|_| value_error("out", format!("must not share memory with {argument}")))?;
    let source = source
        .as_slice()
        .map_err(|e| value_error(argument, e.to_string()))?;
    let target = target
        .as_slice_mut()
        .map_err(|e| value_error("out", e.to_string()))?;
    py.detach(|| gather.run(source, target))
        .map_err(|e| core_error(argument, e))?;
    Ok(output.into_any())
}

/// `ValueError` unless `array` is C-contiguous (row-major).
fn require_c_contiguous<E: Element>(
    argument: &str,
    array: &Bound<'_, PyArrayDyn<E>>,
) -> PyResult<()> {
    if array.is_c_contiguous() {
        Ok(())
    } else {
        Err(value_error(
            argument,
            "is not C-contiguous; pass numpy.ascontiguousarray(...) (no copy is made silently)",
        ))
    }
}
