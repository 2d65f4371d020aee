//! CIFAR-10/100 binary parsing from arbitrary bytes: errors, never panics; every accepted
//! dataset has whole records, labels in range and 32×32 images.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchmix_export::data::Dataset;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fine = mode & 1 == 1;
    // Bit 1 splits the input into two batch files at a position from the next two bytes.
    let result = if mode & 2 == 2 && rest.len() >= 2 {
        let cut = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (a, b) = rest[2..].split_at(cut);
        Dataset::cifar_from_readers(fine, [a, b])
    } else {
        Dataset::cifar_from_readers(fine, [rest])
    };
    match result {
        Ok(ds) => {
            let classes = if fine { 100 } else { 10 };
            assert_eq!(ds.num_classes(), classes);
            for i in 0..ds.len() {
                assert!((ds.label(i) as usize) < classes);
                assert_eq!(ds.image(i).expect("in-range image").dimensions(), (32, 32));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
