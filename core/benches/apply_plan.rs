//! Applying a PatchMix plan to a 512×3×32×32 f32 NCHW batch (grid 16, patch 2, m = 2), compared
//! with a plain `copy_from_slice` of the same bytes in the same run.
//!
//! Run with `cargo bench -p patchmix-core --bench apply_plan`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use patchmix_core::{ImageShape, MixGeometry, MixPlan, apply_patches, fill_source, patchify};
use std::hint::black_box;

const BATCH: usize = 512;
const CHANNELS: usize = 3;
const SIDE: usize = 32;
const GRID: usize = 16;
const MIX: usize = 2;

fn bench(c: &mut Criterion) {
    let shape = ImageShape::square(CHANNELS, SIDE);
    let len = shape.batch_len(BATCH).unwrap();
    let images: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let mut out = vec![0.0f32; len];
    let plan = MixPlan::from_seed(BATCH, GRID, MIX, 0).unwrap();

    let mut group = c.benchmark_group("512x3x32x32_f32");
    group.throughput(Throughput::Bytes((len * size_of::<f32>()) as u64));
    group.bench_function("copy_from_slice", |b| {
        b.iter(|| out.copy_from_slice(black_box(&images)))
    });
    group.bench_function("apply_nchw", |b| {
        b.iter(|| {
            plan.apply_nchw(shape, black_box(&images), &mut out)
                .unwrap()
        })
    });
    let mut patches = vec![0.0f32; len];
    patchify(BATCH, GRID, shape, &images, &mut patches).unwrap();
    let token_len = CHANNELS * (SIDE / GRID) * (SIDE / GRID);
    group.bench_function("apply_patches", |b| {
        b.iter(|| {
            apply_patches(
                plan.geometry(),
                plan.source(),
                token_len,
                black_box(&patches),
                &mut out,
            )
            .unwrap()
        })
    });
    group.finish();

    let geometry = MixGeometry::new(BATCH, GRID, MIX).unwrap();
    let mut source = vec![0u32; geometry.total_tokens()];
    c.bench_function("fill_source_512x256", |b| {
        b.iter(|| fill_source(&geometry, black_box(plan.perm()), &mut source).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
