//! Every invalid parameter is a typed error with a message naming the parameter and its value.

use patchmix_core::{
    Error, ImageShape, LabelSpec, MixGeometry, MixPlan, apply_nchw, apply_patches, cosine_schedule,
    fill_inverse, fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets,
    fill_permutation, fill_source, momentum_schedule, patchify, temperature_schedule,
};

fn msg(err: Error) -> String {
    err.to_string()
}

#[test]
fn geometry_errors() {
    assert_eq!(MixGeometry::new(2, 4, 0), Err(Error::ZeroMix));
    assert_eq!(
        msg(MixGeometry::new(2, 2, 5).unwrap_err()),
        "mix m = 5 exceeds the token count T = 4"
    );
    assert_eq!(MixGeometry::new(0, 4, 2), Err(Error::ZeroBatch));
    assert!(msg(Error::ZeroBatch).contains("batch B = 0"));
    assert_eq!(MixGeometry::new(2, 0, 1), Err(Error::ZeroGrid));
    assert!(matches!(
        MixGeometry::new(2, usize::MAX, 1),
        Err(Error::SizeOverflow { .. })
    ));
    assert!(matches!(
        MixGeometry::new(usize::MAX, 2, 1),
        Err(Error::SizeOverflow { .. })
    ));
    // m = T is allowed (S = 1); mix_source rejects positions out of range.
    let g = MixGeometry::new(1, 2, 4).unwrap();
    assert_eq!(g.mix_source(0, 4), None);
}

#[test]
fn permutation_errors() {
    let g = MixGeometry::new(2, 2, 2).unwrap();
    let mut source = [0u32; 8];
    assert_eq!(
        fill_source(&g, &[0u32, 1, 2], &mut source),
        Err(Error::PermutationLength {
            expected: 4,
            actual: 3
        })
    );
    let err = fill_source(&g, &[0u32, 1, 4, 2], &mut source).unwrap_err();
    assert_eq!(
        err,
        Error::PermutationOutOfRange {
            position: 2,
            value: 4,
            tokens: 4
        }
    );
    assert_eq!(msg(err), "perm[2] = 4 is not a token index in 0..4");
    let err = fill_source(&g, &[0i64, -1, 2, 3], &mut source).unwrap_err();
    assert_eq!(msg(err), "perm[1] = -1 is not a token index in 0..4");
    let err = fill_source(&g, &[3u32, 1, 3, 2], &mut source).unwrap_err();
    assert_eq!(
        err,
        Error::PermutationDuplicate {
            value: 3,
            first: 0,
            second: 2
        }
    );
    assert_eq!(msg(err), "perm[0] = perm[2] = 3: perm is not a permutation");
    // Stale contents of the inverse buffer cannot fool the check.
    let mut inv = [0u32, 1, 2, 3];
    assert!(fill_inverse(&[0u32, 1, 1, 3], &mut inv).is_err());
    assert!(matches!(
        MixPlan::from_permutation(2, 2, 2, &[0usize, 0, 1, 2]),
        Err(Error::PermutationDuplicate { .. })
    ));
}

#[test]
fn buffer_length_errors() {
    let g = MixGeometry::new(2, 2, 2).unwrap();
    let mut short = [0u32; 7];
    let err = fill_source(&g, &[0u32, 1, 2, 3], &mut short).unwrap_err();
    assert_eq!(msg(err), "source has length 7 but must have length 8");
    let mut inv = [0u32; 3];
    assert!(matches!(
        fill_inverse(&[0u32, 1, 2, 3], &mut inv),
        Err(Error::BufferLength { buffer: "inv", .. })
    ));
    let source = [0u32; 8];
    let input = [0.0f32; 8];
    let mut output = [0.0f32; 9];
    assert_eq!(
        apply_patches(&g, &source, 1, &input, &mut output),
        Err(Error::BufferLength {
            buffer: "output",
            expected: 8,
            actual: 9
        })
    );
    let bad_source = [0u32, 1, 2, 3, 4, 5, 6, 8];
    let mut output = [7.0f32; 8];
    let err = apply_patches(&g, &bad_source, 1, &input, &mut output).unwrap_err();
    assert_eq!(msg(err), "source[7] = 8 is not a token index in 0..8");
    assert_eq!(output, [7.0; 8], "output untouched on error");
    let spec = LabelSpec::single(3, 0.0).unwrap();
    let mut labels = [0.0f32; 8];
    assert!(matches!(
        fill_origin_targets(&spec, &mut labels),
        Err(Error::BufferLength {
            buffer: "labels",
            expected: 9,
            actual: 8
        })
    ));
}

#[test]
fn image_errors() {
    let g = MixGeometry::new(1, 3, 1).unwrap();
    let source = [0u32, 1, 2, 3, 4, 5, 6, 7, 8];
    let input = [0u8; 64];
    let mut output = [0u8; 64];
    let err = apply_nchw(&g, &source, ImageShape::square(1, 8), &input, &mut output).unwrap_err();
    assert_eq!(err, Error::GridDoesNotDivide { size: 8, grid: 3 });
    assert_eq!(msg(err), "grid = 3 does not divide the image side 8");
    let err = apply_nchw(&g, &source, ImageShape::new(1, 9, 6), &input, &mut output).unwrap_err();
    assert_eq!(msg(err), "image height H = 9 differs from width W = 6");
    let err = apply_nchw(&g, &source, ImageShape::square(0, 9), &input, &mut output).unwrap_err();
    assert_eq!(err, Error::ZeroChannels);
    let err = apply_nchw(&g, &source, ImageShape::square(1, 0), &input, &mut output).unwrap_err();
    assert_eq!(err, Error::GridDoesNotDivide { size: 0, grid: 3 });
    let err = apply_nchw(&g, &source, ImageShape::square(1, 9), &input, &mut output).unwrap_err();
    assert_eq!(msg(err), "input has length 64 but must have length 81");
    let err = patchify(0, 2, ImageShape::square(1, 4), &[0u8; 16], &mut [0u8; 16]).unwrap_err();
    assert_eq!(err, Error::ZeroBatch);
}

#[test]
fn index_type_errors() {
    // B·T − 1 = 255 does not fit i8-sized types; use u32 vs a geometry too large for u32.
    let g = MixGeometry::new(1 << 17, 1 << 8, 1).unwrap(); // B·T = 2^33
    let perm: Vec<u32> = (0..1 << 16).collect();
    let mut source: Vec<u32> = Vec::new();
    // The length check comes first; then the index type (a correct length would be 2^33).
    assert!(matches!(
        fill_source(&g, &perm, &mut source),
        Err(Error::BufferLength { .. })
    ));
    assert!(matches!(
        MixPlan::from_seed(1 << 17, 1 << 8, 1, 0),
        Err(Error::IndexOverflow {
            index_type: "u32",
            ..
        })
    ));
    let mut perm = vec![0i32; 4];
    fill_permutation(1, &mut perm).unwrap();
}

#[test]
fn label_errors() {
    assert_eq!(LabelSpec::new(0, 1, 0, 0.0), Err(Error::ZeroBatch));
    assert_eq!(LabelSpec::new(2, 0, 0, 0.0), Err(Error::ZeroWorldSize));
    assert_eq!(
        msg(LabelSpec::new(2, 2, 3, 0.0).unwrap_err()),
        "rank = 3 is not below the world size 2"
    );
    assert_eq!(
        msg(LabelSpec::new(2, 1, 0, -0.5).unwrap_err()),
        "smoothing s = -0.5 is not a number in [0, 1]"
    );
    assert!(matches!(
        LabelSpec::new(2, 1, 0, f64::NAN),
        Err(Error::InvalidSmoothing { .. })
    ));
    let spec = LabelSpec::single(2, 0.1).unwrap();
    let mut out = [0.0f32; 4];
    assert_eq!(
        fill_mix_to_origin_targets(&spec, 0, &mut out),
        Err(Error::ZeroMix)
    );
    assert_eq!(
        fill_mix_to_mix_targets(&spec, 0, &mut out),
        Err(Error::ZeroMix)
    );
    // A huge m is fine (closed form, no loop over m).
    fill_mix_to_mix_targets(&spec, usize::MAX, &mut out).unwrap();
    let sum: f32 = out[..2].iter().sum();
    assert!((sum - 1.0).abs() < 1e-6);
    assert!(matches!(
        LabelSpec::new(usize::MAX, 2, 0, 0.0),
        Err(Error::SizeOverflow { .. })
    ));
}

#[test]
fn schedule_errors() {
    assert_eq!(
        msg(cosine_schedule(1.0, 0.0, 10, 11, 0.0, 0).unwrap_err()),
        "warm-up of 11 steps exceeds the schedule length 10"
    );
    assert_eq!(
        msg(cosine_schedule(1.0, 0.0, 10, 0, 0.0, 10).unwrap_err()),
        "schedule index 10 is past the schedule length 10"
    );
    assert!(matches!(
        cosine_schedule(f64::NAN, 0.0, 10, 0, 0.0, 1),
        Err(Error::InvalidScheduleValue { name: "base", .. })
    ));
    assert!(cosine_schedule(1.0, 0.0, 0, 0, 0.0, 0).is_err());
    assert_eq!(
        msg(momentum_schedule(1.5, 0.0, 10.0).unwrap_err()),
        "base momentum m0 = 1.5 is not a number in [0, 1]"
    );
    assert!(matches!(
        momentum_schedule(0.9, 11.0, 10.0),
        Err(Error::EpochOutOfRange { .. })
    ));
    assert!(momentum_schedule(0.9, 0.0, 0.0).is_err());
    assert!(momentum_schedule(0.9, f64::NAN, 10.0).is_err());
    assert_eq!(
        msg(temperature_schedule(0.0, 0.2, 3, 0).unwrap_err()),
        "schedule parameter warmup_temp = 0 is not valid (must be finite and positive)"
    );
    assert!(temperature_schedule(0.1, f64::INFINITY, 3, 0).is_err());
    // Finite parameters whose range overflows f64: an error, not NaN.
    assert!(matches!(
        cosine_schedule(f64::MAX, -f64::MAX, 10, 0, 0.0, 5),
        Err(Error::ScheduleOverflow { .. })
    ));
    assert!(matches!(
        cosine_schedule(f64::MAX, 0.0, 10, 4, -f64::MAX, 0),
        Err(Error::ScheduleOverflow { .. })
    ));
    // Found by fuzzing: π·e overflowed for e near f64::MAX; the momentum stays in [m0, 1].
    let e = 1.6e308;
    let m = momentum_schedule(1e-300, e, e).unwrap();
    assert_eq!(m, 1.0);
    assert!((0.0..=1.0).contains(&momentum_schedule(0.5, e / 2.0, e).unwrap()));
}

#[test]
fn every_error_has_a_distinct_negative_code_and_message() {
    let errors = [
        Error::ZeroBatch,
        Error::ZeroGrid,
        Error::ZeroMix,
        Error::MixExceedsTokens { mix: 1, tokens: 0 },
        Error::ZeroChannels,
        Error::NonSquareImage {
            height: 1,
            width: 2,
        },
        Error::GridDoesNotDivide { size: 1, grid: 2 },
        Error::PermutationLength {
            expected: 1,
            actual: 2,
        },
        Error::PermutationOutOfRange {
            position: 0,
            value: 0,
            tokens: 0,
        },
        Error::PermutationDuplicate {
            value: 0,
            first: 0,
            second: 1,
        },
        Error::BufferLength {
            buffer: "x",
            expected: 0,
            actual: 1,
        },
        Error::SourceOutOfRange {
            position: 0,
            value: 0,
            len: 0,
        },
        Error::SizeOverflow { what: "x" },
        Error::IndexOverflow {
            value: 0,
            index_type: "u32",
        },
        Error::InvalidSmoothing { smoothing: 2.0 },
        Error::ZeroWorldSize,
        Error::RankOutOfRange {
            rank: 1,
            world_size: 1,
        },
        Error::InvalidScheduleValue {
            name: "base",
            value: f64::NAN,
        },
        Error::WarmupExceedsTotal {
            warmup: 2,
            total: 1,
        },
        Error::ScheduleIndexOutOfRange { index: 1, len: 1 },
        Error::EpochOutOfRange {
            epoch: 2.0,
            total: 1.0,
        },
        Error::InvalidMomentum { momentum: 2.0 },
        Error::NullPointer { name: "perm" },
        Error::ScheduleOverflow {
            value: f64::INFINITY,
        },
    ];
    let mut codes: Vec<i32> = errors.iter().map(Error::code).collect();
    for (e, &c) in errors.iter().zip(&codes) {
        assert!(c < 0);
        assert_ne!(
            patchmix_core::status_message(c),
            "unknown status code",
            "{e:?}"
        );
        assert!(!e.to_string().is_empty());
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len());
}
