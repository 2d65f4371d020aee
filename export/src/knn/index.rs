//! The persisted feature index.
//!
//! # File format
//!
//! A safetensors file with
//!
//! | tensor | dtype | shape | contents |
//! |--------|-------|-------|----------|
//! | `features` | `F32` | `[N, D]` | L2-normalised feature rows |
//! | `labels` | `I64` | `[N]` | class ids in `0..num_classes` |
//!
//! and `__metadata__` keys `format = "patchmix-knn-index"`, `format_version = "1"`,
//! `num_classes`, `count` (`N`) and `dim` (`D`), plus any user metadata (e.g. the checkpoint
//! the features came from). Labels are `I64` because that is `torch.long`, what PyTorch and
//! NumPy use for class targets; in memory they are `u32`.
//!
//! Loading is lenient about files written by Python: `features` may be `F16`/`BF16`/`F64`
//! (converted to `f32`) and not yet normalised (rows are normalised on load), `labels` may
//! be any integer dtype, and missing `num_classes` is inferred as `max(label) + 1`.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix2};

use super::KnnError;
use super::search::{SearchOptions, TopK, topk_dot};
use crate::weights::{self, IntStateDict, Metadata, StateDict};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "patchmix-knn-index";
/// Value of the `format_version` metadata key.
pub const FORMAT_VERSION: &str = "1";
/// Metadata keys this module writes itself; user metadata with these keys is overwritten on
/// save and not returned by [`FeatureIndex::metadata`] after load.
pub const RESERVED_KEYS: [&str; 5] = ["format", "format_version", "num_classes", "count", "dim"];

/// Rows whose norm is within this of 1 count as normalised (4 f32 ulps at 1.0; rounding a
/// normalised row to f32 moves its norm by well under that).
const UNIT_TOLERANCE: f64 = 4.0 * f32::EPSILON as f64;

/// Normalises each row to unit L2 norm in place, like `torch.nn.functional.normalize`
/// (`x / max(‖x‖, 1e-12)`: an all-zero row stays zero). The norm is accumulated in `f64`.
/// Rows already of unit norm (to within 4.8e-7) are left unchanged, which makes the
/// operation idempotent.
///
/// # Errors
///
/// [`KnnError::NonFinite`] (with `what`) for the first row containing NaN or infinity; the
/// rows before it are already normalised.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let mut a = array![[3.0f32, 4.0], [0.0, 0.0]];
/// patchmix_export::knn::l2_normalize_rows(&mut a, "train").unwrap();
/// assert_eq!(a, array![[0.6, 0.8], [0.0, 0.0]]);
/// ```
pub fn l2_normalize_rows(a: &mut Array2<f32>, what: &'static str) -> Result<(), KnnError> {
    for (row_idx, mut row) in a.axis_iter_mut(Axis(0)).enumerate() {
        if row.iter().any(|v| !v.is_finite()) {
            return Err(KnnError::NonFinite { what, row: row_idx });
        }
        // Accumulate in f64: no overflow for large finite values, and exact enough.
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        // Already unit rows are left untouched, so normalising is idempotent bit for bit
        // (a saved index reloads exactly).
        if (norm - 1.0).abs() <= UNIT_TOLERANCE {
            continue;
        }
        let norm = norm.max(1e-12);
        row.mapv_inplace(|v| (f64::from(v) / norm) as f32);
    }
    Ok(())
}

/// L2-normalised features `[N, D]` with class labels, for kNN search and classification.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureIndex {
    features: Array2<f32>,
    labels: Vec<u32>,
    num_classes: usize,
    metadata: Metadata,
}

impl FeatureIndex {
    /// Builds an index, normalising `features` rows (see [`l2_normalize_rows`]).
    ///
    /// `num_classes` defaults to `max(labels) + 1`; pass it when some classes may have no
    /// training sample, so that reports state the true class count.
    ///
    /// # Errors
    ///
    /// [`KnnError::EmptyIndex`] for zero rows, [`KnnError::LabelCount`],
    /// [`KnnError::LabelOutOfRange`], [`KnnError::InvalidNumClasses`],
    /// [`KnnError::NonFinite`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::array;
    /// use patchmix_export::knn::FeatureIndex;
    /// let idx = FeatureIndex::new(array![[2.0, 0.0], [0.0, 5.0]], vec![0, 3], None)?;
    /// assert_eq!((idx.len(), idx.dim(), idx.num_classes()), (2, 2, 4));
    /// assert_eq!(idx.features()[[1, 1]], 1.0);
    /// # Ok::<(), patchmix_export::knn::KnnError>(())
    /// ```
    pub fn new(
        mut features: Array2<f32>,
        labels: Vec<u32>,
        num_classes: Option<usize>,
    ) -> Result<Self, KnnError> {
        if features.nrows() == 0 {
            return Err(KnnError::EmptyIndex);
        }
        if labels.len() != features.nrows() {
            return Err(KnnError::LabelCount {
                what: "train",
                features: features.nrows(),
                labels: labels.len(),
            });
        }
        let num_classes = match num_classes {
            Some(c) => c,
            None => labels.iter().copied().max().map_or(0, |m| m as usize + 1),
        };
        if num_classes == 0 || num_classes > (u32::MAX as usize) + 1 {
            return Err(KnnError::InvalidNumClasses(num_classes));
        }
        check_labels(&labels, num_classes, "train")?;
        l2_normalize_rows(&mut features, "train")?;
        Ok(Self {
            features,
            labels,
            num_classes,
            metadata: Metadata::new(),
        })
    }

    /// Adds a user metadata entry (stored in the file's `__metadata__`).
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The normalised features `[N, D]`.
    #[must_use]
    pub fn features(&self) -> ArrayView2<'_, f32> {
        self.features.view()
    }

    /// The labels, one per row.
    #[must_use]
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of classes (labels are in `0..num_classes`).
    #[must_use]
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of rows `N`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Always `false`: an index has at least one row.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.features.nrows() == 0
    }

    /// Feature width `D`.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.features.ncols()
    }

    /// User metadata (without the [`RESERVED_KEYS`]).
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Top-`k` cosine neighbours of `queries` (normalised here, on a copy).
    ///
    /// `k` larger than [`len`](Self::len) is clipped to it.
    ///
    /// # Errors
    ///
    /// [`KnnError::DimMismatch`], [`KnnError::NonFinite`] (for a query row),
    /// [`KnnError::InvalidK`] for `k == 0`, [`KnnError::InvalidBlockRows`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::array;
    /// use patchmix_export::knn::{FeatureIndex, SearchOptions};
    /// let idx = FeatureIndex::new(array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], vec![0, 1, 0], None)?;
    /// let top = idx.search(array![[0.0, 3.0]].view(), 2, &SearchOptions::default())?;
    /// assert_eq!(top.indices.row(0).to_vec(), vec![1, 2]);
    /// # Ok::<(), patchmix_export::knn::KnnError>(())
    /// ```
    pub fn search(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        opts: &SearchOptions,
    ) -> Result<TopK, KnnError> {
        if queries.ncols() != self.dim() {
            return Err(KnnError::DimMismatch {
                index_dim: self.dim(),
                query_dim: queries.ncols(),
            });
        }
        let mut q = queries.to_owned();
        l2_normalize_rows(&mut q, "query")?;
        topk_dot(self.features.view(), q.view(), k, opts)
    }

    /// Saves the index atomically as safetensors (see the [module docs](self) for the format).
    ///
    /// # Errors
    ///
    /// [`KnnError::Weights`] wrapping the I/O error, naming the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::array;
    /// use patchmix_export::knn::FeatureIndex;
    /// let dir = std::env::temp_dir().join(format!("pm-knn-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("train.knn.safetensors");
    /// let idx = FeatureIndex::new(array![[1.0, 0.0]], vec![0], Some(10))?.with_metadata("epoch", "100");
    /// idx.save(&path)?;
    /// assert_eq!(FeatureIndex::load(&path)?, idx);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), patchmix_export::knn::KnnError>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KnnError> {
        let mut meta = self.metadata.clone();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("format_version".into(), FORMAT_VERSION.into());
        meta.insert("num_classes".into(), self.num_classes.to_string());
        meta.insert("count".into(), self.len().to_string());
        meta.insert("dim".into(), self.dim().to_string());
        let tensors = StateDict::from([("features".to_string(), self.features.clone().into_dyn())]);
        let labels: ArrayD<i64> =
            Array1::from_iter(self.labels.iter().map(|&l| i64::from(l))).into_dyn();
        let ints = IntStateDict::from([("labels".to_string(), labels)]);
        weights::save_safetensors_with_ints(path, &tensors, &ints, Some(&meta))?;
        Ok(())
    }

    /// Loads and validates an index file.
    ///
    /// # Errors
    ///
    /// [`KnnError::Weights`] if the file cannot be read or is not safetensors;
    /// [`KnnError::InvalidIndexFile`] naming the file if `features`/`labels` are missing,
    /// of the wrong kind or rank, disagree in length, if a label is negative or not below
    /// `num_classes`, if a feature is not finite, or if the metadata is malformed.
    ///
    /// # Examples
    ///
    /// See [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KnnError> {
        let path = path.as_ref();
        let invalid = |reason: String| KnnError::InvalidIndexFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut contents = weights::load_safetensors(path)?;
        let meta = &contents.metadata;
        if let Some(f) = meta.get("format")
            && f != FORMAT
        {
            return Err(invalid(format!(
                "metadata format is {f:?}, expected {FORMAT:?}"
            )));
        }
        if let Some(v) = meta.get("format_version")
            && v != FORMAT_VERSION
        {
            return Err(invalid(format!(
                "format_version {v:?} is not supported by this version (expected {FORMAT_VERSION:?}); \
                 upgrade patchmix or rebuild the index"
            )));
        }

        let features = match contents.tensors.remove("features") {
            Some(f) => f,
            None if contents.ints.contains_key("features") => {
                return Err(invalid(
                    "tensor `features` has an integer dtype; it must be a float tensor [N, D]"
                        .into(),
                ));
            }
            None => return Err(invalid("tensor `features` [N, D] is missing".into())),
        };
        let features = features
            .into_dimensionality::<Ix2>()
            .map_err(|_| invalid("tensor `features` must have 2 dimensions [N, D]".to_string()))?;
        let labels = match contents.ints.remove("labels") {
            Some(l) => l,
            None if contents.tensors.contains_key("labels") => {
                return Err(invalid(
                    "tensor `labels` has a float dtype; it must be an integer tensor (I64) [N]"
                        .into(),
                ));
            }
            None => return Err(invalid("tensor `labels` [N] is missing".into())),
        };
        if labels.ndim() != 1 {
            return Err(invalid(format!(
                "tensor `labels` must have 1 dimension [N], found shape {:?}",
                labels.shape()
            )));
        }
        if labels.len() != features.nrows() {
            return Err(invalid(format!(
                "`features` has {} rows but `labels` has {} entries",
                features.nrows(),
                labels.len()
            )));
        }
        if features.nrows() == 0 {
            return Err(invalid("the index has no rows".into()));
        }
        let labels: Vec<u32> = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                u32::try_from(l).map_err(|_| invalid(format!("label #{i} is {l}, not a class id")))
            })
            .collect::<Result<_, _>>()?;
        let num_classes = match meta.get("num_classes") {
            Some(s) => Some(s.parse::<usize>().map_err(|_| {
                invalid(format!(
                    "metadata num_classes = {s:?} is not a non-negative integer"
                ))
            })?),
            None => None,
        };
        let mut user_meta: BTreeMap<String, String> = contents.metadata;
        for k in RESERVED_KEYS {
            user_meta.remove(k);
        }
        let mut index =
            Self::new(features, labels, num_classes).map_err(|e| invalid(e.to_string()))?;
        index.metadata = user_meta;
        Ok(index)
    }
}

/// Checks every label is below `num_classes`.
pub(crate) fn check_labels(
    labels: &[u32],
    num_classes: usize,
    what: &'static str,
) -> Result<(), KnnError> {
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(position) => Err(KnnError::LabelOutOfRange {
            what,
            position,
            label: labels[position],
            num_classes,
        }),
        None => Ok(()),
    }
}
