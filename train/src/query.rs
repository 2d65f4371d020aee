//! Query images, as `patchmix search` and `patchmix serve` both take them: decoding encoded
//! bytes (PNG or JPEG, format from the content) under size limits checked from the header
//! before any pixel is decoded, and the gallery's [`Preprocess`] into one encoder batch.
//!
//! One path for both, so that a served query is embedded exactly as the command-line one (and
//! as `patchmix embed` embeds an ImageFolder: the same decoder, the same preprocessing).

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};
use ndarray::Array4;
use patchmix_export::data::{DataError, Preprocess};
use std::io::Cursor;

/// Largest decoded image [`decode_image`] accepts.
///
/// # Examples
///
/// ```
/// use patchmix_train::query::ImageLimits;
/// let l = ImageLimits::default();
/// assert_eq!(l.max_pixels, 4096 * 4096);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most pixels (width × height).
    pub max_pixels: u64,
    /// Longest side.
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_pixels: 4096 * 4096,
            max_side: 16_384,
        }
    }
}

/// Why a query image was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryImageError {
    /// The bytes are not a PNG or JPEG image.
    #[error("not a PNG or JPEG image{0}")]
    NotAnImage(String),
    /// The header announces a larger image than the limits allow (a decompression bomb, or
    /// just too large); nothing was decoded.
    #[error(
        "the image is {}; at most {max_pixels} pixels and {max_side} per side are accepted",
        size.map_or_else(|| "larger than that".to_string(), |(w, h)| format!("{w}×{h} pixels"))
    )]
    TooLarge {
        /// Width and height in the header (`None` when the decoder refused the header
        /// before reporting them).
        size: Option<(u32, u32)>,
        /// The pixel limit.
        max_pixels: u64,
        /// The side limit.
        max_side: u32,
    },
    /// The image is truncated or corrupt.
    #[error("cannot decode the {format} image: {detail}")]
    Corrupt {
        /// The format guessed from the content.
        format: String,
        /// The decoder's message.
        detail: String,
    },
}

/// Decodes a PNG or JPEG image from `bytes` (format from the content) to RGB, refusing images
/// larger than `limits` from their header, before decoding any pixel.
///
/// # Errors
///
/// [`QueryImageError::NotAnImage`] when the content is no known format,
/// [`QueryImageError::TooLarge`] past the limits, [`QueryImageError::Corrupt`] for a truncated
/// or corrupt image.
///
/// # Examples
///
/// ```
/// use patchmix_train::query::{ImageLimits, QueryImageError, decode_image};
/// let mut png = Vec::new();
/// image::RgbImage::new(4, 3)
///     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// assert_eq!(decode_image(&png, ImageLimits::default())?.dimensions(), (4, 3));
/// let small = ImageLimits { max_pixels: 11, max_side: 100 };
/// assert!(matches!(decode_image(&png, small), Err(QueryImageError::TooLarge { .. })));
/// assert!(matches!(
///     decode_image(b"hello", ImageLimits::default()),
///     Err(QueryImageError::NotAnImage(_))
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_image(bytes: &[u8], limits: ImageLimits) -> Result<RgbImage, QueryImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QueryImageError::NotAnImage(format!(": {e}")))?;
    let format = match reader.format() {
        Some(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => f,
        Some(other) => {
            return Err(QueryImageError::NotAnImage(format!(
                " (the content looks like {other:?})"
            )));
        }
        None => return Err(QueryImageError::NotAnImage(String::new())),
    };
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    reader.limits(decoder_limits);
    let corrupt = |e: ImageError| QueryImageError::Corrupt {
        format: format!("{format:?}").to_uppercase(),
        detail: e.to_string(),
    };
    let decoder = match reader.into_decoder() {
        Ok(d) => d,
        Err(ImageError::Limits(_)) => {
            // The decoder refused the header against the side limits; read it again without
            // limits to report the size (no pixel data is decoded).
            let size = ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .ok()
                .and_then(|mut r| {
                    r.no_limits();
                    r.into_dimensions().ok()
                });
            return Err(QueryImageError::TooLarge {
                size,
                max_pixels: limits.max_pixels,
                max_side: limits.max_side,
            });
        }
        Err(e) => return Err(corrupt(e)),
    };
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels
        || width > limits.max_side
        || height > limits.max_side
    {
        return Err(QueryImageError::TooLarge {
            size: Some((width, height)),
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
        });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok(image.into_rgb8())
}

/// Preprocesses `images` with `pre` into one encoder batch `[B, 3, crop, crop]`.
///
/// # Errors
///
/// [`DataError::Preprocess`] for unusable preprocessing settings.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::Preprocess;
/// use patchmix_train::query::preprocess_batch;
/// let images = vec![image::RgbImage::new(40, 30), image::RgbImage::new(28, 28)];
/// let batch = preprocess_batch(&Preprocess::new(28, 28), &images)?;
/// assert_eq!(batch.shape(), &[2, 3, 28, 28]);
/// # Ok::<(), patchmix_export::data::DataError>(())
/// ```
pub fn preprocess_batch(pre: &Preprocess, images: &[RgbImage]) -> Result<Array4<f32>, DataError> {
    let c = pre.crop as usize;
    let mut batch = Array4::<f32>::zeros((images.len(), 3, c, c));
    let slice = batch.as_slice_mut().ok_or_else(|| DataError::Preprocess {
        detail: "internal: a fresh array is not contiguous".into(),
    })?;
    let n = pre.floats_per_image();
    for (image, out) in images.iter().zip(slice.chunks_mut(n.max(1))) {
        pre.apply_into(image, out)?;
    }
    Ok(batch)
}
