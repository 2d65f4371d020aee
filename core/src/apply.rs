//! Moving data by a `source` gather: patch buffers `[B, T, D]` and NCHW image buffers, for any
//! `Copy` element type.
//!
//! The token layout follows the original (`einops` pattern
//! `b c (h p1) (w p2) -> b (h w) (c p1 p2)`): token `t = row·grid + col` is the `p×p` patch at
//! pixel rows `row·p..(row+1)·p` and columns `col·p..(col+1)·p`, flattened as `(c, p1, p2)`.
//!
//! Every function validates all shapes and every gather index before writing, so on error the
//! output buffer is untouched.

use crate::num::{IndexInt, check_len, mul};
use crate::plan::MixGeometry;
use crate::{Error, Result};

/// The shape of one image of an NCHW batch: channels `C`, height `H`, width `W`.
///
/// The patch size is `p = H / grid`; [`ImageShape::patch_size`] checks that the image is square
/// and that the grid divides it.
///
/// # Examples
///
/// ```
/// use patchmix_core::{Error, ImageShape};
///
/// assert_eq!(ImageShape::square(3, 32).patch_size(16), Ok(2));
/// assert_eq!(
///     ImageShape::square(3, 30).patch_size(4),
///     Err(Error::GridDoesNotDivide { size: 30, grid: 4 })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// Channels `C`.
    pub channels: usize,
    /// Height `H`.
    pub height: usize,
    /// Width `W`.
    pub width: usize,
}

impl ImageShape {
    /// An image of `channels × height × width` (not validated until used).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = patchmix_core::ImageShape::new(3, 32, 32);
    /// assert_eq!(s, patchmix_core::ImageShape::square(3, 32));
    /// ```
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// A square image of `channels × size × size`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::ImageShape::square(1, 8).width, 8);
    /// ```
    pub const fn square(channels: usize, size: usize) -> Self {
        Self::new(channels, size, size)
    }

    /// The patch side `p = H / grid`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroChannels`], [`Error::ZeroGrid`], [`Error::NonSquareImage`] if `H ≠ W`, and
    /// [`Error::GridDoesNotDivide`] if `grid` does not divide `H` or exceeds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_core::{Error, ImageShape};
    ///
    /// assert_eq!(ImageShape::square(3, 224).patch_size(14), Ok(16));
    /// assert_eq!(
    ///     ImageShape::new(3, 4, 8).patch_size(2),
    ///     Err(Error::NonSquareImage { height: 4, width: 8 })
    /// );
    /// ```
    pub fn patch_size(&self, grid: usize) -> Result<usize> {
        if self.channels == 0 {
            return Err(Error::ZeroChannels);
        }
        if grid == 0 {
            return Err(Error::ZeroGrid);
        }
        if self.height != self.width {
            return Err(Error::NonSquareImage {
                height: self.height,
                width: self.width,
            });
        }
        if self.height < grid || !self.height.is_multiple_of(grid) {
            return Err(Error::GridDoesNotDivide {
                size: self.height,
                grid,
            });
        }
        Ok(self.height / grid)
    }

    /// Elements of `batch` images, `B·C·H·W`.
    ///
    /// # Errors
    ///
    /// [`Error::SizeOverflow`] if the product overflows `usize`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::ImageShape::square(3, 32).batch_len(512), Ok(512 * 3 * 32 * 32));
    /// ```
    pub fn batch_len(&self, batch: usize) -> Result<usize> {
        let image = mul(
            mul(self.channels, self.height, "image size C·H")?,
            self.width,
            "image size C·H·W",
        )?;
        mul(batch, image, "batch size B·C·H·W")
    }
}

/// Checks that every gather index is below `len`.
fn check_source<I: IndexInt>(source: &[I], len: usize) -> Result<()> {
    for (position, &s) in source.iter().enumerate() {
        match s.to_usize() {
            Some(v) if v < len => {}
            _ => {
                return Err(Error::SourceOutOfRange {
                    position,
                    value: s.to_i128(),
                    len,
                });
            }
        }
    }
    Ok(())
}

/// `dst.copy_from_slice(src)` for equal lengths, with short runs (the rows of small patches)
/// copied as a binary decomposition into fixed-size blocks (16, 8, 4, 2, 1), which compile to
/// inline moves: a `memcpy` call per 2–16 elements costs more than the copy itself. (A loop over
/// blocks would be turned back into a `memcpy` call by the optimizer.)
#[inline(always)]
fn copy_short<E: Copy>(dst: &mut [E], src: &[E]) {
    if dst.len() >= 32 || dst.len() != src.len() {
        dst.copy_from_slice(src);
        return;
    }
    let (mut d, mut s) = (dst, src);
    for block in [16, 8, 4, 2, 1] {
        if d.len() >= block && s.len() >= block {
            let (dh, dt) = d.split_at_mut(block);
            let (sh, st) = s.split_at(block);
            dh.copy_from_slice(sh);
            (d, s) = (dt, st);
        }
    }
}

/// `source[k]` as usize; only called after [`check_source`].
#[inline]
fn at<I: IndexInt>(source: &[I], k: usize) -> usize {
    source.get(k).and_then(|s| s.to_usize()).unwrap_or(0)
}

/// Gathers tokens of a patch buffer `[B, T, token_len]`: output token `k` is input token
/// `source[k]`. Runs of consecutive indices are copied as one block.
///
/// `source` is normally filled by [`crate::fill_source`], but any gather of length `B·T` with
/// indices below `B·T` is accepted.
///
/// # Errors
///
/// [`Error::BufferLength`] if `source.len() != B·T` or `input`/`output` do not hold
/// `B·T·token_len` elements, [`Error::SourceOutOfRange`] for an index `≥ B·T`, and
/// [`Error::SizeOverflow`].
///
/// # Examples
///
/// ```
/// use patchmix_core::{MixGeometry, apply_patches};
///
/// let g = MixGeometry::new(2, 1, 1)?; // two images of one token each
/// let mut out = [0u16; 4];
/// apply_patches(&g, &[1u32, 0], 2, &[10u16, 11, 20, 21], &mut out)?;
/// assert_eq!(out, [20, 21, 10, 11]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn apply_patches<I: IndexInt, E: Copy>(
    geometry: &MixGeometry,
    source: &[I],
    token_len: usize,
    input: &[E],
    output: &mut [E],
) -> Result<()> {
    let total = geometry.total_tokens();
    check_len("source", total, source.len())?;
    let len = mul(total, token_len, "patch buffer length B·T·D")?;
    check_len("input", len, input.len())?;
    check_len("output", len, output.len())?;
    check_source(source, total)?;
    let mut k = 0;
    while k < total {
        let s = at(source, k);
        let mut run = 1;
        while k + run < total && at(source, k + run) == s + run {
            run += 1;
        }
        let n = run * token_len;
        output[k * token_len..k * token_len + n]
            .copy_from_slice(&input[s * token_len..s * token_len + n]);
        k += run;
    }
    Ok(())
}

/// Gathers tokens of an NCHW image batch `[B, C, H, W]` directly, without patchifying: the
/// `p×p` patch of output token `k = b·T + t` is copied from input token `source[k]`, in every
/// channel. Horizontal runs of tokens from one source row are copied as one block per pixel row.
///
/// # Errors
///
/// Those of [`ImageShape::patch_size`] (grid does not divide the image, …),
/// [`Error::BufferLength`] if `source.len() != B·T` or `input`/`output` do not hold `B·C·H·W`
/// elements, [`Error::SourceOutOfRange`] for an index `≥ B·T`, and [`Error::SizeOverflow`].
///
/// # Examples
///
/// ```
/// use patchmix_core::{ImageShape, MixGeometry, apply_nchw, fill_source};
///
/// // Two 1-channel 2×2 images, grid 2 (1×1 patches), m = 2, identity shuffle.
/// let g = MixGeometry::new(2, 2, 2)?;
/// let mut source = [0u32; 8];
/// fill_source(&g, &[0u32, 1, 2, 3], &mut source)?;
/// let input = [0, 1, 2, 3, 10, 11, 12, 13];
/// let mut out = [0; 8];
/// apply_nchw(&g, &source, ImageShape::square(1, 2), &input, &mut out)?;
/// assert_eq!(out, [0, 1, 12, 13, 10, 11, 2, 3]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn apply_nchw<I: IndexInt, E: Copy>(
    geometry: &MixGeometry,
    source: &[I],
    shape: ImageShape,
    input: &[E],
    output: &mut [E],
) -> Result<()> {
    let grid = geometry.grid();
    let p = shape.patch_size(grid)?;
    let total = geometry.total_tokens();
    check_len("source", total, source.len())?;
    let len = shape.batch_len(geometry.batch())?;
    check_len("input", len, input.len())?;
    check_len("output", len, output.len())?;
    check_source(source, total)?;
    let (tokens, channels, side) = (geometry.tokens(), shape.channels, shape.height);
    let plane = side * side;
    // Runs of one token row are collected in a small stack buffer (in chunks, so any grid works
    // without allocation), then copied pixel row by pixel row, so each output row is written
    // front to back.
    const CHUNK: usize = 64;
    let mut runs = [(0usize, 0usize, 0usize); CHUNK]; // (output column, length, input offset)
    for b in 0..geometry.batch() {
        for row in 0..grid {
            let mut col = 0;
            while col < grid {
                let mut count = 0;
                while col < grid && count < CHUNK {
                    let k = b * tokens + row * grid + col;
                    let s = at(source, k);
                    let (sb, st) = (s / tokens, s % tokens);
                    let (srow, scol) = (st / grid, st % grid);
                    let mut run = 1;
                    while col + run < grid && scol + run < grid && at(source, k + run) == s + run {
                        run += 1;
                    }
                    runs[count] = (
                        col * p,
                        run * p,
                        sb * channels * plane + srow * p * side + scol * p,
                    );
                    count += 1;
                    col += run;
                }
                for c in 0..channels {
                    for y in 0..p {
                        let out_row = (b * channels + c) * plane + (row * p + y) * side;
                        let in_shift = c * plane + y * side;
                        for &(o, n, i) in &runs[..count] {
                            let (o, i) = (out_row + o, i + in_shift);
                            copy_short(&mut output[o..o + n], &input[i..i + n]);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Cuts an NCHW batch `[B, C, H, W]` into the patch buffer `[B, T, C·p·p]` (token layout
/// `(c, p1, p2)`), the layout [`apply_patches`] works on.
///
/// # Errors
///
/// [`Error::ZeroBatch`], those of [`ImageShape::patch_size`], [`Error::BufferLength`] if
/// `input`/`output` do not hold `B·C·H·W` elements, and [`Error::SizeOverflow`].
///
/// # Examples
///
/// ```
/// use patchmix_core::{ImageShape, patchify};
///
/// // One 1-channel 2×2 image, grid 1: a single 2×2 patch, unchanged.
/// let mut out = [0u8; 4];
/// patchify(1, 1, ImageShape::square(1, 2), &[1, 2, 3, 4], &mut out)?;
/// assert_eq!(out, [1, 2, 3, 4]);
/// // Grid 2 on a 4×4 image: token 0 is the top-left 2×2 block.
/// let img: Vec<u8> = (0..16).collect();
/// let mut patches = [0u8; 16];
/// patchify(1, 2, ImageShape::square(1, 4), &img, &mut patches)?;
/// assert_eq!(&patches[..4], &[0, 1, 4, 5]);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn patchify<E: Copy>(
    batch: usize,
    grid: usize,
    shape: ImageShape,
    input: &[E],
    output: &mut [E],
) -> Result<()> {
    move_patches(batch, grid, shape, input, output, true)
}

/// The inverse of [`patchify`]: a patch buffer `[B, T, C·p·p]` back to NCHW `[B, C, H, W]`.
///
/// # Errors
///
/// As for [`patchify`].
///
/// # Examples
///
/// ```
/// use patchmix_core::{ImageShape, patchify, unpatchify};
///
/// let img: Vec<u32> = (0..2 * 3 * 4 * 4).collect();
/// let mut patches = vec![0; img.len()];
/// let mut back = vec![0; img.len()];
/// patchify(2, 2, ImageShape::square(3, 4), &img, &mut patches)?;
/// unpatchify(2, 2, ImageShape::square(3, 4), &patches, &mut back)?;
/// assert_eq!(back, img);
/// # Ok::<(), patchmix_core::Error>(())
/// ```
pub fn unpatchify<E: Copy>(
    batch: usize,
    grid: usize,
    shape: ImageShape,
    input: &[E],
    output: &mut [E],
) -> Result<()> {
    move_patches(batch, grid, shape, input, output, false)
}

fn move_patches<E: Copy>(
    batch: usize,
    grid: usize,
    shape: ImageShape,
    input: &[E],
    output: &mut [E],
    to_patches: bool,
) -> Result<()> {
    if batch == 0 {
        return Err(Error::ZeroBatch);
    }
    let p = shape.patch_size(grid)?;
    let len = shape.batch_len(batch)?;
    check_len("input", len, input.len())?;
    check_len("output", len, output.len())?;
    let (channels, side) = (shape.channels, shape.height);
    let tokens = grid * grid;
    for b in 0..batch {
        for t in 0..tokens {
            let (row, col) = (t / grid, t % grid);
            for c in 0..channels {
                let patch_base = ((b * tokens + t) * channels + c) * p * p;
                let image_base = ((b * channels + c) * side + row * p) * side + col * p;
                for y in 0..p {
                    let (q, i) = (patch_base + y * p, image_base + y * side);
                    if to_patches {
                        output[q..q + p].copy_from_slice(&input[i..i + p]);
                    } else {
                        output[i..i + p].copy_from_slice(&input[q..q + p]);
                    }
                }
            }
        }
    }
    Ok(())
}
