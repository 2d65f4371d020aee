//! kNN search benchmarks: blocked top-k cosine search and the full weighted-kNN report.
//!
//! `cargo bench -p patchmix-export --no-default-features --bench knn`
//! Set `PATCHMIX_BENCH_LARGE=1` to include the 50k × 10k × 192 case (tens of seconds per
//! iteration on a small machine).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use patchmix_export::knn::{
    DEFAULT_KS, DINO_TEMPERATURE, FeatureIndex, SearchOptions, knn_report_with,
};

/// Deterministic pseudo-random features in [-1, 1) (xorshift64*), clustered by label so the
/// search is not degenerate.
fn features(rows: usize, dim: usize, classes: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let centres: Vec<f32> = (0..classes * dim).map(|_| next()).collect();
    let labels: Vec<u32> = (0..rows).map(|i| (i % classes) as u32).collect();
    let feats = Array2::from_shape_fn((rows, dim), |(i, j)| {
        centres[labels[i] as usize * dim + j] + 0.8 * next()
    });
    (feats, labels)
}

fn bench_search(c: &mut Criterion) {
    let dim = 192;
    let mut g = c.benchmark_group("knn_search_top200");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut sizes = vec![(10_000usize, 2_000usize)];
    if std::env::var_os("PATCHMIX_BENCH_LARGE").is_some() {
        sizes.push((50_000, 10_000));
    }
    for (n_train, n_test) in sizes {
        let (tf, tl) = features(n_train, dim, 100, 1);
        let index = FeatureIndex::new(tf, tl, None).unwrap();
        let (q, _) = features(n_test, dim, 100, 2);
        g.throughput(Throughput::Elements((n_train * n_test) as u64));
        for block_rows in [64usize, 256, 1024] {
            let opts = SearchOptions {
                block_rows,
                parallel: true,
            };
            g.bench_with_input(
                BenchmarkId::new(
                    format!("{n_train}x{n_test}x{dim}"),
                    format!("block{block_rows}"),
                ),
                &opts,
                |b, opts| b.iter(|| black_box(index.search(q.view(), 200, opts).unwrap())),
            );
        }
        let serial = SearchOptions {
            block_rows: 256,
            parallel: false,
        };
        g.bench_with_input(
            BenchmarkId::new(format!("{n_train}x{n_test}x{dim}"), "block256-serial"),
            &serial,
            |b, opts| b.iter(|| black_box(index.search(q.view(), 200, opts).unwrap())),
        );
    }
    g.finish();
}

fn bench_report(c: &mut Criterion) {
    let dim = 192;
    let (n_train, n_test, classes) = (10_000, 2_000, 1000);
    let (tf, tl) = features(n_train, dim, classes, 3);
    let index = FeatureIndex::new(tf, tl, None).unwrap();
    let (q, ql) = features(n_test, dim, classes, 4);
    let mut g = c.benchmark_group("knn_report");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("10000x2000x192_1000classes_k10-200", |b| {
        b.iter(|| {
            black_box(
                knn_report_with(
                    &index,
                    q.view(),
                    &ql,
                    &DEFAULT_KS,
                    DINO_TEMPERATURE,
                    &SearchOptions::default(),
                )
                .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_search, bench_report);
criterion_main!(benches);
