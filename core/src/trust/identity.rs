//! Docker references as signatures name them, and the `signedIdentity`
//! rules of containers/image (`signature/policy_reference_match.go`).

use super::policy::Identity;
use crate::imgref::ImageRef;

/// A normalized Docker reference: `docker.io/library/busybox:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerRef {
    /// `host[:port]/path`.
    pub name: String,
    /// The path inside the registry (`library/busybox`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl DockerRef {
    /// `reference.ParseNormalizedNamed`: a bare name gets `docker.io` and,
    /// there, `library/`.
    pub fn parse(s: &str) -> Result<DockerRef, String> {
        if s.contains("://") || s.starts_with("http:") {
            return Err("a reference has no transport prefix".into());
        }
        let r = ImageRef::parse(s).map_err(|e| e.to_string())?;
        Ok(DockerRef::from_image_ref(&r))
    }

    pub fn from_image_ref(r: &ImageRef) -> DockerRef {
        let registry = match r.registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
            other => other,
        };
        DockerRef {
            name: format!("{registry}/{}", r.repository),
            path: r.repository.clone(),
            tag: r.tag.clone(),
            digest: r.digest.clone(),
        }
    }

    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// `name[:tag][@digest]`.
    pub fn string(&self) -> String {
        let mut s = self.name.clone();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The policy identity: `name:tag`, or `name@digest`
    /// (`DockerReferenceIdentity`; a tag wins when both are given).
    pub fn policy_identity(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.name),
            (None, Some(d)) => format!("{}@{d}", self.name),
            (None, None) => format!("{}:latest", self.name),
        }
    }

    /// `DockerReferenceNamespaces`: the repository, each parent namespace,
    /// the host, then `*.domain` wildcards of the host (port stripped).
    pub fn policy_namespaces(&self) -> Vec<String> {
        let mut res = Vec::new();
        let mut name = self.name.as_str();
        loop {
            res.push(name.to_string());
            match name.rfind('/') {
                Some(i) => name = &name[..i],
                None => break,
            }
        }
        let mut host = name.split(':').next().unwrap_or(name);
        while let Some(i) = host.find('.') {
            host = &host[i + 1..];
            res.push(format!("*.{host}"));
        }
        res
    }
}

/// A `remapIdentity` prefix: `host[:port]`, `host[:port]/ns...`, never a tag
/// or digest.
pub fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty".into());
    }
    if p.contains('@') || p.contains("://") || p.ends_with('/') {
        return Err("must be host[:port][/namespace...] without a tag or digest".into());
    }
    Ok(())
}

/// `matchRepoDigestOrExactReferenceValues`.
fn repo_digest_or_exact(intended: &DockerRef, signed: &DockerRef) -> bool {
    if signed.is_name_only() {
        return false;
    }
    if intended.tag.is_some() {
        signed.string() == intended.string()
    } else if intended.digest.is_some() {
        signed.name == intended.name
    } else {
        false
    }
}

/// Whether a signature claiming `signed` satisfies `rule` for an image
/// pulled as `intended` (`None`: the image has no Docker reference, as an
/// OCI layout).
pub fn matches(rule: &Identity, intended: Option<&DockerRef>, signed: &str) -> bool {
    let Ok(signed) = DockerRef::parse(signed) else {
        return false;
    };
    match rule {
        Identity::ExactReference { docker_reference } => {
            let Ok(want) = DockerRef::parse(docker_reference) else {
                return false;
            };
            !want.is_name_only() && !signed.is_name_only() && want.string() == signed.string()
        }
        Identity::ExactRepository { docker_repository } => {
            DockerRef::parse(docker_repository).is_ok_and(|want| want.name == signed.name)
        }
        _ => {
            let Some(intended) = intended else {
                return false;
            };
            match rule {
                Identity::MatchExact {} => {
                    !intended.is_name_only()
                        && !signed.is_name_only()
                        && intended.string() == signed.string()
                }
                Identity::MatchRepository {} => intended.name == signed.name,
                Identity::RemapIdentity {
                    prefix,
                    signed_prefix,
                } => {
                    let n = &intended.name;
                    let hit = n == prefix
                        || (n.starts_with(prefix.as_str())
                            && n.as_bytes().get(prefix.len()) == Some(&b'/'));
                    let remapped = if hit {
                        let s = intended
                            .string()
                            .replacen(prefix.as_str(), signed_prefix, 1);
                        match DockerRef::parse(&s) {
                            Ok(r) => r,
                            Err(_) => return false,
                        }
                    } else {
                        intended.clone()
                    };
                    repo_digest_or_exact(&remapped, &signed)
                }
                _ => repo_digest_or_exact(intended, &signed),
            }
        }
    }
}

/// What a rule expects, for messages.
pub fn describe(rule: &Identity, intended: Option<&DockerRef>) -> String {
    let i = intended.map_or_else(|| "(no reference)".to_string(), DockerRef::string);
    match rule {
        Identity::MatchExact {} => format!("exactly {i} (matchExact)"),
        Identity::MatchRepoDigestOrExact {} => format!("{i} (matchRepoDigestOrExact)"),
        Identity::MatchRepository {} => format!(
            "repository {} (matchRepository)",
            intended.map_or("(no reference)", |r| r.name.as_str())
        ),
        Identity::ExactReference { docker_reference } => {
            format!("{docker_reference} (exactReference)")
        }
        Identity::ExactRepository { docker_repository } => {
            format!("repository {docker_repository} (exactRepository)")
        }
        Identity::RemapIdentity {
            prefix,
            signed_prefix,
        } => {
            format!("{i} with {prefix} remapped to {signed_prefix} (remapIdentity)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> DockerRef {
        DockerRef::parse(s).unwrap()
    }

    #[test]
    fn namespaces_most_specific_first() {
        let d = r("example.com:5000/ns/sub/repo:1");
        assert_eq!(d.policy_identity(), "example.com:5000/ns/sub/repo:1");
        assert_eq!(
            d.policy_namespaces(),
            [
                "example.com:5000/ns/sub/repo",
                "example.com:5000/ns/sub",
                "example.com:5000/ns",
                "example.com:5000",
                "*.com"
            ]
        );
        assert_eq!(
            r("busybox").policy_namespaces()[..2],
            ["docker.io/library/busybox", "docker.io/library"]
        );
    }

    #[test]
    fn identity_rules() {
        let tagged = r("h.example/ns/app:1");
        let rdoe = Identity::MatchRepoDigestOrExact {};
        assert!(matches(&rdoe, Some(&tagged), "h.example/ns/app:1"));
        assert!(!matches(&rdoe, Some(&tagged), "h.example/ns/app:2"));
        assert!(!matches(&rdoe, Some(&tagged), "h.example/ns/app"));
        let digested = r("h.example/ns/app@sha256:0000000000000000000000000000000000000000000000000000000000000000");
        assert!(matches(&rdoe, Some(&digested), "h.example/ns/app:anything"));
        assert!(!matches(
            &rdoe,
            Some(&digested),
            "h.example/ns/other:anything"
        ));
        let repo = Identity::MatchRepository {};
        assert!(matches(&repo, Some(&tagged), "h.example/ns/app:2"));
        assert!(!matches(&repo, Some(&tagged), "h.example/ns/other:1"));
        assert!(!matches(
            &Identity::MatchExact {},
            Some(&digested),
            "h.example/ns/app:1"
        ));
        let exact = Identity::ExactReference {
            docker_reference: "h.example/x:1".into(),
        };
        assert!(matches(&exact, None, "h.example/x:1"));
        assert!(!matches(&exact, None, "h.example/x:2"));
        let exrepo = Identity::ExactRepository {
            docker_repository: "h.example/x".into(),
        };
        assert!(matches(&exrepo, None, "h.example/x:9"));
        let remap = Identity::RemapIdentity {
            prefix: "mirror.example/ns".into(),
            signed_prefix: "h.example/ns".into(),
        };
        let mirrored = r("mirror.example/ns/app:1");
        assert!(matches(&remap, Some(&mirrored), "h.example/ns/app:1"));
        assert!(!matches(&remap, Some(&mirrored), "mirror.example/ns/app:1"));
        assert!(
            !matches(&rdoe, None, "h.example/ns/app:1"),
            "no reference: no match"
        );
    }
}
