//! Approximate search: an HNSW graph over the gallery's features, through the `usearch` crate
//! (feature `hnsw`).
//!
//! # Where the graph lives
//!
//! The graph is a usearch index file **beside** the gallery, named
//! `<gallery>.<16 hex digits>.hnsw` and recorded in the gallery's metadata, rather than a
//! tensor inside the `.pmx`:
//!
//! * usearch memory-maps a graph only from a file of its own (`usearch::Index::restore_view`):
//!   viewing a byte range inside another file needs `view_from_buffer` over our own mapping,
//!   which is `unsafe` (the buffer must outlive the index), and this crate forbids `unsafe`.
//!   With its own file the graph of a large gallery is paged in on demand, not read up front;
//! * the graph is derived data: if it is lost, the features rebuild it.
//!
//! Two files must change together, so a write goes: the new graph to a fresh name (atomic),
//! then the gallery naming it (atomic), then the old graph is deleted. A crash at any point
//! leaves the old gallery with its old graph, or the new one with the new graph — never a
//! gallery pointing at a graph of other rows; at worst an unreferenced graph file remains. The
//! graph's keys are the gallery's row numbers, and loading checks that the graph holds exactly
//! `N` vectors of width `D`.
//!
//! The metric is cosine on the L2-normalised features. Results are re-scored with the
//! gallery's exact `f32` features, so scores are exact cosine similarities (also with `f16` or
//! `i8` quantised graphs) and the order is exact among the candidates found.

use serde::{Deserialize, Serialize};

/// How the graph stores vectors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumString, strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Quantization {
    /// 32-bit floats (4 bytes per value).
    F32,
    /// Half precision (2 bytes per value).
    F16,
    /// 8-bit integers (1 byte per value; cosine only).
    I8,
}

/// HNSW build and search parameters (usearch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Edges per node (`M`); more is slower to build, larger, and more accurate.
    pub connectivity: usize,
    /// Candidate list size while inserting (`ef_construction`).
    pub expansion_add: usize,
    /// Candidate list size while searching (`ef`), the default of searches.
    pub expansion_search: usize,
    /// Vector storage in the graph.
    pub quantization: Quantization,
}

impl Default for HnswParams {
    /// usearch's defaults: `M = 16`, `ef_construction = 128`, `ef = 64`; `f32` vectors.
    fn default() -> Self {
        Self {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
            quantization: Quantization::F32,
        }
    }
}

#[cfg(feature = "hnsw")]
pub use graph::Hnsw;

#[cfg(feature = "hnsw")]
mod graph {
    use std::path::{Path, PathBuf};

    use ndarray::ArrayView2;
    use rayon::prelude::*;
    use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

    use super::{HnswParams, Quantization};
    use crate::index::GalleryError;

    /// An HNSW graph whose keys are gallery row numbers.
    pub struct Hnsw {
        index: Index,
        params: HnswParams,
        /// The file it was viewed from (read-only until [`Hnsw::make_owned`]).
        viewed: Option<PathBuf>,
    }

    impl std::fmt::Debug for Hnsw {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Hnsw")
                .field("size", &self.index.size())
                .field("dim", &self.index.dimensions())
                .field("params", &self.params)
                .field("viewed", &self.viewed)
                .finish()
        }
    }

    fn ann_err(path: &Path, what: &str, e: impl std::fmt::Display) -> GalleryError {
        GalleryError::Ann {
            path: path.to_path_buf(),
            reason: format!("{what}: {e}"),
        }
    }

    fn utf8(path: &Path) -> Result<&str, GalleryError> {
        path.to_str().ok_or_else(|| GalleryError::Ann {
            path: path.to_path_buf(),
            reason: "the path is not UTF-8, which usearch needs".into(),
        })
    }

    fn threads() -> usize {
        rayon::current_num_threads().max(1)
    }

    impl Hnsw {
        /// An empty graph for vectors of width `dim`.
        fn empty(dim: usize, params: HnswParams) -> Result<Self, GalleryError> {
            let options = IndexOptions {
                dimensions: dim,
                metric: MetricKind::Cos,
                quantization: match params.quantization {
                    Quantization::F32 => ScalarKind::F32,
                    Quantization::F16 => ScalarKind::F16,
                    Quantization::I8 => ScalarKind::I8,
                },
                connectivity: params.connectivity,
                expansion_add: params.expansion_add,
                expansion_search: params.expansion_search,
                multi: false,
            };
            let index = Index::new(&options)
                .map_err(|e| ann_err(Path::new("<memory>"), "cannot create the index", e))?;
            Ok(Self {
                index,
                params,
                viewed: None,
            })
        }

        /// Builds a graph over `features` (row `i` gets key `i`), inserting on the rayon pool.
        ///
        /// # Errors
        ///
        /// [`GalleryError::Ann`] when usearch refuses the parameters or a vector.
        pub fn build(
            features: ArrayView2<'_, f32>,
            params: HnswParams,
        ) -> Result<Self, GalleryError> {
            let mut g = Self::empty(features.ncols(), params)?;
            g.append(features, 0)?;
            Ok(g)
        }

        /// Adds `features` with keys `first_key..` (copying a viewed graph into memory first).
        ///
        /// # Errors
        ///
        /// [`GalleryError::Ann`] when the graph cannot be copied or grown.
        pub fn append(
            &mut self,
            features: ArrayView2<'_, f32>,
            first_key: usize,
        ) -> Result<(), GalleryError> {
            self.make_owned()?;
            let mem = Path::new("<memory>");
            let total = self.index.size() + features.nrows();
            self.index
                .reserve_capacity_and_threads(total, threads())
                .map_err(|e| ann_err(mem, "cannot reserve memory", e))?;
            let rows: Vec<(usize, Vec<f32>)> = features
                .rows()
                .into_iter()
                .enumerate()
                .map(|(i, r)| (first_key + i, r.to_vec()))
                .collect();
            rows.par_iter().try_for_each(|(key, v)| {
                self.index
                    .add(*key as u64, v)
                    .map_err(|e| ann_err(mem, &format!("cannot add row {key}"), e))
            })
        }

        /// Copies a viewed (memory-mapped, read-only) graph into memory so it can change.
        fn make_owned(&mut self) -> Result<(), GalleryError> {
            if let Some(path) = self.viewed.take() {
                let index =
                    Index::restore(utf8(&path)?).map_err(|e| ann_err(&path, "cannot load", e))?;
                self.index = index;
            }
            Ok(())
        }

        /// Opens a graph file, memory-mapped (`view`) or copied into memory, and checks that it
        /// holds `count` vectors of width `dim`.
        ///
        /// # Errors
        ///
        /// [`GalleryError::Ann`] naming the file when it is missing, unreadable, or another
        /// gallery's graph.
        pub fn open(
            path: &Path,
            params: HnswParams,
            view: bool,
            count: usize,
            dim: usize,
        ) -> Result<Self, GalleryError> {
            if !path.is_file() {
                return Err(GalleryError::Ann {
                    path: path.to_path_buf(),
                    reason: "the graph file is missing; keep it beside the gallery, or \
                             rebuild the gallery with --ann hnsw"
                        .into(),
                });
            }
            let p = utf8(path)?;
            let index = if view {
                Index::restore_view(p)
            } else {
                Index::restore(p)
            }
            .map_err(|e| ann_err(path, "cannot read it", e))?;
            if index.size() != count || index.dimensions() != dim {
                return Err(GalleryError::Ann {
                    path: path.to_path_buf(),
                    reason: format!(
                        "it holds {} vectors of width {}, the gallery {count} of width {dim}; \
                         it belongs to another gallery — rebuild with --ann hnsw",
                        index.size(),
                        index.dimensions()
                    ),
                });
            }
            index.change_expansion_search(params.expansion_search);
            Ok(Self {
                index,
                params,
                viewed: view.then(|| path.to_path_buf()),
            })
        }

        /// Writes the graph to `path` atomically (usearch writes a sibling temporary file,
        /// which is synced and renamed over `path`).
        ///
        /// # Errors
        ///
        /// [`GalleryError::Io`] / [`GalleryError::Ann`] naming the file.
        pub fn save(&self, path: &Path) -> Result<(), GalleryError> {
            crate::atomic::replace_atomic_via_path(path, |tmp| {
                let p = tmp
                    .to_str()
                    .ok_or_else(|| std::io::Error::other("the path is not UTF-8"))?;
                self.index
                    .save(p)
                    .map_err(|e| std::io::Error::other(format!("usearch: {e}")))
            })?;
            Ok(())
        }

        /// Sets the search candidate list size (`None`: the stored default). usearch keeps one
        /// setting per graph: searches running at the same time share it, so callers that
        /// search concurrently should keep to one value.
        pub fn set_expansion(&self, expansion: Option<usize>) {
            let ef = expansion.unwrap_or(self.params.expansion_search);
            if self.index.expansion_search() != ef {
                self.index.change_expansion_search(ef);
            }
        }

        /// The keys (row numbers) of about the `k` nearest rows to the unit vector `query`,
        /// best first, only among keys passing `filter`.
        ///
        /// # Errors
        ///
        /// [`GalleryError::Ann`] when usearch fails.
        pub fn search(
            &self,
            query: &[f32],
            k: usize,
            filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
        ) -> Result<Vec<u64>, GalleryError> {
            let found = match filter {
                None => self.index.search(query, k),
                Some(f) => self.index.filtered_search(query, k, f),
            }
            .map_err(|e| ann_err(Path::new("<memory>"), "search failed", e))?;
            Ok(found.keys)
        }

        /// The build and search parameters.
        #[must_use]
        pub fn params(&self) -> HnswParams {
            self.params
        }

        /// Number of vectors.
        #[must_use]
        pub fn len(&self) -> usize {
            self.index.size()
        }

        /// Whether the graph has no vectors.
        #[must_use]
        pub fn is_empty(&self) -> bool {
            self.index.size() == 0
        }

        /// Whether the graph is memory-mapped from its file.
        #[must_use]
        pub fn is_viewed(&self) -> bool {
            self.viewed.is_some()
        }

        /// usearch's estimate of the memory the graph uses, in bytes.
        #[must_use]
        pub fn memory_usage(&self) -> usize {
            self.index.memory_usage()
        }
    }
}
