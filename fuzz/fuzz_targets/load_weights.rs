//! Parses arbitrary bytes as a safetensors file with `patchmix_export::weights`.
//! Malformed input must give an `Err`, never a panic. Input that parses must survive a
//! save/load round trip bit for bit (floats as f32, integers as i64, metadata verbatim), and
//! encoder selection must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchmix_export::weights::{
    EncoderSource, load_safetensors_bytes, select_encoder, serialize_safetensors,
};

fuzz_target!(|data: &[u8]| {
    let Ok(contents) = load_safetensors_bytes(data) else {
        return;
    };
    let bytes = serialize_safetensors(&contents.tensors, &contents.ints, Some(&contents.metadata))
        .expect("a parsed file re-serialises");
    let back = load_safetensors_bytes(&bytes).expect("our own output parses");
    assert_eq!(back.ints, contents.ints);
    assert_eq!(back.metadata, contents.metadata);
    assert_eq!(
        back.tensors.keys().collect::<Vec<_>>(),
        contents.tensors.keys().collect::<Vec<_>>()
    );
    for (name, a) in &contents.tensors {
        let b = &back.tensors[name];
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}");
    }
    let _ = select_encoder(contents.tensors, EncoderSource::Momentum);
});
