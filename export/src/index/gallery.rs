//! [`Gallery`]: the features, labels and ids of a gallery, its encoder's fingerprint, its
//! preprocessing and (optionally) an HNSW graph; building, adding, removing, saving, loading.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2, Axis, concatenate};

use super::GalleryError;
use super::ann::HnswParams;
use super::fingerprint::ModelFingerprint;
use super::format::{self, Encode, HnswEntry};
use crate::data::Preprocess;
use crate::knn::FeatureIndex;
use crate::weights::Metadata;

/// How [`Gallery::load`] treats the HNSW graph of a gallery that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnLoad {
    /// Memory-map the graph file (pages are read as searches touch them; the default).
    #[default]
    View,
    /// Read the graph file into memory.
    Load,
    /// Do not open the graph (exact search only; a later save keeps no graph).
    Skip,
}

/// The graph of a gallery, if it has one.
#[derive(Debug)]
pub(crate) enum AnnState {
    /// No graph.
    None,
    /// A graph, in memory or viewed.
    #[cfg(feature = "hnsw")]
    Hnsw(super::ann::Hnsw),
    /// The file has a graph that was not opened (`AnnLoad::Skip`, or a build without the
    /// `hnsw` feature); its parameters are kept.
    NotOpened(HnswParams),
}

/// A searchable gallery: L2-normalised features `[N, D]`, a class label and a unique string id
/// per row, the class names, the encoder's [fingerprint](ModelFingerprint), the evaluation
/// [`Preprocess`] queries must share, and optionally an HNSW graph (feature `hnsw`).
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_export::data::Preprocess;
/// use patchmix_export::index::{Gallery, ModelFingerprint, SearchMethod};
///
/// let mut g = Gallery::new(
///     array![[1.0, 0.0], [0.0, 1.0]],
///     vec![0, 1],
///     vec!["a.png".into(), "b.png".into()],
///     vec!["cat".into(), "dog".into()],
///     ModelFingerprint::of_bytes(b"encoder"),
///     Preprocess::new(32, 32),
/// )?;
/// g.add(array![[0.6, 0.8]].view(), &[1], &["c.png".into()])?;
/// let hits = g.search(array![[0.0, 1.0]].view(), 2, None, SearchMethod::Exact)?;
/// assert_eq!(hits[0][0].id, "b.png");
/// assert_eq!(hits[0][1].id, "c.png");
/// g.remove(&["b.png"])?;
/// assert_eq!(g.len(), 2);
/// # Ok::<(), patchmix_export::index::GalleryError>(())
/// ```
#[derive(Debug)]
pub struct Gallery {
    pub(crate) bank: FeatureIndex,
    pub(crate) ids: Vec<String>,
    pub(crate) rows: HashMap<String, usize>,
    pub(crate) classes: Vec<String>,
    pub(crate) model: ModelFingerprint,
    pub(crate) preprocess: Preprocess,
    pub(crate) metadata: Metadata,
    pub(crate) ann: AnnState,
    /// The file it was loaded from.
    pub(crate) path: Option<PathBuf>,
}

fn row_map(ids: &[String]) -> Result<HashMap<String, usize>, GalleryError> {
    let mut rows = HashMap::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() {
            return Err(GalleryError::InvalidItems(format!("id #{i} is empty")));
        }
        if rows.insert(id.clone(), i).is_some() {
            return Err(GalleryError::DuplicateId(id.clone()));
        }
    }
    Ok(rows)
}

impl Gallery {
    /// A gallery of `features` (rows normalised here), `labels` (indices into `classes`) and
    /// `ids` (unique, non-empty), embedded by the encoder `model` with `preprocess`. No graph.
    ///
    /// # Errors
    ///
    /// [`GalleryError::InvalidItems`] when the lengths disagree, a label is not below
    /// `classes.len()` or an id is empty; [`GalleryError::DuplicateId`];
    /// [`GalleryError::Knn`] for no rows or non-finite features.
    ///
    /// # Examples
    ///
    /// See [`Gallery`].
    pub fn new(
        features: Array2<f32>,
        labels: Vec<u32>,
        ids: Vec<String>,
        classes: Vec<String>,
        model: ModelFingerprint,
        preprocess: Preprocess,
    ) -> Result<Self, GalleryError> {
        if ids.len() != features.nrows() {
            return Err(GalleryError::InvalidItems(format!(
                "{} feature rows but {} ids",
                features.nrows(),
                ids.len()
            )));
        }
        let rows = row_map(&ids)?;
        let bank = Self::bank(features, labels, classes.len())?;
        Ok(Self {
            bank,
            ids,
            rows,
            classes,
            model,
            preprocess,
            metadata: Metadata::new(),
            ann: AnnState::None,
            path: None,
        })
    }

    fn bank(
        features: Array2<f32>,
        labels: Vec<u32>,
        num_classes: usize,
    ) -> Result<FeatureIndex, GalleryError> {
        FeatureIndex::new(features, labels, Some(num_classes)).map_err(|e| match e {
            crate::knn::KnnError::LabelCount {
                features, labels, ..
            } => GalleryError::InvalidItems(format!("{features} feature rows but {labels} labels")),
            crate::knn::KnnError::LabelOutOfRange {
                label, position, ..
            } => GalleryError::InvalidItems(format!(
                "label #{position} is {label}, but the gallery has {num_classes} classes"
            )),
            other => other.into(),
        })
    }

    /// Adds a user metadata entry (stored in the file; e.g. the model path or the dataset).
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// User metadata.
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Number of items `N`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Always `false`: a gallery has at least one item.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Feature width `D`.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.bank.dim()
    }

    /// The normalised features `[N, D]`.
    #[must_use]
    pub fn features(&self) -> ArrayView2<'_, f32> {
        self.bank.features()
    }

    /// The exact-search bank (features and labels) as a [`FeatureIndex`].
    #[must_use]
    pub fn feature_index(&self) -> &FeatureIndex {
        &self.bank
    }

    /// The label of each row.
    #[must_use]
    pub fn labels(&self) -> &[u32] {
        self.bank.labels()
    }

    /// The id of each row.
    #[must_use]
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The row of `id`.
    #[must_use]
    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.rows.get(id).copied()
    }

    /// The class names (labels index them).
    #[must_use]
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The fingerprint of the encoder that embedded the gallery.
    #[must_use]
    pub fn model(&self) -> &ModelFingerprint {
        &self.model
    }

    /// The preprocessing of the gallery's images, which queries must use too.
    #[must_use]
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The file the gallery was loaded from or last saved to.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Checks that the encoder with fingerprint `model` (read from `model_path`, named in the
    /// error) is the gallery's.
    ///
    /// # Errors
    ///
    /// [`GalleryError::FingerprintMismatch`] naming both files and both hashes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ndarray::array;
    /// # use patchmix_export::data::Preprocess;
    /// use patchmix_export::index::{Gallery, GalleryError, ModelFingerprint};
    /// let g = Gallery::new(array![[1.0f32]], vec![0], vec!["0".into()], vec!["a".into()],
    ///     ModelFingerprint::of_bytes(b"enc A"), Preprocess::new(8, 8))?;
    /// assert!(g.check_model(&ModelFingerprint::of_bytes(b"enc A"), "a.onnx".as_ref()).is_ok());
    /// let err = g.check_model(&ModelFingerprint::of_bytes(b"enc B"), "b.onnx".as_ref());
    /// assert!(matches!(err, Err(GalleryError::FingerprintMismatch { .. })));
    /// # Ok::<(), GalleryError>(())
    /// ```
    pub fn check_model(
        &self,
        model: &ModelFingerprint,
        model_path: &Path,
    ) -> Result<(), GalleryError> {
        if *model == self.model {
            return Ok(());
        }
        Err(GalleryError::FingerprintMismatch {
            gallery_path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("<in-memory gallery>")),
            gallery: self.model.to_string(),
            model_path: model_path.to_path_buf(),
            model: model.to_string(),
        })
    }

    /// The label of class `name`, appending it to the classes when it is new (used when adding
    /// images of a dataset whose class list differs from the gallery's).
    pub fn class_label_or_insert(&mut self, name: &str) -> u32 {
        if let Some(i) = self.classes.iter().position(|c| c == name) {
            return u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.classes.push(name.to_string());
        u32::try_from(self.classes.len() - 1).unwrap_or(u32::MAX)
    }

    /// The label a filter names: a class name, or else a class number.
    ///
    /// # Errors
    ///
    /// [`GalleryError::UnknownLabel`] listing the classes.
    pub fn resolve_label(&self, label: &str) -> Result<u32, GalleryError> {
        if let Some(i) = self.classes.iter().position(|c| c == label) {
            return Ok(u32::try_from(i).unwrap_or(u32::MAX));
        }
        match label.parse::<usize>() {
            Ok(i) if i < self.classes.len() => Ok(u32::try_from(i).unwrap_or(u32::MAX)),
            _ => {
                let mut shown: Vec<String> = self
                    .classes
                    .iter()
                    .take(20)
                    .map(|c| format!("{c:?}"))
                    .collect();
                if self.classes.len() > 20 {
                    shown.push(format!("… ({} in all)", self.classes.len()));
                }
                Err(GalleryError::UnknownLabel {
                    label: label.to_string(),
                    classes: shown.join(", "),
                })
            }
        }
    }

    /// Appends items: `features` `[M, D]`, their labels (indices into [`classes`](Self::classes),
    /// see [`class_label_or_insert`](Self::class_label_or_insert)) and ids. All or nothing: on
    /// error the gallery is unchanged. A graph in memory grows by the new rows; a viewed one is
    /// copied into memory first.
    ///
    /// # Errors
    ///
    /// [`GalleryError::DuplicateId`] for an id already present or repeated;
    /// [`GalleryError::InvalidItems`] for lengths, widths or labels that do not fit;
    /// [`GalleryError::Knn`] for non-finite features; [`GalleryError::Ann`] when the graph
    /// cannot grow.
    ///
    /// # Examples
    ///
    /// See [`Gallery`].
    pub fn add(
        &mut self,
        features: ArrayView2<'_, f32>,
        labels: &[u32],
        ids: &[String],
    ) -> Result<(), GalleryError> {
        if features.ncols() != self.dim() {
            return Err(GalleryError::InvalidItems(format!(
                "the new features have width {}, the gallery {}; embed them with the gallery's encoder",
                features.ncols(),
                self.dim()
            )));
        }
        if ids.len() != features.nrows() || labels.len() != features.nrows() {
            return Err(GalleryError::InvalidItems(format!(
                "{} feature rows, {} labels and {} ids",
                features.nrows(),
                labels.len(),
                ids.len()
            )));
        }
        let mut new_rows = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if id.is_empty() {
                return Err(GalleryError::InvalidItems(format!("new id #{i} is empty")));
            }
            if self.rows.contains_key(id) || new_rows.insert(id.clone(), self.len() + i).is_some() {
                return Err(GalleryError::DuplicateId(id.clone()));
            }
        }
        let all = concatenate(Axis(0), &[self.features(), features])
            .map_err(|e| GalleryError::InvalidItems(e.to_string()))?;
        let all_labels: Vec<u32> = self.labels().iter().chain(labels).copied().collect();
        let bank = Self::bank(all, all_labels, self.classes.len())?;
        #[cfg(feature = "hnsw")]
        if let AnnState::Hnsw(h) = &mut self.ann {
            let first = self.ids.len();
            h.append(
                bank.features()
                    .slice_axis(Axis(0), ndarray::Slice::from(first..)),
                first,
            )?;
        }
        self.bank = bank;
        self.ids.extend(ids.iter().cloned());
        self.rows.extend(new_rows);
        Ok(())
    }

    /// Removes the items with `ids`. All or nothing: an unknown id is an error and nothing is
    /// removed. The graph, if any, is rebuilt over the remaining rows (its keys are row
    /// numbers, which shift).
    ///
    /// # Errors
    ///
    /// [`GalleryError::UnknownId`]; [`GalleryError::WouldBeEmpty`] when no item would remain;
    /// [`GalleryError::Ann`] when the graph cannot be rebuilt.
    ///
    /// # Examples
    ///
    /// See [`Gallery`].
    pub fn remove(&mut self, ids: &[&str]) -> Result<(), GalleryError> {
        let mut drop = vec![false; self.len()];
        for id in ids {
            let row = self
                .row_of(id)
                .ok_or_else(|| GalleryError::UnknownId((*id).to_string()))?;
            drop[row] = true;
        }
        let keep: Vec<usize> = (0..self.len()).filter(|&i| !drop[i]).collect();
        if keep.is_empty() {
            return Err(GalleryError::WouldBeEmpty);
        }
        let features = self.features().select(Axis(0), &keep);
        let labels: Vec<u32> = keep.iter().map(|&i| self.labels()[i]).collect();
        let ids: Vec<String> = keep.iter().map(|&i| self.ids[i].clone()).collect();
        let bank = Self::bank(features, labels, self.classes.len())?;
        #[cfg(feature = "hnsw")]
        if let AnnState::Hnsw(h) = &self.ann {
            self.ann = AnnState::Hnsw(super::ann::Hnsw::build(bank.features(), h.params())?);
        }
        self.rows = row_map(&ids)?;
        self.ids = ids;
        self.bank = bank;
        Ok(())
    }

    /// Builds (or rebuilds) the HNSW graph over all rows.
    ///
    /// # Errors
    ///
    /// [`GalleryError::Ann`] when usearch refuses the parameters.
    #[cfg(feature = "hnsw")]
    pub fn build_hnsw(&mut self, params: HnswParams) -> Result<(), GalleryError> {
        self.ann = AnnState::Hnsw(super::ann::Hnsw::build(self.features(), params)?);
        Ok(())
    }

    /// Drops the graph: the gallery is searched exactly and saved without one.
    pub fn drop_ann(&mut self) {
        self.ann = AnnState::None;
    }

    /// The graph's parameters, if the gallery has (or its file had) one.
    #[must_use]
    pub fn hnsw_params(&self) -> Option<HnswParams> {
        match &self.ann {
            AnnState::None => None,
            #[cfg(feature = "hnsw")]
            AnnState::Hnsw(h) => Some(h.params()),
            AnnState::NotOpened(p) => Some(*p),
        }
    }

    /// The graph, when it is open.
    #[cfg(feature = "hnsw")]
    #[must_use]
    pub fn hnsw(&self) -> Option<&super::ann::Hnsw> {
        match &self.ann {
            AnnState::Hnsw(h) => Some(h),
            _ => None,
        }
    }

    /// Saves the gallery to `path` atomically, with its graph (if open) beside it as
    /// `<file name>.<16 hex>.hnsw`: the graph is written first under a fresh name, then the
    /// gallery naming it, then the graph the file at `path` named before is deleted — a crash
    /// at any point leaves a consistent old or new gallery (see [`super::ann`]). A graph that
    /// was not opened ([`AnnLoad::Skip`]) is not kept.
    ///
    /// # Errors
    ///
    /// [`GalleryError::Io`] naming the file and the step that failed; the old file is then
    /// intact.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ndarray::array;
    /// # use patchmix_export::data::Preprocess;
    /// use patchmix_export::index::{AnnLoad, Gallery, ModelFingerprint};
    /// let dir = std::env::temp_dir().join(format!("pm-gallery-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let g = Gallery::new(array![[3.0f32, 4.0]], vec![0], vec!["x".into()], vec!["a".into()],
    ///     ModelFingerprint::of_bytes(b"enc"), Preprocess::new(8, 8))?;
    /// g.save(&dir.join("g.pmx"))?;
    /// let back = Gallery::load(&dir.join("g.pmx"), AnnLoad::View)?;
    /// assert_eq!(back.features(), array![[0.6f32, 0.8]]);
    /// assert_eq!(back.ids(), ["x"]);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), patchmix_export::index::GalleryError>(())
    /// ```
    pub fn save(&self, path: &Path) -> Result<(), GalleryError> {
        self.save_with(path, std::io::Write::write_all)
    }

    /// [`save`](Self::save) with the writer of the gallery bytes given (tests inject failures).
    pub(crate) fn save_with(
        &self,
        path: &Path,
        write: impl FnOnce(&mut std::fs::File, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), GalleryError> {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                GalleryError::io(
                    "write",
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
                )
            })?
            .to_string();
        let old_graph = format::peek_hnsw(path).map(|h| h.file);
        let hnsw = self.save_graph(path, &file_name)?;
        let bytes = format::encode(&Encode {
            features: self.features(),
            labels: self.labels(),
            ids: &self.ids,
            classes: &self.classes,
            model: &self.model,
            preprocess: &self.preprocess,
            hnsw: hnsw.as_ref(),
            metadata: &self.metadata,
        })
        .map_err(|e| GalleryError::io("serialise", path, std::io::Error::other(e)));
        let written = bytes.and_then(|bytes| {
            crate::atomic::write_atomic_with(path, |f| write(f, &bytes)).map_err(GalleryError::from)
        });
        let dir = graph_dir(path);
        if let Err(e) = written {
            // The new graph file is referenced by nothing: remove it.
            if let Some(h) = &hnsw
                && old_graph.as_deref() != Some(h.file.as_str())
            {
                let _ = std::fs::remove_file(dir.join(&h.file));
            }
            return Err(e);
        }
        if let Some(old) = old_graph
            && hnsw.as_ref().is_none_or(|h| h.file != old)
        {
            let _ = std::fs::remove_file(dir.join(old));
        }
        Ok(())
    }

    #[cfg(feature = "hnsw")]
    fn save_graph(&self, path: &Path, file_name: &str) -> Result<Option<HnswEntry>, GalleryError> {
        let AnnState::Hnsw(h) = &self.ann else {
            return Ok(None);
        };
        let file = format!("{file_name}.{}.hnsw", unique_token());
        h.save(&graph_dir(path).join(&file))?;
        Ok(Some(HnswEntry {
            params: h.params(),
            file,
        }))
    }

    #[cfg(not(feature = "hnsw"))]
    fn save_graph(
        &self,
        _path: &Path,
        _file_name: &str,
    ) -> Result<Option<HnswEntry>, GalleryError> {
        Ok(None)
    }

    /// Loads a gallery file and (per `ann`) its graph.
    ///
    /// # Errors
    ///
    /// [`GalleryError::Io`] when the file cannot be read; [`GalleryError::Format`] naming the
    /// file when it is truncated, corrupt or not a gallery; [`GalleryError::Version`];
    /// [`GalleryError::Ann`] when the graph file is missing or does not match.
    ///
    /// # Examples
    ///
    /// See [`save`](Self::save).
    pub fn load(path: &Path, ann: AnnLoad) -> Result<Self, GalleryError> {
        let bytes = std::fs::read(path).map_err(|e| GalleryError::io("read", path, e))?;
        let c = format::decode(path, &bytes)?;
        drop(bytes);
        let rows = row_map(&c.ids).map_err(|e| GalleryError::format(path, e.to_string()))?;
        let bank = Self::bank(c.features, c.labels, c.classes.len())
            .map_err(|e| GalleryError::format(path, e.to_string()))?;
        let state = match (c.hnsw, ann) {
            (None, _) => AnnState::None,
            (Some(h), AnnLoad::Skip) => AnnState::NotOpened(h.params),
            #[cfg(feature = "hnsw")]
            (Some(h), mode) => AnnState::Hnsw(super::ann::Hnsw::open(
                &graph_dir(path).join(&h.file),
                h.params,
                mode == AnnLoad::View,
                bank.len(),
                bank.dim(),
            )?),
            #[cfg(not(feature = "hnsw"))]
            (Some(h), _) => AnnState::NotOpened(h.params),
        };
        Ok(Self {
            bank,
            ids: c.ids,
            rows,
            classes: c.classes,
            model: c.model,
            preprocess: c.preprocess,
            metadata: c.metadata,
            ann: state,
            path: Some(path.to_path_buf()),
        })
    }
}

/// The folder of a gallery file, where its graph lives.
fn graph_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// 16 hex digits unique to this write (time, process, counter, hashed).
#[cfg(feature = "hnsw")]
fn unique_token() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Sha256::digest(seed.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
