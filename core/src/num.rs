//! The integer and float types the crate reads and writes (sealed traits).

mod sealed {
    pub trait Sealed {}
}

/// An integer type for token indices (`perm`, `inv`, `source`): `u32`, `u64`, `usize`, `i32`
/// or `i64` (the index type of ONNX and PyTorch gathers).
///
/// Conversions are checked: a negative or too large value is reported as an [`Error`](crate::Error),
/// never wrapped.
///
/// # Examples
///
/// ```
/// use patchmix_core::IndexInt;
///
/// assert_eq!(<i64 as IndexInt>::from_usize(7), Some(7i64));
/// assert_eq!(<u32 as IndexInt>::from_usize(usize::MAX), None);
/// assert_eq!((-1i32).to_usize(), None);
/// ```
pub trait IndexInt: Copy + sealed::Sealed {
    /// The type's name, used in error messages.
    const NAME: &'static str;
    /// `value` as `Self`, or `None` if it does not fit.
    fn from_usize(value: usize) -> Option<Self>;
    /// `self` as `usize`, or `None` if it is negative or does not fit.
    fn to_usize(self) -> Option<usize>;
    /// `self` as `i128` (every implementing type fits), for error messages.
    fn to_i128(self) -> i128;
}

macro_rules! impl_index {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl IndexInt for $t {
            const NAME: &'static str = stringify!($t);
            #[inline]
            fn from_usize(value: usize) -> Option<Self> {
                <$t>::try_from(value).ok()
            }
            #[inline]
            fn to_usize(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
            #[inline]
            fn to_i128(self) -> i128 {
                // Lossless for every implementing type (at most 64 bits wide).
                i128::try_from(self).unwrap_or(i128::MAX)
            }
        }
    )*};
}

impl_index!(u32, u64, usize, i32, i64);

/// A float type that soft labels can be written as: `f32` or `f64`.
///
/// Values are computed in `f64` and rounded once to `Self`.
///
/// # Examples
///
/// ```
/// use patchmix_core::LabelFloat;
///
/// assert_eq!(<f32 as LabelFloat>::from_f64(0.5), 0.5f32);
/// ```
pub trait LabelFloat: Copy + sealed::Sealed {
    /// `value` rounded to `Self`.
    fn from_f64(value: f64) -> Self;
}

impl sealed::Sealed for f32 {}
impl sealed::Sealed for f64 {}

impl LabelFloat for f32 {
    #[inline]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl LabelFloat for f64 {
    #[inline]
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// `value` as `I`, or an [`Error::IndexOverflow`](crate::Error::IndexOverflow).
pub(crate) fn index_from<I: IndexInt>(value: usize) -> crate::Result<I> {
    I::from_usize(value).ok_or(crate::Error::IndexOverflow {
        value,
        index_type: I::NAME,
    })
}

/// `a * b`, or an [`Error::SizeOverflow`](crate::Error::SizeOverflow) naming `what`.
pub(crate) fn mul(a: usize, b: usize, what: &'static str) -> crate::Result<usize> {
    a.checked_mul(b).ok_or(crate::Error::SizeOverflow { what })
}

/// Checks that a buffer has exactly the expected length.
pub(crate) fn check_len(buffer: &'static str, expected: usize, actual: usize) -> crate::Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(crate::Error::BufferLength {
            buffer,
            expected,
            actual,
        })
    }
}
