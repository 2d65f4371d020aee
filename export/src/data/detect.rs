//! Format detection: which reader a [`DatasetRef`] needs.

use std::path::{Path, PathBuf};

use super::cifar::Variant;
use super::folder::subdirs;
use super::{DataError, Dataset, DatasetRef, Split, SyntheticSpec, mnist};

/// What detection looks for, for the "nothing found" message.
const LOOKED_FOR: &str = "synthetic:N; MNIST (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] \
     and the labels files); CIFAR-10 (data_batch_1.bin … data_batch_5.bin, test_batch.bin); \
     CIFAR-100 (train.bin, test.bin); an image folder with train/ and test/ (or val/) \
     subfolders of class folders; or a folder of class folders of JPEG/PNG images";

/// CIFAR subfolders from the official archives, tried when the folder itself has no batches.
pub(super) const CIFAR_SUBDIRS: [&str; 2] = ["cifar-10-batches-bin", "cifar-100-binary"];

pub(super) fn cifar_variant(dir: &Path) -> Option<Variant> {
    if dir.join("data_batch_1.bin").is_file() || dir.join("test_batch.bin").is_file() {
        Some(Variant::Cifar10)
    } else if dir.join("train.bin").is_file() || dir.join("test.bin").is_file() {
        Some(Variant::Cifar100)
    } else {
        None
    }
}

/// The folder of `split` in a `train/` + `test/`|`val/` layout.
pub(super) fn split_folder(dir: &Path, split: Split) -> Option<PathBuf> {
    let train = dir.join("train");
    let test = ["test", "val"]
        .map(|n| dir.join(n))
        .into_iter()
        .find(|p| p.is_dir());
    match (train.is_dir(), test) {
        (true, Some(test)) => Some(match split {
            Split::Train => train,
            Split::Test => test,
        }),
        _ => None,
    }
}

/// Opens `r` (see [`Dataset::open`]).
pub(crate) fn open(r: &DatasetRef) -> Result<Dataset, DataError> {
    let text = r.path.to_string_lossy();
    if text.starts_with(SyntheticSpec::PREFIX) {
        return Ok(Dataset::synthetic(text.parse()?, r.split));
    }
    let path = r.path.as_path();
    let not_found = || DataError::NotFound {
        path: path.display().to_string(),
        looked_for: LOOKED_FOR.into(),
    };
    if path.is_file() {
        return if mnist::pair_of(path).is_some() {
            Dataset::mnist(path, r.split)
        } else {
            Err(not_found())
        };
    }
    if !path.exists() {
        return Err(DataError::NotFound {
            path: path.display().to_string(),
            looked_for: "an existing file or folder (the path does not exist)".into(),
        });
    }
    if mnist::looks_like(path) {
        return Dataset::mnist(path, r.split);
    }
    for dir in std::iter::once(path.to_path_buf()).chain(CIFAR_SUBDIRS.map(|s| path.join(s))) {
        if let Some(variant) = cifar_variant(&dir) {
            return match variant {
                Variant::Cifar10 => Dataset::cifar10(&dir, r.split),
                Variant::Cifar100 => Dataset::cifar100(&dir, r.split),
            };
        }
    }
    if let Some(dir) = split_folder(path, r.split) {
        return Dataset::image_folder(&dir, r.split);
    }
    if !subdirs(path)?.is_empty() {
        return Dataset::image_folder(path, r.split);
    }
    Err(not_found())
}
