//! The one error type of the data readers and preprocessing.

use std::io;

/// Everything that can go wrong while locating, reading, decoding or preprocessing a dataset.
///
/// Every message names the file (or folder, or spec) it is about and, for corrupt files, the
/// byte offset where reading stopped, so a bad download can be found and replaced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The operating system refused to open or read a file or folder.
    #[error("{file}: {source}")]
    Io {
        /// The file or folder.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file ended before the bytes its header (or its format) promised.
    #[error(
        "{file}: truncated at byte {at} (expected {expected}); the file is incomplete, download it again"
    )]
    Truncated {
        /// The file.
        file: String,
        /// Where the data stopped (for `.gz` files: in the decompressed stream).
        at: u64,
        /// What was expected, in words.
        expected: String,
    },
    /// A gzip stream could not be decompressed.
    #[error(
        "{file}: corrupt gzip stream after {at} decompressed bytes: {source}; download the file again"
    )]
    Gzip {
        /// The file.
        file: String,
        /// How many decompressed bytes were read before the failure.
        at: u64,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The first bytes of a file are not the magic number of the expected format.
    #[error("{file}: bad magic number 0x{found:08x} at byte 0 (expected 0x{expected:08x}, {what})")]
    BadMagic {
        /// The file.
        file: String,
        /// The number found.
        found: u32,
        /// The number the format requires.
        expected: u32,
        /// What kind of file was expected.
        what: &'static str,
    },
    /// A header field or the overall layout of a file is invalid.
    #[error("{file}: {detail}")]
    BadFormat {
        /// The file.
        file: String,
        /// What is wrong, and where.
        detail: String,
    },
    /// A labels file and its images file disagree on the number of samples.
    #[error(
        "{labels_file} has {labels} labels but {images_file} has {images} images; both files must come from the same split"
    )]
    CountMismatch {
        /// The images file.
        images_file: String,
        /// The number of images.
        images: usize,
        /// The labels file.
        labels_file: String,
        /// The number of labels.
        labels: usize,
    },
    /// A label is not below the number of classes of the format.
    #[error(
        "{file}: label {label} at byte {at} is out of range (the dataset has {num_classes} classes)"
    )]
    LabelOutOfRange {
        /// The file.
        file: String,
        /// The byte offset of the label.
        at: u64,
        /// The label read.
        label: u32,
        /// The number of classes.
        num_classes: u32,
    },
    /// A folder that should hold images (or class folders) holds none.
    #[error("{path}: {detail}")]
    EmptyFolder {
        /// The folder.
        path: String,
        /// What was missing.
        detail: String,
    },
    /// An image file could not be decoded.
    #[error("{file}: cannot decode image: {source}")]
    Decode {
        /// The image file.
        file: String,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// No known dataset layout was found at a path.
    #[error("{path}: no dataset found; looked for {looked_for}")]
    NotFound {
        /// The path given.
        path: String,
        /// The layouts that were tried.
        looked_for: String,
    },
    /// A dataset reference string (`PATH[:train|:test]`, `synthetic:N,...`) could not be parsed.
    #[error("dataset '{spec}': {detail}")]
    BadSpec {
        /// The string given.
        spec: String,
        /// What is wrong and what is accepted.
        detail: String,
    },
    /// An image index past the end of the dataset.
    #[error("image index {index} is out of range for a dataset of {len} images")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// A preprocessing setting or an output buffer is unusable.
    #[error("preprocessing: {detail}")]
    Preprocess {
        /// What is wrong.
        detail: String,
    },
}

impl DataError {
    pub(crate) fn io(file: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            file: file.into(),
            source,
        }
    }

    pub(crate) fn bad_format(file: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadFormat {
            file: file.into(),
            detail: detail.into(),
        }
    }
}
