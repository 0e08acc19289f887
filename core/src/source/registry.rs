//! The registry client: the OCI distribution API v2 over `ureq`.
//!
//! - Authentication: anonymous, basic, or bearer tokens obtained from the
//!   realm the registry names in `WWW-Authenticate`, cached until they
//!   expire. A 401 is answered once by re-authenticating; a second 401 is an
//!   error, so an endless 401 loop ends after one extra request.
//! - TLS ([`super::tls`]) is verified against the system roots plus
//!   `/etc/containers/certs.d/HOST[:PORT]/*.crt`; `http:` means plain
//!   HTTP; `tls_verify = false` means HTTPS without verification, falling
//!   back to plain HTTP.
//! - Redirects are followed by hand (at most [`MAX_REDIRECTS`]), and the
//!   `Authorization` header is only ever sent to the registry's own origin.
//!   HTTPS is never downgraded to HTTP unless the registry is insecure.
//! - Connect and read timeouts, bounded retries with backoff for 5xx, 429 and
//!   reset connections, and size caps on everything read into memory.
//! - A low-speed limit on blobs ([`LowSpeed`]): a blob that trickles is
//!   fetched again from where it stopped, under the same retry policy, and
//!   fails with [`super::SlowTransfer`] when every attempt is too slow.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use super::auth::{self, Challenge, Credentials};
use super::manifest::{self, resolve_from};
pub use super::tls::{tls_config, CERTS_D};
use super::transfer::{LowSpeed, Reopened, Resuming};
use super::{
    read_capped, sha256_digest, Descriptor, ImageSource, ResolvedImage, SigstoreAttachment,
    SourceError, SourceOptions, MAX_ATTACHMENTS, MAX_ATTACHMENT_SIZE, MAX_MANIFEST_SIZE,
};
use crate::imgref::{digest_hex, ImageRef};
use crate::paths::Root;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries after the first attempt, for transient failures.
pub const MAX_RETRIES: u32 = 3;
pub const MAX_REDIRECTS: u32 = 5;
const RETRY_DELAY: Duration = Duration::from_millis(250);
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
const MAX_ERROR_BODY: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Verified HTTPS.
    Https,
    /// `http:` prefix: plain HTTP only.
    Http,
    /// `tls_verify = false`: unverified HTTPS, then plain HTTP.
    Insecure,
}

#[derive(Debug, Clone)]
enum Auth {
    Unknown,
    Anonymous,
    Basic,
    Bearer {
        challenge: Challenge,
        token: Option<(String, Instant)>,
    },
}

/// A client for one repository on one registry. A clone shares the
/// connection pool, and starts with the same scheme and token.
#[derive(Clone)]
pub struct RegistryClient {
    agent: ureq::Agent,
    tls: Option<Arc<rustls::ClientConfig>>,
    transport: Transport,
    registry: String,
    host: String,
    repository: String,
    base: Option<Url>,
    creds: Option<Credentials>,
    auth: Auth,
    retry_delay: Duration,
    low_speed: LowSpeed,
}

fn build_agent(
    tls: Option<Arc<rustls::ClientConfig>>,
    connect: Duration,
    read: Duration,
) -> ureq::Agent {
    let mut b = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(connect)
        .timeout_read(read)
        .timeout_write(read)
        .max_idle_connections_per_host(4)
        .user_agent(concat!("syscontainer/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = tls {
        b = b.tls_config(t);
    }
    b.build()
}

fn is_transient_status(code: u16) -> bool {
    code == 429 || code == 502 || code == 503 || code == 504 || code == 500
}

fn is_transient_transport(t: &ureq::Transport) -> bool {
    use std::io::ErrorKind as K;
    if !matches!(
        t.kind(),
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io
    ) {
        return false;
    }
    // Refused or dropped connections are retried. A timeout is not (a
    // stalled server stays stalled), nor is a TLS failure.
    let io = std::error::Error::source(t).and_then(|s| s.downcast_ref::<std::io::Error>());
    io.is_some_and(|e| {
        matches!(
            e.kind(),
            K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
        )
    })
}

/// The registry's explanation of an error response, from its JSON `errors`
/// list when it sends one.
fn error_detail(resp: ureq::Response) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Es {
        errors: Vec<E>,
    }
    let status = format!("{} {}", resp.status(), resp.status_text());
    let body = read_capped(resp.into_reader(), MAX_ERROR_BODY, "error body").unwrap_or_default();
    if let Ok(es) = serde_json::from_slice::<Es>(&body) {
        let v: Vec<String> = es
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        if !v.is_empty() {
            return v.join("; ");
        }
    }
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.trim().is_empty() {
        status
    } else {
        format!("{status}: {}", text.trim())
    }
}

impl RegistryClient {
    /// A client for `image`'s repository. Nothing is sent until the first
    /// request.
    pub fn new(
        image: &ImageRef,
        creds: Option<Credentials>,
        root: &Root,
        tls_verify: bool,
    ) -> Result<Self, SourceError> {
        let transport = if image.insecure {
            Transport::Http
        } else if !tls_verify {
            Transport::Insecure
        } else {
            Transport::Https
        };
        let tls = match transport {
            Transport::Http => None,
            _ => Some(tls_config(root, &image.registry, tls_verify)?),
        };
        Ok(RegistryClient {
            agent: build_agent(tls.clone(), CONNECT_TIMEOUT, READ_TIMEOUT),
            tls,
            transport,
            registry: image.registry.clone(),
            host: image.api_host().to_string(),
            repository: image.repository.clone(),
            base: None,
            creds,
            auth: Auth::Unknown,
            retry_delay: RETRY_DELAY,
            low_speed: LowSpeed::DEFAULT,
        })
    }

    /// Change the connect and read timeouts (tests of stalling servers).
    pub fn set_timeouts(&mut self, connect: Duration, read: Duration) {
        self.agent = build_agent(self.tls.clone(), connect, read);
    }

    /// Change the base delay between retries (doubled on each retry).
    pub fn set_retry_delay(&mut self, d: Duration) {
        self.retry_delay = d;
    }

    /// Change the low-speed limit of blob transfers.
    pub fn set_low_speed(&mut self, ls: LowSpeed) {
        self.low_speed = ls;
    }

    fn insecure(&self) -> bool {
        self.transport != Transport::Https
    }

    /// One request, retried on transient failures. (ureq's error is large,
    /// but it is matched on at once by every caller.)
    #[allow(clippy::result_large_err)]
    fn exchange(
        &self,
        url: &Url,
        authorization: Option<&str>,
        accept: &str,
        retries: u32,
        range: Option<&str>,
    ) -> Result<ureq::Response, ureq::Error> {
        let mut attempt = 0;
        loop {
            let mut req = self.agent.request_url("GET", url).set("Accept", accept);
            if let Some(a) = authorization {
                req = req.set("Authorization", a);
            }
            if let Some(r) = range {
                req = req.set("Range", r);
            }
            let r = req.call();
            let transient = match &r {
                Err(ureq::Error::Status(code, _)) => is_transient_status(*code),
                Err(ureq::Error::Transport(t)) => is_transient_transport(t),
                Ok(_) => false,
            };
            if !transient || attempt >= retries {
                return r;
            }
            let delay = self.retry_delay * 2u32.pow(attempt);
            log::debug!(
                "{url}: transient failure ({}), retrying in {delay:?}",
                match &r {
                    Err(e) => e.to_string(),
                    Ok(_) => String::new(),
                }
            );
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    fn adopt_challenge(&mut self, resp: &ureq::Response) {
        let challenges: Vec<Challenge> = resp
            .all("WWW-Authenticate")
            .into_iter()
            .filter_map(auth::parse_challenge)
            .collect();
        self.auth = if let Some(b) = challenges.iter().find(|c| c.scheme == "bearer") {
            Auth::Bearer {
                challenge: b.clone(),
                token: None,
            }
        } else {
            // Basic, or a challenge we do not know: try basic.
            Auth::Basic
        };
    }

    /// `GET /v2/`: find the scheme (for insecure registries) and how to
    /// authenticate.
    fn ping(&mut self) -> Result<(), SourceError> {
        let schemes: &[&str] = match self.transport {
            Transport::Https => &["https"],
            Transport::Http => &["http"],
            Transport::Insecure => &["https", "http"],
        };
        let what = format!("registry {}", self.registry);
        for (i, scheme) in schemes.iter().enumerate() {
            let url = Url::parse(&format!("{scheme}://{}/v2/", self.host)).map_err(|_| {
                SourceError::Invalid {
                    what: what.clone(),
                    reason: format!("'{}' does not make a valid URL", self.host),
                }
            })?;
            let last = i + 1 == schemes.len();
            match self.exchange(
                &url,
                None,
                "application/json",
                if last { MAX_RETRIES } else { 0 },
                None,
            ) {
                Ok(_) => self.auth = Auth::Anonymous,
                Err(ureq::Error::Status(401, resp)) => self.adopt_challenge(&resp),
                Err(ureq::Error::Status(status, resp)) => {
                    return Err(SourceError::Status {
                        what: format!("{what} (is it a registry speaking API v2?)"),
                        url: url.to_string(),
                        status,
                        detail: error_detail(resp),
                    })
                }
                Err(ureq::Error::Transport(t)) if !last => {
                    log::debug!("{url}: {t}; trying plain HTTP");
                    continue;
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(SourceError::Http {
                        what,
                        url: url.to_string(),
                        source: Box::new(ureq::Error::Transport(t)),
                    })
                }
            }
            self.base = Some(url);
            return Ok(());
        }
        unreachable!("the scheme list is never empty")
    }

    fn unauthorized(&self, detail: String) -> SourceError {
        let why = if self.creds.is_some() {
            "the registry rejected the credentials (wrong user name or password?)".to_string()
        } else {
            format!(
                "authentication required and no credentials found \
                 (use --creds, --authfile, or an auth.json entry for {})",
                self.registry
            )
        };
        SourceError::Unauthorized {
            registry: self.registry.clone(),
            detail: format!("{why}: {detail}"),
        }
    }

    /// The `Authorization` value for the registry's own origin.
    fn authorization(&mut self) -> Result<Option<String>, SourceError> {
        match &self.auth {
            Auth::Unknown | Auth::Anonymous => Ok(None),
            // Without credentials, try anonymously: some registries
            // challenge on /v2/ but serve public repositories.
            Auth::Basic => Ok(self.creds.as_ref().map(Credentials::basic_header)),
            Auth::Bearer { token, challenge } => {
                if let Some((t, until)) = token {
                    if Instant::now() < *until {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let challenge = challenge.clone();
                let (t, until) = self.fetch_token(&challenge)?;
                self.auth = Auth::Bearer {
                    challenge,
                    token: Some((t.clone(), until)),
                };
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    fn fetch_token(&self, challenge: &Challenge) -> Result<(String, Instant), SourceError> {
        let what = format!("token for {}/{}", self.registry, self.repository);
        let realm = challenge.param("realm").unwrap_or("");
        let mut url = Url::parse(realm).map_err(|_| SourceError::Invalid {
            what: what.clone(),
            reason: format!("the bearer realm '{}' is not a URL", realm.escape_debug()),
        })?;
        match url.scheme() {
            "https" => {}
            "http" if self.insecure() => {}
            _ => {
                return Err(SourceError::Redirect {
                    what,
                    url: url.to_string(),
                    reason: "refusing a token realm that is not HTTPS",
                })
            }
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = challenge.param("service") {
                q.append_pair("service", s);
            }
            q.append_pair("scope", &format!("repository:{}:pull", self.repository));
        }
        let basic = self.creds.as_ref().map(Credentials::basic_header);
        let resp = match self.exchange(
            &url,
            basic.as_deref(),
            "application/json",
            MAX_RETRIES,
            None,
        ) {
            Ok(r) if r.status() == 200 => r,
            Ok(r) => {
                return Err(SourceError::Status {
                    what,
                    url: url.to_string(),
                    status: r.status(),
                    detail: "unexpected answer from the token server".into(),
                })
            }
            Err(ureq::Error::Status(401 | 403, r)) => {
                return Err(self.unauthorized(error_detail(r)))
            }
            Err(ureq::Error::Status(status, r)) => {
                return Err(SourceError::Status {
                    what,
                    url: url.to_string(),
                    status,
                    detail: error_detail(r),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(SourceError::Http {
                    what,
                    url: url.to_string(),
                    source: Box::new(ureq::Error::Transport(t)),
                })
            }
        };
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let raw = read_capped(resp.into_reader(), MAX_TOKEN_RESPONSE, &what)?;
        let t: Token = serde_json::from_slice(&raw).map_err(|e| SourceError::Json {
            what: what.clone(),
            source: e,
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SourceError::Invalid {
                what: what.clone(),
                reason: "the token server sent no token".into(),
            })?;
        // The distribution spec: a lifetime under 60 s means 60 s.
        let lifetime = t.expires_in.unwrap_or(60).max(60);
        Ok((token, Instant::now() + Duration::from_secs(lifetime - 5)))
    }

    /// GET a path under the registry's base URL, with authentication,
    /// redirects and retries. 404 becomes [`SourceError::NotFound`].
    pub fn get(
        &mut self,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<ureq::Response, SourceError> {
        self.get_range(path, accept, what, None)
    }

    /// [`get`](Self::get), with `Range: bytes=FROM-` when `from` is given.
    fn get_range(
        &mut self,
        path: &str,
        accept: &str,
        what: &str,
        from: Option<u64>,
    ) -> Result<ureq::Response, SourceError> {
        let range = from.map(|n| format!("bytes={n}-"));
        if self.base.is_none() {
            self.ping()?;
        }
        let base = self.base.clone().expect("set by ping");
        let mut url = base.join(path).map_err(|_| SourceError::Invalid {
            what: what.to_string(),
            reason: format!("'{path}' does not make a valid URL"),
        })?;
        let mut reauthenticated = false;
        let mut hops = 0;
        loop {
            let own_origin = url.origin() == base.origin();
            let authorization = if own_origin {
                self.authorization()?
            } else {
                None
            };
            let r = self.exchange(
                &url,
                authorization.as_deref(),
                accept,
                MAX_RETRIES,
                range.as_deref(),
            );
            let redirect = |reason| SourceError::Redirect {
                what: what.to_string(),
                url: url.to_string(),
                reason,
            };
            match r {
                Ok(resp) if (300..400).contains(&resp.status()) => {
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(redirect("too many redirects"));
                    }
                    let loc = resp
                        .header("Location")
                        .ok_or_else(|| redirect("redirect without a Location"))?;
                    let next = url
                        .join(loc)
                        .map_err(|_| redirect("redirect to an invalid URL"))?;
                    match (url.scheme(), next.scheme()) {
                        (_, "https") => {}
                        ("http", "http") => {}
                        ("https", "http") if self.insecure() => {}
                        ("https", "http") => {
                            return Err(redirect("refusing a redirect from HTTPS to plain HTTP"))
                        }
                        _ => return Err(redirect("redirect to an unsupported URL scheme")),
                    }
                    log::debug!(
                        "{what}: redirected to {}",
                        next.origin().ascii_serialization()
                    );
                    url = next;
                }
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if own_origin && !reauthenticated => {
                    // Adopt what the registry asks for now (a token for
                    // this scope, or a fresh one), once.
                    reauthenticated = true;
                    self.adopt_challenge(&resp);
                }
                Err(ureq::Error::Status(401 | 403, resp)) => {
                    return Err(self.unauthorized(error_detail(resp)))
                }
                Err(ureq::Error::Status(404, resp)) => {
                    return Err(SourceError::NotFound {
                        what: what.to_string(),
                        url: url.to_string(),
                        detail: error_detail(resp),
                    })
                }
                Err(ureq::Error::Status(status, resp)) => {
                    return Err(SourceError::Status {
                        what: what.to_string(),
                        url: url.to_string(),
                        status,
                        detail: error_detail(resp),
                    })
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(SourceError::Http {
                        what: what.to_string(),
                        url: url.to_string(),
                        source: Box::new(ureq::Error::Transport(t)),
                    })
                }
            }
        }
    }

    /// Fetch a manifest by tag or digest: bytes (capped) and content type.
    pub fn fetch_manifest(
        &mut self,
        reference: &str,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>), SourceError> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let resp = self.get(&path, manifest::ACCEPT, what)?;
        check_length(&resp, MAX_MANIFEST_SIZE, what)?;
        let ct = resp.header("Content-Type").map(str::to_string);
        let header_digest = resp.header("Docker-Content-Digest").map(str::to_string);
        let raw = read_capped(resp.into_reader(), MAX_MANIFEST_SIZE, what)?;
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            let actual = sha256_digest(&raw);
            if h != actual {
                return Err(SourceError::DigestMismatch {
                    what: format!("{what} (Docker-Content-Digest header)"),
                    expected: h,
                    actual,
                });
            }
        }
        Ok((raw, ct))
    }

    /// Start streaming a blob.
    pub fn blob(&mut self, d: &Descriptor, what: &str) -> Result<ureq::Response, SourceError> {
        self.blob_from(d, what, None)
    }

    fn blob_from(
        &mut self,
        d: &Descriptor,
        what: &str,
        from: Option<u64>,
    ) -> Result<ureq::Response, SourceError> {
        if digest_hex(&d.digest).is_none() {
            return Err(SourceError::Invalid {
                what: what.to_string(),
                reason: "not a sha256 digest".into(),
            });
        }
        let path = format!("/v2/{}/blobs/{}", self.repository, d.digest);
        let resp = self.get_range(&path, "*/*", what, from)?;
        check_length(&resp, d.size, what)?;
        Ok(resp)
    }

    /// The body of `first` (the response of [`blob`](Self::blob)) under
    /// the low-speed limit: a body that trickles is fetched again from where
    /// it stopped, under the retry policy.
    pub fn blob_body<'a>(
        &'a mut self,
        first: ureq::Response,
        d: &Descriptor,
        what: &str,
    ) -> impl Read + Send + 'a {
        let (ls, delay) = (self.low_speed, self.retry_delay);
        let (d2, what2) = (d.clone(), what.to_string());
        let reopen = Box::new(move |from: u64| -> Result<Reopened, SourceError> {
            let resp = self.blob_from(&d2, &what2, Some(from))?;
            resumed(resp, from, &what2)
        });
        Resuming::new(
            what.to_string(),
            d.size,
            first.into_reader(),
            reopen,
            ls,
            MAX_RETRIES,
            delay,
        )
    }
}

/// The rest of a blob from `from`: a 206 must start there; a 200 is the
/// whole blob again, whose first `from` bytes are dropped.
fn resumed(resp: ureq::Response, from: u64, what: &str) -> Result<Reopened, SourceError> {
    if resp.status() != 206 {
        return Ok((resp.into_reader(), from));
    }
    let start = resp
        .header("Content-Range")
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if start != Some(from) {
        return Err(SourceError::Invalid {
            what: what.to_string(),
            reason: format!(
                "asked for the blob from byte {from}, got Content-Range {:?}",
                resp.header("Content-Range").unwrap_or("")
            ),
        });
    }
    Ok((resp.into_reader(), 0))
}

/// A `Content-Length` over the limit fails before the body is read.
fn check_length(resp: &ureq::Response, limit: u64, what: &str) -> Result<(), SourceError> {
    match resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(n) if n > limit => Err(SourceError::TooLarge {
            what: what.to_string(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// `[docker://|http:]REGISTRY/NAME[:TAG|@DIGEST]`.
#[derive(Clone)]
pub struct RegistrySource {
    image: ImageRef,
    client: RegistryClient,
}

impl RegistrySource {
    /// Parse the reference, find credentials and set up TLS. Logs a warning
    /// for an unqualified name (unless `quiet`) and, always, for an insecure
    /// transport.
    pub fn new(spec: &str, opts: &SourceOptions) -> Result<Self, SourceError> {
        let image = ImageRef::parse(spec)?;
        if image.unqualified && !opts.quiet {
            log::warn!(
                "'{spec}' is not fully qualified; pulling {} (write the registry explicitly to avoid this warning)",
                image.canonical()
            );
        }
        // Insecure transport is always explicit: `-q` does not hide it.
        if image.insecure {
            log::warn!("{}: using plain HTTP, without TLS", image.registry);
        } else if !opts.tls_verify {
            log::warn!(
                "{}: TLS certificates are not verified, and plain HTTP is allowed",
                image.registry
            );
        }
        let creds = match &opts.creds {
            Some(c) => Some(Credentials::parse_creds(c, &image.registry)?),
            None => {
                let files = match &opts.authfile {
                    Some(f) => vec![f.clone()],
                    None => opts.auth_files.clone(),
                };
                auth::lookup(&files, &image.registry, &image.repository)?
            }
        };
        let mut client = RegistryClient::new(&image, creds, &opts.root, opts.tls_verify)?;
        client.set_low_speed(opts.low_speed);
        Ok(RegistrySource { image, client })
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    pub fn client_mut(&mut self) -> &mut RegistryClient {
        &mut self.client
    }

    /// The digest of the image manifest the reference names now, for this
    /// host's platform: what a pull would store as its manifest digest.
    /// One manifest request, and nothing else fetched: for an index, the
    /// digest is that of the platform's entry.
    pub fn current_digest(&mut self) -> Result<String, SourceError> {
        let what = format!("manifest of {}", self.image);
        let reference = self.image.reference().to_string();
        let (raw, ct) = self.client.fetch_manifest(&reference, &what)?;
        match manifest::parse(&raw, ct.as_deref(), &what)? {
            manifest::Parsed::Manifest(_) => Ok(sha256_digest(&raw)),
            manifest::Parsed::Index(entries) => {
                Ok(
                    manifest::select_platform(&entries, &manifest::host_platform(), &what)?
                        .descriptor
                        .digest
                        .clone(),
                )
            }
        }
    }
}

impl ImageSource for RegistrySource {
    fn describe(&self) -> String {
        format!("registry image {}", self.image)
    }

    fn resolve(&mut self) -> Result<ResolvedImage, SourceError> {
        let what = format!("manifest of {}", self.image);
        let reference = self.image.reference().to_string();
        let (raw, ct) = self.client.fetch_manifest(&reference, &what)?;
        if let Some(d) = &self.image.digest {
            let actual = sha256_digest(&raw);
            if &actual != d {
                return Err(SourceError::DigestMismatch {
                    what,
                    expected: d.clone(),
                    actual,
                });
            }
        }
        let client = &mut self.client;
        let mut fetch = |d: &Descriptor, limit: u64, what: &str| {
            let is_manifest = [
                manifest::OCI_MANIFEST,
                manifest::DOCKER_MANIFEST,
                manifest::OCI_INDEX,
                manifest::DOCKER_LIST,
            ]
            .contains(&d.media_type.as_str());
            if is_manifest {
                client.fetch_manifest(&d.digest, what)
            } else {
                let resp = client.blob(d, what)?;
                let ct = resp.header("Content-Type").map(str::to_string);
                Ok((
                    read_capped(client.blob_body(resp, d, what), limit, what)?,
                    ct,
                ))
            }
        };
        resolve_from(
            self.image.canonical(),
            raw,
            ct.as_deref(),
            &what,
            &mut fetch,
        )
    }

    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let what = format!("blob {} of {}", d.digest, self.image.name());
        let resp = self.client.blob(d, &what)?;
        Ok(Box::new(self.client.blob_body(resp, d, &what)))
    }

    fn fork(&self) -> Option<Box<dyn ImageSource>> {
        Some(Box::new(self.clone()))
    }

    /// containers/image's `getSigstoreAttachmentManifest` and
    /// `appendSignaturesFromSigstoreAttachments`: the OCI manifest tagged
    /// `sha256-<hex>.sig` in the same repository (none when the registry
    /// says it is unknown), then each of its layers, digest-checked.
    fn sigstore_attachments(
        &mut self,
        manifest_digest: &str,
    ) -> Result<Vec<SigstoreAttachment>, SourceError> {
        let hex = digest_hex(manifest_digest).ok_or_else(|| SourceError::Invalid {
            what: format!("manifest digest of {}", self.image),
            reason: format!("'{manifest_digest}' is not a sha256 digest"),
        })?;
        let tag = format!("sha256-{hex}.sig");
        let what = format!("sigstore attachment {}:{tag}", self.image.name());
        let (raw, ct) = match self.client.fetch_manifest(&tag, &what) {
            Err(SourceError::NotFound { .. }) => {
                log::debug!("{what}: none");
                return Ok(Vec::new());
            }
            r => r?,
        };
        let mime = ct
            .as_deref()
            .map(|c| c.split(';').next().unwrap_or("").trim());
        if mime != Some(manifest::OCI_MANIFEST) {
            return Err(SourceError::Invalid {
                what,
                reason: format!(
                    "unexpected MIME type {:?} (an OCI image manifest was expected)",
                    ct.unwrap_or_default()
                ),
            });
        }
        #[derive(serde::Deserialize)]
        struct AttachmentManifest {
            #[serde(default)]
            layers: Vec<AttachmentLayer>,
        }
        #[derive(serde::Deserialize)]
        struct AttachmentLayer {
            #[serde(rename = "mediaType")]
            media_type: String,
            digest: String,
            size: u64,
            #[serde(default)]
            annotations: std::collections::BTreeMap<String, String>,
        }
        let m: AttachmentManifest =
            serde_json::from_slice(&raw).map_err(|source| SourceError::Json {
                what: what.clone(),
                source,
            })?;
        if m.layers.len() > MAX_ATTACHMENTS {
            return Err(SourceError::Invalid {
                what,
                reason: format!(
                    "{} layers, more than the {MAX_ATTACHMENTS} read",
                    m.layers.len()
                ),
            });
        }
        let mut out = Vec::with_capacity(m.layers.len());
        for (i, l) in m.layers.into_iter().enumerate() {
            let d = Descriptor {
                media_type: l.media_type,
                digest: l.digest,
                size: l.size,
            };
            let what = format!("{what}, layer {}", i + 1);
            if d.size > MAX_ATTACHMENT_SIZE {
                return Err(SourceError::TooLarge {
                    what,
                    limit: MAX_ATTACHMENT_SIZE,
                });
            }
            let resp = self.client.blob(&d, &what)?;
            let payload = read_capped(
                self.client.blob_body(resp, &d, &what),
                MAX_ATTACHMENT_SIZE,
                &what,
            )?;
            manifest::verify_blob(&payload, &d, &what)?;
            out.push(SigstoreAttachment {
                media_type: d.media_type,
                payload,
                annotations: l.annotations,
            });
        }
        Ok(out)
    }
}
