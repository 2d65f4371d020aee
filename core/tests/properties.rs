//! Property tests of the PatchMix semantics (proptest).

use patchmix_core::{
    ImageShape, LabelSpec, MixGeometry, apply_nchw, apply_patches, cosine_schedule, fill_inverse,
    fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets, fill_permutation,
    fill_source, momentum_schedule, patchify, temperature_schedule, unpatchify,
};
use proptest::prelude::*;

/// `(B, grid, m, perm)` with `perm` either seeded or an arbitrary shuffle.
fn plan_params() -> impl Strategy<Value = (usize, usize, usize, Vec<u32>)> {
    (1usize..7, 1usize..7)
        .prop_flat_map(|(b, grid)| {
            let t = grid * grid;
            let shuffled = Just((0..t as u32).collect::<Vec<u32>>()).prop_shuffle();
            let seeded = any::<u64>().prop_map(move |seed| {
                let mut p = vec![0u32; t];
                fill_permutation(seed, &mut p).unwrap();
                p
            });
            (Just(b), Just(grid), 1..=t, prop_oneof![shuffled, seeded])
        })
        .prop_map(|(b, g, m, p)| (b, g, m, p))
}

fn source_of(b: usize, grid: usize, m: usize, perm: &[u32]) -> (MixGeometry, Vec<u32>) {
    let g = MixGeometry::new(b, grid, m).unwrap();
    let mut source = vec![0u32; g.total_tokens()];
    fill_source(&g, perm, &mut source).unwrap();
    (g, source)
}

fn inverse(perm: &[u32]) -> Vec<u32> {
    let mut inv = vec![0u32; perm.len()];
    fill_inverse(perm, &mut inv).unwrap();
    inv
}

proptest! {
    #[test]
    fn inverse_composed_with_perm_is_identity(seed: u64, t in 0usize..300) {
        let mut perm = vec![0u64; t];
        fill_permutation(seed, &mut perm).unwrap();
        let mut inv = vec![0usize; t];
        fill_inverse(&perm, &mut inv).unwrap();
        for j in 0..t {
            prop_assert_eq!(inv[perm[j] as usize], j);
            prop_assert_eq!(perm[inv[j]] as usize, j);
        }
    }

    #[test]
    fn gather_is_a_bijection((b, grid, m, perm) in plan_params()) {
        let (g, source) = source_of(b, grid, m, &perm);
        let mut sorted = source.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..g.total_tokens() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn gather_matches_the_closed_form((b, grid, m, perm) in plan_params()) {
        // source[b·T + t] = ((b + ⌊inv[t]/S⌋) mod B)·T + t for inv[t] < m·S, else b·T + t.
        let (g, source) = source_of(b, grid, m, &perm);
        let inv = inverse(&perm);
        let (t_count, s) = (g.tokens(), g.group_size());
        for bb in 0..b {
            for t in 0..t_count {
                let j = inv[t] as usize;
                let want = if j < g.mixed_tokens() {
                    ((bb + j / s) % b) * t_count + t
                } else {
                    bb * t_count + t
                };
                prop_assert_eq!(source[bb * t_count + t] as usize, want);
            }
        }
    }

    #[test]
    fn each_mixed_image_holds_s_tokens_per_source_and_its_own_tail(
        (b, grid, m, perm) in plan_params()
    ) {
        let (g, source) = source_of(b, grid, m, &perm);
        let inv = inverse(&perm);
        let (t_count, s) = (g.tokens(), g.group_size());
        for bb in 0..b {
            let mut from = vec![0usize; b];
            for t in 0..t_count {
                let src = source[bb * t_count + t] as usize;
                // Tokens stay at their place in the image.
                prop_assert_eq!(src % t_count, t);
                if inv[t] as usize >= g.mixed_tokens() {
                    prop_assert_eq!(src, bb * t_count + t, "tail token from elsewhere");
                } else {
                    from[src / t_count] += 1;
                }
            }
            let mut want = vec![0usize; b];
            for i in 0..m {
                want[(bb + i) % b] += s;
            }
            prop_assert_eq!(from, want);
        }
    }

    #[test]
    fn soft_label_rows_sum_to_one(
        b in 1usize..24, m in 1usize..24, world in 1usize..4, rank_seed: usize,
        s in 0.0f64..=1.0,
    ) {
        let spec = LabelSpec::new(b, world, rank_seed % world, s).unwrap();
        let n = spec.num_classes();
        let mut out = vec![0.0f64; spec.len()];
        for which in 0..3 {
            match which {
                0 => fill_origin_targets(&spec, &mut out).unwrap(),
                1 => fill_mix_to_origin_targets(&spec, m, &mut out).unwrap(),
                _ => fill_mix_to_mix_targets(&spec, m, &mut out).unwrap(),
            }
            for row in out.chunks(n) {
                let sum: f64 = row.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-12, "kind {which}: row sums to {sum}");
            }
        }
        let mut out32 = vec![0.0f32; spec.len()];
        fill_mix_to_mix_targets(&spec, m, &mut out32).unwrap();
        for row in out32.chunks(n) {
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            prop_assert!((sum - 1.0).abs() < 1e-5, "f32 row sums to {sum}");
        }
    }

    #[test]
    fn mix_to_origin_weights_are_token_provenance(
        b in 1usize..7, grid in 1usize..7, m_choice: usize, seed: u64,
    ) {
        let t_count = grid * grid;
        let divisors: Vec<usize> = (1..=t_count).filter(|d| t_count % d == 0).collect();
        let m = divisors[m_choice % divisors.len()];
        let mut perm = vec![0u32; t_count];
        fill_permutation(seed, &mut perm).unwrap();
        let (_, source) = source_of(b, grid, m, &perm);
        let spec = LabelSpec::single(b, 0.0).unwrap();
        let mut labels = vec![0.0f64; spec.len()];
        fill_mix_to_origin_targets(&spec, m, &mut labels).unwrap();
        for bb in 0..b {
            for x in 0..b {
                let count = (0..t_count)
                    .filter(|&t| source[bb * t_count + t] as usize / t_count == x)
                    .count();
                let share = count as f64 / t_count as f64;
                prop_assert!((labels[bb * b + x] - share).abs() < 1e-12,
                    "row {bb}, col {x}: label {} vs provenance {share}", labels[bb * b + x]);
            }
        }
    }

    #[test]
    fn mix_to_mix_weight_of_offset_d(m in 1usize..12, extra in 0usize..10) {
        let b = 2 * m - 1 + extra; // B ≥ 2m − 1
        let spec = LabelSpec::single(b, 0.0).unwrap();
        let mut labels = vec![0.0f64; spec.len()];
        fill_mix_to_mix_targets(&spec, m, &mut labels).unwrap();
        let (mi, bi) = (m as i64, b as i64);
        for row in 0..bi {
            for col in 0..bi {
                // The offset d in (−B/2, B/2] closest to col − row, as |d| < m ≤ B/2 + 1.
                let mut want = 0.0;
                for d in -(mi - 1)..mi {
                    if (row + d).rem_euclid(bi) == col {
                        want += (mi - d.abs()) as f64 / (mi * mi) as f64;
                    }
                }
                let got = labels[(row * bi + col) as usize];
                prop_assert!((got - want).abs() < 1e-15, "({row}, {col}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn rank_offsets_and_smoothing(
        b in 1usize..10, m in 1usize..8, world in 1usize..5, rank_seed: usize,
        s in 0.0f64..=1.0,
    ) {
        let rank = rank_seed % world;
        let spec = LabelSpec::new(b, world, rank, s).unwrap();
        let plain = LabelSpec::single(b, 0.0).unwrap();
        let n = spec.num_classes();
        let off = s / n as f64;
        let mut out = vec![0.0f64; spec.len()];
        let mut raw = vec![0.0f64; plain.len()];
        for which in 0..3 {
            match which {
                0 => {
                    fill_origin_targets(&spec, &mut out).unwrap();
                    fill_origin_targets(&plain, &mut raw).unwrap();
                }
                1 => {
                    fill_mix_to_origin_targets(&spec, m, &mut out).unwrap();
                    fill_mix_to_origin_targets(&plain, m, &mut raw).unwrap();
                }
                _ => {
                    fill_mix_to_mix_targets(&spec, m, &mut out).unwrap();
                    fill_mix_to_mix_targets(&plain, m, &mut raw).unwrap();
                }
            }
            for row in 0..b {
                for col in 0..n {
                    let got = out[row * n + col];
                    let want = if (rank * b..rank * b + b).contains(&col) {
                        (1.0 - s) * raw[row * b + col - rank * b] + off
                    } else {
                        off
                    };
                    prop_assert!((got - want).abs() < 1e-12, "kind {which} ({row}, {col})");
                    prop_assert!(got >= off - 1e-15);
                }
            }
        }
    }

    #[test]
    fn nchw_gather_equals_patchify_gather_unpatchify(
        (b, grid, m, perm) in plan_params(), c in 1usize..4, p in 1usize..4,
    ) {
        let (g, source) = source_of(b, grid, m, &perm);
        let shape = ImageShape::square(c, grid * p);
        let len = shape.batch_len(b).unwrap();
        let images: Vec<u16> = (0..len).map(|i| i as u16).collect();
        let mut direct = vec![0u16; len];
        apply_nchw(&g, &source, shape, &images, &mut direct).unwrap();
        let (mut patches, mut mixed, mut back) = (vec![0; len], vec![0; len], vec![0; len]);
        patchify(b, grid, shape, &images, &mut patches).unwrap();
        apply_patches(&g, &source, c * p * p, &patches, &mut mixed).unwrap();
        unpatchify(b, grid, shape, &mixed, &mut back).unwrap();
        prop_assert_eq!(direct, back);
    }

    #[test]
    fn cosine_schedule_end_points_and_monotonicity(
        base in 0.0f64..10.0, drop in 0.0f64..10.0, start in -1.0f64..10.0,
        total in 1u64..200, warmup_seed: u64,
    ) {
        let final_value = base - drop; // base ≥ final
        let warmup = warmup_seed % (total + 1);
        let at = |i| cosine_schedule(base, final_value, total, warmup, start, i).unwrap();
        if warmup > 0 {
            prop_assert_eq!(at(0), start);
            prop_assert_eq!(at(warmup - 1), if warmup > 1 { base } else { start });
            for i in 1..warmup {
                let (a, z) = (at(i - 1), at(i));
                let ordered = if start <= base { a <= z } else { a >= z };
                prop_assert!(ordered, "warm-up not monotone at {}", i);
            }
        }
        if warmup < total {
            prop_assert!((at(warmup) - base).abs() <= 1e-12 * base.abs().max(1.0));
            let n = (total - warmup) as f64;
            let last = final_value
                + 0.5 * (base - final_value) * (1.0 + (core::f64::consts::PI * (n - 1.0) / n).cos());
            prop_assert!((at(total - 1) - last).abs() < 1e-12);
            prop_assert!(at(total - 1) >= final_value);
            for i in warmup + 1..total {
                prop_assert!(at(i) <= at(i - 1) + 1e-15, "cosine rose at {}", i);
            }
        }
        prop_assert!(cosine_schedule(base, final_value, total, warmup, start, total).is_err());
    }

    #[test]
    fn momentum_end_points_and_monotonicity(m0 in 0.0f64..=1.0, epochs in 1u32..400) {
        let e_total = f64::from(epochs);
        prop_assert!((momentum_schedule(m0, 0.0, e_total).unwrap() - m0).abs() < 1e-15);
        prop_assert_eq!(momentum_schedule(m0, e_total, e_total).unwrap(), 1.0);
        let mut prev = m0;
        for k in 1..=4 * epochs {
            let v = momentum_schedule(m0, f64::from(k) / 4.0, e_total).unwrap();
            prop_assert!(v >= prev - 1e-15 && v <= 1.0);
            prev = v;
        }
    }

    #[test]
    fn temperature_end_points_and_monotonicity(
        t0 in 0.001f64..1.0, t1 in 0.001f64..1.0, warmup in 0u64..50,
    ) {
        let at = |e| temperature_schedule(t0, t1, warmup, e).unwrap();
        if warmup > 1 {
            prop_assert_eq!(at(0), t0);
        }
        if warmup > 0 {
            prop_assert_eq!(at(warmup - 1), if warmup > 1 { t1 } else { t0 });
        }
        prop_assert_eq!(at(warmup), t1);
        prop_assert_eq!(at(warmup + 1000), t1);
        for e in 1..warmup {
            let ordered = if t0 <= t1 { at(e - 1) <= at(e) } else { at(e - 1) >= at(e) };
            prop_assert!(ordered, "temperature not monotone at {}", e);
        }
    }
}
