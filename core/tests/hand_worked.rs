//! Small cases worked out by hand (and golden vectors from the documented PRNG), written out in
//! full so that another runtime can copy them.

use patchmix_core::{
    ImageShape, LabelSpec, MixGeometry, MixPlan, apply_nchw, cosine_schedule, fill_inverse,
    fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets, fill_permutation,
    fill_source, momentum_schedule, temperature_schedule,
};

/// B = 3 images, a 4×4 grid (T = 16), m = 2, so S = 8 and there is no tail.
const PERM: [u32; 16] = [5, 12, 0, 9, 3, 14, 7, 1, 10, 15, 2, 8, 13, 6, 11, 4];

#[test]
fn grid_4x4_mix_2_by_hand() {
    // inv = argsort(perm): token t sits at shuffled position inv[t].
    //   t    0 1  2 3  4 5  6 7  8 9 10 11 12 13 14 15
    //   inv  2 7 10 4 15 0 13 6 11 3  8 14  1 12  5  9
    let mut inv = [0u32; 16];
    fill_inverse(&PERM, &mut inv).unwrap();
    assert_eq!(inv, [2, 7, 10, 4, 15, 0, 13, 6, 11, 3, 8, 14, 1, 12, 5, 9]);

    // Shuffled positions 0..8 keep their image, 8..16 come from the next one (chunk i = j div 8).
    // Worked example, b = 0, t = 2: j = inv[2] = 10, l = 0·2 + 10 div 8 = 1,
    // l' = (1 + (1 mod 2)·2) mod 6 = 3, b' = 1, j' = (3 mod 2)·8 + 10 mod 8 = 10, perm[10] = 2:
    // source = 1·16 + 2 = 18. And b = 2, t = 2: l = 5, l' = (5 + 2) mod 6 = 1, b' = 0, j' = 10:
    // source = 2.
    let g = MixGeometry::new(3, 4, 2).unwrap();
    assert_eq!(g.mix_source(0, 10), Some((1, 10)));
    assert_eq!(g.mix_source(2, 10), Some((0, 10)));

    // Which image each token of mixed image b comes from, as offsets i (image (b + i) mod 3):
    //   0 0 1 0
    //   1 0 1 0
    //   1 0 1 1
    //   0 1 0 1      (eight 0s and eight 1s: S = 8 tokens from each source)
    let mut source = [0u32; 48];
    fill_source(&g, &PERM, &mut source).unwrap();
    #[rustfmt::skip]
    let expected: [u32; 48] = [
        // b = 0: 0 → t, 1 → 16 + t
         0,  1, 18,  3, 20,  5, 22,  7, 24,  9, 26, 27, 12, 29, 14, 31,
        // b = 1: 0 → 16 + t, 1 → 32 + t
        16, 17, 34, 19, 36, 21, 38, 23, 40, 25, 42, 43, 28, 45, 30, 47,
        // b = 2: 0 → 32 + t, 1 → image 0, t
        32, 33,  2, 35,  4, 37,  6, 39,  8, 41, 10, 11, 44, 13, 46, 15,
    ];
    assert_eq!(source, expected);

    // The same gather on NCHW images (C = 1, 4×4 pixels, so p = 1): pixel = 100·image + t.
    let images: Vec<u32> = (0..3)
        .flat_map(|b| (0..16).map(move |t| 100 * b + t))
        .collect();
    let mut mixed = vec![0u32; 48];
    apply_nchw(&g, &source, ImageShape::square(1, 4), &images, &mut mixed).unwrap();
    #[rustfmt::skip]
    assert_eq!(&mixed[..16], &[
          0,   1, 102,   3,
        104,   5, 106,   7,
        108,   9, 110, 111,
         12, 113,  14, 115,
    ]);

    // p = 2 (8×8 pixels): every token moves as a whole 2×2 block, in every channel.
    let shape = ImageShape::square(2, 8);
    let images: Vec<u32> = (0..3 * 2 * 64).collect();
    let mut mixed = vec![0u32; images.len()];
    apply_nchw(&g, &source, shape, &images, &mut mixed).unwrap();
    // Mixed image 0, channel 1, token 2 (pixel rows 0..2, columns 4..6) is image 1's.
    let at = |b: u32, c: u32, y: u32, x: u32| (((b * 2 + c) * 8 + y) * 8 + x) as usize;
    assert_eq!(mixed[at(0, 1, 0, 4)], images[at(1, 1, 0, 4)]);
    assert_eq!(mixed[at(0, 1, 1, 5)], images[at(1, 1, 1, 5)]);
    assert_eq!(mixed[at(0, 1, 0, 0)], images[at(0, 1, 0, 0)]);
}

#[test]
fn grid_3x3_mix_2_has_an_unmixed_tail() {
    // T = 9, S = 4, m·S = 8: shuffled position 8 (token perm[8] = 4, the centre) stays put.
    let perm = [8u32, 0, 7, 1, 6, 2, 5, 3, 4];
    let plan = MixPlan::from_permutation(2, 3, 2, &perm).unwrap();
    // inv = [1, 3, 5, 7, 8, 6, 4, 2, 0]; chunk 1 holds positions 4..8 = tokens 6, 2, 5, 3.
    assert_eq!(plan.inverse(), &[1, 3, 5, 7, 8, 6, 4, 2, 0]);
    #[rustfmt::skip]
    assert_eq!(plan.source(), &[
        0, 1, 11, 12, 4, 14, 15, 7, 8,
        9, 10, 2, 3, 13, 5, 6, 16, 17,
    ]);
}

#[test]
fn soft_labels_by_hand() {
    // B = 3, m = 2, s = 0.1, one rank: N = 3, off = 0.1/3.
    let spec = LabelSpec::single(3, 0.1).unwrap();
    let off = 0.1 / 3.0;
    let mut t = [0.0f64; 9];
    fill_mix_to_origin_targets(&spec, 2, &mut t).unwrap();
    let on = 0.9 / 2.0 + off; // (1 − s)/m + s/N
    let expected = [on, on, off, off, on, on, on, off, on];
    for (a, b) in t.iter().zip(expected) {
        assert!((a - b).abs() < 1e-15, "{t:?}");
    }
    // Mix-to-mix, B = 3 = 2m − 1: row 0 holds 2, 0, 1 with w = 1/2, 1, 1/2 (shares w/m).
    fill_mix_to_mix_targets(&spec, 2, &mut t).unwrap();
    let (centre, side) = (0.9 * 0.5 + off, 0.9 * 0.25 + off);
    let expected = [centre, side, side, side, centre, side, side, side, centre];
    for (a, b) in t.iter().zip(expected) {
        assert!((a - b).abs() < 1e-15, "{t:?}");
    }
    // Origin, 2 ranks, rank 1: columns 3..6 are ours, N = 6.
    let spec = LabelSpec::new(3, 2, 1, 0.0).unwrap();
    let mut t = [0.0f32; 18];
    fill_origin_targets(&spec, &mut t).unwrap();
    #[rustfmt::skip]
    assert_eq!(t, [
        0.0, 0.0, 0.0, 1.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 1.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 1.0,
    ]);
}

#[test]
fn duplicate_targets_accumulate_unlike_the_original() {
    // B = 2 < 2m − 1 = 3: row 0's mix-to-mix targets are 1 (w 1/2), 0 (w 1), 1 (w 1/2). The
    // original scatters, so column 1 is overwritten with 1/4 and the row sums to 3/4; we add the
    // two shares: column 1 gets 1/4 + 1/4 and the row sums to 1.
    let spec = LabelSpec::single(2, 0.0).unwrap();
    let mut t = [0.0f64; 4];
    fill_mix_to_mix_targets(&spec, 2, &mut t).unwrap();
    assert_eq!(t, [0.5, 0.5, 0.5, 0.5]);
    // B = 1, m = 3: every target is image 0.
    let spec = LabelSpec::single(1, 0.0).unwrap();
    let mut t = [0.0f64; 1];
    fill_mix_to_origin_targets(&spec, 3, &mut t).unwrap();
    assert_eq!(t, [1.0]);
    fill_mix_to_mix_targets(&spec, 3, &mut t).unwrap();
    assert_eq!(t, [1.0]);
}

#[test]
fn seeded_permutations_match_the_documented_python_reference() {
    // Produced by the Python code in the `rng` module documentation.
    let mut p16 = [0u32; 16];
    fill_permutation(42, &mut p16).unwrap();
    assert_eq!(p16, [12, 13, 4, 2, 14, 6, 7, 8, 11, 15, 9, 10, 3, 0, 1, 5]);
    let mut p10 = [0i64; 10];
    fill_permutation(0, &mut p10).unwrap();
    assert_eq!(p10, [6, 3, 2, 9, 8, 1, 4, 7, 0, 5]);
    let mut p7 = [0usize; 7];
    fill_permutation(u64::MAX, &mut p7).unwrap();
    assert_eq!(p7, [5, 4, 6, 2, 1, 3, 0]);
}

#[test]
fn schedules_by_hand() {
    // No warm-up, 4 steps from 1 to 0: ½(1 + cos(π·i/4)).
    let c = |i| cosine_schedule(1.0, 0.0, 4, 0, 0.0, i).unwrap();
    assert_eq!(c(0), 1.0);
    assert!((c(1) - 0.853_553_390_593_273_8).abs() < 1e-15);
    assert!((c(2) - 0.5).abs() < 1e-15);
    assert!((c(3) - 0.146_446_609_406_726_24).abs() < 1e-15);
    // Warm-up of 3 steps from 0.1 to 1.0 (linspace: 0.1, 0.55, 1.0), then the cosine from 1.0.
    let w = |i| cosine_schedule(1.0, 0.0, 7, 3, 0.1, i).unwrap();
    assert_eq!(w(0), 0.1);
    assert!((w(1) - 0.55).abs() < 1e-15);
    assert_eq!(w(2), 1.0);
    assert_eq!(w(3), 1.0);
    // Momentum 0.996 over 100 epochs: a quarter of the way, 1 − ½(1 + cos(π/4))·0.004.
    let m = momentum_schedule(0.996, 25.0, 100.0).unwrap();
    assert!((m - (1.0 - 0.5 * (1.0 + core::f64::consts::FRAC_1_SQRT_2) * 0.004)).abs() < 1e-15);
    // Temperature 0.04 → 0.07 over 4 epochs: 0.04, 0.05, 0.06, 0.07, then 0.07.
    let t = |e| temperature_schedule(0.04, 0.07, 4, e).unwrap();
    for (e, want) in [
        (0, 0.04),
        (1, 0.05),
        (2, 0.06),
        (3, 0.07),
        (4, 0.07),
        (99, 0.07),
    ] {
        assert!((t(e) - want).abs() < 1e-15, "epoch {e}: {}", t(e));
    }
}
