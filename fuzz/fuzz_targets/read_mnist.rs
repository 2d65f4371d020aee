//! MNIST IDX parsing (raw or gzip) from arbitrary bytes: errors, never panics; every accepted
//! dataset decodes every image at the size its header promised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchmix_export::data::Dataset;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose where the images file ends and the labels file begins.
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cut = usize::from(u16::from_le_bytes(*head)).min(rest.len());
    let (images, labels) = rest.split_at(cut);
    match Dataset::mnist_from_readers(images, labels) {
        Ok(ds) => {
            let (w, h) = ds.image_size().expect("MNIST has a fixed size");
            assert_eq!(ds.num_classes(), 10);
            for i in 0..ds.len().min(64) {
                let img = ds.image(i).expect("in-range image");
                assert_eq!(img.dimensions(), (w, h));
                assert!(ds.label(i) < 10);
            }
            assert!(ds.image(ds.len()).is_err());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
