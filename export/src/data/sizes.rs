//! Whether the images of a dataset share one size ([`Dataset::common_image_size`]).
//!
//! [`Dataset::common_image_size`]: super::Dataset::common_image_size

use std::fmt;

/// One image and its `(width, height)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizedImage {
    /// The image's file (or, for formats without files, a description).
    pub name: String,
    /// `(width, height)` in pixels.
    pub size: (u32, u32),
}

impl fmt::Display for SizedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {}×{}", self.name, self.size.0, self.size.1)
    }
}

/// What [`Dataset::common_image_size`](super::Dataset::common_image_size) found.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::{ImageSizes, SizedImage};
///
/// let d = ImageSizes::Differ {
///     first: SizedImage { name: "a/0.png".into(), size: (32, 32) },
///     other: SizedImage { name: "b/7.png".into(), size: (28, 30) },
/// };
/// assert_eq!(d.common(), None);
/// assert_eq!(d.to_string(), "the images differ in size: a/0.png is 32×32, b/7.png is 28×30");
/// assert_eq!(ImageSizes::Common((32, 32)).common(), Some((32, 32)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSizes {
    /// Every image is `(width, height)`.
    Common((u32, u32)),
    /// Not every image has the same size: the first image and the first one that differs.
    Differ {
        /// The dataset's first image.
        first: SizedImage,
        /// The first image whose size differs from it.
        other: SizedImage,
    },
}

impl ImageSizes {
    /// The shared `(width, height)`, if there is one.
    pub fn common(&self) -> Option<(u32, u32)> {
        match self {
            ImageSizes::Common(s) => Some(*s),
            ImageSizes::Differ { .. } => None,
        }
    }
}

impl fmt::Display for ImageSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSizes::Common((w, h)) => write!(f, "every image is {w}×{h}"),
            ImageSizes::Differ { first, other } => {
                write!(f, "the images differ in size: {first}, {other}")
            }
        }
    }
}
