//! ImageFolder: one subfolder per class (sorted names → label ids 0, 1, …), JPEG/PNG files
//! anywhere below it; images are decoded lazily, one at a time.

use std::fs;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::{DataError, ImageSizes, SizedImage};

/// File extensions read (case-insensitive); other files are ignored.
pub(crate) const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The file list of an image folder.
#[derive(Debug, Clone)]
pub(crate) struct ImageFolder {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) labels: Vec<u32>,
    pub(crate) classes: Vec<String>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// The non-hidden subfolders of `dir`, sorted by name.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| DataError::io(dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir.display().to_string(), e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !hidden(&name) && path.is_dir() {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Image files below `dir` (recursively, sorted, hidden entries skipped).
fn images_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut entries = Vec::new();
    let listing = fs::read_dir(dir).map_err(|e| DataError::io(dir.display().to_string(), e))?;
    for entry in listing {
        let entry = entry.map_err(|e| DataError::io(dir.display().to_string(), e))?;
        if entry.file_name().to_str().is_some_and(hidden) {
            continue;
        }
        let path = entry.path();
        // `file_type` needs no extra system call on most file systems (ImageNet has 1.28 M
        // files); symbolic links are followed, as torchvision does.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => path.is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => path.is_dir(),
        };
        entries.push((path, is_dir));
    }
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            images_below(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Lists `root`: every subfolder is a class and must hold at least one image.
    pub(crate) fn open(root: &Path) -> Result<Self, DataError> {
        let classes = subdirs(root)?;
        if classes.is_empty() {
            return Err(DataError::EmptyFolder {
                path: root.display().to_string(),
                detail: "no class folders (an image folder needs one subfolder of JPEG/PNG images per class)".into(),
            });
        }
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, (_, dir)) in classes.iter().enumerate() {
            let before = files.len();
            images_below(dir, &mut files)?;
            if files.len() == before {
                return Err(DataError::EmptyFolder {
                    path: dir.display().to_string(),
                    detail: format!(
                        "class folder holds no images (looked for .{} files)",
                        EXTENSIONS.join(", .")
                    ),
                });
            }
            let label = u32::try_from(label).unwrap_or(u32::MAX);
            labels.resize(files.len(), label);
        }
        Ok(Self {
            files,
            labels,
            classes: classes.into_iter().map(|(name, _)| name).collect(),
        })
    }

    /// The `(width, height)` of image `i` (in range, checked by the caller), read from the
    /// file's header without decoding the pixels; the format is recognised from the content,
    /// as [`ImageFolder::image`] does.
    pub(crate) fn dimensions(&self, i: usize) -> Result<(u32, u32), DataError> {
        let path = &self.files[i];
        let file = path.display().to_string();
        let reader = image::ImageReader::open(path)
            .and_then(image::ImageReader::with_guessed_format)
            .map_err(|e| DataError::io(file.clone(), e))?;
        reader
            .into_dimensions()
            .map_err(|source| DataError::Decode { file, source })
    }

    /// The size every image shares, or the first two files whose sizes differ.
    pub(crate) fn common_size(&self) -> Result<ImageSizes, DataError> {
        let first = self.dimensions(0)?;
        for i in 1..self.files.len() {
            let size = self.dimensions(i)?;
            if size != first {
                return Ok(ImageSizes::Differ {
                    first: SizedImage {
                        name: self.files[0].display().to_string(),
                        size: first,
                    },
                    other: SizedImage {
                        name: self.files[i].display().to_string(),
                        size,
                    },
                });
            }
        }
        Ok(ImageSizes::Common(first))
    }

    /// Decodes image `i` (in range, checked by the caller) to RGB.
    pub(crate) fn image(&self, i: usize) -> Result<RgbImage, DataError> {
        let path = &self.files[i];
        let file = path.display().to_string();
        let bytes = fs::read(path).map_err(|e| DataError::io(file.clone(), e))?;
        let decoded =
            image::load_from_memory(&bytes).map_err(|source| DataError::Decode { file, source })?;
        Ok(decoded.into_rgb8())
    }
}
