//! DINO's weighted kNN classifier (Caron et al. 2021, `eval_knn.py`), as used by PatchMix.
//!
//! For a query with top-`k` neighbours of cosine similarity `s_j` and label `y_j`, class `c`
//! gets the vote `Σ_{j : y_j = c} exp(s_j / T)` (`T = 0.07`). Classes are ranked by vote,
//! ties broken by the lower class id (i.e. `torch.sort(stable=True)`; classes with no
//! neighbour have vote 0 and rank after every voted class). The query is top-1 correct when
//! its label ranks first and top-5 correct when it ranks among the first five — so with 5
//! or fewer classes top-5 is always 100%, as in DINO.
//!
//! All `k` are served by one top-`max(k)` search: the neighbours of `k` are the first `k`
//! of `max(k)`. A `k` larger than the number of training samples `N` is clipped to `N`;
//! [`KnnRow::k_used`] records the value used.

use std::fmt;

use ndarray::ArrayView2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::KnnError;
use super::index::{FeatureIndex, check_labels};
use super::search::SearchOptions;

/// DINO's kNN temperature.
pub const DINO_TEMPERATURE: f32 = 0.07;

/// The `k` values DINO and PatchMix report.
pub const DEFAULT_KS: [usize; 4] = [10, 20, 100, 200];

/// Weighted class votes `votes[c] = Σ_{j: labels[j] = c} exp(sims[j] / temperature)`.
///
/// Accumulated in `f64`. Labels must be below `num_classes` (checked by the callers in this
/// module; an out-of-range label here is ignored).
///
/// # Examples
///
/// ```
/// let v = patchmix_export::knn::weighted_votes(&[0.0, 0.07, 0.07], &[1, 0, 0], 3, 0.07);
/// assert!((v[0] - 2.0 * std::f64::consts::E).abs() < 1e-6);
/// assert!((v[1] - 1.0).abs() < 1e-12);
/// assert_eq!(v[2], 0.0);
/// ```
#[must_use]
pub fn weighted_votes(
    sims: &[f32],
    labels: &[u32],
    num_classes: usize,
    temperature: f32,
) -> Vec<f64> {
    let mut votes = vec![0.0; num_classes];
    add_votes(&mut votes, sims, labels, f64::from(temperature));
    votes
}

fn add_votes(votes: &mut [f64], sims: &[f32], labels: &[u32], temperature: f64) {
    for (&s, &l) in sims.iter().zip(labels) {
        if let Some(v) = votes.get_mut(l as usize) {
            *v += (f64::from(s) / temperature).exp();
        }
    }
}

/// The 0-based rank of class `label` under `scores` (kNN votes, or a classifier's logits): the
/// number of classes with a larger score, or an equal score and a lower id. Rank 0 is the
/// top-1 prediction. A `label` out of range, or whose score is unordered (`NaN`), ranks last
/// (`scores.len()`).
///
/// # Examples
///
/// ```
/// use patchmix_export::knn::class_rank;
/// assert_eq!(class_rank(&[1.0, 3.0, 3.0, 0.0], 2), 1); // class 1 ties and wins on id
/// assert_eq!(class_rank(&[1.0, 3.0, 3.0, 0.0], 3), 3);
/// assert_eq!(class_rank(&[1.0f32, f32::NAN], 1), 2);
/// ```
#[must_use]
pub fn class_rank<T: PartialOrd + Copy>(scores: &[T], label: usize) -> usize {
    let Some(&mine) = scores.get(label) else {
        return scores.len();
    };
    if mine.partial_cmp(&mine).is_none() {
        return scores.len();
    }
    scores
        .iter()
        .enumerate()
        .filter(|&(c, &v)| v > mine || (v == mine && c < label))
        .count()
}

/// Index of the largest vote, ties to the lower class id.
fn argmax(votes: &[f64]) -> usize {
    let mut best = 0;
    for (c, &v) in votes.iter().enumerate() {
        if v > votes[best] {
            best = c;
        }
    }
    best
}

/// One line of a [`KnnReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnRow {
    /// The requested `k`.
    pub k: usize,
    /// The `k` used: `min(k, num_train)`.
    pub k_used: usize,
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent (100 when there are 5 classes or fewer).
    pub top5: f64,
}

/// Weighted kNN accuracies for several `k`; prints as a `k | top-1 | top-5` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnReport {
    /// The vote temperature `T`.
    pub temperature: f32,
    /// Training (bank) samples.
    pub num_train: usize,
    /// Test (query) samples.
    pub num_test: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Feature width.
    pub dim: usize,
    /// One row per requested `k`, in the order given.
    pub rows: Vec<KnnRow>,
}

impl KnnReport {
    /// The row for the requested `k`, if any.
    #[must_use]
    pub fn row(&self, k: usize) -> Option<&KnnRow> {
        self.rows.iter().find(|r| r.k == k)
    }

    /// Pretty JSON, for `--json` output and result files.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::knn::{KnnReport, KnnRow};
    /// let r = KnnReport { temperature: 0.07, num_train: 4, num_test: 2, num_classes: 2, dim: 2,
    ///     rows: vec![KnnRow { k: 1, k_used: 1, top1: 50.0, top5: 100.0 }] };
    /// let back: KnnReport = serde_json::from_str(&r.to_json_pretty()).unwrap();
    /// assert_eq!(back, r);
    /// ```
    #[must_use]
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain numbers and strings cannot fail; keep a fallback anyway.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for KnnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "weighted kNN (T = {}): {} train, {} test, {} classes, D = {}",
            self.temperature, self.num_train, self.num_test, self.num_classes, self.dim
        )?;
        writeln!(f, "     k |  top-1 |  top-5")?;
        writeln!(f, "-------+--------+--------")?;
        let mut clipped = false;
        for r in &self.rows {
            let mark = if r.k_used < r.k {
                clipped = true;
                "*"
            } else {
                " "
            };
            writeln!(f, "{:>6}{mark}| {:>6.2} | {:>6.2}", r.k, r.top1, r.top5)?;
        }
        if clipped {
            writeln!(f, "* k clipped to the {} training samples", self.num_train)?;
        }
        if self.num_classes <= 5 {
            writeln!(
                f,
                "(top-5 is trivially 100% with {} classes)",
                self.num_classes
            )?;
        }
        Ok(())
    }
}

fn validate_common(
    train: &FeatureIndex,
    test_feats: &ArrayView2<'_, f32>,
    test_labels: &[u32],
    temperature: f32,
) -> Result<(), KnnError> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(KnnError::InvalidTemperature(temperature));
    }
    if test_feats.ncols() != train.dim() {
        return Err(KnnError::DimMismatch {
            index_dim: train.dim(),
            query_dim: test_feats.ncols(),
        });
    }
    if test_labels.len() != test_feats.nrows() {
        return Err(KnnError::LabelCount {
            what: "test",
            features: test_feats.nrows(),
            labels: test_labels.len(),
        });
    }
    if test_feats.nrows() == 0 {
        return Err(KnnError::NoQueries);
    }
    check_labels(test_labels, train.num_classes(), "test")
}

/// [`knn_report_with`] with [`SearchOptions::default`].
///
/// # Errors
///
/// As [`knn_report_with`].
///
/// # Examples
///
/// See the [`knn` module](super).
pub fn knn_report(
    train: &FeatureIndex,
    test_feats: ArrayView2<'_, f32>,
    test_labels: &[u32],
    ks: &[usize],
    temperature: f32,
) -> Result<KnnReport, KnnError> {
    knn_report_with(
        train,
        test_feats,
        test_labels,
        ks,
        temperature,
        &SearchOptions::default(),
    )
}

/// Weighted kNN top-1/top-5 accuracy of `test_feats` (normalised here) against `train`, for
/// every `k` in `ks` (e.g. [`DEFAULT_KS`]), from one top-`max(k)` search.
///
/// # Errors
///
/// [`KnnError::InvalidK`] if `ks` is empty or contains 0; [`KnnError::InvalidTemperature`];
/// [`KnnError::DimMismatch`]; [`KnnError::LabelCount`]; [`KnnError::NoQueries`];
/// [`KnnError::LabelOutOfRange`] if a test label is not below `train.num_classes()`;
/// [`KnnError::NonFinite`] for a non-finite test row; [`KnnError::InvalidBlockRows`].
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_export::knn::{knn_report_with, FeatureIndex, SearchOptions};
/// let train = FeatureIndex::new(array![[1.0, 0.0], [0.0, 1.0]], vec![0, 1], None)?;
/// let opts = SearchOptions { block_rows: 1, parallel: false };
/// let r = knn_report_with(&train, array![[1.0, 0.2]].view(), &[1], &[1, 5], 0.07, &opts)?;
/// assert_eq!((r.rows[0].top1, r.rows[1].k_used), (0.0, 2));
/// # Ok::<(), patchmix_export::knn::KnnError>(())
/// ```
pub fn knn_report_with(
    train: &FeatureIndex,
    test_feats: ArrayView2<'_, f32>,
    test_labels: &[u32],
    ks: &[usize],
    temperature: f32,
    opts: &SearchOptions,
) -> Result<KnnReport, KnnError> {
    if ks.is_empty() || ks.contains(&0) {
        return Err(KnnError::InvalidK(ks.to_vec()));
    }
    validate_common(train, &test_feats, test_labels, temperature)?;
    let n = train.len();
    let k_max = ks.iter().copied().max().unwrap_or(1).min(n);
    let top = train.search(test_feats, k_max, opts)?;

    // Distinct k actually used, ascending: votes are accumulated incrementally.
    let mut used: Vec<usize> = ks.iter().map(|&k| k.min(n)).collect();
    used.sort_unstable();
    used.dedup();

    let c = train.num_classes();
    let t = f64::from(temperature);
    let train_labels = train.labels();
    let q = test_labels.len();
    // (top-1 hits, top-5 hits) per entry of `used`.
    let (hits1, hits5) = (0..q)
        .into_par_iter()
        .fold(
            || {
                (
                    vec![0usize; used.len()],
                    vec![0usize; used.len()],
                    vec![0.0f64; c],
                    Vec::new(),
                )
            },
            |(mut h1, mut h5, mut votes, mut labels), i| {
                votes.iter_mut().for_each(|v| *v = 0.0);
                labels.clear();
                labels.extend(top.indices.row(i).iter().map(|&j| train_labels[j]));
                let row = top.similarities.row(i);
                let owned;
                let sims = match row.as_slice() {
                    Some(s) => s,
                    None => {
                        owned = row.to_vec();
                        &owned
                    }
                };
                let truth = test_labels[i] as usize;
                let mut done = 0;
                for (u, &k) in used.iter().enumerate() {
                    add_votes(&mut votes, &sims[done..k], &labels[done..k], t);
                    done = k;
                    let rank = class_rank(&votes, truth);
                    h1[u] += usize::from(rank == 0);
                    h5[u] += usize::from(rank < 5);
                }
                (h1, h5, votes, labels)
            },
        )
        .map(|(h1, h5, _, _)| (h1, h5))
        .reduce(
            || (vec![0; used.len()], vec![0; used.len()]),
            |(mut a1, mut a5), (b1, b5)| {
                a1.iter_mut().zip(b1).for_each(|(a, b)| *a += b);
                a5.iter_mut().zip(b5).for_each(|(a, b)| *a += b);
                (a1, a5)
            },
        );

    let pct = |hits: usize| 100.0 * hits as f64 / q as f64;
    let rows = ks
        .iter()
        .map(|&k| {
            let k_used = k.min(n);
            let u = used.binary_search(&k_used).unwrap_or(0);
            KnnRow {
                k,
                k_used,
                top1: pct(hits1[u]),
                top5: pct(hits5[u]),
            }
        })
        .collect();
    Ok(KnnReport {
        temperature,
        num_train: n,
        num_test: q,
        num_classes: c,
        dim: train.dim(),
        rows,
    })
}

/// Weighted kNN top-1 prediction for each query (normalised here); `k` clipped to `N`.
///
/// # Errors
///
/// [`KnnError::InvalidK`] for `k == 0`, [`KnnError::InvalidTemperature`],
/// [`KnnError::DimMismatch`], [`KnnError::NonFinite`], [`KnnError::InvalidBlockRows`].
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_export::knn::{knn_predict, FeatureIndex, SearchOptions};
/// let train = FeatureIndex::new(array![[1.0, 0.0], [0.0, 1.0]], vec![3, 7], None)?;
/// let p = knn_predict(&train, array![[0.1, 1.0]].view(), 1, 0.07, &SearchOptions::default())?;
/// assert_eq!(p, vec![7]);
/// # Ok::<(), patchmix_export::knn::KnnError>(())
/// ```
pub fn knn_predict(
    train: &FeatureIndex,
    queries: ArrayView2<'_, f32>,
    k: usize,
    temperature: f32,
    opts: &SearchOptions,
) -> Result<Vec<u32>, KnnError> {
    if k == 0 {
        return Err(KnnError::InvalidK(vec![k]));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(KnnError::InvalidTemperature(temperature));
    }
    let top = train.search(queries, k, opts)?;
    let labels = train.labels();
    Ok((0..top.indices.nrows())
        .into_par_iter()
        .map(|i| {
            let nl: Vec<u32> = top.indices.row(i).iter().map(|&j| labels[j]).collect();
            let sims = top.similarities.row(i).to_vec();
            let votes = weighted_votes(&sims, &nl, train.num_classes(), temperature);
            // Class ids fit u32: FeatureIndex caps num_classes at 2^32.
            argmax(&votes) as u32
        })
        .collect())
}
