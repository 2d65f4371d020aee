//! The `MixPlan` class: one PatchMix plan (shuffle → group mix → unshuffle) and its application
//! to image batches (NCHW) or patch tokens (B, T, D).

use crate::arrays::{Gather, gather_array};
use crate::errors::{core_error, non_negative, unsigned_64, value_error};
use numpy::PyArray1;
use patchmix_core::{ImageShape, MixPlan};
use pyo3::prelude::*;

/// One PatchMix plan for a batch of `batch` images of `grid`×`grid` patch tokens mixed `mix` at
/// a time: the shuffle `perm`, its `inverse`, and the flat gather indices `source` (mixed token
/// `b·T + t` is input token `source[b·T + t]`).
///
/// Build it with `MixPlan.from_seed` or `MixPlan.from_permutation`, then apply it with
/// `apply_nchw` (images) or `apply_patches` (tokens).
///
/// >>> import numpy as np, patchmix_core as pc
/// >>> plan = pc.MixPlan.from_permutation(2, 2, 2, [3, 0, 2, 1])
/// >>> plan.source.tolist()
/// [0, 5, 6, 3, 4, 1, 2, 7]
#[pyclass(frozen, name = "MixPlan", module = "patchmix_core")]
pub(crate) struct PyMixPlan {
    plan: MixPlan,
}

#[pymethods]
impl PyMixPlan {
    /// The plan whose shuffle is drawn from `seed` (SplitMix64 + Fisher–Yates, the same draw as
    /// the Rust core, the C ABI and `patchmix mix-plan --seed`).
    ///
    /// >>> import patchmix_core as pc
    /// >>> pc.MixPlan.from_seed(8, 14, 2, 42)
    /// MixPlan(batch=8, grid=14, mix=2)
    #[staticmethod]
    fn from_seed(batch: i64, grid: i64, mix: i64, seed: i128) -> PyResult<Self> {
        let plan = MixPlan::from_seed(
            non_negative("batch", batch)?,
            non_negative("grid", grid)?,
            non_negative("mix", mix)?,
            unsigned_64("seed", seed)?,
        )
        .map_err(|e| core_error("perm", e))?;
        Ok(Self { plan })
    }

    /// The plan for the caller's shuffle `perm`, a permutation of `0..grid**2` (a sequence of
    /// ints or an integer array).
    ///
    /// >>> import patchmix_core as pc
    /// >>> plan = pc.MixPlan.from_permutation(2, 2, 2, [3, 0, 2, 1])
    /// >>> plan.inverse.tolist()
    /// [1, 3, 2, 0]
    #[staticmethod]
    fn from_permutation(batch: i64, grid: i64, mix: i64, perm: Vec<i64>) -> PyResult<Self> {
        let plan = MixPlan::from_permutation(
            non_negative("batch", batch)?,
            non_negative("grid", grid)?,
            non_negative("mix", mix)?,
            &perm,
        )
        .map_err(|e| core_error("perm", e))?;
        Ok(Self { plan })
    }

    /// Batch size B.
    #[getter]
    fn batch(&self) -> usize {
        self.plan.geometry().batch()
    }

    /// Tokens per image side.
    #[getter]
    fn grid(&self) -> usize {
        self.plan.geometry().grid()
    }

    /// Mix number m.
    #[getter]
    fn mix(&self) -> usize {
        self.plan.geometry().mix()
    }

    /// Tokens per image, T = grid².
    #[getter]
    fn tokens(&self) -> usize {
        self.plan.geometry().tokens()
    }

    /// Tokens per mixed group, S = ⌊T/m⌋.
    #[getter]
    fn group_size(&self) -> usize {
        self.plan.geometry().group_size()
    }

    /// The shuffle, shape (T,), int64.
    #[getter]
    fn perm<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        indices(py, self.plan.perm())
    }

    /// The inverse shuffle, shape (T,), int64.
    #[getter]
    fn inverse<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        indices(py, self.plan.inverse())
    }

    /// The flat gather indices, shape (B·T,), int64: mixed token `b·T + t` is input token
    /// `source[b·T + t]` (ready for `numpy.take` or `torch.index_select` on (B·T, D) tokens).
    #[getter]
    fn source<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        indices(py, self.plan.source())
    }

    /// The mixed images of `images`, a C-contiguous (B, C, H, W) float32, float16 or uint8
    /// array with H = W divisible by `grid` (token order row-major over the patch grid, as the
    /// original's `rearrange`). Returns a new array, or writes into `out` and returns it.
    ///
    /// >>> import numpy as np, patchmix_core as pc
    /// >>> plan = pc.MixPlan.from_permutation(2, 2, 2, [3, 0, 2, 1])
    /// >>> images = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)  # 1-pixel patches
    /// >>> plan.apply_nchw(images).reshape(2, 4).tolist()
    /// [[0.0, 5.0, 6.0, 3.0], [4.0, 1.0, 2.0, 7.0]]
    #[pyo3(signature = (images, *, out = None))]
    fn apply_nchw<'py>(
        &self,
        images: &Bound<'py, PyAny>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        gather_array("images", images, out, |shape| {
            let &[batch, channels, height, width] = shape else {
                return Err(value_error(
                    "images",
                    format!("shape {shape:?} is not (B, C, H, W)"),
                ));
            };
            self.same_batch("images", batch)?;
            Ok(NchwGather {
                plan: &self.plan,
                shape: ImageShape {
                    channels,
                    height,
                    width,
                },
            })
        })
    }

    /// The mixed tokens of `tokens`, a C-contiguous (B, T, D) float32, float16 or uint8 array.
    /// Returns a new array, or writes into `out` and returns it.
    ///
    /// >>> import numpy as np, patchmix_core as pc
    /// >>> plan = pc.MixPlan.from_permutation(2, 2, 2, [3, 0, 2, 1])
    /// >>> tokens = np.arange(8, dtype=np.uint8).reshape(2, 4, 1)
    /// >>> plan.apply_patches(tokens)[:, :, 0].tolist()
    /// [[0, 5, 6, 3], [4, 1, 2, 7]]
    #[pyo3(signature = (tokens, *, out = None))]
    fn apply_patches<'py>(
        &self,
        tokens: &Bound<'py, PyAny>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        gather_array("tokens", tokens, out, |shape| {
            let &[batch, per_image, token_len] = shape else {
                return Err(value_error(
                    "tokens",
                    format!("shape {shape:?} is not (B, T, D)"),
                ));
            };
            self.same_batch("tokens", batch)?;
            if per_image != self.tokens() {
                return Err(value_error(
                    "tokens",
                    format!(
                        "has {per_image} tokens per image but the plan has T = {}",
                        self.tokens()
                    ),
                ));
            }
            Ok(PatchGather {
                plan: &self.plan,
                token_len,
            })
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "MixPlan(batch={}, grid={}, mix={})",
            self.batch(),
            self.grid(),
            self.mix()
        )
    }
}

impl PyMixPlan {
    /// `ValueError` unless the array's leading dimension is the plan's batch.
    fn same_batch(&self, argument: &str, batch: usize) -> PyResult<()> {
        if batch == self.batch() {
            Ok(())
        } else {
            Err(value_error(
                argument,
                format!(
                    "batch {batch} differs from the plan's batch B = {}",
                    self.batch()
                ),
            ))
        }
    }
}

/// The plan's gather over (B, C, H, W) images.
struct NchwGather<'a> {
    plan: &'a MixPlan,
    shape: ImageShape,
}

impl Gather for NchwGather<'_> {
    fn run<E: Copy + Send + Sync>(
        &self,
        input: &[E],
        output: &mut [E],
    ) -> Result<(), patchmix_core::Error> {
        self.plan.apply_nchw(self.shape, input, output)
    }
}

/// The plan's gather over (B, T, D) tokens.
struct PatchGather<'a> {
    plan: &'a MixPlan,
    token_len: usize,
}

impl Gather for PatchGather<'_> {
    fn run<E: Copy + Send + Sync>(
        &self,
        input: &[E],
        output: &mut [E],
    ) -> Result<(), patchmix_core::Error> {
        self.plan.apply_patches(self.token_len, input, output)
    }
}

/// Index arrays as int64 (numpy's and torch's index type).
fn indices<'py>(py: Python<'py>, values: &[u32]) -> Bound<'py, PyArray1<i64>> {
    PyArray1::from_iter(py, values.iter().map(|&v| i64::from(v)))
}
