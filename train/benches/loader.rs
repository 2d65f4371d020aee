//! Loader throughput on CIFAR-like data: 32×32 images in memory, batch 64, the original two
//! 32×32 views, 2 worker threads. `cargo bench -p patchmix-train --bench loader`; criterion
//! reports the throughput in images per second.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use patchmix_export::data::Dataset;
use patchmix_train::augment::{AugmentConfig, Pipeline};
use patchmix_train::data::{Loader, LoaderConfig};

const BATCH: usize = 64;
const STEPS: usize = 8;

fn bench_loader(c: &mut Criterion) {
    let ds = Arc::new(Dataset::cifar_like(BATCH * STEPS).expect("CIFAR-like records"));
    let pipe = Pipeline::new(AugmentConfig::new(32, 0.08)).expect("pipeline");
    let cfg = LoaderConfig {
        batch_size: BATCH,
        seed: 0,
        threads: 2,
        prefetch: 2,
    };
    let loader = Loader::new(ds, pipe, cfg).expect("loader");
    let mut group = c.benchmark_group("loader");
    group.throughput(Throughput::Elements((BATCH * STEPS) as u64));
    group.sample_size(10);
    let mut epoch = 0u64;
    group.bench_function("cifar32_b64_2threads_epoch", |b| {
        b.iter(|| {
            epoch += 1;
            for batch in loader.epoch(epoch) {
                black_box(batch.expect("batch"));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench_loader);
criterion_main!(benches);
