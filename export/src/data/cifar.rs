//! CIFAR-10 and CIFAR-100 binary versions.
//!
//! CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` (train) and `test_batch.bin` (test); each
//! record is one label byte (0–9) and 3072 pixel bytes (R, G, B planes of 32×32).
//! CIFAR-100: `train.bin` and `test.bin`; each record is a coarse label byte (0–19), a fine label
//! byte (0–99) and 3072 pixel bytes. The fine labels are used.

use std::fs;
use std::path::{Path, PathBuf};

use super::memory::{InMemory, Layout};
use super::stream::ByteStream;
use super::{DataError, Split};

/// Side of a CIFAR image.
const SIDE: u32 = 32;
/// Pixel bytes per record.
const PIXELS: usize = 3 * 32 * 32;

/// The two CIFAR variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// Ten classes, one label byte.
    Cifar10,
    /// A hundred fine classes; records carry a coarse and a fine label byte.
    Cifar100,
}

impl Variant {
    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }

    /// Number of classes of the labels used.
    pub(crate) fn num_classes(self) -> u32 {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }

    /// Bytes per record.
    pub(crate) fn record(self) -> usize {
        self.label_bytes() + PIXELS
    }

    /// The batch files of `split` in `dir`.
    pub(crate) fn files(self, dir: &Path, split: Split) -> Vec<PathBuf> {
        match (self, split) {
            (Variant::Cifar10, Split::Train) => (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .collect(),
            (Variant::Cifar10, Split::Test) => vec![dir.join("test_batch.bin")],
            (Variant::Cifar100, Split::Train) => vec![dir.join("train.bin")],
            (Variant::Cifar100, Split::Test) => vec![dir.join("test.bin")],
        }
    }

    /// The optional file of class names, one per line.
    fn names_file(self) -> &'static str {
        match self {
            Variant::Cifar10 => "batches.meta.txt",
            Variant::Cifar100 => "fine_label_names.txt",
        }
    }
}

/// Parsed CIFAR records.
pub(crate) struct Cifar {
    pub(crate) store: InMemory,
    pub(crate) labels: Vec<u32>,
}

impl Cifar {
    pub(crate) fn empty() -> Self {
        Self {
            store: InMemory {
                width: SIDE,
                height: SIDE,
                layout: Layout::Chw,
                pixels: Vec::new(),
            },
            labels: Vec::new(),
        }
    }
}

/// Appends the records of one stream to `out`.
pub(crate) fn parse_into(
    variant: Variant,
    s: &mut ByteStream<'_>,
    out: &mut Cifar,
) -> Result<(), DataError> {
    let bytes = s.read_rest()?;
    let record = variant.record();
    if bytes.is_empty() {
        return Err(DataError::bad_format(
            s.file(),
            format!("the file is empty (expected {record}-byte records)"),
        ));
    }
    let whole = bytes.len() / record * record;
    if whole != bytes.len() {
        return Err(DataError::Truncated {
            file: s.file().to_owned(),
            at: bytes.len() as u64,
            expected: format!(
                "whole {record}-byte records; the last record starts at byte {whole} and has only {} bytes",
                bytes.len() - whole
            ),
        });
    }
    let label_at = variant.label_bytes() - 1;
    let limit = variant.num_classes();
    out.pixels_reserve(bytes.len() / record * PIXELS);
    for (r, chunk) in bytes.chunks_exact(record).enumerate() {
        if variant == Variant::Cifar100 && chunk[0] >= 20 {
            return Err(DataError::LabelOutOfRange {
                file: s.file().to_owned(),
                at: (r * record) as u64,
                label: u32::from(chunk[0]),
                num_classes: 20,
            });
        }
        let label = u32::from(chunk[label_at]);
        if label >= limit {
            return Err(DataError::LabelOutOfRange {
                file: s.file().to_owned(),
                at: (r * record + label_at) as u64,
                label,
                num_classes: limit,
            });
        }
        out.labels.push(label);
        out.store
            .pixels
            .extend_from_slice(&chunk[variant.label_bytes()..]);
    }
    Ok(())
}

impl Cifar {
    fn pixels_reserve(&mut self, n: usize) {
        self.store.pixels.reserve(n);
    }
}

/// Reads the batch files of `split` in `dir`.
pub(crate) fn read(variant: Variant, dir: &Path, split: Split) -> Result<Cifar, DataError> {
    let mut out = Cifar::empty();
    for file in variant.files(dir, split) {
        parse_into(variant, &mut ByteStream::open(&file)?, &mut out)?;
    }
    Ok(out)
}

/// Class names from `batches.meta.txt` / `fine_label_names.txt` when present and complete,
/// else the label numbers.
pub(crate) fn class_names(variant: Variant, dir: &Path) -> Vec<String> {
    let n = variant.num_classes() as usize;
    let from_file = fs::read_to_string(dir.join(variant.names_file()))
        .ok()
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|names| names.len() == n);
    from_file.unwrap_or_else(|| (0..n).map(|i| i.to_string()).collect())
}
