//! The [`Dataset`] type: labels in memory, images in memory (u8) or decoded on demand.

use std::fmt;
use std::io::Read;
use std::path::Path;

use image::RgbImage;

use super::cifar::{self, Variant};
use super::folder::ImageFolder;
use super::memory::InMemory;
use super::mnist;
use super::stream::ByteStream;
use super::synthetic::Synthetic;
use super::{DataError, DatasetRef, ImageSizes, Split, SyntheticSpec};

/// The format a [`Dataset`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// MNIST IDX files (grey, replicated to RGB).
    Mnist,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// CIFAR-100 binary (fine labels).
    Cifar100,
    /// Class folders of JPEG/PNG files, decoded on demand.
    ImageFolder,
    /// Generated images (see [`SyntheticSpec`]).
    Synthetic,
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Cifar100 => "CIFAR-100",
            DatasetKind::ImageFolder => "ImageFolder",
            DatasetKind::Synthetic => "synthetic",
        })
    }
}

#[derive(Debug, Clone)]
enum Source {
    Memory(InMemory),
    Folder(ImageFolder),
    Synthetic(Synthetic),
}

/// A labelled image dataset. `Sync`, so batches can be read from many threads.
///
/// Labels always live in memory; MNIST and CIFAR pixels are kept as u8 in memory; ImageFolder
/// images are decoded from disk on each [`image`](Self::image) call; synthetic images are
/// generated on each call.
#[derive(Debug, Clone)]
pub struct Dataset {
    kind: DatasetKind,
    split: Split,
    origin: String,
    source: Source,
    labels: Vec<u32>,
    classes: Vec<String>,
}

fn numbered(n: u32) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

impl Dataset {
    /// Opens the dataset a [`DatasetRef`] points at, detecting the format:
    ///
    /// - `synthetic:N[,size=S][,classes=C][,seed=K]` → [`Dataset::synthetic`];
    /// - a folder with `train-images-idx3-ubyte[.gz]` (or `t10k-…`), or one of those files → MNIST;
    /// - a folder with `data_batch_1.bin` → CIFAR-10; with `train.bin`/`test.bin` → CIFAR-100
    ///   (also inside a `cifar-10-batches-bin/` or `cifar-100-binary/` subfolder);
    /// - a folder with `train/` and `test/` (or `val/`) subfolders → ImageFolder of that split;
    /// - a folder of class subfolders → ImageFolder of the whole folder (the split is ignored).
    ///
    /// # Errors
    ///
    /// [`DataError::NotFound`] naming the path and the layouts looked for when nothing matches;
    /// otherwise any error of the format's reader (truncated or corrupt files, bad labels…).
    pub fn open(r: &DatasetRef) -> Result<Self, DataError> {
        super::detect::open(r)
    }

    /// Reads MNIST from a folder (files of `split`) or from one of its images/labels files
    /// (the split is then taken from the file name).
    ///
    /// # Errors
    ///
    /// [`DataError::NotFound`] when the files are missing; reader errors (bad magic, truncated,
    /// label ≥ 10, count mismatch) otherwise.
    pub fn mnist(path: &Path, split: Split) -> Result<Self, DataError> {
        let (images, labels, split) = if path.is_dir() {
            let (i, l) = mnist::find_files(path, split).ok_or_else(|| DataError::NotFound {
                path: path.display().to_string(),
                looked_for: format!(
                    "MNIST files {p}-images-idx3-ubyte[.gz] and {p}-labels-idx1-ubyte[.gz]",
                    p = if split == Split::Train {
                        "train"
                    } else {
                        "t10k"
                    }
                ),
            })?;
            (i, l, split)
        } else {
            let (i, l) = mnist::pair_of(path).ok_or_else(|| DataError::NotFound {
                path: path.display().to_string(),
                looked_for: "a file named *-images-idx3-ubyte[.gz] or *-labels-idx1-ubyte[.gz]"
                    .into(),
            })?;
            let name = i.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let split = if name.starts_with("t10k") || name.starts_with("test") {
                Split::Test
            } else {
                Split::Train
            };
            (i, l, split)
        };
        let m = mnist::read(&images, &labels)?;
        Ok(Self::mnist_parts(m, split, path.display().to_string()))
    }

    fn mnist_parts(m: mnist::Mnist, split: Split, origin: String) -> Self {
        Self {
            kind: DatasetKind::Mnist,
            split,
            origin,
            source: Source::Memory(m.store),
            labels: m.labels,
            classes: numbered(mnist::NUM_CLASSES),
        }
    }

    /// Parses MNIST from two readers (gzip or raw, detected from the first bytes).
    ///
    /// # Errors
    ///
    /// As [`Dataset::mnist`]; the files are named "images" and "labels" in messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::Dataset;
    ///
    /// let mut images = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
    /// images.extend([0, 64, 128, 255]);
    /// let labels = [0, 0, 8, 1, 0, 0, 0, 1, 7];
    /// let ds = Dataset::mnist_from_readers(&images[..], &labels[..])?;
    /// assert_eq!((ds.len(), ds.label(0)), (1, 7));
    /// assert_eq!(ds.image(0)?.get_pixel(1, 0).0, [64, 64, 64]);
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn mnist_from_readers(images: impl Read, labels: impl Read) -> Result<Self, DataError> {
        let m = mnist::parse(
            &mut ByteStream::new(images, "images")?,
            &mut ByteStream::new(labels, "labels")?,
        )?;
        Ok(Self::mnist_parts(m, Split::Train, "memory".into()))
    }

    /// Reads CIFAR-10 (`data_batch_1..5.bin` or `test_batch.bin`) from a folder.
    ///
    /// # Errors
    ///
    /// Missing files, a size that is not a whole number of 3073-byte records, labels ≥ 10.
    pub fn cifar10(dir: &Path, split: Split) -> Result<Self, DataError> {
        Self::cifar(Variant::Cifar10, dir, split)
    }

    /// Reads CIFAR-100 (`train.bin` or `test.bin`, fine labels) from a folder.
    ///
    /// # Errors
    ///
    /// Missing files, a size that is not a whole number of 3074-byte records, coarse labels ≥ 20
    /// or fine labels ≥ 100.
    pub fn cifar100(dir: &Path, split: Split) -> Result<Self, DataError> {
        Self::cifar(Variant::Cifar100, dir, split)
    }

    fn cifar(variant: Variant, dir: &Path, split: Split) -> Result<Self, DataError> {
        let c = cifar::read(variant, dir, split)?;
        Ok(Self::cifar_parts(
            variant,
            c,
            split,
            dir.display().to_string(),
            cifar::class_names(variant, dir),
        ))
    }

    fn cifar_parts(
        variant: Variant,
        c: cifar::Cifar,
        split: Split,
        origin: String,
        classes: Vec<String>,
    ) -> Self {
        Self {
            kind: match variant {
                Variant::Cifar10 => DatasetKind::Cifar10,
                Variant::Cifar100 => DatasetKind::Cifar100,
            },
            split,
            origin,
            source: Source::Memory(c.store),
            labels: c.labels,
            classes,
        }
    }

    /// Parses CIFAR records from readers (one per batch file), CIFAR-100 layout when `fine` is
    /// true (coarse + fine label bytes), CIFAR-10 layout otherwise.
    ///
    /// # Errors
    ///
    /// As [`Dataset::cifar10`] / [`Dataset::cifar100`]; readers are named "batch 0", "batch 1"…
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::Dataset;
    ///
    /// let mut record = vec![3u8];
    /// record.extend(std::iter::repeat_n(9u8, 3072));
    /// let ds = Dataset::cifar_from_readers(false, vec![&record[..]])?;
    /// assert_eq!((ds.len(), ds.label(0), ds.num_classes()), (1, 3, 10));
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn cifar_from_readers<R: Read>(
        fine: bool,
        readers: impl IntoIterator<Item = R>,
    ) -> Result<Self, DataError> {
        let variant = if fine {
            Variant::Cifar100
        } else {
            Variant::Cifar10
        };
        let mut c = cifar::Cifar::empty();
        for (i, r) in readers.into_iter().enumerate() {
            cifar::parse_into(
                variant,
                &mut ByteStream::new(r, format!("batch {i}"))?,
                &mut c,
            )?;
        }
        Ok(Self::cifar_parts(
            variant,
            c,
            Split::Train,
            "memory".into(),
            numbered(variant.num_classes()),
        ))
    }

    /// Lists an image folder: each subfolder (sorted by name) is a class; its JPEG/PNG files
    /// (recursively) are decoded on demand.
    ///
    /// # Errors
    ///
    /// [`DataError::EmptyFolder`] when there are no class folders or a class has no image;
    /// [`DataError::Io`] when a folder cannot be listed.
    pub fn image_folder(dir: &Path, split: Split) -> Result<Self, DataError> {
        let f = ImageFolder::open(dir)?;
        Ok(Self {
            kind: DatasetKind::ImageFolder,
            split,
            origin: dir.display().to_string(),
            labels: f.labels.clone(),
            classes: f.classes.clone(),
            source: Source::Folder(f),
        })
    }

    /// A generated dataset (see [`SyntheticSpec`]); `split` selects an independent sample.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::{Dataset, Split};
    ///
    /// let ds = Dataset::synthetic("synthetic:20,size=8,classes=4".parse()?, Split::Train);
    /// assert_eq!((ds.len(), ds.num_classes(), ds.label(5)), (20, 4, 1));
    /// assert_eq!(ds.image(3)?, ds.image(3)?);
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn synthetic(spec: SyntheticSpec, split: Split) -> Self {
        let synth = Synthetic { spec, split };
        Self {
            kind: DatasetKind::Synthetic,
            split,
            origin: spec.to_string(),
            labels: (0..spec.n).map(|i| synth.label(i)).collect(),
            classes: numbered(spec.classes),
            source: Source::Synthetic(synth),
        }
    }

    /// `n` synthetic 32×32 images (10 classes, seed 1) held in memory as CIFAR-10 records, read
    /// back through the CIFAR reader: what benchmarks use to measure the input pipeline on
    /// data that sits in memory as real CIFAR does.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::Dataset;
    ///
    /// let ds = Dataset::cifar_like(4)?;
    /// assert_eq!((ds.len(), ds.image_size()), (4, Some((32, 32))));
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Never for the generated records in practice (as [`Dataset::cifar_from_readers`]).
    pub fn cifar_like(n: usize) -> Result<Self, DataError> {
        let synth = Self::synthetic(
            SyntheticSpec {
                n,
                size: 32,
                classes: 10,
                seed: 1,
            },
            Split::Train,
        );
        let mut bytes = Vec::with_capacity(n * 3073);
        for i in 0..n {
            let img = synth.image(i)?;
            bytes.push(synth.label(i) as u8);
            for c in 0..3 {
                bytes.extend(img.pixels().map(|p| p.0[c]));
            }
        }
        Self::cifar_from_readers(false, [&bytes[..]])
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (labels are `0..num_classes()`).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Class names in label order (folder names, CIFAR meta names, or the numbers).
    pub fn class_names(&self) -> &[String] {
        &self.classes
    }

    /// The stable identity of image `i` in a gallery index: its file path for an ImageFolder
    /// (as listed under the folder given, e.g. `photos/cat/001.jpg`), the decimal index `i`
    /// for every other format (whose images have no file of their own).
    ///
    /// # Panics
    ///
    /// When `i >= len()` (a caller bug, not bad input).
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::{Dataset, Split};
    /// let ds = Dataset::synthetic("synthetic:4,size=8".parse()?, Split::Train);
    /// assert_eq!(ds.item_id(3), "3");
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn item_id(&self, i: usize) -> String {
        match &self.source {
            Source::Folder(f) => f.files[i].display().to_string(),
            Source::Memory(_) | Source::Synthetic(_) => {
                assert!(i < self.len(), "item {i} of a dataset of {}", self.len());
                i.to_string()
            }
        }
    }

    /// The label of image `i`.
    ///
    /// # Panics
    ///
    /// When `i >= len()` (a caller bug, not bad input).
    pub fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Image `i` as 8-bit RGB (grey formats replicated to three channels).
    ///
    /// # Errors
    ///
    /// [`DataError::IndexOutOfRange`] when `i >= len()`; for ImageFolder, [`DataError::Io`] or
    /// [`DataError::Decode`] naming the file.
    pub fn image(&self, i: usize) -> Result<RgbImage, DataError> {
        if i >= self.len() {
            return Err(DataError::IndexOutOfRange {
                index: i,
                len: self.len(),
            });
        }
        match &self.source {
            Source::Memory(m) => Ok(m.image(i)),
            Source::Folder(f) => f.image(i),
            Source::Synthetic(s) => Ok(s.image(i)),
        }
    }

    /// The format read.
    pub fn kind(&self) -> DatasetKind {
        self.kind
    }

    /// The split read.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Where the data came from (a path, a synthetic spec, or "memory").
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether every image has the same `(width, height)`: the format's size for MNIST, CIFAR
    /// and synthetic data; for an image folder, the sizes in the files' headers (read without
    /// decoding, stopping at the first file that differs from the first one).
    ///
    /// # Errors
    ///
    /// For an image folder, [`DataError::Io`] or [`DataError::Decode`] naming a file whose
    /// header cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::data::{Dataset, ImageSizes, Split};
    ///
    /// let ds = Dataset::synthetic("synthetic:4,size=8".parse()?, Split::Train);
    /// assert_eq!(ds.common_image_size()?, ImageSizes::Common((8, 8)));
    /// # Ok::<(), patchmix_export::data::DataError>(())
    /// ```
    pub fn common_image_size(&self) -> Result<ImageSizes, DataError> {
        match &self.source {
            Source::Memory(m) => Ok(ImageSizes::Common((m.width, m.height))),
            Source::Folder(f) => f.common_size(),
            Source::Synthetic(s) => Ok(ImageSizes::Common((s.spec.size, s.spec.size))),
        }
    }

    /// `(width, height)` shared by all images, when the format has one (MNIST, CIFAR, synthetic).
    pub fn image_size(&self) -> Option<(u32, u32)> {
        match &self.source {
            Source::Memory(m) => Some((m.width, m.height)),
            Source::Folder(_) => None,
            Source::Synthetic(s) => Some((s.spec.size, s.spec.size)),
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({} images, {} classes) from {}",
            self.kind,
            self.split,
            self.len(),
            self.num_classes(),
            self.origin
        )
    }
}
