//! Loader throughput on CIFAR-like data: 32×32 images in memory, batch 64, the original two
//! 32×32 views, 2 worker threads. `cargo bench -p patchmix-train --bench loader`; criterion
//! reports the throughput in images per second.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use patchmix_export::data::{Dataset, Split};
use patchmix_train::augment::{AugmentConfig, Pipeline};
use patchmix_train::data::{Loader, LoaderConfig};

const BATCH: usize = 64;
const STEPS: usize = 8;

/// CIFAR-10 records (label + CHW pixels) made from the synthetic generator, read back through
/// the CIFAR reader so the images sit in memory as real CIFAR does.
fn cifar_like(n: usize) -> Dataset {
    let synth = Dataset::synthetic(
        format!("synthetic:{n},size=32,classes=10,seed=1")
            .parse()
            .expect("spec"),
        Split::Train,
    );
    let mut bytes = Vec::with_capacity(n * 3073);
    for i in 0..n {
        let img = synth.image(i).expect("synthetic image");
        bytes.push(synth.label(i) as u8);
        for c in 0..3 {
            bytes.extend(img.pixels().map(|p| p.0[c]));
        }
    }
    Dataset::cifar_from_readers(false, [&bytes[..]]).expect("CIFAR records")
}

fn bench_loader(c: &mut Criterion) {
    let ds = Arc::new(cifar_like(BATCH * STEPS));
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
