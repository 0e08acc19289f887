//! Image sources: registry, docker-archive, OCI layout, Docker engine. (issue 3)
//!
//! Every source turns a spec string into a [`ResolvedImage`] (the
//! platform-resolved manifest, the verified config, the layer list) and then
//! streams raw layer blobs through [`ImageSource::open_blob`]. The store wraps
//! every blob in a [`DigestReader`] and, for layers, [`decompress`] plus a
//! second [`DigestReader`] for the diff ID.
//!
//! | spec | source |
//! |------|--------|
//! | `[docker://]REGISTRY/NAME[:TAG\|@DIGEST]`, bare `NAME[:TAG]` | [`registry::RegistrySource`] |
//! | `http:REGISTRY/NAME...` | the same over plain HTTP |
//! | `dockertar:/path/file.tar` | [`dockertar::DockerArchiveSource`] |
//! | `oci:/path[:ref]` | [`oci::OciLayoutSource`] |
//! | `docker:NAME[:TAG]` | [`engine::EngineSource`] (Docker Engine API) |
//!
//! Size caps, timeouts and bounded retries keep a hostile server from
//! holding a pull forever or filling memory: see [`MAX_MANIFEST_SIZE`] and
//! [`registry`].

use std::io::{self, Read};
use std::path::PathBuf;

use thiserror::Error;

use crate::imgref::{ImgRefError, Transport};

pub mod auth;
pub mod digest;
pub mod dockertar;
pub mod engine;
pub mod manifest;
pub mod oci;
pub mod registry;
pub mod tls;
pub mod transfer;

pub use digest::{sha256_digest, DigestReader, VerifyError};
pub use transfer::{LowSpeed, SlowTransfer};

/// The largest manifest, index or `manifest.json` accepted.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// A content descriptor: what a manifest says about a blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<hex>`; always validated before a descriptor is handed out.
    pub digest: String,
    pub size: u64,
}

/// An image as a source describes it, ready to be stored.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Canonical name to store under, always with a tag, e.g.
    /// "docker.io/library/busybox:latest" or "127.0.0.1:5000/hello:latest".
    /// For @digest refs: "REPO@sha256:...".
    pub name: String,
    /// The (platform-resolved) image manifest, as fetched.
    pub manifest_raw: Vec<u8>,
    /// sha256 of `manifest_raw`.
    pub manifest_digest: String,
    /// The image config blob, digest-verified already.
    pub config_raw: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// From config `rootfs.diff_ids`, same length as `layers` (checked).
    pub diff_ids: Vec<String>,
}

/// One sigstore attachment: a layer of the OCI manifest tagged
/// `sha256-<hex>.sig` next to an image, as cosign and skopeo write it
/// (containers/image `docker/docker_image_src.go`
/// `appendSignaturesFromSigstoreAttachments`). Its payload is read whole
/// and digest-checked; nothing in it is trusted before
/// [`crate::trust`] verifies it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigstoreAttachment {
    pub media_type: String,
    /// base64 in JSON.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// At most this many sigstore attachments are read per image.
pub const MAX_ATTACHMENTS: usize = 64;
/// The largest attachment payload read (containers/image's
/// `MaxSignatureBodySize`).
pub const MAX_ATTACHMENT_SIZE: u64 = 4 << 20;

/// serde: bytes as standard base64.
pub mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let t = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(serde::de::Error::custom)
    }

    /// A list of byte strings.
    pub mod vec {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(
                v.iter()
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            )
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            Vec::<String>::deserialize(d)?
                .into_iter()
                .map(|t| {
                    base64::engine::general_purpose::STANDARD
                        .decode(t)
                        .map_err(serde::de::Error::custom)
                })
                .collect()
        }
    }
}

/// What every source needs to know. `Debug` hides the password in `creds`.
#[derive(Clone)]
pub struct SourceOptions {
    /// Where `/etc/containers/certs.d` and the spool directory are looked up.
    pub root: crate::paths::Root,
    /// `--creds USER[:PASS]`.
    pub creds: Option<String>,
    /// `--authfile F`: the only auth file consulted when given.
    pub authfile: Option<PathBuf>,
    /// The auth files consulted, in order, when `authfile` is not given: the
    /// binary's [`auth::default_auth_files`] (none by default).
    pub auth_files: Vec<PathBuf>,
    /// `DOCKER_HOST` as the binary read it: the engine socket of `docker:`
    /// sources (`unix:///path`; default [`engine::DEFAULT_SOCKET`]).
    pub docker_host: Option<String>,
    /// Verify TLS certificates (default true). When false, a registry may
    /// also be reached over plain HTTP.
    pub tls_verify: bool,
    /// Do not log the unqualified-name warning. Insecure-transport warnings
    /// are always logged.
    pub quiet: bool,
    /// The low-speed limit of registry blob transfers.
    pub low_speed: LowSpeed,
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let creds = self
            .creds
            .as_ref()
            .map(|c| format!("{}:<redacted>", c.split(':').next().unwrap_or("")));
        f.debug_struct("SourceOptions")
            .field("root", &self.root)
            .field("creds", &creds)
            .field("authfile", &self.authfile)
            .field("auth_files", &self.auth_files)
            .field("docker_host", &self.docker_host)
            .field("tls_verify", &self.tls_verify)
            .field("quiet", &self.quiet)
            .field("low_speed", &self.low_speed)
            .finish()
    }
}

impl SourceOptions {
    /// Defaults: verify TLS, no credentials and no auth file, the default
    /// engine socket, not quiet.
    pub fn new(root: crate::paths::Root) -> Self {
        SourceOptions {
            root,
            creds: None,
            authfile: None,
            auth_files: Vec::new(),
            docker_host: None,
            tls_verify: true,
            quiet: false,
            low_speed: LowSpeed::DEFAULT,
        }
    }
}

/// One place images come from.
pub trait ImageSource: Send {
    /// For messages; never contains credentials.
    fn describe(&self) -> String;
    /// Fetch and check the manifest and config.
    fn resolve(&mut self) -> Result<ResolvedImage, SourceError>;
    /// Raw blob bytes (possibly compressed), streamed; NOT verified: the
    /// caller wraps it in [`DigestReader`].
    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError>;
    /// Another handle on the same source, after [`resolve`](Self::resolve),
    /// that streams blobs from another thread while this one streams its
    /// own: a pull fetches a few layers at once. `None` (the default): blobs
    /// are streamed one at a time.
    fn fork(&self) -> Option<Box<dyn ImageSource>> {
        None
    }
    /// The sigstore attachments of the image whose manifest digest is
    /// `manifest_digest` (only a registry has them; none elsewhere, as in
    /// containers/image). Asked only when registries.d sets
    /// `use-sigstore-attachments` for the image.
    fn sigstore_attachments(
        &mut self,
        _manifest_digest: &str,
    ) -> Result<Vec<SigstoreAttachment>, SourceError> {
        Ok(Vec::new())
    }
}

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("invalid image source '{spec}': {reason}")]
    Spec { spec: String, reason: String },
    #[error(transparent)]
    Ref(#[from] ImgRefError),
    #[error("{what}: {path}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {what}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: expected digest {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what} is not valid JSON of the expected shape")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: unsupported media type '{media_type}'{hint}")]
    Unsupported {
        what: String,
        media_type: String,
        hint: &'static str,
    },
    #[error("{what} has no image for {platform}; it offers: {available}")]
    NoPlatform {
        what: String,
        platform: String,
        available: String,
    },
    #[error("{what} not found ({url}): {detail}")]
    NotFound {
        what: String,
        url: String,
        detail: String,
    },
    #[error("access to {registry} denied: {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("{what}: registry answered HTTP {status} ({url}): {detail}")]
    Status {
        what: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: request failed")]
    Http {
        what: String,
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{what}: {url}: {reason}")]
    Redirect {
        what: String,
        url: String,
        reason: &'static str,
    },
    #[error("credentials for {registry}: {reason}")]
    Credentials { registry: String, reason: String },
    #[error("auth file {path}: {reason}")]
    AuthFile { path: PathBuf, reason: String },
    #[error("TLS setup for {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("Docker engine at {socket}: {what}")]
    EngineIo {
        socket: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("Docker engine at {socket}: {detail}")]
    Engine { socket: String, detail: String },
    #[error("{archive}: {reason}")]
    Archive { archive: String, reason: String },
    #[error(transparent)]
    Slow(#[from] SlowTransfer),
}

impl SourceError {
    /// The documented exit code: 4 when the image (or its file) is not
    /// there, 3 when what the source sent is malformed or hostile, 1 for
    /// network, TLS, authentication and I/O failures.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{self, FAILURE, INVALID, MISSING};
        use SourceError::*;
        match self {
            Ref(e) => e.exit_code(),
            Read { source, .. } => exit::of_io(source),
            File { source, .. } if source.kind() == io::ErrorKind::NotFound => MISSING,
            NotFound { .. } | NoPlatform { .. } => MISSING,
            Spec { .. }
            | TooLarge { .. }
            | DigestMismatch { .. }
            | SizeMismatch { .. }
            | Json { .. }
            | Invalid { .. }
            | Unsupported { .. }
            | Credentials { .. }
            | AuthFile { .. }
            | Archive { .. } => INVALID,
            File { .. }
            | Unauthorized { .. }
            | Status { .. }
            | Http { .. }
            | Redirect { .. }
            | Tls { .. }
            | EngineIo { .. }
            | Engine { .. } => FAILURE,
            Slow(e) => e.exit_code(),
        }
    }
}

/// Open the source a spec names (see the module docs for the forms; the
/// prefix is read by [`Transport::of`]).
pub fn open(spec: &str, opts: &SourceOptions) -> Result<Box<dyn ImageSource>, SourceError> {
    Ok(match Transport::of(spec) {
        Transport::DockerArchive(path) => Box::new(dockertar::DockerArchiveSource::open(path)?),
        Transport::OciLayout(rest) => Box::new(oci::OciLayoutSource::open(rest)?),
        Transport::Engine(name) => Box::new(engine::EngineSource::new(name, opts)?),
        Transport::Registry(spec) => Box::new(registry::RegistrySource::new(spec, opts)?),
    })
}

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// What a media type says, if it says anything.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        if mt.ends_with("+gzip") || mt.ends_with(".gzip") || mt.ends_with("tar.gz") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") || mt.ends_with("diff.tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// What the first bytes say.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wrap a raw layer stream in the right decompressor: gzip, zstd or none.
/// The magic bytes decide; a media type that claims compression the bytes
/// do not have is an error.
///
/// The decompressors read their input to its end (multi-member gzip,
/// multi-frame zstd), so draining the returned reader to EOF also drives an
/// inner [`DigestReader`] to its check.
pub fn decompress<'a>(
    d: &Descriptor,
    mut r: Box<dyn Read + Send + 'a>,
) -> Result<Box<dyn Read + Send + 'a>, SourceError> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SourceError::Read {
                    what: format!("layer {}", d.digest),
                    source: e,
                })
            }
        }
    }
    let sniffed = Compression::sniff(&head[..n]);
    let declared = Compression::from_media_type(&d.media_type);
    if let Some(c) = declared {
        if c != Compression::None && c != sniffed {
            return Err(SourceError::Invalid {
                what: format!("layer {}", d.digest),
                reason: format!(
                    "media type {} declares {c:?} compression, but the data does not start with its magic bytes",
                    d.media_type
                ),
            });
        }
    }
    let chained: Box<dyn Read + Send + 'a> = Box::new(io::Cursor::new(head[..n].to_vec()).chain(r));
    Ok(match sniffed {
        Compression::None => chained,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        Compression::Zstd => {
            Box::new(
                zstd::stream::read::Decoder::new(chained).map_err(|e| SourceError::Read {
                    what: format!("zstd layer {}", d.digest),
                    source: e,
                })?,
            )
        }
    })
}

/// Read at most `limit` bytes; more is [`SourceError::TooLarge`].
pub(crate) fn read_capped(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, SourceError> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| match SlowTransfer::from_io(&e) {
            Some(s) => SourceError::Slow(s.clone()),
            None => SourceError::Read {
                what: what.to_string(),
                source: e,
            },
        })?;
    if buf.len() as u64 > limit {
        return Err(SourceError::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn desc(mt: &str) -> Descriptor {
        Descriptor {
            media_type: mt.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 0,
        }
    }

    fn roundtrip(d: &Descriptor, data: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(d, Box::new(io::Cursor::new(data)))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn decompress_by_magic() {
        let plain = b"hello tar world".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&plain[..], 1).unwrap();

        let g = desc("application/vnd.docker.image.rootfs.diff.tar.gzip");
        assert_eq!(roundtrip(&g, gz.clone()), plain);
        let z = desc("application/vnd.oci.image.layer.v1.tar+zstd");
        assert_eq!(roundtrip(&z, zs.clone()), plain);
        let t = desc("application/vnd.oci.image.layer.v1.tar");
        assert_eq!(roundtrip(&t, plain.clone()), plain);
        // Uncompressed type, compressed data: the magic wins.
        assert_eq!(roundtrip(&t, gz.clone()), plain);
        // Unknown type: sniffed.
        assert_eq!(roundtrip(&desc("x"), zs), plain);
        assert_eq!(roundtrip(&desc("x"), Vec::new()), Vec::<u8>::new());
        // Declared gzip, but not gzip: refused, naming the layer.
        let e = decompress(&g, Box::new(io::Cursor::new(plain)))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("sha256:000") && e.contains("Gzip"), "{e}");
    }

    /// Draining the decompressed stream drives the raw stream to EOF, so a
    /// DigestReader underneath always gets to check (and fail).
    #[test]
    fn draining_decompressed_output_verifies_the_raw_stream() {
        let plain = b"some tar bytes".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&plain[..], 1).unwrap();
        for (mt, data) in [("x+gzip", gz), ("x+zstd", zs), ("x.tar", plain.clone())] {
            let good = sha256_digest(&data);
            let bad = sha256_digest(b"other");
            for (digest, ok) in [(good, true), (bad, false)] {
                let raw = DigestReader::new(io::Cursor::new(data.clone()), &digest, None);
                let mut out = decompress(&desc(mt), Box::new(raw)).unwrap();
                let r = io::copy(&mut out, &mut io::sink());
                assert_eq!(r.is_ok(), ok, "{mt} {digest}: {r:?}");
                if let Err(e) = r {
                    assert!(e.to_string().contains(&digest), "{e}");
                }
            }
        }
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let mut all = Vec::new();
        for part in [&b"one "[..], b"two"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            all.extend(gz.finish().unwrap());
        }
        assert_eq!(roundtrip(&desc("x+gzip"), all), b"one two");
    }

    #[test]
    fn options_debug_hides_the_password() {
        let mut o = SourceOptions::new(crate::paths::Root::new("/"));
        o.creds = Some("bob:pa55word".into());
        let d = format!("{o:?}");
        assert!(d.contains("bob") && !d.contains("pa55word"), "{d}");
    }

    #[test]
    fn read_capped_limits() {
        assert_eq!(read_capped(&b"abcd"[..], 4, "x").unwrap(), b"abcd");
        let e = read_capped(&b"abcde"[..], 4, "manifest of x").unwrap_err();
        assert!(matches!(e, SourceError::TooLarge { .. }));
        assert!(e.to_string().contains("manifest of x"));
    }
}
