//! Searching a [`Gallery`]: exact (the ground truth, [`topk_dot`] over the features) or
//! approximate (the HNSW graph, re-scored exactly), optionally among one label.

use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis};

use super::GalleryError;
use super::gallery::Gallery;
use crate::knn::{SearchOptions, l2_normalize_rows, topk_dot};

/// Which search [`Gallery::search`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMethod {
    /// Blocked exact cosine search over every row (the default and the ground truth).
    #[default]
    Exact,
    /// The HNSW graph, with this candidate list size (`None`: the gallery's default). Scores
    /// are exact cosine similarities of the candidates found. The size is a setting of the
    /// graph: concurrent searches of one gallery should use one value.
    Hnsw {
        /// usearch's `expansion_search` (`ef`); at least `k` is used.
        expansion: Option<usize>,
    },
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The item's id (file path for an ImageFolder, dataset index otherwise).
    pub id: String,
    /// The item's class name.
    pub label: String,
    /// The item's class number.
    pub label_id: u32,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The item's row in the gallery.
    #[serde(skip)]
    pub row: usize,
}

/// Dot product in `f32`, summed in order.
#[cfg(feature = "hnsw")]
fn dot(a: &[f32], b: ndarray::ArrayView1<'_, f32>) -> f32 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

impl Gallery {
    /// The `k` nearest items of each query row (best first; ties by row), among the items of
    /// class `label` when given (see [`resolve_label`](Self::resolve_label)).
    ///
    /// `k` must be at least 1 and at most the number of candidates (the gallery, or the items
    /// of `label`). HNSW may return fewer than `k` hits when its graph does not reach enough
    /// items of a rare label.
    ///
    /// # Errors
    ///
    /// [`GalleryError::InvalidK`]; [`GalleryError::InvalidQuery`] for a label not below the
    /// class count; [`GalleryError::Knn`] for a query of the wrong width or not finite;
    /// [`GalleryError::NoAnn`] for HNSW on a gallery without an open graph.
    ///
    /// # Examples
    ///
    /// See [`Gallery`].
    pub fn search(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
        label: Option<u32>,
        method: SearchMethod,
    ) -> Result<Vec<Vec<Hit>>, GalleryError> {
        if queries.ncols() != self.dim() {
            return Err(crate::knn::KnnError::DimMismatch {
                index_dim: self.dim(),
                query_dim: queries.ncols(),
            }
            .into());
        }
        if let Some(l) = label
            && l as usize >= self.classes().len()
        {
            return Err(GalleryError::InvalidQuery(format!(
                "label {l} is not below the {} classes",
                self.classes().len()
            )));
        }
        let candidates = match label {
            None => self.len(),
            Some(l) => self.labels().iter().filter(|&&x| x == l).count(),
        };
        if k == 0 {
            return Err(GalleryError::InvalidK {
                k,
                reason: "ask for at least 1 neighbour".into(),
            });
        }
        if k > candidates {
            let among = match label {
                None => format!("the gallery has only {candidates} items"),
                Some(l) => format!(
                    "the gallery has only {candidates} items of label {:?}",
                    self.classes()[l as usize]
                ),
            };
            return Err(GalleryError::InvalidK { k, reason: among });
        }
        let mut q: Array2<f32> = queries.to_owned();
        l2_normalize_rows(&mut q, "query")?;
        let rows: Vec<Vec<(usize, f32)>> = match method {
            SearchMethod::Exact => self.exact(q.view(), k, label)?,
            SearchMethod::Hnsw { expansion } => self.approximate(q.view(), k, label, expansion)?,
        };
        Ok(rows
            .into_iter()
            .map(|hits| {
                hits.into_iter()
                    .map(|(row, score)| {
                        let label_id = self.labels()[row];
                        Hit {
                            id: self.ids()[row].clone(),
                            label: self.classes()[label_id as usize].clone(),
                            label_id,
                            score,
                            row,
                        }
                    })
                    .collect()
            })
            .collect())
    }

    fn exact(
        &self,
        q: ArrayView2<'_, f32>,
        k: usize,
        label: Option<u32>,
    ) -> Result<Vec<Vec<(usize, f32)>>, GalleryError> {
        let opts = SearchOptions::default();
        let (top, rows) = match label {
            None => (topk_dot(self.features(), q, k, &opts)?, None),
            Some(l) => {
                let rows: Vec<usize> = (0..self.len()).filter(|&i| self.labels()[i] == l).collect();
                let bank = self.features().select(Axis(0), &rows);
                (topk_dot(bank.view(), q, k, &opts)?, Some(rows))
            }
        };
        Ok(top
            .indices
            .outer_iter()
            .zip(top.similarities.outer_iter())
            .map(|(idx, sim)| {
                idx.iter()
                    .zip(sim.iter())
                    .map(|(&i, &s)| (rows.as_ref().map_or(i, |r| r[i]), s))
                    .collect()
            })
            .collect())
    }

    #[cfg(feature = "hnsw")]
    fn approximate(
        &self,
        q: ArrayView2<'_, f32>,
        k: usize,
        label: Option<u32>,
        expansion: Option<usize>,
    ) -> Result<Vec<Vec<(usize, f32)>>, GalleryError> {
        use rayon::prelude::*;
        let Some(h) = self.hnsw() else {
            return Err(GalleryError::NoAnn {
                path: self
                    .path()
                    .map_or_else(|| "<in-memory gallery>".into(), Path::to_path_buf),
            });
        };
        // Set once, before the parallel searches (usearch keeps one setting per graph).
        h.set_expansion(expansion.map(|e| e.max(k)));
        let labels = self.labels();
        let keep = move |key: u64| {
            usize::try_from(key).is_ok_and(|r| r < labels.len() && Some(labels[r]) == label)
        };
        let filter: Option<&(dyn Fn(u64) -> bool + Sync)> = label.is_some().then_some(&keep as _);
        let feats = self.features();
        (0..q.nrows())
            .into_par_iter()
            .map(|i| {
                let row = q.row(i).to_vec();
                let keys = h.search(&row, k, filter)?;
                let mut hits: Vec<(usize, f32)> = keys
                    .into_iter()
                    .filter_map(|key| usize::try_from(key).ok().filter(|&r| r < feats.nrows()))
                    .map(|r| (r, dot(&row, feats.row(r))))
                    .collect();
                hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                Ok(hits)
            })
            .collect()
    }

    #[cfg(not(feature = "hnsw"))]
    fn approximate(
        &self,
        _q: ArrayView2<'_, f32>,
        _k: usize,
        _label: Option<u32>,
        _expansion: Option<usize>,
    ) -> Result<Vec<Vec<(usize, f32)>>, GalleryError> {
        Err(GalleryError::NoAnn {
            path: self
                .path()
                .map_or_else(|| "<in-memory gallery>".into(), Path::to_path_buf),
        })
    }
}
