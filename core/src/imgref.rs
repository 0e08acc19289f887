//! Image references, digests and their OSTree branch names: the one parser
//! of this grammar (issues 3 and 10). Everyone else calls it.
//!
//! - [`ImageRef::parse`] reads `[docker://|http:]REGISTRY/NAME[:TAG|@sha256:DIGEST]`.
//!   A bare `NAME[:TAG]` means `docker.io/library/NAME`, and
//!   [`ImageRef::unqualified`] tells the caller to warn about it.
//! - Digests: [`digest_hex`] and [`validate_digest`]. The one rule, for
//!   references, manifests, layer branches and image ID prefixes alike:
//!   `sha256:` followed by 64 *lowercase* hex digits. Uppercase hex is
//!   refused everywhere.
//! - Stored names, which are not validated (an archive's `RepoTags` is kept
//!   as written): [`split_digest`], [`split_tag`], [`split_name`],
//!   [`with_tag`] and [`qualify`]. [`ImageRef::parse`] is built on the same
//!   splitting, so the two cannot disagree on where a tag starts.
//! - Image specs: [`Transport::of`] reads the transport prefix (`dockertar:`,
//!   `oci:`, `docker:`; anything else is a registry reference).
//! - The atomic-compatible branch names: an image lives on
//!   `ociimage/<escaped NAME:TAG>` ([`image_branch`]), a layer on
//!   `ociimage/<hex digest>` ([`layer_branch`]); [`parse_branch`] reads
//!   either back. Escaping writes every byte outside `[A-Za-z0-9.-]` as
//!   `_XX` (uppercase hex), exactly like atomic's `_encode_to_ostree_ref`,
//!   so repos written by atomic stay readable.
//!
//! `oci_spec::distribution::Reference` was considered and not used: it
//! needs oci-spec's `distribution` feature and `regex` in every binary (the
//! generator links this module), it accepts uppercase and non-sha256
//! digests, it rewrites `index.docker.io` to `docker.io` and always adds
//! `latest` (so it cannot tell an unqualified or untagged name from a
//! qualified one), and it has no bracketed IPv6 registries and no `http:`
//! prefix.

use std::fmt;

use thiserror::Error;

/// The registry a bare name refers to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The namespace a one-component Docker Hub name lives in.
pub const DEFAULT_NAMESPACE: &str = "library";
/// The tag used when none is given.
pub const DEFAULT_TAG: &str = "latest";
/// The prefix of every branch written by the store.
pub const BRANCH_PREFIX: &str = "ociimage/";
/// The longest reference accepted, in bytes.
pub const MAX_REF_LEN: usize = 1024;
/// The scheme that explicitly names a registry reference.
pub const DOCKER_SCHEME: &str = "docker://";
/// The scheme of a registry reference over plain HTTP.
pub const HTTP_SCHEME: &str = "http:";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImgRefError {
    #[error("invalid image reference '{reference}': {reason}")]
    Invalid {
        reference: String,
        reason: &'static str,
    },
    #[error("invalid digest '{digest}': expected sha256: followed by 64 lowercase hex digits")]
    Digest { digest: String },
    #[error("'{branch}' is not a valid escaped OSTree image branch: {reason}")]
    Branch {
        branch: String,
        reason: &'static str,
    },
}

impl ImgRefError {
    /// The documented exit code: always invalid input.
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID
    }
}

/// A parsed registry image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry as written (`docker.io`, `127.0.0.1:5000`, `localhost`).
    pub registry: String,
    /// The repository path inside the registry (`library/busybox`).
    pub repository: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// The manifest digest (`sha256:<hex>`), if one was given.
    pub digest: Option<String>,
    /// `http:` prefix: plain HTTP, no TLS.
    pub insecure: bool,
    /// No registry was given: the name was completed to `docker.io/library/...`.
    pub unqualified: bool,
}

impl ImageRef {
    /// Parse `[docker://|http:]REGISTRY/NAME[:TAG|@sha256:DIGEST]`, or a bare
    /// `NAME[:TAG]`.
    pub fn parse(input: &str) -> Result<ImageRef, ImgRefError> {
        let bad = |reason| {
            Err(ImgRefError::Invalid {
                reference: input.escape_debug().to_string(),
                reason,
            })
        };
        if input.len() > MAX_REF_LEN {
            return bad("it is longer than 1024 bytes");
        }
        let mut s = input;
        let mut insecure = false;
        if let Some(rest) = s.strip_prefix(DOCKER_SCHEME) {
            s = rest;
        } else if let Some(rest) = s.strip_prefix(HTTP_SCHEME) {
            insecure = true;
            s = rest.strip_prefix("//").unwrap_or(rest);
        }
        if s.is_empty() {
            return bad("it is empty");
        }

        let (s, digest) = split_digest(s);
        if let Some(d) = digest {
            validate_digest(d)?;
        }
        let (name, tag) = split_tag(s);
        if let Some(t) = tag {
            if !valid_tag(t) {
                return bad("the tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
            }
        }
        if name.is_empty() {
            return bad("the name is empty");
        }

        let (registry, repository, unqualified) = match split_registry(name) {
            Some((host, rest)) => (host.to_string(), rest.to_string(), false),
            None => (DEFAULT_REGISTRY.to_string(), name.to_string(), true),
        };
        if !valid_registry(&registry) {
            return bad("the registry host contains invalid characters");
        }
        let repository = if is_docker_hub(&registry) && !repository.contains('/') {
            format!("{DEFAULT_NAMESPACE}/{repository}")
        } else {
            repository
        };
        if !valid_repository(&repository) {
            return bad(
                "the repository must be lowercase path components of [a-z0-9._-], \
                 each starting and ending with a letter or digit",
            );
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
            insecure,
            unqualified,
        })
    }

    /// `REGISTRY/REPOSITORY`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag or digest to ask the registry for: the digest when there is
    /// one, else the tag, else `latest`.
    pub fn reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d,
            (None, Some(t)) => t,
            (None, None) => DEFAULT_TAG,
        }
    }

    /// The canonical name to store the image under: `NAME:TAG` (tag defaults
    /// to `latest`), or `NAME@sha256:...` for a digest reference without a tag.
    pub fn canonical(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.name()),
            (None, Some(d)) => format!("{}@{d}", self.name()),
            (None, None) => format!("{}:{DEFAULT_TAG}", self.name()),
        }
    }

    /// The host to talk to: Docker Hub's API lives at `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if is_docker_hub(&self.registry) {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Where an image spec says the image comes from, with the rest of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// `dockertar:/path/file.tar`: a `docker save` archive.
    DockerArchive(&'a str),
    /// `oci:/path[:ref]`: an OCI image layout directory.
    OciLayout(&'a str),
    /// `docker:NAME[:TAG]`: the local Docker Engine.
    Engine(&'a str),
    /// Anything else, `docker://` and `http:` included: a registry
    /// reference, the whole spec (for [`ImageRef::parse`]).
    Registry(&'a str),
}

impl<'a> Transport<'a> {
    /// Classify a spec by its prefix.
    pub fn of(spec: &'a str) -> Transport<'a> {
        if let Some(path) = spec.strip_prefix("dockertar:") {
            Transport::DockerArchive(path)
        } else if let Some(rest) = spec.strip_prefix("oci:") {
            Transport::OciLayout(rest)
        } else if let Some(name) = spec
            .strip_prefix("docker:")
            .filter(|n| !n.starts_with("//"))
        {
            Transport::Engine(name)
        } else {
            Transport::Registry(spec)
        }
    }

    /// `true` when `spec` names its transport with a prefix (`dockertar:`,
    /// `oci:`, `docker:`, `docker://`, `http:`), so that it means "fetch
    /// this" rather than a name that may already be stored.
    pub fn is_explicit(spec: &str) -> bool {
        match Transport::of(spec) {
            Transport::Registry(s) => s.starts_with(DOCKER_SCHEME) || s.starts_with(HTTP_SCHEME),
            _ => true,
        }
    }
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Check that `d` is `sha256:` plus 64 lowercase hex digits, the only digest
/// form accepted anywhere (it also ends up in paths and branch names).
pub fn validate_digest(d: &str) -> Result<(), ImgRefError> {
    match digest_hex(d) {
        Some(_) => Ok(()),
        None => Err(ImgRefError::Digest {
            digest: d.escape_debug().to_string(),
        }),
    }
}

/// The hex part of a valid `sha256:<hex>` digest.
pub fn digest_hex(d: &str) -> Option<&str> {
    d.strip_prefix("sha256:").filter(|h| is_sha256_hex(h))
}

/// `true` for a digest's hex part: exactly 64 lowercase hex digits.
fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && is_lower_hex(h)
}

fn is_lower_hex(h: &str) -> bool {
    h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The lowercase hex an image ID prefix names: `[sha256:]HEX`, 1 to 64
/// lowercase hex digits (`abc`, `sha256:abc`). `None` for anything else.
pub fn id_prefix(s: &str) -> Option<&str> {
    let h = s.strip_prefix("sha256:").unwrap_or(s);
    (!h.is_empty() && h.len() <= 64 && is_lower_hex(h)).then_some(h)
}

/// The first 12 hex digits of a digest or ID, for display. Lenient: a
/// string without `sha256:` is shortened as it is.
pub fn short_id(d: &str) -> &str {
    let h = d.strip_prefix("sha256:").unwrap_or(d);
    // Never split a character: cut at 12 bytes only on a boundary.
    let mut end = h.len().min(12);
    while !h.is_char_boundary(end) {
        end -= 1;
    }
    &h[..end]
}

/// `s` without a leading `docker://`.
pub fn strip_docker_scheme(s: &str) -> &str {
    s.strip_prefix(DOCKER_SCHEME).unwrap_or(s)
}

/// Split `NAME[:TAG]@DIGEST` at its first `@`. No validation.
pub fn split_digest(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((name, d)) => (name, Some(d)),
        None => (s, None),
    }
}

/// Split `NAME[:TAG]` at its tag: a `:` after the last `/` (so a registry
/// port is never taken for a tag). No validation.
pub fn split_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], Some(&s[last_slash + i + 1..])),
        None => (s, None),
    }
}

/// The registry of a name and the rest: the first path component when it
/// looks like a host (it contains `.` or `:`, or is `localhost`), as in the
/// distribution reference grammar. `None` for a Docker Hub short name.
pub fn split_registry(name: &str) -> Option<(&str, &str)> {
    name.split_once('/')
        .filter(|(first, _)| first.contains('.') || first.contains(':') || *first == "localhost")
}

/// A stored name split into `(REPOSITORY, TAG)`: `latest` when there is no
/// tag, and a digest reference's digest (`sha256:...`) in place of the tag.
pub fn split_name(name: &str) -> (&str, &str) {
    match split_digest(name) {
        (repo, Some(d)) => (repo, d),
        (name, None) => match split_tag(name) {
            (repo, Some(t)) => (repo, t),
            (repo, None) => (repo, DEFAULT_TAG),
        },
    }
}

/// True when `name` carries a tag or digest.
fn has_tag(name: &str) -> bool {
    split_tag(name).1.is_some() || split_digest(name).1.is_some()
}

/// `name` with `:latest` appended when it has neither a tag nor a digest.
pub fn with_tag(name: &str) -> String {
    if has_tag(name) {
        name.to_string()
    } else {
        format!("{name}:{DEFAULT_TAG}")
    }
}

/// The fully qualified form of a short name, as the registry source stores
/// it: `busybox` -> `docker.io/library/busybox`, `foo/bar` ->
/// `docker.io/foo/bar`. A leading `docker://` is dropped; names with a
/// registry are returned unchanged (`docker.io/busybox` stays as it is).
/// Lenient: nothing is validated, a tag or digest is kept.
pub fn qualify(name: &str) -> String {
    let name = strip_docker_scheme(name);
    if split_registry(name).is_some() {
        name.to_string()
    } else if name.contains('/') {
        format!("{DEFAULT_REGISTRY}/{name}")
    } else {
        format!("{DEFAULT_REGISTRY}/{DEFAULT_NAMESPACE}/{name}")
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    // HOST[:PORT] as in the distribution reference grammar: HOST is DNS
    // labels of [A-Za-z0-9-] (not starting or ending with '-') or a
    // bracketed IPv6 address, PORT is 1-65535. It also names a directory
    // under certs.d, so never "." or "..".
    if r.len() > 255 {
        return false;
    }
    let (host, port) = match r.strip_prefix('[') {
        Some(rest) => {
            let Some((v6, after)) = rest.split_once(']') else {
                return false;
            };
            if v6.is_empty()
                || !v6
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
            {
                return false;
            }
            match after {
                "" => (None, None),
                a => match a.strip_prefix(':') {
                    Some(p) => (None, Some(p)),
                    None => return false,
                },
            }
        }
        None => match r.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        },
    };
    let port_ok = match port {
        None => true,
        Some(p) => {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|c| c.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
        }
    };
    let host_ok = match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|l| {
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                })
        }
    };
    port_ok && host_ok
}

fn valid_repository(r: &str) -> bool {
    r.len() <= 255
        && r.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        })
}

/// Escape a string for use in an OSTree branch: bytes outside
/// `[A-Za-z0-9.-]` become `_XX` (uppercase hex).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`].
pub fn unescape(s: &str) -> Result<String, ImgRefError> {
    let bad = |reason| {
        Err(ImgRefError::Branch {
            branch: s.escape_debug().to_string(),
            reason,
        })
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => {
                let hex = match s.get(i + 1..i + 3) {
                    Some(h) if h.bytes().all(|c| c.is_ascii_hexdigit()) => h,
                    _ => return bad("'_' is not followed by two hex digits"),
                };
                let v = u8::from_str_radix(hex, 16).expect("checked hex");
                out.push(v);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'.' || c == b'-' => {
                out.push(c);
                i += 1;
            }
            _ => return bad("it contains a byte that escaping never writes"),
        }
    }
    match String::from_utf8(out) {
        Ok(v) => Ok(v),
        Err(_) => bad("it does not decode to UTF-8"),
    }
}

/// The branch of an image: `ociimage/<escaped NAME:TAG>`, with `:latest`
/// added when `name` has no tag ([`with_tag`]). `docker.io/busybox` becomes
/// `ociimage/docker.io_2Fbusybox_3Alatest`.
pub fn image_branch(name: &str) -> String {
    format!("{BRANCH_PREFIX}{}", escape(&with_tag(name)))
}

/// The branch of a layer: `ociimage/<hex>` for `sha256:<hex>`.
pub fn layer_branch(digest: &str) -> Result<String, ImgRefError> {
    match digest_hex(digest) {
        Some(hex) => Ok(format!("{BRANCH_PREFIX}{hex}")),
        None => Err(ImgRefError::Digest {
            digest: digest.escape_debug().to_string(),
        }),
    }
}

/// What a branch under `ociimage/` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Branch {
    /// A layer, with its digest (`sha256:<hex>`).
    Layer(String),
    /// An image, with its unescaped `NAME:TAG`.
    Image(String),
}

/// Classify and decode a branch name (with or without the `ociimage/` prefix).
/// 64 lowercase hex digits name a layer. 64 hex digits with an uppercase one
/// are refused: no layer is stored so (digests are lowercase) and no image
/// either (an escaped image name always holds a `_3A` or `_40`). Anything
/// else is an escaped image name.
pub fn parse_branch(branch: &str) -> Result<Branch, ImgRefError> {
    let rest = branch.strip_prefix(BRANCH_PREFIX).unwrap_or(branch);
    if is_sha256_hex(rest) {
        return Ok(Branch::Layer(format!("sha256:{rest}")));
    }
    if rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ImgRefError::Branch {
            branch: branch.escape_debug().to_string(),
            reason: "a layer branch is 64 lowercase hex digits",
        });
    }
    unescape(rest).map(Branch::Image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Found by fuzzing: `docker://http:HOST:PORT/...` was accepted with the
    /// registry "http:HOST:PORT", whose canonical name then parsed back as a
    /// plain-HTTP reference. The registry is now HOST[:PORT] strictly.
    #[test]
    fn registry_is_host_and_numeric_port() {
        for bad in [
            "docker://http:127.0.0.1:5000/x:y",
            "docker://http:127.0.0.1:5-00dd/x:y",
            "reg.example:/x",
            "reg.example:0/x",
            "reg.example:65536/x",
            "reg.example:5000:6000/x",
            "-reg.example/x",
            "reg..example/x",
            "reg.example-/x",
            "[zz::1]/x",
            "[::1]x/x",
            "a_b.example/x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} was accepted");
        }
        for (good, reg) in [
            ("127.0.0.1:5000/x", "127.0.0.1:5000"),
            ("[::1]:5000/x", "[::1]:5000"),
            ("[fe80::1]/x", "[fe80::1]"),
            ("localhost/x", "localhost"),
            (
                "my-registry.example.com:443/a/b:c",
                "my-registry.example.com:443",
            ),
            ("http:localhost:5000/x", "localhost:5000"),
        ] {
            let r = p(good);
            assert_eq!(r.registry, reg);
            assert_eq!(p(&r.canonical()).canonical(), r.canonical());
        }
    }

    #[test]
    fn bare_names_go_to_docker_hub_library() {
        let r = p("busybox");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag, None);
        assert!(r.unqualified);
        assert!(!r.insecure);
        assert_eq!(r.canonical(), "docker.io/library/busybox:latest");
        assert_eq!(r.reference(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");

        let r = p("busybox:1.36");
        assert_eq!(r.canonical(), "docker.io/library/busybox:1.36");
        let r = p("someone/etcd:v3");
        assert_eq!(r.repository, "someone/etcd");
        assert!(r.unqualified);
    }

    #[test]
    fn first_component_is_a_host_with_dot_colon_or_localhost() {
        let r = p("docker.io/busybox");
        assert_eq!(r.repository, "library/busybox");
        assert!(!r.unqualified);
        let r = p("127.0.0.1:5000/hello");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "hello");
        assert_eq!(r.canonical(), "127.0.0.1:5000/hello:latest");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        let r = p("localhost/a/b:c");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "a/b")
        );
        assert_eq!(r.tag.as_deref(), Some("c"));
        let r = p("myhost:5000/x");
        assert_eq!(r.registry, "myhost:5000");
        let r = p("quay.io/coreos/etcd:v3.5.0");
        assert_eq!(r.name(), "quay.io/coreos/etcd");
        assert_eq!(r.tag.as_deref(), Some("v3.5.0"));
        // Not a host: no dot, no colon, not localhost.
        let r = p("registry/foo");
        assert_eq!(r.name(), "docker.io/registry/foo");
        assert!(r.unqualified);
    }

    #[test]
    fn prefixes() {
        let r = p("docker://quay.io/a/b");
        assert_eq!(r.name(), "quay.io/a/b");
        assert!(!r.insecure);
        let r = p("http:127.0.0.1:5000/hello:1");
        assert!(r.insecure);
        assert_eq!(r.canonical(), "127.0.0.1:5000/hello:1");
        let r = p("http://127.0.0.1:5000/hello");
        assert!(r.insecure);
        assert_eq!(r.registry, "127.0.0.1:5000");
    }

    #[test]
    fn digests() {
        let r = p(&format!("quay.io/a/b@{D}"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), D);
        assert_eq!(r.canonical(), format!("quay.io/a/b@{D}"));
        let r = p(&format!("quay.io/a/b:v1@{D}"));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.reference(), D);
        assert_eq!(r.to_string(), format!("quay.io/a/b:v1@{D}"));
        assert!(matches!(
            ImageRef::parse("quay.io/a/b@sha256:abc"),
            Err(ImgRefError::Digest { .. })
        ));
        assert!(
            ImageRef::parse(&format!("quay.io/a/b@{}", D.replace("sha256", "sha512"))).is_err()
        );
        assert!(ImageRef::parse(&format!("quay.io/a/b@{}", D.to_uppercase())).is_err());
    }

    #[test]
    fn rejects_bad_references() {
        for s in [
            "",
            "docker://",
            "Busybox",
            "quay.io/A/b",
            "quay.io//b",
            "quay.io/a/",
            "quay.io/a/b:",
            "quay.io/a/b:-x",
            "quay.io/../b",
            "quay.io/a b",
            "quay.io/a/b:t/c",
            "qu ay.io/a",
            "/abs/path",
            "../x/y",
            "..:1/y",
            ".a.b/y",
        ] {
            assert!(ImageRef::parse(s).is_err(), "{s:?} should be refused");
        }
        let e = ImageRef::parse("Busy").unwrap_err().to_string();
        assert!(e.contains("'Busy'"), "{e}");
        assert!(ImageRef::parse(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn transports() {
        assert_eq!(
            Transport::of("dockertar:/a/b.tar"),
            Transport::DockerArchive("/a/b.tar")
        );
        assert_eq!(Transport::of("oci:/d:v1"), Transport::OciLayout("/d:v1"));
        assert_eq!(
            Transport::of("docker:busybox:1"),
            Transport::Engine("busybox:1")
        );
        assert_eq!(Transport::of("docker:"), Transport::Engine(""));
        for reg in [
            "docker://quay.io/a",
            "http:localhost:5000/a",
            "busybox",
            "quay.io/a:1",
        ] {
            assert_eq!(Transport::of(reg), Transport::Registry(reg));
        }
        for (spec, explicit) in [
            ("dockertar:/a.tar", true),
            ("oci:/d", true),
            ("docker:busybox", true),
            ("docker:", true),
            ("docker://busybox", true),
            ("http:localhost:5000/a", true),
            ("http://localhost:5000/a", true),
            ("busybox", false),
            ("localhost:5000/a:1", false),
            ("sha256:abc", false),
            ("dockertarx", false),
        ] {
            assert_eq!(Transport::is_explicit(spec), explicit, "{spec}");
        }
    }

    #[test]
    fn escaping_matches_atomic() {
        assert_eq!(
            image_branch("docker.io/busybox"),
            "ociimage/docker.io_2Fbusybox_3Alatest"
        );
        assert_eq!(
            image_branch("docker.io/library/busybox:latest"),
            "ociimage/docker.io_2Flibrary_2Fbusybox_3Alatest"
        );
        assert_eq!(
            image_branch("127.0.0.1:5000/hello"),
            "ociimage/127.0.0.1_3A5000_2Fhello_3Alatest"
        );
        assert_eq!(image_branch("a_b:1"), "ociimage/a_5Fb_3A1");
        assert_eq!(
            image_branch(&format!("quay.io/a@{D}")),
            format!("ociimage/quay.io_2Fa_40sha256_3A{}", &D[7..])
        );
        assert_eq!(escape("é"), "_C3_A9");
    }

    #[test]
    fn unescape_inverts_escape() {
        for s in [
            "docker.io/library/busybox:latest",
            "127.0.0.1:5000/x_y:1",
            "é~ !",
            "",
        ] {
            assert_eq!(unescape(&escape(s)).unwrap(), s);
        }
        assert!(unescape("a_4").is_err());
        assert!(unescape("a_ZZ").is_err());
        assert!(unescape("a/b").is_err());
        assert!(unescape("_FF").is_err());
    }

    #[test]
    fn branches() {
        assert_eq!(layer_branch(D).unwrap(), format!("ociimage/{}", &D[7..]));
        assert!(layer_branch("sha256:../../x").is_err());
        assert_eq!(
            parse_branch(&layer_branch(D).unwrap()).unwrap(),
            Branch::Layer(D.to_string())
        );
        assert_eq!(
            parse_branch("ociimage/docker.io_2Fbusybox_3Alatest").unwrap(),
            Branch::Image("docker.io/busybox:latest".into())
        );
        assert!(parse_branch("ociimage/bad_").is_err());
        assert_eq!(
            image_branch("localhost:5000/a/b:v1"),
            "ociimage/localhost_3A5000_2Fa_2Fb_3Av1"
        );
        // Strict: the store only ever writes valid digests.
        assert!(layer_branch("sha256:ab").is_err());
        assert!(layer_branch(&D[7..]).is_err());
    }

    /// The one rule: digests are `sha256:` + 64 lowercase hex. Uppercase hex
    /// is refused as a digest, in a reference, as a layer branch and as an
    /// image ID prefix.
    #[test]
    fn uppercase_hex_is_refused_everywhere() {
        let upper = D.to_uppercase().replacen("SHA256", "sha256", 1);
        assert_eq!(&upper[..7], "sha256:");
        assert!(digest_hex(D).is_some());
        assert!(digest_hex(&upper).is_none());
        assert!(matches!(
            validate_digest(&upper),
            Err(ImgRefError::Digest { .. })
        ));
        // One uppercase digit is enough.
        let one = format!("{}A", &D[..D.len() - 1]);
        assert!(validate_digest(&one).is_err());
        assert!(ImageRef::parse(&format!("quay.io/a/b@{upper}")).is_err());
        assert!(layer_branch(&upper).is_err());
        // As a layer branch suffix: neither a layer nor an image.
        let branch = format!("ociimage/{}", &upper[7..]);
        let e = parse_branch(&branch).unwrap_err();
        assert!(e.to_string().contains("lowercase hex"), "{e}");
        assert!(parse_branch(&upper[7..]).is_err());
        assert!(parse_branch(&format!("ociimage/{}", &one[7..])).is_err());
        assert_eq!(
            parse_branch(&format!("ociimage/{}", &D[7..])).unwrap(),
            Branch::Layer(D.to_string())
        );
        // As an image ID prefix.
        assert_eq!(id_prefix("ABCDEF"), None);
        assert_eq!(id_prefix("sha256:ABC"), None);
        assert_eq!(id_prefix(&upper), None);
    }

    #[test]
    fn valid_digests() {
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(validate_digest("sha256:../../etc").is_err());
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(65))).is_err());
        assert!(validate_digest(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(validate_digest(&"a".repeat(64)).is_err());
        assert_eq!(digest_hex(D), Some(&D[7..]));
    }

    #[test]
    fn id_prefixes() {
        assert_eq!(id_prefix("abc"), Some("abc"));
        assert_eq!(id_prefix("sha256:0a"), Some("0a"));
        assert_eq!(id_prefix(D), Some(&D[7..]));
        for bad in [
            "",
            "sha256:",
            "xyz",
            "ab c",
            "sha256:sha256:ab",
            &"a".repeat(65),
        ] {
            assert_eq!(id_prefix(bad), None, "{bad:?}");
        }
        assert_eq!(short_id(D), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("aéééééé"), "aééééé");
    }

    #[test]
    fn split_names() {
        assert_eq!(
            split_name("docker.io/library/busybox:1.36"),
            ("docker.io/library/busybox", "1.36")
        );
        assert_eq!(
            split_name("localhost:5000/a"),
            ("localhost:5000/a", "latest")
        );
        assert_eq!(split_name("localhost:5000/a:v"), ("localhost:5000/a", "v"));
        assert_eq!(split_name("a/b@sha256:00"), ("a/b", "sha256:00"));
        assert_eq!(split_name("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("a:1/b"), ("a:1/b", None));
        assert_eq!(split_tag("a/b:c:d"), ("a/b:c", Some("d")));
        assert_eq!(split_digest("a@b@c"), ("a", Some("b@c")));
    }

    #[test]
    fn with_tag_adds_latest_only_when_untagged() {
        assert_eq!(with_tag("docker.io/busybox"), "docker.io/busybox:latest");
        assert_eq!(with_tag("localhost:5000/a"), "localhost:5000/a:latest");
        assert_eq!(with_tag("localhost:5000/a:v1"), "localhost:5000/a:v1");
        assert_eq!(with_tag(&format!("a/b@{D}")), format!("a/b@{D}"));
        assert_eq!(with_tag("busybox:1"), "busybox:1");
        assert_eq!(with_tag(""), ":latest");
    }

    #[test]
    fn qualify_short_names() {
        assert_eq!(qualify("busybox"), "docker.io/library/busybox");
        assert_eq!(qualify("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(qualify("foo/bar:1"), "docker.io/foo/bar:1");
        assert_eq!(qualify("localhost/x"), "localhost/x");
        assert_eq!(qualify("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(qualify("quay.io/x/y"), "quay.io/x/y");
        // Qualified names stay as written: no library/ is added.
        assert_eq!(qualify("docker.io/busybox"), "docker.io/busybox");
        assert_eq!(qualify("docker://busybox"), "docker.io/library/busybox");
        assert_eq!(qualify("localhost"), "docker.io/library/localhost");
        assert_eq!(split_registry("registry/foo"), None);
        assert_eq!(split_registry("a.b/c/d"), Some(("a.b", "c/d")));
    }

    #[test]
    fn unescape_failures() {
        assert_eq!(
            unescape("docker.io_2Fbusybox_3Alatest").unwrap(),
            "docker.io/busybox:latest"
        );
        assert!(unescape("bad_4").is_err());
    }
}
