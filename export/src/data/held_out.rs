//! The held-out split of a dataset reference: what "the same dataset's test split" means for
//! each format, decided from the file layout without reading the data.

use super::detect::{CIFAR_SUBDIRS, cifar_variant, split_folder};
use super::{DataError, DatasetRef, Split, SyntheticSpec, mnist};

impl DatasetRef {
    /// The same dataset's test split, when it has one apart from this reference:
    ///
    /// - `synthetic:…` → the same spec's test sample (`synthetic:…:test`, an independent draw
    ///   with the same classes);
    /// - an MNIST folder → `PATH:test` when `t10k-images-idx3-ubyte[.gz]` and
    ///   `t10k-labels-idx1-ubyte[.gz]` are there; an MNIST `train-…` file → its folder's
    ///   `t10k-…` pair;
    /// - a CIFAR-10 folder (or its `cifar-10-batches-bin/`) → `PATH:test` when
    ///   `test_batch.bin` is there; CIFAR-100 (or `cifar-100-binary/`) when `test.bin` is;
    /// - an image folder with `train/` and `test/` (or `val/`) → `PATH:test`;
    /// - a folder of class folders (no split layout) → `None`.
    ///
    /// A reference that already reads the test split has no other one: `None`.
    ///
    /// # Errors
    ///
    /// [`DataError::BadSpec`] for an invalid synthetic spec; [`DataError::NotFound`] when the
    /// path does not exist; [`DataError::Io`] when a folder cannot be listed.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::{DatasetRef, Split};
    ///
    /// let train: DatasetRef = "synthetic:64,size=8".parse()?;
    /// assert_eq!(train.test_split()?, Some(train.with_split(Split::Test)));
    /// let test: DatasetRef = "synthetic:64,size=8:test".parse()?;
    /// assert_eq!(test.test_split()?, None);
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn test_split(&self) -> Result<Option<DatasetRef>, DataError> {
        if self.split == Split::Test {
            return Ok(None);
        }
        let text = self.path.to_string_lossy();
        if text.starts_with(SyntheticSpec::PREFIX) {
            text.parse::<SyntheticSpec>()?;
            return Ok(Some(self.with_split(Split::Test)));
        }
        let path = self.path.as_path();
        if path.is_file() {
            // An MNIST file reads the split its name says; its test pair sits beside it.
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            let is_train = mnist::pair_of(path).is_some() && name.starts_with("train");
            return Ok((is_train && mnist::find_files(dir, Split::Test).is_some())
                .then(|| DatasetRef::new(dir, Split::Test)));
        }
        if !path.exists() {
            return Err(DataError::NotFound {
                path: path.display().to_string(),
                looked_for: "an existing file or folder (the path does not exist)".into(),
            });
        }
        let test = Some(self.with_split(Split::Test));
        if mnist::looks_like(path) {
            return Ok(test.filter(|_| mnist::find_files(path, Split::Test).is_some()));
        }
        for dir in std::iter::once(path.to_path_buf()).chain(CIFAR_SUBDIRS.map(|s| path.join(s))) {
            if let Some(variant) = cifar_variant(&dir) {
                let files = variant.files(&dir, Split::Test);
                return Ok(test.filter(|_| files.iter().all(|f| f.is_file())));
            }
        }
        Ok(test.filter(|_| split_folder(path, Split::Test).is_some()))
    }
}
