//! Byte streams for the binary readers: transparent gzip, offsets for error messages.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use super::DataError;

/// Largest up-front allocation made from a size a header claims; larger reads grow as data arrives,
/// so a lying header cannot make the reader allocate more than the file really holds.
const MAX_PREALLOC: usize = 64 << 20;

/// A byte stream that is decompressed when it starts with the gzip magic (`1f 8b`), and that
/// counts the (decompressed) bytes read so errors can name the offset.
pub(crate) struct ByteStream<'a> {
    reader: Box<dyn Read + 'a>,
    file: String,
    gz: bool,
    pos: u64,
}

impl<'a> ByteStream<'a> {
    /// Wraps a reader; `file` is the name used in error messages.
    pub(crate) fn new(reader: impl Read + 'a, file: impl Into<String>) -> Result<Self, DataError> {
        let file = file.into();
        let mut buffered = BufReader::new(reader);
        let head = buffered
            .fill_buf()
            .map_err(|e| DataError::io(file.clone(), e))?;
        let gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        let reader: Box<dyn Read + 'a> = if gz {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        Ok(Self {
            reader,
            file,
            gz,
            pos: 0,
        })
    }

    /// Opens a file (gzip or raw).
    pub(crate) fn open(path: &Path) -> Result<ByteStream<'static>, DataError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| DataError::io(name.clone(), e))?;
        ByteStream::new(file, name)
    }

    /// The name used in error messages.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// Bytes read so far (decompressed).
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    fn hint(&self) -> &'static str {
        if self.gz {
            "; offsets count decompressed bytes"
        } else {
            ""
        }
    }

    /// Reads up to `limit` bytes (fewer only at the end of the stream), reserving
    /// `min(limit, MAX_PREALLOC)` bytes up front when `prealloc` is set.
    fn read_up_to(&mut self, limit: u64, prealloc: bool) -> Result<Vec<u8>, DataError> {
        let cap = if prealloc {
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(MAX_PREALLOC)
        } else {
            0
        };
        let mut buf = Vec::with_capacity(cap);
        let result = (&mut self.reader).take(limit).read_to_end(&mut buf);
        let start = self.pos;
        self.pos += buf.len() as u64;
        match result {
            Ok(_) => Ok(buf),
            Err(e) if self.gz && e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(DataError::Truncated {
                    file: self.file.clone(),
                    at: self.pos,
                    expected: format!(
                        "{limit} bytes from byte {start}, but the gzip stream ends early{}",
                        self.hint()
                    ),
                })
            }
            Err(e) if self.gz => Err(DataError::Gzip {
                file: self.file.clone(),
                at: self.pos,
                source: e,
            }),
            Err(e) => Err(DataError::io(self.file.clone(), e)),
        }
    }

    /// Reads exactly `n` bytes; `what` describes them for the truncation message
    /// (e.g. "6272000 pixel bytes after the 16-byte header").
    pub(crate) fn read_exact(
        &mut self,
        n: u64,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, DataError> {
        let buf = self.read_up_to(n, true)?;
        if (buf.len() as u64) < n {
            return Err(DataError::Truncated {
                file: self.file.clone(),
                at: self.pos,
                expected: format!("{}{}", what(), self.hint()),
            });
        }
        Ok(buf)
    }

    /// Reads a big-endian `u32`.
    pub(crate) fn read_u32_be(&mut self, what: &str) -> Result<u32, DataError> {
        let at = self.pos;
        let b = self.read_exact(4, || {
            format!("{what} as a 4-byte big-endian integer at byte {at}")
        })?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads everything that is left.
    pub(crate) fn read_rest(&mut self) -> Result<Vec<u8>, DataError> {
        self.read_up_to(u64::MAX, false)
    }

    /// Fails when any byte is left: trailing data means the header and the file disagree.
    pub(crate) fn expect_end(&mut self, what: &str) -> Result<(), DataError> {
        let at = self.pos;
        let extra = self.read_up_to(1, false)?;
        if extra.is_empty() {
            Ok(())
        } else {
            Err(DataError::bad_format(
                self.file.clone(),
                format!(
                    "unexpected data at byte {at}, after {what}{}; the header and the file size disagree",
                    self.hint()
                ),
            ))
        }
    }
}
