//! containers-registries.d(5): where the signatures of an image in a
//! registry are (`docker/registries_d.go`). Every `*.yaml` file of the
//! directory is read; a scope defined twice is an error, as in
//! containers/image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::identity::DockerRef;
use super::TrustError;

/// One file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "default-docker")]
    default_docker: Option<Namespace>,
    #[serde(default)]
    docker: Option<BTreeMap<String, Namespace>>,
}

/// The settings of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Read (and, without `lookaside-staging`, written).
    pub lookaside: Option<String>,
    /// Written only (skopeo's `--sign-by` output).
    #[serde(rename = "lookaside-staging")]
    pub lookaside_staging: Option<String>,
    /// The old name of `lookaside`.
    pub sigstore: Option<String>,
    /// The old name of `lookaside-staging`.
    #[serde(rename = "sigstore-staging")]
    pub sigstore_staging: Option<String>,
    #[serde(rename = "use-sigstore-attachments")]
    pub use_sigstore_attachments: Option<bool>,
}

impl Namespace {
    /// The URL signatures are read from (`lookaside`, else `sigstore`).
    pub fn read_url(&self) -> Option<&str> {
        self.lookaside
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.sigstore.as_deref().filter(|s| !s.is_empty()))
    }
}

/// All of `registries.d`, merged.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    pub default_docker: Option<Namespace>,
    pub docker: BTreeMap<String, Namespace>,
}

/// Where a scope's settings came from, for the "defined twice" message.
type Origins = BTreeMap<String, PathBuf>;

impl Registries {
    /// Read every `*.yaml` in `dir`; a missing directory is an empty
    /// configuration.
    pub fn load(dir: &Path) -> Result<Registries, TrustError> {
        let mut out = Registries::default();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(TrustError::Read {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for e in rd {
            let e = e.map_err(|source| TrustError::Read {
                path: dir.to_path_buf(),
                source,
            })?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
        files.sort();
        let mut default_from: Option<PathBuf> = None;
        let mut origins = Origins::new();
        for p in files {
            let text = std::fs::read(&p).map_err(|source| TrustError::Read {
                path: p.clone(),
                source,
            })?;
            out.merge(&p, &text, &mut default_from, &mut origins)?;
        }
        Ok(out)
    }

    /// Parse one file's text (`path` is for messages) into `self`.
    fn merge(
        &mut self,
        path: &Path,
        text: &[u8],
        default_from: &mut Option<PathBuf>,
        origins: &mut Origins,
    ) -> Result<(), TrustError> {
        let f: File = if text.iter().all(u8::is_ascii_whitespace) {
            File::default()
        } else {
            serde_yaml_ng::from_slice(text).map_err(|source| TrustError::RegistriesParse {
                path: path.to_path_buf(),
                source,
            })?
        };
        let twice = |what: String, first: &Path| TrustError::RegistriesInvalid {
            path: path.to_path_buf(),
            what: format!("{what} is also defined in {}", first.display()),
        };
        if let Some(d) = f.default_docker {
            if let Some(first) = default_from {
                return Err(twice("default-docker".into(), first));
            }
            self.default_docker = Some(d);
            *default_from = Some(path.to_path_buf());
        }
        for (scope, ns) in f.docker.unwrap_or_default() {
            if let Some(first) = origins.get(&scope) {
                return Err(twice(format!("docker: '{scope}'"), first));
            }
            origins.insert(scope.clone(), path.to_path_buf());
            self.docker.insert(scope, ns);
        }
        Ok(())
    }

    /// Parse a single file's text, for tests and callers with one file.
    pub fn parse_one(path: &Path, text: &[u8]) -> Result<Registries, TrustError> {
        let mut r = Registries::default();
        r.merge(path, text, &mut None, &mut Origins::new())?;
        Ok(r)
    }

    /// The settings that apply to `r`: the most specific `docker:` scope
    /// with a read URL, else `default-docker` (`signatureTopLevel`). For
    /// `use-sigstore-attachments`, the first scope that sets it.
    pub fn lookaside_for(&self, r: &DockerRef) -> Option<&str> {
        let mut scopes = std::iter::once(r.policy_identity()).chain(r.policy_namespaces());
        scopes
            .find_map(|s| self.docker.get(&s).and_then(Namespace::read_url))
            .or_else(|| self.default_docker.as_ref().and_then(Namespace::read_url))
    }

    /// `use-sigstore-attachments` for `r` (the most specific scope that
    /// sets it, else `default-docker`, else false).
    pub fn use_sigstore_attachments(&self, r: &DockerRef) -> bool {
        let mut scopes = std::iter::once(r.policy_identity()).chain(r.policy_namespaces());
        scopes
            .find_map(|s| self.docker.get(&s).and_then(|n| n.use_sigstore_attachments))
            .or_else(|| {
                self.default_docker
                    .as_ref()
                    .and_then(|n| n.use_sigstore_attachments)
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_aliases() {
        let y = br#"
default-docker:
  lookaside: file:///var/lib/containers/sigstore
docker:
  example.com:
    sigstore: https://sigs.example.com
  example.com/ns/app:
    lookaside: file:///app
    lookaside-staging: file:///staging
    use-sigstore-attachments: true
"#;
        let r = Registries::parse_one(Path::new("t.yaml"), y).unwrap();
        let app = DockerRef::parse("example.com/ns/app:1").unwrap();
        let other = DockerRef::parse("example.com/ns/other:1").unwrap();
        let elsewhere = DockerRef::parse("quay.io/x:1").unwrap();
        assert_eq!(r.lookaside_for(&app), Some("file:///app"));
        assert_eq!(r.lookaside_for(&other), Some("https://sigs.example.com"));
        assert_eq!(
            r.lookaside_for(&elsewhere),
            Some("file:///var/lib/containers/sigstore")
        );
        assert!(r.use_sigstore_attachments(&app));
        assert!(!r.use_sigstore_attachments(&other));
    }

    #[test]
    fn unknown_field_is_refused_naming_file_and_field() {
        let e = Registries::parse_one(
            Path::new("/etc/x.yaml"),
            b"docker:\n  h.example:\n    lookasid: file:///x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/x.yaml") && e.contains("lookasid"), "{e}");
    }
}
