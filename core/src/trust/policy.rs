//! containers-policy.json(5): the types, as strict as the format allows
//! (an unknown type or field is an error, never "accept"), and the scope
//! lookup of containers/image (`signature/policy_eval.go`,
//! `docker/policyconfiguration/naming.go`, `oci/layout/oci_transport.go`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::TrustError;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Used when no transport scope matches.
    pub default: Vec<Requirement>,
    /// transport name -> scope -> requirements.
    #[serde(default)]
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// One policy requirement (`type`).
// A policy holds a handful of these, read once per pull: boxing the
// sigstoreSigned fields would only complicate the serde attributes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Requirement {
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything {},
    #[serde(rename = "reject")]
    Reject {},
    #[serde(rename = "signedBy")]
    SignedBy {
        #[serde(rename = "keyType")]
        key_type: String,
        #[serde(rename = "keyPath")]
        key_path: Option<PathBuf>,
        #[serde(rename = "keyPaths")]
        key_paths: Option<Vec<PathBuf>>,
        /// base64 in the file; decoded by [`Policy::parse`].
        #[serde(rename = "keyData", default, deserialize_with = "de_base64_opt")]
        key_data: Option<Vec<u8>>,
        #[serde(rename = "signedIdentity", default)]
        signed_identity: Identity,
    },
    /// Parsed so that a policy naming it is understood; containers/image does
    /// not implement it either, and it always rejects.
    #[serde(rename = "signedBaseLayer")]
    SignedBaseLayer {
        #[serde(rename = "baseLayerIdentity")]
        base_layer_identity: Identity,
    },
    #[serde(rename = "sigstoreSigned")]
    SigstoreSigned {
        #[serde(rename = "keyPath")]
        key_path: Option<PathBuf>,
        #[serde(rename = "keyPaths")]
        key_paths: Option<Vec<PathBuf>>,
        #[serde(rename = "keyData", default, deserialize_with = "de_base64_opt")]
        key_data: Option<Vec<u8>>,
        #[serde(rename = "keyDatas", default, deserialize_with = "de_base64_vec_opt")]
        key_datas: Option<Vec<Vec<u8>>>,
        fulcio: Option<Fulcio>,
        #[serde(rename = "rekorPublicKeyPath")]
        rekor_public_key_path: Option<PathBuf>,
        #[serde(rename = "rekorPublicKeyPaths")]
        rekor_public_key_paths: Option<Vec<PathBuf>>,
        #[serde(
            rename = "rekorPublicKeyData",
            default,
            deserialize_with = "de_base64_opt"
        )]
        rekor_public_key_data: Option<Vec<u8>>,
        #[serde(
            rename = "rekorPublicKeyDatas",
            default,
            deserialize_with = "de_base64_vec_opt"
        )]
        rekor_public_key_datas: Option<Vec<Vec<u8>>>,
        pki: Option<Pki>,
        #[serde(rename = "signedIdentity", default)]
        signed_identity: Identity,
    },
}

/// `sigstoreSigned.fulcio` (keyless; refused as not supported).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fulcio {
    #[serde(rename = "caPath")]
    pub ca_path: Option<PathBuf>,
    #[serde(rename = "caData", default, deserialize_with = "de_base64_opt")]
    pub ca_data: Option<Vec<u8>>,
    #[serde(rename = "oidcIssuer")]
    pub oidc_issuer: Option<String>,
    #[serde(rename = "subjectEmail")]
    pub subject_email: Option<String>,
}

/// `sigstoreSigned.pki` (X.509 certificates; refused as not supported).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pki {
    #[serde(rename = "caRootsPath")]
    pub ca_roots_path: Option<PathBuf>,
    #[serde(rename = "caRootsData", default, deserialize_with = "de_base64_opt")]
    pub ca_roots_data: Option<Vec<u8>>,
    #[serde(rename = "caIntermediatesPath")]
    pub ca_intermediates_path: Option<PathBuf>,
    #[serde(
        rename = "caIntermediatesData",
        default,
        deserialize_with = "de_base64_opt"
    )]
    pub ca_intermediates_data: Option<Vec<u8>>,
    #[serde(rename = "subjectEmail")]
    pub subject_email: Option<String>,
    #[serde(rename = "subjectHostname")]
    pub subject_hostname: Option<String>,
}

/// `signedIdentity`: how the signed reference must relate to the image's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Identity {
    #[serde(rename = "matchExact")]
    MatchExact {},
    #[serde(rename = "matchRepoDigestOrExact")]
    MatchRepoDigestOrExact {},
    #[serde(rename = "matchRepository")]
    MatchRepository {},
    #[serde(rename = "exactReference")]
    ExactReference {
        #[serde(rename = "dockerReference")]
        docker_reference: String,
    },
    #[serde(rename = "exactRepository")]
    ExactRepository {
        #[serde(rename = "dockerRepository")]
        docker_repository: String,
    },
    #[serde(rename = "remapIdentity")]
    RemapIdentity {
        prefix: String,
        #[serde(rename = "signedPrefix")]
        signed_prefix: String,
    },
}

/// The default `signedIdentity`.
impl Default for Identity {
    fn default() -> Self {
        Identity::MatchRepoDigestOrExact {}
    }
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))
}

fn de_base64_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| b64(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn de_base64_vec_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Vec<u8>>>, D::Error> {
    let v: Option<Vec<String>> = Option::deserialize(d)?;
    v.map(|v| {
        v.iter()
            .map(|s| b64(s).map_err(serde::de::Error::custom))
            .collect()
    })
    .transpose()
}

/// The transports containers/image knows. The four this tool pulls from
/// are evaluated; the others are parsed and checked, and never apply.
pub const TRANSPORTS: &[&str] = &[
    "docker",
    "docker-archive",
    "oci",
    "docker-daemon",
    "atomic",
    "containers-storage",
    "dir",
    "oci-archive",
    "ostree",
    "sif",
    "tarball",
];

impl Policy {
    /// Parse and check the text of the file at `path` (named in errors).
    pub fn parse(path: &Path, text: &[u8]) -> Result<Policy, TrustError> {
        let p: Policy = serde_json::from_slice(text).map_err(|source| TrustError::PolicyParse {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |what: String| TrustError::PolicyInvalid {
            path: path.to_path_buf(),
            what,
        };
        p.check_list("default", &p.default).map_err(bad)?;
        for (t, scopes) in &p.transports {
            if !TRANSPORTS.contains(&t.as_str()) {
                return Err(bad(format!(
                    "transports: unknown transport '{t}' (known: {})",
                    TRANSPORTS.join(", ")
                )));
            }
            for (scope, reqs) in scopes {
                check_scope(t, scope)
                    .map_err(|r| bad(format!("transports.{t}: scope '{scope}': {r}")))?;
                p.check_list(&format!("transports.{t}.\"{scope}\""), reqs)
                    .map_err(bad)?;
            }
        }
        Ok(p)
    }

    fn check_list(&self, at: &str, reqs: &[Requirement]) -> Result<(), String> {
        if reqs.is_empty() {
            return Err(format!("{at}: an empty list of requirements"));
        }
        for r in reqs {
            r.check().map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    /// The requirements for an image: the most specific scope of its
    /// transport that is in the file (`identity`, then each of
    /// `namespaces`, then `""`), else `default`. Returns the scope that
    /// applied (`None`: the default).
    pub fn requirements_for(
        &self,
        transport: &str,
        identity: &str,
        namespaces: &[String],
    ) -> (Option<String>, &[Requirement]) {
        if let Some(scopes) = self.transports.get(transport) {
            let candidates = std::iter::once(identity)
                .filter(|i| !i.is_empty())
                .chain(namespaces.iter().map(String::as_str))
                .chain(std::iter::once(""));
            for c in candidates {
                if let Some(r) = scopes.get(c) {
                    return (Some(c.to_string()), r);
                }
            }
        }
        (None, &self.default)
    }
}

/// containers/image's `ValidatePolicyConfigurationScope` for each transport.
fn check_scope(transport: &str, scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    match transport {
        "docker" | "docker-daemon" | "atomic" => {
            if let Some(d) = scope.strip_prefix("*.") {
                if d.is_empty() || d.contains(['/', '*', ':']) {
                    return Err("a wildcard scope is '*.' and a domain, nothing more".into());
                }
                return Ok(());
            }
            if scope.contains("://") || scope.contains('*') || scope.ends_with('/') {
                return Err("not a [host[:port]][/namespace[/repo[:tag|@digest]]] scope".into());
            }
            Ok(())
        }
        "oci" | "docker-archive" | "dir" | "oci-archive" | "sif" | "tarball" => {
            if !scope.starts_with('/') {
                return Err("must be an absolute path".into());
            }
            if scope == "/" {
                return Err("'/' is the same as the \"\" scope; use \"\"".into());
            }
            let clean = scope.split('/').all(|c| c != "." && c != "..")
                && !scope.contains("//")
                && !scope.ends_with('/');
            if !clean {
                return Err("must be a clean path (no '.', '..', '//' or trailing '/')".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl Requirement {
    /// The short name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything {} => "insecureAcceptAnything",
            Requirement::Reject {} => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SignedBaseLayer { .. } => "signedBaseLayer",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
        }
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Requirement::SignedBy {
                key_type,
                key_path,
                key_paths,
                key_data,
                signed_identity,
            } => {
                match key_type.as_str() {
                    "GPGKeys" => {}
                    "signedByGPGKeys" | "X509Certificates" | "signedByX509CAs" => {
                        return Err(format!(
                            "signedBy: keyType '{key_type}' is not supported (only GPGKeys)"
                        ))
                    }
                    _ => return Err(format!("signedBy: unknown keyType '{key_type}'")),
                }
                let n =
                    key_path.is_some() as u8 + key_paths.is_some() as u8 + key_data.is_some() as u8;
                if n != 1 {
                    return Err(
                        "signedBy: exactly one of keyPath, keyPaths and keyData must be given"
                            .into(),
                    );
                }
                if key_paths.as_ref().is_some_and(Vec::is_empty) {
                    return Err("signedBy: keyPaths is empty".into());
                }
                signed_identity.check()
            }
            Requirement::SignedBaseLayer {
                base_layer_identity,
            } => base_layer_identity.check(),
            Requirement::SigstoreSigned {
                key_path,
                key_paths,
                key_data,
                key_datas,
                fulcio,
                rekor_public_key_path,
                rekor_public_key_paths,
                rekor_public_key_data,
                rekor_public_key_datas,
                pki,
                signed_identity,
            } => {
                if fulcio.is_some()
                    || rekor_public_key_path.is_some()
                    || rekor_public_key_paths.is_some()
                    || rekor_public_key_data.is_some()
                    || rekor_public_key_datas.is_some()
                {
                    return Err(
                        "sigstoreSigned: Fulcio/Rekor (keyless) verification is not supported; \
                                use keyPath, keyPaths or keyData with a public key"
                            .into(),
                    );
                }
                if pki.is_some() {
                    return Err("sigstoreSigned: pki (X.509 certificates) is not supported".into());
                }
                let n = key_path.is_some() as u8
                    + key_paths.is_some() as u8
                    + key_data.is_some() as u8
                    + key_datas.is_some() as u8;
                if n != 1 {
                    return Err(
                        "sigstoreSigned: exactly one of keyPath, keyPaths, keyData and keyDatas must be given".into(),
                    );
                }
                signed_identity.check()
            }
            Requirement::InsecureAcceptAnything {} | Requirement::Reject {} => Ok(()),
        }
    }
}

impl Identity {
    fn check(&self) -> Result<(), String> {
        let parse = |what: &str, r: &str| {
            super::identity::DockerRef::parse(r)
                .map(|_| ())
                .map_err(|e| format!("signedIdentity: {what} '{r}': {e}"))
        };
        match self {
            Identity::ExactReference { docker_reference } => {
                let r = super::identity::DockerRef::parse(docker_reference).map_err(|e| {
                    format!("signedIdentity: dockerReference '{docker_reference}': {e}")
                })?;
                if r.is_name_only() {
                    return Err(format!(
                        "signedIdentity: dockerReference '{docker_reference}' has no tag or digest"
                    ));
                }
                Ok(())
            }
            Identity::ExactRepository { docker_repository } => {
                parse("dockerRepository", docker_repository)
            }
            Identity::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                for (what, p) in [("prefix", prefix), ("signedPrefix", signed_prefix)] {
                    super::identity::check_prefix(p)
                        .map_err(|e| format!("signedIdentity: {what} '{p}': {e}"))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Policy, String> {
        Policy::parse(Path::new("/etc/containers/policy.json"), s.as_bytes())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_whole_format_parses() {
        let p = parse(
            r#"{"default": [{"type": "reject"}],
            "transports": {
              "docker": {
                "h.example:5000/ns/app": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg",
                                           "signedIdentity": {"type": "matchRepository"}}],
                "h.example:5000/ns": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a", "/b"]}],
                "h.example:5000": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "AAEC",
                                    "signedIdentity": {"type": "remapIdentity", "prefix": "m.example", "signedPrefix": "h.example:5000"}}],
                "*.example": [{"type": "sigstoreSigned", "keyPath": "/c.pub",
                               "signedIdentity": {"type": "exactRepository", "dockerRepository": "h.example/x"}}],
                "": [{"type": "insecureAcceptAnything"}]
              },
              "oci": {"/srv/images": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k",
                                       "signedIdentity": {"type": "exactReference", "dockerReference": "h.example/x:1"}}]},
              "docker-archive": {"": [{"type": "reject"}]},
              "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}
            }}"#,
        )
        .unwrap();
        let ns = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let n = ns(&[
            "h.example:5000/ns/app",
            "h.example:5000/ns",
            "h.example:5000",
            "*.example",
        ]);
        let (scope, r) = p.requirements_for("docker", "h.example:5000/ns/app:1", &n);
        assert_eq!(scope.as_deref(), Some("h.example:5000/ns/app"));
        match &r[0] {
            Requirement::SignedBy {
                signed_identity,
                key_path,
                ..
            } => {
                assert_eq!(signed_identity, &Identity::MatchRepository {});
                assert_eq!(key_path.as_deref(), Some(Path::new("/k.gpg")));
            }
            o => panic!("{o:?}"),
        }
        let (scope, r) = p.requirements_for("docker", "h.example:5000/ns/other:1", &n[1..]);
        assert_eq!(scope.as_deref(), Some("h.example:5000/ns"));
        match &r[0] {
            Requirement::SignedBy {
                signed_identity, ..
            } => {
                assert_eq!(
                    signed_identity,
                    &Identity::MatchRepoDigestOrExact {},
                    "the default"
                )
            }
            o => panic!("{o:?}"),
        }
        let (_, r) = p.requirements_for("docker", "h.example:5000/x:1", &n[2..]);
        assert!(
            matches!(&r[0], Requirement::SignedBy { key_data: Some(d), .. } if d == &[0u8, 1, 2])
        );
        let (scope, r) = p.requirements_for("docker", "q.io/x:1", &ns(&["q.io/x", "q.io", "*.io"]));
        assert_eq!(
            (scope.as_deref(), r[0].type_name()),
            (Some(""), "insecureAcceptAnything")
        );
        let (scope, r) = p.requirements_for(
            "oci",
            "/srv/images/a",
            &ns(&["/srv/images/a", "/srv/images", "/srv"]),
        );
        assert_eq!(
            (scope.as_deref(), r[0].type_name()),
            (Some("/srv/images"), "signedBy")
        );
        let (scope, r) = p.requirements_for("dir", "/x", &[]);
        assert_eq!((scope, r[0].type_name()), (None, "reject"));
    }

    #[test]
    fn unknown_types_and_fields_are_refused_naming_the_file_and_field() {
        for (text, want) in [
            (
                r#"{"default": [{"type": "acceptEverything"}]}"#,
                "acceptEverything",
            ),
            (
                r#"{"default": [{"type": "reject", "really": true}]}"#,
                "really",
            ),
            (
                r#"{"default": [{"type": "insecureAcceptAnything"}], "extra": 1}"#,
                "extra",
            ),
            (
                r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPth": "/k"}]}"#,
                "keyPth",
            ),
            (
                r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "matchAnything"}}]}"#,
                "matchAnything",
            ),
            (
                r#"{"default": [{"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/k"}]}"#,
                "X509Certificates",
            ),
            (
                r#"{"default": [{"type": "signedBy", "keyType": "GPGKeys"}]}"#,
                "exactly one of keyPath",
            ),
            (r#"{"default": []}"#, "empty list"),
            (r#"{"transports": {}}"#, "default"),
            (
                r#"{"default": [{"type": "reject"}], "transports": {"dockr": {}}}"#,
                "dockr",
            ),
            (
                r#"{"default": [{"type": "reject"}], "transports": {"oci": {"rel/path": [{"type": "reject"}]}}}"#,
                "absolute path",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.contains("/etc/containers/policy.json") && e.contains(want),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn keyless_sigstore_is_refused_as_not_supported() {
        for extra in [
            r#""fulcio": {"caPath": "/ca", "oidcIssuer": "https://o", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/r""#,
            r#""keyPath": "/k", "rekorPublicKeyData": "AAEC""#,
            r#""pki": {"caRootsPath": "/r", "subjectEmail": "a@b"}"#,
        ] {
            let e = parse(&format!(
                r#"{{"default": [{{"type": "sigstoreSigned", {extra}}}]}}"#
            ))
            .unwrap_err();
            assert!(e.contains("not supported"), "{e}");
        }
    }
}
