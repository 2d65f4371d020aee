//! The C ABI with arbitrary parameters and lengths (always within the buffers actually passed,
//! or null pointers): it must return a status, agree with the Rust API, and never crash.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use patchmix_core::{MixGeometry, ffi, fill_source};

/// A pointer to `buf`, or null; and a length that may exceed nothing but `buf.len()` unless null.
fn ptr_len<T>(u: &mut Unstructured, buf: &mut [T]) -> Result<(*mut T, usize)> {
    if u.ratio(1u8, 10)? {
        Ok((core::ptr::null_mut(), u.int_in_range(0usize..=8)?))
    } else {
        Ok((buf.as_mut_ptr(), u.int_in_range(0usize..=buf.len())?))
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let batch = u.int_in_range(0usize..=6)?;
    let grid = u.int_in_range(0usize..=6)?;
    let mix = u.int_in_range(0usize..=40)?;
    let mut perm = vec![0u32; 40];
    let (pp, plen) = ptr_len(u, &mut perm)?;
    // SAFETY: pp is null or valid for plen ≤ perm.len() elements.
    let st = unsafe { ffi::patchmix_permutation_from_seed(u.arbitrary()?, pp, plen) };
    assert!(st == 0 || (pp.is_null() && plen > 0));
    if u.ratio(1u8, 3)? {
        for v in perm.iter_mut() {
            *v = u.int_in_range(0u32..=40)?;
        }
    }
    let mut source = vec![0u32; 6 * 36 + 1];
    let (sp, slen) = ptr_len(u, &mut source)?;
    // SAFETY: pointers null or valid for their lengths; perm and source do not overlap.
    let st = unsafe { ffi::patchmix_source(batch, grid, mix, perm.as_ptr(), plen, sp, slen) };
    if !pp.is_null() && !sp.is_null() {
        let mut check = vec![0u32; slen];
        let want = MixGeometry::new(batch, grid, mix)
            .and_then(|g| fill_source(&g, &perm[..plen], &mut check));
        assert_eq!(st, want.map_or_else(|e| e.code(), |()| 0));
        if st == 0 {
            assert_eq!(&source[..slen], &check[..]);
        }
    }
    let mut msg = [0 as core::ffi::c_char; 16];
    // SAFETY: msg is valid for 16 bytes.
    let _ = unsafe { ffi::patchmix_last_error_message(msg.as_mut_ptr(), msg.len()) };
    assert!(msg.contains(&0), "message not NUL-terminated");
    let _ = ffi::patchmix_status_message(st);

    let channels = u.int_in_range(0usize..=2)?;
    let side = u.int_in_range(0usize..=12)?;
    let images = vec![0.5f32; 6 * 2 * 144];
    let mut out = vec![0.0f32; images.len()];
    let len = u.int_in_range(0usize..=images.len())?;
    // SAFETY: all pointers valid for their lengths (len ≤ both buffers), no overlap.
    let _ = unsafe {
        ffi::patchmix_apply_nchw_f32(
            batch,
            grid,
            source.as_ptr(),
            slen.min(source.len()),
            channels,
            side,
            side,
            images.as_ptr(),
            out.as_mut_ptr(),
            len,
        )
    };
    let mut labels = vec![0.0f32; 64];
    let (lp, llen) = ptr_len(u, &mut labels)?;
    let (world, rank, s): (usize, usize, f64) = (
        u.int_in_range(0..=3)?,
        u.int_in_range(0..=3)?,
        u.arbitrary()?,
    );
    // SAFETY: lp null or valid for llen floats.
    let _ = unsafe { ffi::patchmix_mix_to_mix_targets_f32(batch, mix, world, rank, s, lp, llen) };
    let mut value = 0.0f64;
    let out_ptr = if u.arbitrary()? {
        &mut value as *mut f64
    } else {
        core::ptr::null_mut()
    };
    // SAFETY: out_ptr null or valid for one f64.
    let _ = unsafe {
        ffi::patchmix_cosine_schedule(
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
            u.arbitrary()?,
            out_ptr,
        )
    };
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
