//! The loader's contract: deterministic whatever the thread count, drop-last, reshuffled per
//! epoch, exact resume, errors that stop the epoch.

use std::fs;
use std::sync::Arc;

use patchmix_export::data::{Dataset, DatasetRef, Split};
use patchmix_train::augment::{AugmentConfig, MultiCrop, Pipeline};
use patchmix_train::data::{Batch, Loader, LoaderConfig, LoaderError};

fn synthetic(n: usize) -> Arc<Dataset> {
    let spec = format!("synthetic:{n},size=16,classes=5,seed=3");
    Arc::new(Dataset::synthetic(spec.parse().unwrap(), Split::Train))
}

fn pipeline(multi: bool) -> Pipeline {
    let mut cfg = AugmentConfig::new(8, 0.2);
    if multi {
        cfg.multi_crop = Some(MultiCrop {
            n_local: 2,
            local_size: 4,
            global_crop: 0.5,
        });
    }
    Pipeline::new(cfg).unwrap()
}

fn loader(ds: Arc<Dataset>, threads: usize, batch_size: usize, multi: bool) -> Loader {
    let cfg = LoaderConfig {
        batch_size,
        seed: 17,
        threads,
        prefetch: 2,
    };
    Loader::new(ds, pipeline(multi), cfg).unwrap()
}

fn collect(l: &Loader, epoch: u64, start: usize) -> Vec<Batch> {
    l.epoch_from(epoch, start).map(Result::unwrap).collect()
}

#[test]
fn same_bytes_with_one_or_two_threads() {
    let ds = synthetic(40);
    let one = collect(&loader(ds.clone(), 1, 8, true), 3, 0);
    let two = collect(&loader(ds, 2, 8, true), 3, 0);
    assert_eq!(one.len(), 5);
    assert_eq!(one, two);
    let b = &one[0];
    assert_eq!(b.view1.shape(), &[8, 3, 8, 8]);
    assert_eq!(b.view2.shape(), &[8, 3, 8, 8]);
    assert_eq!(b.locals.len(), 2);
    assert_eq!(b.locals[1].shape(), &[8, 3, 4, 4]);
    assert_ne!(b.view1, b.view2);
    assert!(b.view1.iter().all(|v| v.is_finite()));
}

#[test]
fn drops_the_last_partial_batch_and_covers_distinct_samples() {
    let ds = synthetic(20);
    let l = loader(ds.clone(), 2, 8, false);
    assert_eq!(l.steps_per_epoch(), 2);
    let batches = collect(&l, 0, 0);
    assert_eq!(batches.len(), 2);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 16);
    assert!(seen.iter().all(|&i| i < 20));
    for b in &batches {
        assert_eq!(b.len(), 8);
        assert!(b.locals.is_empty());
        let want: Vec<u32> = b.indices.iter().map(|&i| ds.label(i)).collect();
        assert_eq!(b.labels, want);
    }
    assert!(l.batch(0, 2).is_err());
}

#[test]
fn epochs_are_reshuffled() {
    let l = loader(synthetic(32), 2, 8, false);
    assert_ne!(l.epoch_order(0), l.epoch_order(1));
    let e0 = collect(&l, 0, 0);
    let e1 = collect(&l, 1, 0);
    assert_ne!(e0[0].indices, e1[0].indices);
    assert_ne!(e0[0].view1, e1[0].view1);
    // The same epoch twice is the same.
    assert_eq!(e0, collect(&l, 0, 0));
}

#[test]
fn resume_from_step_k_equals_the_tail_of_a_full_epoch() {
    let l = loader(synthetic(48), 2, 8, true);
    let full = collect(&l, 5, 0);
    for k in [0, 1, 4, 5] {
        let tail = collect(&l, 5, k);
        assert_eq!(tail, full[k..], "resume at step {k}");
    }
    assert!(collect(&l, 5, 6).is_empty());
    assert!(collect(&l, 5, 99).is_empty());
    assert_eq!(l.batch(5, 3).unwrap(), full[3]);
    // A loader with another thread count resumes to the same bytes.
    let other = loader(synthetic(48), 1, 8, true);
    assert_eq!(collect(&other, 5, 4), full[4..]);
}

#[test]
fn dropping_the_iterator_early_stops_the_producer() {
    let l = loader(synthetic(64), 2, 4, false);
    let mut it = l.epoch(0);
    assert!(it.next().unwrap().is_ok());
    drop(it); // must not hang
}

#[test]
fn bad_settings_and_unreadable_images_are_errors() {
    let ds = synthetic(10);
    let cfg = |batch_size| LoaderConfig {
        batch_size,
        ..LoaderConfig::default()
    };
    let e = Loader::new(ds.clone(), pipeline(false), cfg(0)).unwrap_err();
    assert!(
        e.to_string().contains("batch_size must be at least 1"),
        "{e}"
    );
    let e = Loader::new(ds, pipeline(false), cfg(11)).unwrap_err();
    assert!(
        e.to_string().contains("fewer images than one batch of 11"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        let c = dir.path().join(class);
        fs::create_dir(&c).unwrap();
        for i in 0..3 {
            image::RgbImage::from_pixel(12, 10, image::Rgb([i * 50, 9, 9]))
                .save(c.join(format!("{i}.png")))
                .unwrap();
        }
    }
    fs::write(dir.path().join("b/1.png"), b"broken").unwrap();
    let ds = Dataset::open(&DatasetRef::new(dir.path(), Split::Train)).unwrap();
    let l = Loader::new(
        Arc::new(ds),
        pipeline(false),
        LoaderConfig {
            batch_size: 6,
            threads: 2,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let results: Vec<_> = l.epoch(0).collect();
    assert_eq!(results.len(), 1);
    match &results[0] {
        Err(LoaderError::Data(e)) => {
            assert!(e.to_string().contains("1.png: cannot decode image"), "{e}")
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn loads_real_mnist() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k");
    let ds = Arc::new(Dataset::open(&DatasetRef::new(root, Split::Test)).unwrap());
    let mut cfg = AugmentConfig::new(32, 0.08);
    cfg.mean = [0.1307; 3];
    cfg.std = [0.3081; 3];
    let l = Loader::new(
        ds,
        Pipeline::new(cfg).unwrap(),
        LoaderConfig {
            batch_size: 16,
            seed: 1,
            threads: 2,
            prefetch: 1,
        },
    )
    .unwrap();
    assert_eq!(l.steps_per_epoch(), 125);
    let b = l.epoch(0).next().unwrap().unwrap();
    assert_eq!(b.view1.shape(), &[16, 3, 32, 32]);
    let mean = b.view1.mean().unwrap();
    assert!(mean.is_finite() && mean.abs() < 3.0, "{mean}");
}

/// Data-parallel ranks: the W shards of each global batch, stacked in rank order, are exactly
/// the batch one process loads (same samples, same augmentation draws, same local crops), for
/// every step of an epoch and from a resume point.
#[test]
fn rank_shards_stack_into_the_whole_batch() {
    use ndarray::{Axis, concatenate};
    use patchmix_train::data::Shard;
    let ds = synthetic(40);
    let whole = collect(&loader(ds.clone(), 2, 8, true), 2, 1);
    let shards: Vec<Vec<Batch>> = (0..2)
        .map(|r| {
            let l = loader(ds.clone(), 1, 8, true)
                .sharded(Shard::new(r, 2, 8).unwrap())
                .unwrap();
            collect(&l, 2, 1)
        })
        .collect();
    assert_eq!(whole.len(), 4);
    for (i, w) in whole.iter().enumerate() {
        let (a, b) = (&shards[0][i], &shards[1][i]);
        assert_eq!(a.view1.shape(), &[4, 3, 8, 8]);
        let cat = |x: &ndarray::Array4<f32>, y: &ndarray::Array4<f32>| {
            concatenate(Axis(0), &[x.view(), y.view()]).unwrap()
        };
        assert_eq!(cat(&a.view1, &b.view1), w.view1, "step {i} view 1");
        assert_eq!(cat(&a.view2, &b.view2), w.view2, "step {i} view 2");
        for j in 0..2 {
            assert_eq!(
                cat(&a.locals[j], &b.locals[j]),
                w.locals[j],
                "step {i} crop {j}"
            );
        }
        assert_eq!([&a.indices[..], &b.indices[..]].concat(), w.indices);
        assert_eq!([&a.labels[..], &b.labels[..]].concat(), w.labels);
    }
}

#[test]
fn a_batch_that_does_not_split_over_the_ranks_is_refused() {
    use patchmix_train::data::Shard;
    let e = Shard::new(0, 3, 8).unwrap_err().to_string();
    assert!(e.contains("batch 8") && e.contains("3 ranks"), "{e}");
    assert!(Shard::new(2, 2, 8).is_err());
    let l = loader(synthetic(20), 1, 6, false);
    assert!(l.sharded(Shard::new(1, 3, 6).unwrap()).is_ok());
}
