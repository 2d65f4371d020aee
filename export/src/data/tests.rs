//! Unit tests of the readers, detection and preprocessing on tiny files built in a tempdir.

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use image::{Rgb, RgbImage};
use proptest::prelude::*;

use super::preprocess::{center_crop, normalize_into, resize_shorter};
use super::*;

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803, n, rows, cols] {
        v.extend(u32::to_be_bytes(x));
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x801, labels.len() as u32] {
        v.extend(u32::to_be_bytes(x));
    }
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a 3-image 2×3 MNIST train split and a 1-image test split.
fn write_mnist(dir: &Path, gzip: bool) {
    let pixels: Vec<u8> = (0..18).map(|i| i * 10).collect();
    let files = [
        ("train-images-idx3-ubyte", idx_images(3, 2, 3, &pixels)),
        ("train-labels-idx1-ubyte", idx_labels(&[4, 0, 9])),
        ("t10k-images-idx3-ubyte", idx_images(1, 2, 3, &pixels[..6])),
        ("t10k-labels-idx1-ubyte", idx_labels(&[7])),
    ];
    for (name, bytes) in files {
        if gzip {
            fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn open(path: &Path, split: Split) -> Result<Dataset, DataError> {
    Dataset::open(&DatasetRef::new(path, split))
}

fn err_text(r: Result<Dataset, DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn mnist_raw_and_gz_read_the_same() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), gzip);
        let train = open(dir.path(), Split::Train).unwrap();
        assert_eq!(train.kind(), DatasetKind::Mnist);
        assert_eq!((train.len(), train.num_classes()), (3, 10));
        assert_eq!(train.labels(), &[4, 0, 9]);
        assert_eq!(train.image_size(), Some((3, 2)));
        let img = train.image(1).unwrap();
        assert_eq!(img.dimensions(), (3, 2));
        // Image 1 holds bytes 60..120 row-major; pixel (x=2, y=1) is byte 6 + 5 → 110.
        assert_eq!(img.get_pixel(2, 1).0, [110, 110, 110]);
        assert_eq!(img.get_pixel(0, 0).0, [60, 60, 60]);
        let test = open(dir.path(), Split::Test).unwrap();
        assert_eq!(
            (test.len(), test.label(0), test.split()),
            (1, 7, Split::Test)
        );
    }
}

#[test]
fn mnist_file_path_finds_its_pair_and_split() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), true);
    let ds = open(&dir.path().join("t10k-labels-idx1-ubyte.gz"), Split::Train).unwrap();
    assert_eq!((ds.len(), ds.split()), (1, Split::Test));
}

#[test]
fn mnist_truncated_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false);
    let f = dir.path().join("train-images-idx3-ubyte");
    let bytes = fs::read(&f).unwrap();
    fs::write(&f, &bytes[..16 + 7]).unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(
        e.contains("train-images-idx3-ubyte: truncated at byte 23"),
        "{e}"
    );
    assert!(
        e.contains("expected 18 pixel bytes after the 16-byte header"),
        "{e}"
    );
    // Truncated inside the header.
    fs::write(&f, &bytes[..10]).unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(e.contains("truncated at byte 10"), "{e}");
}

#[test]
fn mnist_truncated_gz_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), true);
    let f = dir.path().join("train-images-idx3-ubyte.gz");
    let bytes = fs::read(&f).unwrap();
    fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
    assert!(e.contains("truncated") || e.contains("corrupt gzip"), "{e}");
}

#[test]
fn mnist_corrupt_gz_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), true);
    let f = dir.path().join("train-labels-idx1-ubyte.gz");
    let mut bytes = fs::read(&f).unwrap();
    for b in &mut bytes[10..] {
        *b ^= 0x5a;
    }
    fs::write(&f, &bytes).unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(e.contains("train-labels-idx1-ubyte.gz"), "{e}");
}

#[test]
fn mnist_bad_magic() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false);
    // Swap the files' roles: a labels file where the images file should be.
    fs::copy(
        dir.path().join("train-labels-idx1-ubyte"),
        dir.path().join("train-images-idx3-ubyte"),
    )
    .unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(
        e.contains("train-images-idx3-ubyte: bad magic number 0x00000801"),
        "{e}"
    );
    assert!(e.contains("expected 0x00000803"), "{e}");
}

#[test]
fn mnist_count_mismatch_label_range_and_trailing_bytes() {
    let images = idx_images(2, 1, 1, &[1, 2]);
    let e = Dataset::mnist_from_readers(&images[..], &idx_labels(&[1])[..]).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 2,
                labels: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("labels has 1 labels but images has 2 images"),
        "{e}"
    );

    let e = Dataset::mnist_from_readers(&images[..], &idx_labels(&[1, 10])[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels: label 10 at byte 9 is out of range (the dataset has 10 classes)"
    );

    let mut long = images.clone();
    long.push(0);
    let e = Dataset::mnist_from_readers(&long[..], &idx_labels(&[1, 2])[..]).unwrap_err();
    assert!(e.to_string().contains("unexpected data at byte 18"), "{e}");

    let e = Dataset::mnist_from_readers(&idx_images(1, 0, 5, &[])[..], &idx_labels(&[1])[..])
        .unwrap_err();
    assert!(e.to_string().contains("image size 0×5"), "{e}");
}

#[test]
fn mnist_huge_header_does_not_allocate_or_panic() {
    let images = idx_images(u32::MAX, 65536, 65536, &[1, 2, 3]);
    let e = Dataset::mnist_from_readers(&images[..], &idx_labels(&[1])[..]).unwrap_err();
    assert!(matches!(e, DataError::Truncated { at: 19, .. }), "{e}");
}

fn cifar_record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut v = labels.to_vec();
    v.extend((0..3072u32).map(|i| (i as u8).wrapping_mul(3).wrapping_add(seed)));
    v
}

#[test]
fn cifar10_reads_batches_chw_and_names() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=5u8 {
        let mut b = cifar_record(&[i], i);
        b.extend(cifar_record(&[0], 100 + i));
        fs::write(dir.path().join(format!("data_batch_{i}.bin")), b).unwrap();
    }
    fs::write(dir.path().join("test_batch.bin"), cifar_record(&[9], 7)).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    fs::write(dir.path().join("batches.meta.txt"), names).unwrap();
    let train = open(dir.path(), Split::Train).unwrap();
    assert_eq!(train.kind(), DatasetKind::Cifar10);
    assert_eq!(train.len(), 10);
    assert_eq!(train.labels(), &[1, 0, 2, 0, 3, 0, 4, 0, 5, 0]);
    assert_eq!(train.class_names()[9], "truck");
    // Record 2 = batch 2, first record, seed 2: pixel (x, y) channel c is byte c·1024 + 32y + x.
    let img = train.image(2).unwrap();
    let byte = |i: u32| (i as u8).wrapping_mul(3).wrapping_add(2);
    assert_eq!(
        img.get_pixel(5, 1).0,
        [byte(37), byte(1024 + 37), byte(2048 + 37)]
    );
    let test = open(dir.path(), Split::Test).unwrap();
    assert_eq!((test.len(), test.label(0)), (1, 9));
}

#[test]
fn cifar10_missing_batch_and_truncated_and_bad_label() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data_batch_1.bin"), cifar_record(&[1], 0)).unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(e.contains("data_batch_2.bin"), "{e}");

    let mut two = cifar_record(&[1], 0);
    two.extend(&cifar_record(&[2], 0)[..100]);
    fs::write(dir.path().join("test_batch.bin"), &two).unwrap();
    let e = err_text(open(dir.path(), Split::Test));
    assert!(e.contains("test_batch.bin: truncated at byte 3173"), "{e}");
    assert!(
        e.contains("the last record starts at byte 3073 and has only 100 bytes"),
        "{e}"
    );

    let mut bad = cifar_record(&[1], 0);
    bad.extend(cifar_record(&[12], 0));
    fs::write(dir.path().join("test_batch.bin"), &bad).unwrap();
    let e = err_text(open(dir.path(), Split::Test));
    assert!(
        e.contains("test_batch.bin: label 12 at byte 3073 is out of range"),
        "{e}"
    );

    fs::write(dir.path().join("test_batch.bin"), b"").unwrap();
    let e = err_text(open(dir.path(), Split::Test));
    assert!(e.contains("test_batch.bin: the file is empty"), "{e}");
}

#[test]
fn cifar100_uses_fine_labels_and_checks_both() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cifar-100-binary");
    fs::create_dir(&sub).unwrap();
    let mut train = cifar_record(&[3, 77], 1);
    train.extend(cifar_record(&[19, 99], 2));
    fs::write(sub.join("train.bin"), &train).unwrap();
    fs::write(sub.join("test.bin"), cifar_record(&[20, 1], 3)).unwrap();
    let ds = open(dir.path(), Split::Train).unwrap();
    assert_eq!(ds.kind(), DatasetKind::Cifar100);
    assert_eq!((ds.labels(), ds.num_classes()), (&[77, 99][..], 100));
    let e = err_text(open(dir.path(), Split::Test));
    assert!(
        e.contains("test.bin: label 20 at byte 0 is out of range (the dataset has 20 classes)"),
        "{e}"
    );
    fs::write(sub.join("test.bin"), cifar_record(&[2, 100], 3)).unwrap();
    let e = err_text(open(dir.path(), Split::Test));
    assert!(e.contains("label 100 at byte 1"), "{e}");
}

fn write_png(path: &Path, colour: [u8; 3]) {
    RgbImage::from_pixel(4, 3, Rgb(colour)).save(path).unwrap();
}

#[test]
fn image_folder_sorted_classes_lazy_decode_and_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    for (class, colour) in [("zebra", [200, 0, 0]), ("ant", [0, 200, 0])] {
        let c = dir.path().join(class);
        fs::create_dir_all(c.join("nested")).unwrap();
        write_png(&c.join("b.png"), colour);
        write_png(&c.join("nested/a.PNG"), colour);
        fs::write(c.join("notes.txt"), "ignored").unwrap();
    }
    RgbImage::from_pixel(5, 5, Rgb([10, 20, 30]))
        .save(dir.path().join("ant/c.jpg"))
        .unwrap();
    fs::create_dir(dir.path().join(".hidden")).unwrap();
    let ds = open(dir.path(), Split::Train).unwrap();
    assert_eq!(ds.kind(), DatasetKind::ImageFolder);
    assert_eq!(ds.class_names(), &["ant", "zebra"]);
    assert_eq!(ds.labels(), &[0, 0, 0, 1, 1]);
    assert_eq!(ds.image(3).unwrap().get_pixel(0, 0).0, [200, 0, 0]);
    let jpeg = ds.image(1).unwrap(); // ant/c.jpg sorts before ant/nested
    assert_eq!(jpeg.dimensions(), (5, 5));
    assert!(
        jpeg.get_pixel(2, 2)
            .0
            .iter()
            .zip([10, 20, 30])
            .all(|(a, b)| a.abs_diff(b) <= 3)
    );
    assert_eq!(ds.image_size(), None);

    fs::write(dir.path().join("zebra/b.png"), b"not a png").unwrap();
    let e = ds.image(3).unwrap_err().to_string();
    assert!(e.contains("zebra/b.png: cannot decode image"), "{e}");
    let e = ds.image(99).unwrap_err().to_string();
    assert_eq!(
        e,
        "image index 99 is out of range for a dataset of 5 images"
    );
}

#[test]
fn image_folder_common_size_from_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["cat", "dog"] {
        fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..3 {
            RgbImage::from_pixel(32, 32, Rgb([i * 40, 0, 0]))
                .save(dir.path().join(format!("{class}/{i}.png")))
                .unwrap();
        }
    }
    // A PNG behind a .jpg name: the header is recognised from the content, as decoding does.
    let disguised = dir.path().join("dog/3.jpg");
    RgbImage::from_pixel(32, 32, Rgb([1, 2, 3]))
        .save_with_format(&disguised, image::ImageFormat::Png)
        .unwrap();
    let ds = open(dir.path(), Split::Train).unwrap();
    assert_eq!(ds.image_size(), None);
    assert_eq!(
        ds.common_image_size().unwrap(),
        ImageSizes::Common((32, 32))
    );

    let odd = dir.path().join("dog/1.png");
    RgbImage::from_pixel(28, 30, Rgb([9, 9, 9]))
        .save(&odd)
        .unwrap();
    let sizes = ds.common_image_size().unwrap();
    let ImageSizes::Differ { first, other } = &sizes else {
        panic!("{sizes:?}")
    };
    assert!(
        first.name.ends_with("cat/0.png") && first.size == (32, 32),
        "{first}"
    );
    assert!(
        other.name.ends_with("dog/1.png") && other.size == (28, 30),
        "{other}"
    );
    assert!(sizes.to_string().contains("differ in size"), "{sizes}");

    fs::write(&odd, b"not a png").unwrap();
    let e = ds.common_image_size().unwrap_err().to_string();
    assert!(e.contains("dog/1.png"), "{e}");
}

#[test]
fn image_folder_train_val_layout_and_empty_class() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "val"] {
        for class in ["a", "b"] {
            let c = dir.path().join(split).join(class);
            fs::create_dir_all(&c).unwrap();
            write_png(&c.join("x.png"), [1, 2, 3]);
            if split == "train" {
                write_png(&c.join("y.png"), [1, 2, 3]);
            }
        }
    }
    assert_eq!(open(dir.path(), Split::Train).unwrap().len(), 4);
    let test = open(dir.path(), Split::Test).unwrap();
    assert_eq!((test.len(), test.split()), (2, Split::Test));
    assert!(test.origin().ends_with("val"));

    fs::create_dir(dir.path().join("val/c")).unwrap();
    let e = err_text(open(dir.path(), Split::Test));
    assert!(e.contains("val/c: class folder holds no images"), "{e}");
}

#[test]
fn detection_failures_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(open(dir.path(), Split::Train));
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
    assert!(e.contains("no dataset found; looked for"), "{e}");
    assert!(
        e.contains("data_batch_1.bin") && e.contains("train-images-idx3-ubyte"),
        "{e}"
    );
    let missing = dir.path().join("nope");
    let e = err_text(open(&missing, Split::Train));
    assert!(e.contains("the path does not exist"), "{e}");
    fs::write(dir.path().join("x.bin"), b"1").unwrap();
    let e = err_text(open(&dir.path().join("x.bin"), Split::Train));
    assert!(e.contains("x.bin: no dataset found"), "{e}");
}

#[test]
fn dataset_ref_parsing() {
    let r = |s: &str| s.parse::<DatasetRef>();
    assert_eq!(
        r("data/x").unwrap(),
        DatasetRef::new("data/x", Split::Train)
    );
    assert_eq!(
        r("data/x:train").unwrap(),
        DatasetRef::new("data/x", Split::Train)
    );
    assert_eq!(
        r("data/x:TEST").unwrap(),
        DatasetRef::new("data/x", Split::Test)
    );
    assert_eq!(
        r("data/x:val").unwrap(),
        DatasetRef::new("data/x", Split::Test)
    );
    assert_eq!(
        r("/mnt/a:b/c").unwrap(),
        DatasetRef::new("/mnt/a:b/c", Split::Train)
    );
    assert_eq!(
        r("synthetic:5").unwrap(),
        DatasetRef::new("synthetic:5", Split::Train)
    );
    assert_eq!(
        r("synthetic:5,seed=3:test").unwrap(),
        DatasetRef::new("synthetic:5,seed=3", Split::Test)
    );
    let e = r("data/x:tset").unwrap_err().to_string();
    assert!(
        e.contains("'tset' after the last ':' is not a split"),
        "{e}"
    );
    assert!(e.contains("use PATH, PATH:train or PATH:test"), "{e}");
    assert!(r("").is_err());
    assert!(r(":test").is_err());
    let shown = DatasetRef::new("d", Split::Test).to_string();
    assert_eq!(r(&shown).unwrap(), DatasetRef::new("d", Split::Test));
}

#[test]
fn synthetic_is_deterministic_and_splits_differ() {
    let spec: SyntheticSpec = "synthetic:12,size=6,classes=3,seed=9".parse().unwrap();
    let a = Dataset::synthetic(spec, Split::Train);
    let b = open(
        Path::new("synthetic:12,size=6,classes=3,seed=9"),
        Split::Train,
    )
    .unwrap();
    let t = Dataset::synthetic(spec, Split::Test);
    assert_eq!(a.labels(), &[0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
    for i in 0..12 {
        assert_eq!(a.image(i).unwrap(), b.image(i).unwrap());
        assert_ne!(a.image(i).unwrap(), t.image(i).unwrap());
    }
    assert_ne!(a.image(0).unwrap(), a.image(3).unwrap());
    let other_seed = Dataset::synthetic(SyntheticSpec { seed: 10, ..spec }, Split::Train);
    assert_ne!(a.image(0).unwrap(), other_seed.image(0).unwrap());
    for bad in [
        "synthetic:",
        "synthetic:x",
        "synthetic:0",
        "synthetic:5,size",
        "synthetic:5,colour=2",
        "synthetic:5,size=-1",
    ] {
        let e = bad.parse::<SyntheticSpec>().unwrap_err().to_string();
        assert!(e.contains("synthetic:N[,size=S]"), "{bad}: {e}");
    }
    assert!(
        a.to_string()
            .starts_with("synthetic train (12 images, 3 classes)")
    );
}

#[test]
fn resize_shorter_matches_torchvision_sizes() {
    let img = RgbImage::new(500, 375);
    assert_eq!(resize_shorter(&img, 224).dimensions(), (298, 224));
    assert_eq!(
        resize_shorter(&RgbImage::new(28, 28), 32).dimensions(),
        (32, 32)
    );
    let same = RgbImage::from_fn(3, 5, |x, y| Rgb([x as u8, y as u8, 7]));
    assert_eq!(resize_shorter(&same, 3), same);
    // A constant image stays constant under Catmull-Rom (weights sum to one).
    let flat = RgbImage::from_pixel(10, 7, Rgb([90, 91, 92]));
    assert!(
        resize_shorter(&flat, 3)
            .pixels()
            .all(|p| p.0 == [90, 91, 92])
    );
}

#[test]
fn center_crop_rounds_half_to_even_and_pads() {
    let img = RgbImage::from_fn(4, 4, |x, y| Rgb([x as u8, y as u8, 0]));
    // (4 − 3) / 2 = 0.5 → round-half-even → 0.
    let c = center_crop(&img, 3, 3);
    assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
    // (4 − 1) / 2 = 1.5 → 2.
    assert_eq!(center_crop(&img, 1, 1).get_pixel(0, 0).0, [2, 2, 0]);
    // Padding: 2×2 into 4×4 puts the image at (1, 1), black around.
    let small = RgbImage::from_pixel(2, 2, Rgb([9, 9, 9]));
    let p = center_crop(&small, 4, 4);
    assert_eq!(p.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(p.get_pixel(1, 1).0, [9, 9, 9]);
    assert_eq!(p.get_pixel(2, 2).0, [9, 9, 9]);
    assert_eq!(p.get_pixel(3, 3).0, [0, 0, 0]);
}

#[test]
fn normalize_is_chw_and_uses_mean_std() {
    let img = RgbImage::from_fn(2, 1, |x, _| {
        if x == 0 {
            Rgb([255, 0, 51])
        } else {
            Rgb([0, 255, 102])
        }
    });
    let mut out = [0f32; 6];
    normalize_into(&img, [0.5, 0.5, 0.0], [0.5, 0.25, 0.2], &mut out).unwrap();
    let want = [1.0, -1.0, -2.0, 2.0, 1.0, 2.0];
    for (a, b) in out.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{out:?}");
    }
    assert!(normalize_into(&img, [0.0; 3], [1.0; 3], &mut [0f32; 5]).is_err());
}

#[test]
fn batch_matches_single_images_and_checks_buffer() {
    let ds = Dataset::synthetic("synthetic:6,size=20".parse().unwrap(), Split::Train);
    let pre = Preprocess::new(18, 16);
    let batch = pre.batch(&ds, &[5, 0, 3]).unwrap();
    assert_eq!(batch.shape(), &[3, 3, 16, 16]);
    let mut one = vec![0f32; pre.floats_per_image()];
    pre.apply_into(&ds.image(0).unwrap(), &mut one).unwrap();
    assert_eq!(
        batch.as_slice().unwrap()[pre.floats_per_image()..2 * pre.floats_per_image()],
        one[..]
    );
    let mut wrong = vec![0f32; 10];
    let e = pre
        .fill_batch(&ds, &[0], &mut wrong)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("batch buffer has 10 floats but 1 images of 3×16×16 need 768"),
        "{e}"
    );
    assert!(pre.batch(&ds, &[6]).is_err());
    assert!(Preprocess::new(0, 16).batch(&ds, &[0]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mnist_parser_never_panics(images in proptest::collection::vec(any::<u8>(), 0..64),
                                 labels in proptest::collection::vec(any::<u8>(), 0..16)) {
        let _ = Dataset::mnist_from_readers(&images[..], &labels[..]);
        let mut with_header = idx_images(2, 2, 2, &images);
        with_header.truncate(16 + images.len() % 12);
        let _ = Dataset::mnist_from_readers(&with_header[..], &idx_labels(&labels)[..]);
    }

    #[test]
    fn cifar_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..7000), fine in any::<bool>()) {
        if let Ok(ds) = Dataset::cifar_from_readers(fine, [&bytes[..]]) {
            for i in 0..ds.len() {
                prop_assert!(ds.image(i).is_ok());
            }
        }
    }
}
