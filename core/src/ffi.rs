//! The C ABI (feature `ffi`), declared in `core/include/patchmix.h`.
//!
//! This is the only module of the crate that may contain `unsafe` code (the crate root denies
//! `unsafe_code` and allows it here only; without the `ffi` feature the whole crate forbids it).
//! The `unsafe` is limited to turning the caller's `(pointer, length)` pairs into slices and to
//! writing the `double` result of the schedules; everything else is the safe Rust API.
//!
//! Conventions:
//! * every function returns an `int32_t` status, `0` on success and a negative
//!   [`Error::code`](crate::Error::code) otherwise, and writes its result into caller buffers;
//! * every buffer is passed with its length in elements and must have exactly that length;
//!   a null pointer is accepted only together with length 0;
//! * on error, output buffers are left untouched where the Rust function validates first (all
//!   of them do) and the detailed message is kept per thread for
//!   `patchmix_last_error_message`;
//! * a Rust panic (a bug) never unwinds into C: it is reported as status `-99`.
//!
//! Build the libraries with
//! `cargo rustc -p patchmix-core --release --lib --features ffi --crate-type staticlib` (or
//! `cdylib`); they land in `target/release/`.

use crate::apply::{ImageShape, apply_nchw, apply_patches};
use crate::labels::{
    LabelSpec, fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets,
};
use crate::plan::{MixGeometry, fill_inverse, fill_source};
use crate::{Error, Result};
use core::ffi::{CStr, c_char};
use std::cell::RefCell;
use std::string::{String, ToString};

/// Status returned when a Rust panic was caught at the boundary (never expected).
pub const STATUS_PANIC: i32 = -99;

/// The ABI version reported by `patchmix_abi_version`; bumped on any incompatible change.
pub const ABI_VERSION: u32 = 1;

std::thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn record(message: String) {
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Runs `f`, records its error message and turns the outcome into a status code.
fn status(f: impl FnOnce() -> Result<()>) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => crate::STATUS_OK,
        Ok(Err(err)) => {
            record(err.to_string());
            err.code()
        }
        Err(_) => {
            record("internal error: a panic was caught at the C boundary".to_string());
            STATUS_PANIC
        }
    }
}

/// # Safety
///
/// `ptr` must be null with `len == 0`, or valid for reads of `len` elements of `T` for `'a`.
unsafe fn input<'a, T>(ptr: *const T, len: usize, name: &'static str) -> Result<&'a [T]> {
    if len == 0 {
        Ok(&[])
    } else if ptr.is_null() {
        Err(Error::NullPointer { name })
    } else {
        // SAFETY: non-null and, by the caller's contract, valid for `len` reads.
        Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
    }
}

/// # Safety
///
/// `ptr` must be null with `len == 0`, or valid for reads and writes of `len` elements of `T`
/// for `'a`, and not aliased by any other slice in use.
unsafe fn output<'a, T>(ptr: *mut T, len: usize, name: &'static str) -> Result<&'a mut [T]> {
    if len == 0 {
        Ok(&mut [])
    } else if ptr.is_null() {
        Err(Error::NullPointer { name })
    } else {
        // SAFETY: non-null and, by the caller's contract, valid and unaliased for `len` elements.
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
    }
}

/// Writes `value` to `out`.
///
/// # Safety
///
/// `out` must be null or valid for writing one `f64`.
unsafe fn write_f64(out: *mut f64, value: Result<f64>) -> Result<()> {
    if out.is_null() {
        return Err(Error::NullPointer { name: "out" });
    }
    let value = value?;
    // SAFETY: non-null and valid for one write by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// The NUL-terminated, value-free message of a status code.
const fn status_cstr(code: i32) -> &'static CStr {
    match code {
        0 => c"ok",
        -1 => c"batch B must be at least 1",
        -2 => c"grid must be at least 1",
        -3 => c"mix m must be at least 1",
        -5 => c"mix m exceeds the token count T",
        -6 => c"channels C must be at least 1",
        -7 => c"image is not square",
        -8 => c"grid does not divide the image side",
        -9 => c"permutation has the wrong length",
        -10 => c"permutation entry is not a token index",
        -11 => c"permutation repeats a token index",
        -12 => c"buffer has the wrong length",
        -13 => c"gather index out of range",
        -14 => c"size overflows usize",
        -15 => c"index does not fit the index type",
        -16 => c"smoothing must be a finite number in [0, 1]",
        -17 => c"world size must be at least 1",
        -18 => c"rank must be below the world size",
        -19 => c"schedule parameter must be finite (temperatures positive)",
        -20 => c"warm-up exceeds the schedule length",
        -21 => c"schedule index out of range",
        -22 => c"epoch outside [0, E] or E not positive",
        -23 => c"momentum must be a finite number in [0, 1]",
        -24 => c"null pointer",
        -25 => c"schedule value overflows f64",
        STATUS_PANIC => c"internal error (panic)",
        _ => c"unknown status code",
    }
}

/// `PATCHMIX_ABI_VERSION` of the library.
#[unsafe(no_mangle)]
pub extern "C" fn patchmix_abi_version() -> u32 {
    ABI_VERSION
}

/// A static, NUL-terminated description of `status` (never null, never freed).
#[unsafe(no_mangle)]
pub extern "C" fn patchmix_status_message(status: i32) -> *const c_char {
    status_cstr(status).as_ptr()
}

/// Copies the detailed message of the last error on this thread (e.g.
/// `mix m = 5 exceeds the token count T = 4`) into `buf`, truncated to `len − 1` bytes and
/// NUL-terminated, and returns the full message length in bytes (like `snprintf`). The message
/// is empty if no call on this thread has failed yet.
///
/// # Safety
///
/// `buf` must be null with `len == 0`, or valid for writing `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_last_error_message(buf: *mut c_char, len: usize) -> usize {
    LAST_ERROR.with(|last| {
        let message = last.borrow();
        let bytes = message.as_bytes();
        if len > 0 && !buf.is_null() {
            let n = bytes.len().min(len - 1);
            // SAFETY: `buf` is valid for `len > n` bytes by the caller's contract; the source is a
            // distinct Rust allocation.
            unsafe {
                core::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, n);
                buf.add(n).write(0);
            }
        }
        bytes.len()
    })
}

/// Fills `perm[0..tokens]` with the permutation drawn from `seed` (SplitMix64 + Fisher–Yates,
/// see `patchmix_core::rng`).
///
/// # Safety
///
/// `perm` must be valid for writing `tokens` `uint32_t` (or null with `tokens == 0`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_permutation_from_seed(
    seed: u64,
    perm: *mut u32,
    tokens: usize,
) -> i32 {
    status(|| {
        // SAFETY: forwarded caller contract.
        let perm = unsafe { output(perm, tokens, "perm") }?;
        crate::fill_permutation(seed, perm)
    })
}

/// Fills `inv` with `argsort(perm)`, checking that `perm` is a permutation of `0..tokens`.
///
/// # Safety
///
/// `perm` valid for reading and `inv` for writing `tokens` `uint32_t`, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_inverse(perm: *const u32, inv: *mut u32, tokens: usize) -> i32 {
    status(|| {
        // SAFETY: forwarded caller contract.
        let perm = unsafe { input(perm, tokens, "perm") }?;
        // SAFETY: forwarded caller contract.
        let inv = unsafe { output(inv, tokens, "inv") }?;
        fill_inverse(perm, inv)
    })
}

/// Fills `source` (`batch·grid²` entries) with the PatchMix gather for `perm` (`grid²` entries).
///
/// # Safety
///
/// `perm` valid for reading `perm_len` and `source` for writing `source_len` `uint32_t`, not
/// overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_source(
    batch: usize,
    grid: usize,
    mix: usize,
    perm: *const u32,
    perm_len: usize,
    source: *mut u32,
    source_len: usize,
) -> i32 {
    status(|| {
        let geometry = MixGeometry::new(batch, grid, mix)?;
        // SAFETY: forwarded caller contract.
        let perm = unsafe { input(perm, perm_len, "perm") }?;
        // SAFETY: forwarded caller contract.
        let source = unsafe { output(source, source_len, "source") }?;
        fill_source(&geometry, perm, source)
    })
}

/// Applies the gather `source` (`batch·grid²` entries) to an NCHW `float` batch of `len`
/// elements (`len = batch·channels·height·width`), writing `output`.
///
/// # Safety
///
/// `source` valid for reading `source_len` `uint32_t`; `input` for reading and `output` for
/// writing `len` `float`; `output` overlapping neither.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_apply_nchw_f32(
    batch: usize,
    grid: usize,
    source: *const u32,
    source_len: usize,
    channels: usize,
    height: usize,
    width: usize,
    input_images: *const f32,
    output_images: *mut f32,
    len: usize,
) -> i32 {
    status(|| {
        let geometry = MixGeometry::new(batch, grid, 1)?;
        // SAFETY: forwarded caller contract.
        let source = unsafe { input(source, source_len, "source") }?;
        // SAFETY: forwarded caller contract.
        let images = unsafe { input(input_images, len, "input") }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { output(output_images, len, "output") }?;
        let shape = ImageShape::new(channels, height, width);
        apply_nchw(&geometry, source, shape, images, out)
    })
}

/// Applies the gather `source` to a patch buffer `[batch, grid², token_len]` of `len` floats.
///
/// # Safety
///
/// As for `patchmix_apply_nchw_f32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_apply_patches_f32(
    batch: usize,
    grid: usize,
    source: *const u32,
    source_len: usize,
    token_len: usize,
    input_patches: *const f32,
    output_patches: *mut f32,
    len: usize,
) -> i32 {
    status(|| {
        let geometry = MixGeometry::new(batch, grid, 1)?;
        // SAFETY: forwarded caller contract.
        let source = unsafe { input(source, source_len, "source") }?;
        // SAFETY: forwarded caller contract.
        let patches = unsafe { input(input_patches, len, "input") }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { output(output_patches, len, "output") }?;
        apply_patches(&geometry, source, token_len, patches, out)
    })
}

/// Which soft targets to write.
#[derive(Clone, Copy)]
enum Targets {
    Origin,
    MixToOrigin(usize),
    MixToMix(usize),
}

/// # Safety
///
/// `out` valid for writing `len` floats (or null with `len == 0`).
unsafe fn targets(
    which: Targets,
    batch: usize,
    world_size: usize,
    rank: usize,
    smoothing: f64,
    out: *mut f32,
    len: usize,
) -> i32 {
    status(|| {
        let spec = LabelSpec::new(batch, world_size, rank, smoothing)?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { output(out, len, "out") }?;
        match which {
            Targets::Origin => fill_origin_targets(&spec, out),
            Targets::MixToOrigin(m) => fill_mix_to_origin_targets(&spec, m, out),
            Targets::MixToMix(m) => fill_mix_to_mix_targets(&spec, m, out),
        }
    })
}

/// Origin-to-origin soft targets (identity with smoothing), `batch × batch·world_size` floats.
///
/// # Safety
///
/// `out` valid for writing `len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_origin_targets_f32(
    batch: usize,
    world_size: usize,
    rank: usize,
    smoothing: f64,
    out: *mut f32,
    len: usize,
) -> i32 {
    // SAFETY: forwarded caller contract.
    unsafe {
        targets(
            Targets::Origin,
            batch,
            world_size,
            rank,
            smoothing,
            out,
            len,
        )
    }
}

/// Mix-to-origin soft targets (`soft_target`), `batch × batch·world_size` floats.
///
/// # Safety
///
/// `out` valid for writing `len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_mix_to_origin_targets_f32(
    batch: usize,
    mix: usize,
    world_size: usize,
    rank: usize,
    smoothing: f64,
    out: *mut f32,
    len: usize,
) -> i32 {
    let which = Targets::MixToOrigin(mix);
    // SAFETY: forwarded caller contract.
    unsafe { targets(which, batch, world_size, rank, smoothing, out, len) }
}

/// Mix-to-mix soft targets (`soft_mix_target`), `batch × batch·world_size` floats.
///
/// # Safety
///
/// `out` valid for writing `len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_mix_to_mix_targets_f32(
    batch: usize,
    mix: usize,
    world_size: usize,
    rank: usize,
    smoothing: f64,
    out: *mut f32,
    len: usize,
) -> i32 {
    let which = Targets::MixToMix(mix);
    // SAFETY: forwarded caller contract.
    unsafe { targets(which, batch, world_size, rank, smoothing, out, len) }
}

/// `cosine_schedule(base, final_value, total_iters, warmup_iters, start_warmup, iter)` into `*out`.
///
/// # Safety
///
/// `out` valid for writing one `double`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_cosine_schedule(
    base: f64,
    final_value: f64,
    total_iters: u64,
    warmup_iters: u64,
    start_warmup: f64,
    iter: u64,
    out: *mut f64,
) -> i32 {
    status(|| {
        let v = crate::cosine_schedule(
            base,
            final_value,
            total_iters,
            warmup_iters,
            start_warmup,
            iter,
        );
        // SAFETY: forwarded caller contract.
        unsafe { write_f64(out, v) }
    })
}

/// `momentum_schedule(base_momentum, epoch, total_epochs)` into `*out`.
///
/// # Safety
///
/// `out` valid for writing one `double`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_momentum_schedule(
    base_momentum: f64,
    epoch: f64,
    total_epochs: f64,
    out: *mut f64,
) -> i32 {
    status(|| {
        let v = crate::momentum_schedule(base_momentum, epoch, total_epochs);
        // SAFETY: forwarded caller contract.
        unsafe { write_f64(out, v) }
    })
}

/// `temperature_schedule(warmup_temp, temp, warmup_epochs, epoch)` into `*out`.
///
/// # Safety
///
/// `out` valid for writing one `double`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn patchmix_temperature_schedule(
    warmup_temp: f64,
    temp: f64,
    warmup_epochs: u64,
    epoch: u64,
    out: *mut f64,
) -> i32 {
    status(|| {
        let v = crate::temperature_schedule(warmup_temp, temp, warmup_epochs, epoch);
        // SAFETY: forwarded caller contract.
        unsafe { write_f64(out, v) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_messages_match_rust_messages() {
        for code in -30..=1 {
            assert_eq!(
                status_cstr(code).to_str().unwrap(),
                crate::status_message(code),
                "code {code}"
            );
        }
    }

    #[test]
    fn last_error_message_is_recorded_and_truncated() {
        let mut perm = [0u32; 3];
        let mut inv = [0u32; 3];
        perm.copy_from_slice(&[0, 0, 1]);
        // SAFETY: valid arrays of 3 elements.
        let code = unsafe { patchmix_inverse(perm.as_ptr(), inv.as_mut_ptr(), 3) };
        assert_eq!(code, -11);
        let mut buf = [0 as c_char; 8];
        // SAFETY: valid buffer of 8 bytes.
        let n = unsafe { patchmix_last_error_message(buf.as_mut_ptr(), buf.len()) };
        let full = "perm[0] = perm[1] = 0: perm is not a permutation";
        assert_eq!(n, full.len());
        // SAFETY: NUL-terminated by patchmix_last_error_message.
        let got = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(got.to_str().unwrap(), &full[..7]);
    }

    #[test]
    fn null_pointers_are_errors() {
        // SAFETY: null pointers are what is being tested; nothing is dereferenced.
        let code =
            unsafe { patchmix_source(1, 2, 1, core::ptr::null(), 4, core::ptr::null_mut(), 4) };
        assert_eq!(code, Error::NullPointer { name: "perm" }.code());
        // SAFETY: as above.
        let code =
            unsafe { patchmix_cosine_schedule(1.0, 0.0, 2, 0, 0.0, 0, core::ptr::null_mut()) };
        assert_eq!(code, -24);
    }
}
