//! MNIST's IDX format (`train-images-idx3-ubyte[.gz]` and friends), gzip or raw.
//!
//! Images: magic `0x00000803`, count, rows, columns (big-endian u32), then count·rows·columns
//! bytes. Labels: magic `0x00000801`, count, then one byte (0–9) per image.

use std::path::{Path, PathBuf};

use super::memory::{InMemory, Layout};
use super::stream::ByteStream;
use super::{DataError, Split};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
/// MNIST (and Fashion-MNIST, KMNIST) have ten classes.
pub(crate) const NUM_CLASSES: u32 = 10;

/// A parsed MNIST split: grey pixels and labels.
pub(crate) struct Mnist {
    pub(crate) store: InMemory,
    pub(crate) labels: Vec<u32>,
}

/// The file stem of a split: `train` or `t10k`.
fn prefix(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "t10k",
    }
}

/// The images and labels files of `split` in `dir`, raw or `.gz`, if both exist.
pub(crate) fn find_files(dir: &Path, split: Split) -> Option<(PathBuf, PathBuf)> {
    let p = prefix(split);
    let pick = |stem: String| {
        [dir.join(&stem), dir.join(format!("{stem}.gz"))]
            .into_iter()
            .find(|f| f.is_file())
    };
    Some((
        pick(format!("{p}-images-idx3-ubyte"))?,
        pick(format!("{p}-labels-idx1-ubyte"))?,
    ))
}

/// Whether `dir` holds MNIST files of any split.
pub(crate) fn looks_like(dir: &Path) -> bool {
    find_files(dir, Split::Train).is_some() || find_files(dir, Split::Test).is_some()
}

/// For a path to an images or labels file, the pair of files of its split.
pub(crate) fn pair_of(file: &Path) -> Option<(PathBuf, PathBuf)> {
    let name = file.file_name()?.to_str()?;
    let dir = file.parent().unwrap_or(Path::new(""));
    let (images, labels) = if name.contains("-images-idx3-ubyte") {
        (
            name.to_owned(),
            name.replace("-images-idx3-ubyte", "-labels-idx1-ubyte"),
        )
    } else if name.contains("-labels-idx1-ubyte") {
        (
            name.replace("-labels-idx1-ubyte", "-images-idx3-ubyte"),
            name.to_owned(),
        )
    } else {
        return None;
    };
    let images = dir.join(images);
    let labels = dir.join(labels);
    // The labels file may be gzipped when the images file is not, or the other way round.
    let either = |p: PathBuf| -> PathBuf {
        if p.is_file() {
            return p;
        }
        let s = p.to_string_lossy();
        let alt = match s.strip_suffix(".gz") {
            Some(raw) => PathBuf::from(raw),
            None => PathBuf::from(format!("{s}.gz")),
        };
        if alt.is_file() { alt } else { p }
    };
    Some((either(images), either(labels)))
}

/// Parses an IDX images stream.
pub(crate) fn parse_images(s: &mut ByteStream<'_>) -> Result<InMemory, DataError> {
    let magic = s.read_u32_be("the magic number")?;
    if magic != IMAGES_MAGIC {
        return Err(DataError::BadMagic {
            file: s.file().to_owned(),
            found: magic,
            expected: IMAGES_MAGIC,
            what: "an IDX file of u8 images (idx3-ubyte)",
        });
    }
    let n = s.read_u32_be("the image count")?;
    let rows = s.read_u32_be("the row count")?;
    let cols = s.read_u32_be("the column count")?;
    if rows == 0 || cols == 0 || rows > 1 << 16 || cols > 1 << 16 {
        return Err(DataError::bad_format(
            s.file(),
            format!("image size {rows}×{cols} in the header (bytes 8–15) is not usable"),
        ));
    }
    let total = u64::from(n) * u64::from(rows) * u64::from(cols);
    let header = s.pos();
    let pixels = s.read_exact(total, || {
        format!("{total} pixel bytes after the {header}-byte header")
    })?;
    s.expect_end(&format!("{n} images of {rows}×{cols}"))?;
    Ok(InMemory {
        width: cols,
        height: rows,
        layout: Layout::Gray,
        pixels,
    })
}

/// Parses an IDX labels stream; every label must be below [`NUM_CLASSES`].
pub(crate) fn parse_labels(s: &mut ByteStream<'_>) -> Result<Vec<u32>, DataError> {
    let magic = s.read_u32_be("the magic number")?;
    if magic != LABELS_MAGIC {
        return Err(DataError::BadMagic {
            file: s.file().to_owned(),
            found: magic,
            expected: LABELS_MAGIC,
            what: "an IDX file of u8 labels (idx1-ubyte)",
        });
    }
    let n = s.read_u32_be("the label count")?;
    let header = s.pos();
    let bytes = s.read_exact(u64::from(n), || {
        format!("{n} label bytes after the {header}-byte header")
    })?;
    s.expect_end(&format!("{n} labels"))?;
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let label = u32::from(b);
            if label < NUM_CLASSES {
                Ok(label)
            } else {
                Err(DataError::LabelOutOfRange {
                    file: s.file().to_owned(),
                    at: header + i as u64,
                    label,
                    num_classes: NUM_CLASSES,
                })
            }
        })
        .collect()
}

/// Parses a pair of streams and checks that they agree.
pub(crate) fn parse(
    images: &mut ByteStream<'_>,
    labels: &mut ByteStream<'_>,
) -> Result<Mnist, DataError> {
    let store = parse_images(images)?;
    let label_vec = parse_labels(labels)?;
    let n_images = store.pixels.len() / store.image_bytes();
    if n_images != label_vec.len() {
        return Err(DataError::CountMismatch {
            images_file: images.file().to_owned(),
            images: n_images,
            labels_file: labels.file().to_owned(),
            labels: label_vec.len(),
        });
    }
    Ok(Mnist {
        store,
        labels: label_vec,
    })
}

/// Reads a pair of files.
pub(crate) fn read(images: &Path, labels: &Path) -> Result<Mnist, DataError> {
    parse(
        &mut ByteStream::open(images)?,
        &mut ByteStream::open(labels)?,
    )
}
