//! Image sources: registry, docker-archive, OCI layout, Docker engine. (issue 3)
//!
//! PLACEHOLDER, owned by the sources work (worktree `source`): only the types
//! and the trait the store consumes, with minimal bodies so that the store
//! branch compiles and its tests run. The real module replaces this file at
//! merge time; nothing in the store depends on anything beyond what is
//! declared here.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<hex>`
    pub digest: String,
    pub size: u64,
}

/// A resolved image: manifest and config fetched and verified.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Canonical `registry/repo:tag` to store under.
    pub name: String,
    pub manifest_raw: Vec<u8>,
    pub manifest_digest: String,
    /// Already digest-verified.
    pub config_raw: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// Same length as `layers`.
    pub diff_ids: Vec<String>,
}

pub struct SourceOptions {
    pub root: crate::paths::Root,
    pub creds: Option<String>,
    pub authfile: Option<std::path::PathBuf>,
    pub tls_verify: bool,
    pub quiet: bool,
}

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("unsupported image source '{spec}'")]
    Unsupported { spec: String },
    #[error("layer {digest}: unsupported media type '{media_type}'")]
    MediaType { digest: String, media_type: String },
    #[error("layer {digest}: cannot start decompression")]
    Decompress {
        digest: String,
        #[source]
        source: io::Error,
    },
}

pub trait ImageSource: Send {
    fn describe(&self) -> String;
    fn resolve(&mut self) -> Result<ResolvedImage, SourceError>;
    /// The raw blob, unverified.
    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError>;
}

pub fn open(spec: &str, _opts: &SourceOptions) -> Result<Box<dyn ImageSource>, SourceError> {
    Err(SourceError::Unsupported {
        spec: spec.to_string(),
    })
}

/// Wrap a raw layer stream in the decompressor its media type calls for.
pub fn decompress<'a>(
    d: &Descriptor,
    r: Box<dyn Read + Send + 'a>,
) -> Result<Box<dyn Read + Send + 'a>, SourceError> {
    let mt = d.media_type.as_str();
    if mt.ends_with("gzip") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if mt.ends_with("zstd") {
        let z = zstd::stream::read::Decoder::new(r).map_err(|e| SourceError::Decompress {
            digest: d.digest.clone(),
            source: e,
        })?;
        Ok(Box::new(z))
    } else if mt.ends_with(".tar") || mt.ends_with("tar") {
        Ok(r)
    } else {
        Err(SourceError::MediaType {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
        })
    }
}

/// Hashes what passes through; at EOF fails with `InvalidData` naming both
/// digests when the content does not match (or the size differs).
pub struct DigestReader<R> {
    inner: R,
    expected: String,
    size: Option<u64>,
    hasher: Sha256,
    n: u64,
    done: bool,
}

impl<R: Read> DigestReader<R> {
    pub fn new(inner: R, expected: &str, size: Option<u64>) -> Self {
        DigestReader {
            inner,
            expected: expected.to_string(),
            size,
            hasher: Sha256::new(),
            n: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            self.n += n as u64;
            if let Some(s) = self.size {
                if self.n > s {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob {} is larger than its declared size {s}",
                            self.expected
                        ),
                    ));
                }
            }
            return Ok(n);
        }
        let got = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if got != self.expected || self.size.is_some_and(|s| s != self.n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "digest mismatch: expected {}, got {got} ({} bytes)",
                    self.expected, self.n
                ),
            ));
        }
        self.done = true;
        Ok(0)
    }
}
