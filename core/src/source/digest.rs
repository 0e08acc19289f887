//! Streaming sha256 verification.

use std::io::{self, Read};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a stream failed verification. It travels inside an
/// [`io::Error`] of kind [`io::ErrorKind::InvalidData`]; get it back with
/// [`VerifyError::from_io`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("blob {expected} is longer than its declared {size} bytes")]
    TooLong { expected: String, size: u64 },
    #[error("blob {expected} is truncated: got {actual} of {size} bytes")]
    Truncated {
        expected: String,
        size: u64,
        actual: u64,
    },
}

impl VerifyError {
    /// The documented exit code: the data is not what it claims to be.
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID
    }

    /// The verification failure inside an I/O error, if that is what it is.
    pub fn from_io(e: &io::Error) -> Option<&VerifyError> {
        e.get_ref().and_then(|i| i.downcast_ref::<VerifyError>())
    }

    fn to_io(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self.clone())
    }
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[derive(Debug)]
enum State {
    Reading,
    Verified,
    Failed(VerifyError),
}

/// A reader that hashes what passes through it and, at EOF, checks the
/// sha256 digest (and the size, when given). A mismatch is an
/// [`io::ErrorKind::InvalidData`] error naming both digests; more bytes than
/// the size fail as soon as they arrive, so an endless body is cut off.
///
/// A consumer that stops before EOF (a tar reader stops at the end-of-archive
/// blocks) must call [`DigestReader::finish`], or read to EOF, for the check
/// to happen.
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    size: Option<u64>,
    read: u64,
    state: State,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R, expected: &str, size: Option<u64>) -> Self {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            expected: expected.to_string(),
            size,
            read: 0,
            state: State::Reading,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The expected digest.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// True once EOF was reached and the digest matched.
    pub fn is_verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    /// Read what is left, verify, and give back the inner reader.
    pub fn finish(mut self) -> io::Result<R> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.inner)
    }

    fn check_at_eof(&mut self) -> Result<(), VerifyError> {
        if let Some(size) = self.size {
            if self.read != size {
                return Err(VerifyError::Truncated {
                    expected: self.expected.clone(),
                    size,
                    actual: self.read,
                });
            }
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if actual != self.expected {
            return Err(VerifyError::Mismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.state {
            State::Verified => return Ok(0),
            State::Failed(e) => return Err(e.to_io()),
            State::Reading => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // Never ask for more than one byte past the declared size.
        let want = match self.size {
            Some(size) => buf.len().min((size.saturating_sub(self.read) + 1) as usize),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return match self.check_at_eof() {
                Ok(()) => {
                    self.state = State::Verified;
                    Ok(0)
                }
                Err(e) => {
                    let io = e.to_io();
                    self.state = State::Failed(e);
                    Err(io)
                }
            };
        }
        self.read += n as u64;
        if let Some(size) = self.size {
            if self.read > size {
                let e = VerifyError::TooLong {
                    expected: self.expected.clone(),
                    size,
                };
                let io = e.to_io();
                self.state = State::Failed(e);
                return Err(io);
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn read_all<R: Read>(mut r: R) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn passes_matching_data() {
        assert_eq!(sha256_digest(b"hello"), HELLO);
        let mut r = DigestReader::new(&b"hello"[..], HELLO, Some(5));
        assert_eq!(read_all(&mut r).unwrap(), b"hello");
        assert!(r.is_verified());
        assert_eq!(r.bytes_read(), 5);
        assert_eq!(read_all(&mut r).unwrap(), b"");
        assert!(DigestReader::new(&b"hello"[..], HELLO, None)
            .finish()
            .is_ok());
    }

    #[test]
    fn mismatch_names_both_digests() {
        let mut r = DigestReader::new(&b"hellO"[..], HELLO, Some(5));
        let e = read_all(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let msg = e.to_string();
        assert!(msg.contains(HELLO), "{msg}");
        assert!(msg.contains(&sha256_digest(b"hellO")), "{msg}");
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::Mismatch { .. })
        ));
        // The failure sticks.
        assert!(read_all(&mut r).is_err());
    }

    #[test]
    fn size_is_enforced_both_ways() {
        let e = read_all(DigestReader::new(&b"hel"[..], HELLO, Some(5))).unwrap_err();
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::Truncated { actual: 3, .. })
        ));
        // An endless body is cut off just past the size.
        let mut r = DigestReader::new(io::repeat(b'x'), HELLO, Some(5));
        let e = read_all(&mut r).unwrap_err();
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::TooLong { .. })
        ));
        assert_eq!(r.bytes_read(), 6);
    }

    #[test]
    fn finish_drains_and_checks() {
        let mut r = DigestReader::new(&b"hello"[..], HELLO, Some(5));
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert!(r.finish().is_ok());
        let mut r = DigestReader::new(&b"hellx"[..], HELLO, Some(5));
        r.read_exact(&mut two).unwrap();
        assert!(r.finish().is_err());
    }
}
