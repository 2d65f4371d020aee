//! The typed error returned by every fallible function of the crate.
//!
//! Each variant names the offending parameter and its value in its [`Display`](core::fmt::Display)
//! message, and has a stable negative status [`code`](Error::code) that the C ABI returns.

use core::fmt;

/// Everything that can be wrong with the parameters of a PatchMix computation.
///
/// No function of this crate panics on bad input: it returns one of these instead.
///
/// # Examples
///
/// ```
/// use patchmix_core::{Error, MixGeometry};
///
/// let err = MixGeometry::new(1, 2, 5).unwrap_err();
/// assert_eq!(err, Error::MixExceedsTokens { mix: 5, tokens: 4 });
/// assert_eq!(err.to_string(), "mix m = 5 exceeds the token count T = 4");
/// assert_eq!(err.code(), -5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The batch size B is zero.
    ZeroBatch,
    /// The grid (tokens per side) is zero.
    ZeroGrid,
    /// The mix number m is zero.
    ZeroMix,
    /// The mix number m is larger than the number of tokens T = grid².
    MixExceedsTokens {
        /// The mix number m.
        mix: usize,
        /// The token count T.
        tokens: usize,
    },
    /// The channel count C of an image buffer is zero.
    ZeroChannels,
    /// The image is not square.
    NonSquareImage {
        /// Image height H.
        height: usize,
        /// Image width W.
        width: usize,
    },
    /// The grid does not divide the image side.
    GridDoesNotDivide {
        /// The image side H = W.
        size: usize,
        /// The grid.
        grid: usize,
    },
    /// The permutation has the wrong length.
    PermutationLength {
        /// The token count T.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A permutation entry is not a token index (negative or ≥ T).
    PermutationOutOfRange {
        /// Position of the entry.
        position: usize,
        /// The entry (saturated to `i128`).
        value: i128,
        /// The token count T.
        tokens: usize,
    },
    /// A token index occurs twice in the permutation.
    PermutationDuplicate {
        /// The repeated token index.
        value: usize,
        /// Position of its first occurrence.
        first: usize,
        /// Position of a later occurrence.
        second: usize,
    },
    /// A caller-provided buffer has the wrong length.
    BufferLength {
        /// Which buffer.
        buffer: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A gather index points outside the buffer it gathers from.
    SourceOutOfRange {
        /// Position of the index in `source`.
        position: usize,
        /// The index (saturated to `i128`).
        value: i128,
        /// The number of tokens B·T it must stay below.
        len: usize,
    },
    /// A size computed from the parameters overflows `usize`.
    SizeOverflow {
        /// What was being computed.
        what: &'static str,
    },
    /// An index does not fit the caller's index type.
    IndexOverflow {
        /// The largest index that must be stored.
        value: usize,
        /// The index type.
        index_type: &'static str,
    },
    /// The label smoothing is not a finite number in [0, 1].
    InvalidSmoothing {
        /// The smoothing given.
        smoothing: f64,
    },
    /// The world size is zero.
    ZeroWorldSize,
    /// The rank is not below the world size.
    RankOutOfRange {
        /// The rank.
        rank: usize,
        /// The world size.
        world_size: usize,
    },
    /// A schedule parameter is not a finite number (or a temperature is not positive).
    InvalidScheduleValue {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The warm-up is longer than the whole schedule.
    WarmupExceedsTotal {
        /// Warm-up length.
        warmup: u64,
        /// Total length.
        total: u64,
    },
    /// A schedule is read past its end.
    ScheduleIndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The schedule length.
        len: u64,
    },
    /// The epoch of the momentum schedule is outside [0, E] (or E is not positive).
    EpochOutOfRange {
        /// The epoch.
        epoch: f64,
        /// The total number of epochs E.
        total: f64,
    },
    /// The base momentum is not a finite number in [0, 1].
    InvalidMomentum {
        /// The momentum given.
        momentum: f64,
    },
    /// A schedule value overflows `f64` (e.g. `|base − final|` is larger than `f64::MAX`).
    ScheduleOverflow {
        /// The non-finite value that resulted.
        value: f64,
    },
    /// A C caller passed a null pointer for a non-empty buffer.
    NullPointer {
        /// Which argument.
        name: &'static str,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Status code for success in the C ABI.
pub const STATUS_OK: i32 = 0;

impl Error {
    /// The stable status code of this error in the C ABI (always negative; 0 is success).
    ///
    /// | code | variant |
    /// |---|---|
    /// | −1 | `ZeroBatch` |
    /// | −2 | `ZeroGrid` |
    /// | −3 | `ZeroMix` |
    /// | −5 | `MixExceedsTokens` |
    /// | −6 | `ZeroChannels` |
    /// | −7 | `NonSquareImage` |
    /// | −8 | `GridDoesNotDivide` |
    /// | −9 | `PermutationLength` |
    /// | −10 | `PermutationOutOfRange` |
    /// | −11 | `PermutationDuplicate` |
    /// | −12 | `BufferLength` |
    /// | −13 | `SourceOutOfRange` |
    /// | −14 | `SizeOverflow` |
    /// | −15 | `IndexOverflow` |
    /// | −16 | `InvalidSmoothing` |
    /// | −17 | `ZeroWorldSize` |
    /// | −18 | `RankOutOfRange` |
    /// | −19 | `InvalidScheduleValue` |
    /// | −20 | `WarmupExceedsTotal` |
    /// | −21 | `ScheduleIndexOutOfRange` |
    /// | −22 | `EpochOutOfRange` |
    /// | −23 | `InvalidMomentum` |
    /// | −24 | `NullPointer` |
    /// | −25 | `ScheduleOverflow` |
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(patchmix_core::Error::ZeroBatch.code(), -1);
    /// ```
    pub const fn code(&self) -> i32 {
        match self {
            Error::ZeroBatch => -1,
            Error::ZeroGrid => -2,
            Error::ZeroMix => -3,
            Error::MixExceedsTokens { .. } => -5,
            Error::ZeroChannels => -6,
            Error::NonSquareImage { .. } => -7,
            Error::GridDoesNotDivide { .. } => -8,
            Error::PermutationLength { .. } => -9,
            Error::PermutationOutOfRange { .. } => -10,
            Error::PermutationDuplicate { .. } => -11,
            Error::BufferLength { .. } => -12,
            Error::SourceOutOfRange { .. } => -13,
            Error::SizeOverflow { .. } => -14,
            Error::IndexOverflow { .. } => -15,
            Error::InvalidSmoothing { .. } => -16,
            Error::ZeroWorldSize => -17,
            Error::RankOutOfRange { .. } => -18,
            Error::InvalidScheduleValue { .. } => -19,
            Error::WarmupExceedsTotal { .. } => -20,
            Error::ScheduleIndexOutOfRange { .. } => -21,
            Error::EpochOutOfRange { .. } => -22,
            Error::InvalidMomentum { .. } => -23,
            Error::NullPointer { .. } => -24,
            Error::ScheduleOverflow { .. } => -25,
        }
    }
}

/// A fixed, value-free description of a status code (what the C ABI's
/// `patchmix_status_message` returns).
///
/// # Examples
///
/// ```
/// assert_eq!(patchmix_core::status_message(0), "ok");
/// assert_eq!(patchmix_core::status_message(-5), "mix m exceeds the token count T");
/// assert_eq!(patchmix_core::status_message(7), "unknown status code");
/// ```
pub const fn status_message(code: i32) -> &'static str {
    match code {
        0 => "ok",
        -1 => "batch B must be at least 1",
        -2 => "grid must be at least 1",
        -3 => "mix m must be at least 1",
        -5 => "mix m exceeds the token count T",
        -6 => "channels C must be at least 1",
        -7 => "image is not square",
        -8 => "grid does not divide the image side",
        -9 => "permutation has the wrong length",
        -10 => "permutation entry is not a token index",
        -11 => "permutation repeats a token index",
        -12 => "buffer has the wrong length",
        -13 => "gather index out of range",
        -14 => "size overflows usize",
        -15 => "index does not fit the index type",
        -16 => "smoothing must be a finite number in [0, 1]",
        -17 => "world size must be at least 1",
        -18 => "rank must be below the world size",
        -19 => "schedule parameter must be finite (temperatures positive)",
        -20 => "warm-up exceeds the schedule length",
        -21 => "schedule index out of range",
        -22 => "epoch outside [0, E] or E not positive",
        -23 => "momentum must be a finite number in [0, 1]",
        -24 => "null pointer",
        -25 => "schedule value overflows f64",
        _ => "unknown status code",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::ZeroBatch => write!(f, "batch B = 0: the batch must hold at least one image"),
            Error::ZeroGrid => write!(f, "grid = 0: the grid must be at least 1"),
            Error::ZeroMix => write!(f, "mix m = 0: at least one image must be mixed"),
            Error::MixExceedsTokens { mix, tokens } => {
                write!(f, "mix m = {mix} exceeds the token count T = {tokens}")
            }
            Error::ZeroChannels => write!(f, "channels C = 0: an image needs at least one channel"),
            Error::NonSquareImage { height, width } => {
                write!(
                    f,
                    "image height H = {height} differs from width W = {width}"
                )
            }
            Error::GridDoesNotDivide { size, grid } => {
                write!(f, "grid = {grid} does not divide the image side {size}")
            }
            Error::PermutationLength { expected, actual } => {
                write!(
                    f,
                    "perm has length {actual} but must have length T = {expected}"
                )
            }
            Error::PermutationOutOfRange {
                position,
                value,
                tokens,
            } => write!(
                f,
                "perm[{position}] = {value} is not a token index in 0..{tokens}"
            ),
            Error::PermutationDuplicate {
                value,
                first,
                second,
            } => write!(
                f,
                "perm[{first}] = perm[{second}] = {value}: perm is not a permutation"
            ),
            Error::BufferLength {
                buffer,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{buffer} has length {actual} but must have length {expected}"
                )
            }
            Error::SourceOutOfRange {
                position,
                value,
                len,
            } => {
                write!(
                    f,
                    "source[{position}] = {value} is not a token index in 0..{len}"
                )
            }
            Error::SizeOverflow { what } => write!(f, "{what} overflows usize"),
            Error::IndexOverflow { value, index_type } => {
                write!(f, "index {value} does not fit the index type {index_type}")
            }
            Error::InvalidSmoothing { smoothing } => {
                write!(f, "smoothing s = {smoothing} is not a number in [0, 1]")
            }
            Error::ZeroWorldSize => {
                write!(f, "world size = 0: the world must hold at least one rank")
            }
            Error::RankOutOfRange { rank, world_size } => {
                write!(f, "rank = {rank} is not below the world size {world_size}")
            }
            Error::InvalidScheduleValue { name, value } => {
                write!(
                    f,
                    "schedule parameter {name} = {value} is not valid (must be finite"
                )?;
                if name.contains("temp") {
                    write!(f, " and positive")?;
                }
                write!(f, ")")
            }
            Error::WarmupExceedsTotal { warmup, total } => write!(
                f,
                "warm-up of {warmup} steps exceeds the schedule length {total}"
            ),
            Error::ScheduleIndexOutOfRange { index, len } => {
                write!(
                    f,
                    "schedule index {index} is past the schedule length {len}"
                )
            }
            Error::EpochOutOfRange { epoch, total } => {
                write!(
                    f,
                    "epoch e = {epoch} is outside [0, E] with E = {total} (E must be positive)"
                )
            }
            Error::InvalidMomentum { momentum } => {
                write!(f, "base momentum m0 = {momentum} is not a number in [0, 1]")
            }
            Error::NullPointer { name } => write!(f, "{name} is a null pointer"),
            Error::ScheduleOverflow { value } => write!(
                f,
                "schedule value {value} overflows f64: the parameters are too far apart"
            ),
        }
    }
}

impl core::error::Error for Error {}
