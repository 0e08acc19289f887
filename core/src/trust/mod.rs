//! Image trust (issue 13): containers-policy.json(5) and
//! containers-registries.d(5), checked by the pull after the manifest is
//! fetched and before anything is written (see [`crate::store::PullCheck`]).
//!
//! - [`policy`]: the policy file and its scopes.
//! - [`registries`]: where signatures are (`lookaside`).
//! - [`identity`]: Docker references and the `signedIdentity` rules.
//! - [`simple`]: "simple signing" OpenPGP signatures (rpgp).
//! - [`sigstore`]: cosign signatures with public keys (p256).
//!
//! Supported: `insecureAcceptAnything`, `reject`, `signedBy` (`GPGKeys`)
//! with signatures from a `file://`, `http://` or `https://` lookaside, and
//! `sigstoreSigned` with ECDSA P-256 public keys (`keyPath`, `keyPaths`,
//! `keyData`, `keyDatas`) with signatures from the registry's sigstore
//! attachments (`use-sigstore-attachments`). Refused when the policy is
//! loaded: `sigstoreSigned` with Fulcio/Rekor (keyless) or `pki`, and any
//! unknown type or field. `signedBaseLayer` always rejects, as in
//! containers/image.

pub mod identity;
pub mod policy;
pub mod registries;
pub mod sigstore;
pub mod simple;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::imgref::{ImageRef, Transport};
use crate::source::{ImageSource, ResolvedImage, SigstoreAttachment};
use identity::DockerRef;
use policy::{Identity, Policy, Requirement};
use registries::Registries;

/// The default policy file (under the Root).
pub const DEFAULT_POLICY: &str = "/etc/containers/policy.json";
/// The default signature-location directory (under the Root).
pub const DEFAULT_REGISTRIES_D: &str = "/etc/containers/registries.d";
/// containers/image's lookaside when no `registries.d` scope names one
/// (for root; under the Root).
pub const DEFAULT_LOOKASIDE: &str = "/var/lib/containers/sigstore";
/// At most this many signatures are read per image.
pub const MAX_SIGNATURES: usize = 64;

#[derive(Debug, Error)]
pub enum TrustError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signature policy {path}: {source}")]
    PolicyParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("signature policy {path}: {what}")]
    PolicyInvalid { path: PathBuf, what: String },
    #[error("registries.d file {path}: {source}")]
    RegistriesParse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("registries.d file {path}: {what}")]
    RegistriesInvalid { path: PathBuf, what: String },
    /// The policy refuses the image.
    #[error("{image} is rejected by the signature policy {policy} (transport {transport}, scope {scope}): {reason}")]
    Rejected {
        image: String,
        policy: PathBuf,
        transport: &'static str,
        /// `"SCOPE"`, or `default` when no transport scope matched.
        scope: String,
        reason: String,
    },
}

impl TrustError {
    /// Invalid input: a policy that cannot be read as written, or an image
    /// it refuses. An unreadable file is a plain failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            TrustError::Read { .. } => crate::exit::FAILURE,
            _ => crate::exit::INVALID,
        }
    }
}

/// The policy in force, with its signature locations.
#[derive(Debug, Clone)]
pub struct Trust {
    /// `None`: no policy file, every image is accepted (today's behaviour).
    policy: Option<(PathBuf, Policy)>,
    registries: Registries,
    default_lookaside: PathBuf,
}

impl Trust {
    /// Read `policy_path` and `registries_d`. A missing policy file means
    /// no policy (logged at info level, once); a missing `registries.d` is
    /// an empty one. `default_lookaside` is [`DEFAULT_LOOKASIDE`] under the
    /// Root.
    pub fn load(
        policy_path: &Path,
        registries_d: &Path,
        default_lookaside: PathBuf,
    ) -> Result<Trust, TrustError> {
        let text = match std::fs::read(policy_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(TrustError::Read {
                    path: policy_path.to_path_buf(),
                    source,
                })
            }
        };
        let Some(text) = text else {
            log::info!(
                "no signature policy is in force ({} does not exist): images are not checked for signatures",
                policy_path.display()
            );
            return Ok(Trust {
                policy: None,
                registries: Registries::default(),
                default_lookaside,
            });
        };
        let policy = Policy::parse(policy_path, &text)?;
        let registries = Registries::load(registries_d)?;
        Ok(Trust {
            policy: Some((policy_path.to_path_buf(), policy)),
            registries,
            default_lookaside,
        })
    }

    /// No policy: accept everything.
    pub fn none() -> Trust {
        Trust {
            policy: None,
            registries: Registries::default(),
            default_lookaside: PathBuf::from(DEFAULT_LOOKASIDE),
        }
    }

    /// Whether a policy file was found.
    pub fn in_force(&self) -> bool {
        self.policy.is_some()
    }

    /// The check of one pull of `spec`, for [`crate::store::pull_checked`].
    pub fn for_spec<'a>(&'a self, spec: &'a str) -> SpecCheck<'a> {
        SpecCheck { trust: self, spec }
    }

    /// Decide whether `img`, fetched from `src` as `spec`, may be stored:
    /// signatures from the lookaside and, where registries.d says so, the
    /// sigstore attachments of `src`. Returns the signatures read (to be
    /// stored with the image), if the policy needed any.
    pub fn check(
        &self,
        spec: &str,
        img: &ResolvedImage,
        src: &mut dyn ImageSource,
    ) -> Result<Option<Signatures>, TrustError> {
        let subject = Subject::of(spec);
        self.evaluate(spec, &subject, &img.manifest_digest, &mut || {
            self.fetch_signatures(&subject, &img.manifest_digest, src)
        })
    }

    /// Re-check a stored image: `name` as the docker transport sees it,
    /// against the signatures stored with it (`None`: none were).
    pub fn check_stored(
        &self,
        name: &str,
        manifest_digest: &str,
        stored: Option<&Signatures>,
    ) -> Result<(), TrustError> {
        let subject = Subject::of(name);
        self.evaluate(name, &subject, manifest_digest, &mut || {
            Ok(match stored {
                Some(s) => s.clone(),
                None => Signatures {
                    from: "none were stored with the image".into(),
                    ..Signatures::default()
                },
            })
        })
        .map(|_| ())
    }

    /// The policy's answer for `subject`. `get` reads the signatures, once,
    /// and only if a requirement needs them.
    fn evaluate(
        &self,
        spec: &str,
        subject: &Subject,
        manifest_digest: &str,
        get: &mut dyn FnMut() -> Result<Signatures, String>,
    ) -> Result<Option<Signatures>, TrustError> {
        let Some((path, policy)) = &self.policy else {
            return Ok(None);
        };
        let (scope, reqs) =
            policy.requirements_for(subject.transport, &subject.identity, &subject.namespaces);
        let scope_desc = scope.map_or_else(|| "default".to_string(), |s| format!("\"{s}\""));
        let reject = |reason: String| TrustError::Rejected {
            image: spec.to_string(),
            policy: path.clone(),
            transport: subject.transport,
            scope: scope_desc.clone(),
            reason,
        };
        let mut sigs: Option<Result<Signatures, String>> = None;
        for r in reqs {
            let judge = |n: usize, v: Result<simple::Verified, String>, want: &Identity| {
                judge_signature(spec, subject, manifest_digest, n, v, want)
            };
            match r {
                Requirement::InsecureAcceptAnything {} => {}
                Requirement::Reject {} => {
                    return Err(reject(
                        "the policy rejects every image here (reject)".into(),
                    ))
                }
                Requirement::SignedBaseLayer { .. } => {
                    return Err(reject(
                        "signedBaseLayer is not implemented (containers/image rejects it too)"
                            .into(),
                    ))
                }
                Requirement::SigstoreSigned {
                    key_path,
                    key_paths,
                    key_data,
                    key_datas,
                    signed_identity,
                    ..
                } => {
                    let keys = load_sigstore_keys(key_path, key_paths, key_data, key_datas)
                        .map_err(&reject)?;
                    let found = match sigs.get_or_insert_with(&mut *get) {
                        Ok(v) => v,
                        Err(e) => return Err(reject(e.clone())),
                    };
                    let atts: Vec<_> = found
                        .sigstore
                        .iter()
                        .filter(|a| a.media_type == sigstore::SIGNATURE_MIME)
                        .collect();
                    if atts.is_empty() {
                        let others = found.simple.len() + found.sigstore.len();
                        return Err(reject(if others == 0 {
                            format!("no signature found ({})", found.from)
                        } else {
                            format!(
                                "no signature found ({}; {} simple signatures, {} sigstore non-signature attachments)",
                                found.from,
                                found.simple.len(),
                                found.sigstore.len()
                            )
                        }));
                    }
                    let mut why = Vec::new();
                    let ok = atts.iter().enumerate().any(|(i, a)| {
                        judge(i + 1, sigstore::verify(a, &keys), signed_identity)
                            .map_err(|e| why.push(e))
                            .is_ok()
                    });
                    if !ok {
                        return Err(reject(why.join("; ")));
                    }
                }
                Requirement::SignedBy {
                    key_path,
                    key_paths,
                    key_data,
                    signed_identity,
                    ..
                } => {
                    let ring = load_ring(key_path, key_paths, key_data).map_err(&reject)?;
                    let found = match sigs.get_or_insert_with(&mut *get) {
                        Ok(v) => v,
                        Err(e) => return Err(reject(e.clone())),
                    };
                    if found.simple.is_empty() {
                        return Err(reject(format!("no signature found ({})", found.from)));
                    }
                    let mut why = Vec::new();
                    let ok = found.simple.iter().enumerate().any(|(i, s)| {
                        judge(i + 1, simple::verify(s, &ring), signed_identity)
                            .map_err(|e| why.push(e))
                            .is_ok()
                    });
                    if !ok {
                        return Err(reject(why.join("; ")));
                    }
                }
            }
        }
        Ok(sigs.and_then(Result::ok))
    }

    /// The signatures of the image: from the lookaside, and the sigstore
    /// attachments when registries.d sets `use-sigstore-attachments`, for
    /// the docker transport; none for the others (containers/image's
    /// oci, docker-archive and docker-daemon sources carry none).
    fn fetch_signatures(
        &self,
        s: &Subject,
        digest: &str,
        src: &mut dyn ImageSource,
    ) -> Result<Signatures, String> {
        let Some(r) = s.docker.as_ref().filter(|_| s.transport == "docker") else {
            return Ok(Signatures {
                from: format!("the {} transport carries no signatures", s.transport),
                ..Signatures::default()
            });
        };
        let base = match self.registries.lookaside_for(r) {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("file://{}", self.default_lookaside.display()),
        };
        let hexd = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("'{digest}' is not a sha256 digest"))?;
        let dir = format!("{base}/{}@sha256={hexd}", r.path);
        let mut out = Signatures {
            from: format!("looked in {dir}/signature-N"),
            ..Signatures::default()
        };
        for n in 1..=MAX_SIGNATURES {
            let url = format!("{dir}/signature-{n}");
            match fetch(&url)? {
                Some(b) => out.simple.push(b),
                None => break,
            }
        }
        if self.registries.use_sigstore_attachments(r) {
            out.sigstore = src
                .sigstore_attachments(digest)
                .map_err(|e| e.to_string())?;
            out.from.push_str(&format!(
                " and in the attachment {}:sha256-{hexd}.sig",
                r.path
            ));
        } else {
            out.from
                .push_str("; sigstore attachments are not read (use-sigstore-attachments is not set in registries.d)");
        }
        Ok(out)
    }
}

/// One signature `n`, once its key verified it (or not): checked as
/// containers/image does, the key, then the digest, then the identity.
fn judge_signature(
    spec: &str,
    subject: &Subject,
    manifest_digest: &str,
    n: usize,
    v: Result<simple::Verified, String>,
    want: &Identity,
) -> Result<(), String> {
    let v = v.map_err(|e| format!("signature {n}: {e}"))?;
    if v.manifest_digest != manifest_digest {
        return Err(format!(
            "signature {n}: signed by {} for manifest {}, not this image's {manifest_digest} (digest mismatch)",
            v.signer, v.manifest_digest
        ));
    }
    if !identity::matches(want, subject.docker.as_ref(), &v.docker_reference) {
        return Err(format!(
            "signature {n}: signed by {} for {}, but the policy wants {} (identity mismatch)",
            v.signer,
            v.docker_reference,
            identity::describe(want, subject.docker.as_ref())
        ));
    }
    log::debug!("{spec}: signature {n} by {} accepted", v.signer);
    Ok(())
}

/// The signatures of one image, as read when it was pulled; kept in the
/// store with it ([`crate::store::Store::signatures`]) so that a re-check
/// needs no network.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Signatures {
    /// Where they were looked for (for messages; not stored).
    #[serde(skip)]
    pub from: String,
    /// Simple-signing (OpenPGP) signatures, as found in the lookaside.
    #[serde(with = "crate::source::b64::vec", default)]
    pub simple: Vec<Vec<u8>>,
    /// Sigstore attachments (signatures and any other layer).
    #[serde(default)]
    pub sigstore: Vec<SigstoreAttachment>,
}

/// The same signatures, wherever they were read.
impl PartialEq for Signatures {
    fn eq(&self, o: &Signatures) -> bool {
        self.simple == o.simple && self.sigstore == o.sigstore
    }
}
impl Eq for Signatures {}

impl Signatures {
    pub fn is_empty(&self) -> bool {
        self.simple.is_empty() && self.sigstore.is_empty()
    }
}

/// One pull's check: [`Trust::check`] with the spec the pull was given.
pub struct SpecCheck<'a> {
    trust: &'a Trust,
    spec: &'a str,
}

impl crate::store::PullCheck for SpecCheck<'_> {
    fn check(
        &self,
        img: &ResolvedImage,
        src: &mut dyn ImageSource,
    ) -> Result<Option<Signatures>, TrustError> {
        self.trust.check(self.spec, img, src)
    }
}

/// How the policy sees an image spec: containers/image's transport, policy
/// identity and namespaces, and its Docker reference if it has one.
struct Subject {
    transport: &'static str,
    identity: String,
    namespaces: Vec<String>,
    docker: Option<DockerRef>,
}

impl Subject {
    fn of(spec: &str) -> Subject {
        let docker = |transport, name: &str| {
            let r = ImageRef::parse(name).ok().map(|r| {
                let mut d = DockerRef::from_image_ref(&r);
                if d.is_name_only() {
                    d.tag = Some(crate::imgref::DEFAULT_TAG.to_string());
                }
                d
            });
            Subject {
                transport,
                identity: r
                    .as_ref()
                    .map(DockerRef::policy_identity)
                    .unwrap_or_default(),
                namespaces: r
                    .as_ref()
                    .map(DockerRef::policy_namespaces)
                    .unwrap_or_default(),
                docker: r,
            }
        };
        match Transport::of(spec) {
            Transport::Registry(s) => docker("docker", s),
            Transport::Engine(n) => docker("docker-daemon", n),
            Transport::OciLayout(rest) => {
                let dir = rest.split_once(':').map_or(rest, |(d, _)| d);
                let dir = std::fs::canonicalize(dir)
                    .or_else(|_| std::path::absolute(dir))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| dir.to_string());
                let mut namespaces = Vec::new();
                let mut p = dir.as_str();
                while p != "/" && !p.is_empty() {
                    namespaces.push(p.to_string());
                    match p.rfind('/') {
                        Some(0) | None => break,
                        Some(i) => p = &p[..i],
                    }
                }
                Subject {
                    transport: "oci",
                    identity: dir.clone(),
                    namespaces,
                    docker: None,
                }
            }
            // containers/image: every docker-archive is in the "" scope.
            Transport::DockerArchive(_) => Subject {
                transport: "docker-archive",
                identity: String::new(),
                namespaces: Vec::new(),
                docker: None,
            },
        }
    }
}

fn load_sigstore_keys(
    key_path: &Option<PathBuf>,
    key_paths: &Option<Vec<PathBuf>>,
    key_data: &Option<Vec<u8>>,
    key_datas: &Option<Vec<Vec<u8>>>,
) -> Result<sigstore::Keys, String> {
    let mut sources = Vec::new();
    for p in key_path.iter().chain(key_paths.iter().flatten()) {
        let b = std::fs::read(p)
            .map_err(|e| format!("cannot read the key file {}: {e}", p.display()))?;
        sources.push((p.display().to_string(), b));
    }
    for (i, d) in key_data
        .iter()
        .chain(key_datas.iter().flatten())
        .enumerate()
    {
        sources.push((format!("keyData {}", i + 1), d.clone()));
    }
    sigstore::load_keys(&sources)
}

fn load_ring(
    key_path: &Option<PathBuf>,
    key_paths: &Option<Vec<PathBuf>>,
    key_data: &Option<Vec<u8>>,
) -> Result<simple::Keyring, String> {
    let mut sources = Vec::new();
    for p in key_path.iter().chain(key_paths.iter().flatten()) {
        let b = std::fs::read(p)
            .map_err(|e| format!("cannot read the key file {}: {e}", p.display()))?;
        sources.push((p.display().to_string(), b));
    }
    if let Some(d) = key_data {
        sources.push(("keyData".to_string(), d.clone()));
    }
    simple::load_keys(&sources)
}

/// One signature from the lookaside: `Ok(None)` when there is no such
/// signature (no file, HTTP 404), which ends the list.
fn fetch(url: &str) -> Result<Option<Vec<u8>>, String> {
    let u = url::Url::parse(url).map_err(|e| format!("lookaside URL {url}: {e}"))?;
    let limit = simple::MAX_SIGNATURE_SIZE;
    let mut out = Vec::new();
    match u.scheme() {
        "file" => {
            let p = u
                .to_file_path()
                .map_err(|()| format!("lookaside URL {url}: not a local path"))?;
            let f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
            };
            f.take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        }
        "http" | "https" => {
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(30))
                .timeout(Duration::from_secs(120))
                .build();
            let resp = match agent.get(url).call() {
                Ok(r) => r,
                Err(ureq::Error::Status(404, _)) => return Ok(None),
                Err(e) => return Err(format!("cannot fetch {url}: {e}")),
            };
            resp.into_reader()
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        }
        s => {
            return Err(format!(
                "lookaside URL {url}: unsupported scheme '{s}' (file, http, https)"
            ))
        }
    }
    if out.len() as u64 > limit {
        return Err(format!("{url}: a signature larger than {limit} bytes"));
    }
    Ok(Some(out))
}
