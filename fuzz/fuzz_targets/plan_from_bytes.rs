//! Builds plans from arbitrary bytes (geometry, seeded or arbitrary permutations of several
//! index types, right or wrong buffer lengths) and applies them to patch and NCHW buffers.
//! Invalid input must give an `Err`, never a panic; valid plans must satisfy the invariants.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use patchmix_core::{
    Error, ImageShape, MixGeometry, apply_nchw, apply_patches, fill_inverse, fill_permutation,
    fill_source, patchify, unpatchify,
};

/// A length that is usually right and sometimes off by one.
fn length(u: &mut Unstructured, right: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => right.saturating_sub(1),
        1 => right + 1,
        _ => right,
    })
}

fn huge_geometry(u: &mut Unstructured) -> Result<()> {
    // Large parameters must be rejected or accepted without overflow; no buffers are allocated.
    let (b, g, m): (usize, usize, usize) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
    if let Ok(geometry) = MixGeometry::new(b, g, m) {
        let j: usize = u.arbitrary()?;
        let bb: usize = u.arbitrary()?;
        if let Some((b2, j2)) = geometry.mix_source(bb, j) {
            assert!(b2 < geometry.batch() && j2 < geometry.tokens());
        }
        let mut source = [0u32; 4];
        assert!(fill_source(&geometry, &[0u32; 3], &mut source).is_err());
    }
    Ok(())
}

fn run(u: &mut Unstructured) -> Result<()> {
    if u.ratio(1u8, 8)? {
        return huge_geometry(u);
    }
    let batch = u.int_in_range(0usize..=8)?;
    let grid = u.int_in_range(0usize..=8)?;
    let tokens = grid * grid;
    let mix = u.int_in_range(0usize..=tokens + 1)?;
    let geometry = match MixGeometry::new(batch, grid, mix) {
        Ok(g) => g,
        Err(err) => {
            assert!(batch == 0 || grid == 0 || mix == 0 || mix > tokens, "{err}");
            return Ok(());
        }
    };

    // The permutation: seeded, or arbitrary (likely invalid) entries of some index type.
    let perm: Vec<i64> = if u.arbitrary()? {
        let mut p = vec![0i64; tokens];
        fill_permutation(u.arbitrary()?, &mut p).expect("tokens fit i64");
        p
    } else {
        let len = length(u, tokens)?;
        let mut p = Vec::with_capacity(len);
        for _ in 0..len {
            p.push(u.int_in_range(-1i64..=tokens as i64)?);
        }
        p
    };
    let mut source = vec![0u32; length(u, geometry.total_tokens())?];
    let ok = match u.int_in_range(0u8..=2)? {
        0 => fill_source(&geometry, &perm, &mut source),
        1 => {
            let p32: Vec<u32> = perm.iter().map(|&v| v as u32).collect();
            fill_source(&geometry, &p32, &mut source)
        }
        _ => {
            let pu: Vec<usize> = perm.iter().map(|&v| v as usize).collect();
            fill_source(&geometry, &pu, &mut source)
        }
    };
    if let Err(err) = ok {
        let _ = err.to_string();
        return Ok(());
    }

    // Invariants of a valid plan.
    let mut inv = vec![0usize; tokens];
    fill_inverse(&perm, &mut inv).expect("fill_source accepted perm");
    let mut sorted = source.clone();
    sorted.sort_unstable();
    assert!(
        sorted.iter().enumerate().all(|(i, &s)| s as usize == i),
        "not a bijection"
    );
    let s = geometry.group_size();
    for b in 0..batch {
        for t in 0..tokens {
            let j = inv[t];
            let want = if j < geometry.mixed_tokens() {
                ((b + j / s) % batch) * tokens + t
            } else {
                b * tokens + t
            };
            assert_eq!(source[b * tokens + t] as usize, want);
        }
    }

    // Apply to NCHW images with a possibly invalid shape, and check against the patch path.
    let channels = u.int_in_range(0usize..=3)?;
    let height = u.int_in_range(0usize..=3)? * grid + usize::from(u.ratio(1u8, 8)?);
    let width = if u.ratio(1u8, 8)? { height + 1 } else { height };
    let shape = ImageShape::new(channels, height, width);
    let len = channels * height * width * batch;
    let images: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut out = vec![0u8; length(u, len)?];
    match apply_nchw(&geometry, &source, shape, &images, &mut out) {
        Ok(()) => {
            let (mut patches, mut mixed, mut back) = (vec![0; len], vec![0; len], vec![0; len]);
            patchify(batch, grid, shape, &images, &mut patches).unwrap();
            let p = height / grid;
            apply_patches(&geometry, &source, channels * p * p, &patches, &mut mixed).unwrap();
            unpatchify(batch, grid, shape, &mixed, &mut back).unwrap();
            assert_eq!(out, back);
        }
        Err(err) => assert!(!matches!(err, Error::SourceOutOfRange { .. }), "{err}"),
    }

    // An arbitrary gather must be range-checked.
    let raw: Vec<u32> = (0..geometry.total_tokens())
        .map(|_| u.int_in_range(0u32..=geometry.total_tokens() as u32))
        .collect::<Result<_>>()?;
    let token_len = u.int_in_range(0usize..=3)?;
    let input = vec![1u16; geometry.total_tokens() * token_len];
    let mut output = vec![0u16; input.len()];
    let in_range = raw.iter().all(|&r| (r as usize) < geometry.total_tokens());
    let result = apply_patches(&geometry, &raw, token_len, &input, &mut output);
    assert_eq!(result.is_ok(), in_range);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
