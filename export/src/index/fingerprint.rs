//! The encoder's fingerprint: the SHA-256 of its ONNX file.
//!
//! A gallery stores the fingerprint of the encoder that embedded it; a query must be embedded
//! by the same bytes. Hashing the file (not, say, its name or its weights' shapes) is what
//! makes a retrained or re-exported encoder with the same architecture count as different —
//! its features live in another space, and searching with them would return wrong neighbours
//! without any error.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::GalleryError;

/// SHA-256 of an encoder's ONNX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelFingerprint(pub [u8; 32]);

impl ModelFingerprint {
    /// The fingerprint of model bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::index::ModelFingerprint;
    /// let f = ModelFingerprint::of_bytes(b"abc");
    /// assert_eq!(
    ///     f.to_string(),
    ///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    /// );
    /// ```
    #[must_use]
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The fingerprint of a model file, read in 1 MiB chunks.
    ///
    /// # Errors
    ///
    /// [`GalleryError::Io`] naming the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use patchmix_export::index::ModelFingerprint;
    /// let path = std::env::temp_dir().join(format!("pm-fp-doc-{}.onnx", std::process::id()));
    /// std::fs::write(&path, b"abc").unwrap();
    /// assert_eq!(ModelFingerprint::of_file(&path)?, ModelFingerprint::of_bytes(b"abc"));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), patchmix_export::index::GalleryError>(())
    /// ```
    pub fn of_file(path: &Path) -> Result<Self, GalleryError> {
        let mut file = std::fs::File::open(path).map_err(|e| GalleryError::io("open", path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| GalleryError::io("read", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self(hasher.finalize().into()))
    }

    /// Parses 64 hexadecimal digits; `None` for anything else.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for ModelFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_hex() {
        let f = ModelFingerprint::of_bytes(b"model");
        assert_eq!(ModelFingerprint::from_hex(&f.to_string()), Some(f));
        assert_eq!(ModelFingerprint::from_hex("abc"), None);
        assert_eq!(ModelFingerprint::from_hex(&"zz".repeat(32)), None);
        assert_eq!(ModelFingerprint::from_hex(&"é".repeat(32)), None);
    }
}
