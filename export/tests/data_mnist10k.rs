//! Reads the real MNIST subset shipped in `data/mnist10k` (see its README for provenance).

use std::path::PathBuf;

use patchmix_export::data::{Dataset, DatasetKind, DatasetRef, Preprocess, Split};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k")
}

fn counts(ds: &Dataset) -> Vec<usize> {
    let mut c = vec![0; ds.num_classes()];
    for &l in ds.labels() {
        c[l as usize] += 1;
    }
    c
}

#[test]
fn mnist10k_counts_match_its_readme() {
    let train = Dataset::open(&DatasetRef::new(root(), Split::Train)).unwrap();
    let test = Dataset::open(&format!("{}:test", root().display()).parse().unwrap()).unwrap();
    assert_eq!(train.kind(), DatasetKind::Mnist);
    assert_eq!((train.len(), test.len()), (8000, 2000));
    assert_eq!(train.image_size(), Some((28, 28)));
    assert_eq!(
        counts(&train),
        [823, 914, 792, 826, 784, 681, 798, 848, 755, 779]
    );
    assert_eq!(
        counts(&test),
        [178, 213, 199, 206, 196, 182, 216, 222, 189, 199]
    );
}

#[test]
fn mnist10k_images_look_like_digits() {
    let train = Dataset::open(&DatasetRef::new(root(), Split::Train)).unwrap();
    for i in [0, 1, 7999] {
        let img = train.image(i).unwrap();
        assert_eq!(img.dimensions(), (28, 28));
        // Grey replicated to RGB; a dark background with some ink.
        assert!(img.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
        let ink = img.pixels().filter(|p| p.0[0] > 128).count();
        assert!((30..400).contains(&ink), "image {i}: {ink} ink pixels");
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    }
    let batch = Preprocess::new(32, 32).batch(&train, &[0, 1]).unwrap();
    assert_eq!(batch.shape(), &[2, 3, 32, 32]);
    // The corner is background: (0 − mean) / std.
    assert!((batch[[0, 0, 0, 0]] - (-0.485 / 0.229)).abs() < 1e-5);
}
