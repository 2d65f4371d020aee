//! In-memory image stores: the u8 pixels of MNIST (grey, HW) and CIFAR (RGB, CHW records).

use image::RgbImage;

/// How the pixels of one image are laid out in an [`InMemory`] store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One grey byte per pixel, row-major; replicated to three channels on read.
    Gray,
    /// Three planes (R, G, B), each row-major: CIFAR's record layout.
    Chw,
}

/// Fixed-size u8 images kept in one contiguous buffer.
#[derive(Debug, Clone)]
pub(crate) struct InMemory {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) layout: Layout,
    /// `len × image_bytes()` bytes.
    pub(crate) pixels: Vec<u8>,
}

impl InMemory {
    fn plane(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Bytes per image.
    pub(crate) fn image_bytes(&self) -> usize {
        match self.layout {
            Layout::Gray => self.plane(),
            Layout::Chw => 3 * self.plane(),
        }
    }

    /// Image `i` as RGB; `i` must be in range (checked by the caller).
    pub(crate) fn image(&self, i: usize) -> RgbImage {
        let n = self.image_bytes();
        let src = &self.pixels[i * n..(i + 1) * n];
        let plane = self.plane();
        let mut rgb = Vec::with_capacity(3 * plane);
        match self.layout {
            Layout::Gray => {
                for &g in src {
                    rgb.extend_from_slice(&[g, g, g]);
                }
            }
            Layout::Chw => {
                let (r, rest) = src.split_at(plane);
                let (g, b) = rest.split_at(plane);
                for ((&r, &g), &b) in r.iter().zip(g).zip(b) {
                    rgb.extend_from_slice(&[r, g, b]);
                }
            }
        }
        // The length is exactly width × height × 3 by construction.
        RgbImage::from_raw(self.width, self.height, rgb)
            .unwrap_or_else(|| RgbImage::new(self.width, self.height))
    }
}
