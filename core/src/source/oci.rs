//! `oci:/path[:ref]`: an OCI image layout directory.
//!
//! `ref` matches the `org.opencontainers.image.ref.name` annotation in
//! `index.json`. Without one, the only image is taken, else the one named
//! `latest`. As in containers/image, the path ends at the first `:`.
//!
//! The image is stored as `REF` when the ref is itself a full image name
//! (`docker.io/library/busybox:latest`), else as `DIRNAME:REF`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::manifest::{self, resolve_from, verify_blob, LayoutIndex, OCI_MANIFEST};
use super::{read_capped, Descriptor, ImageSource, ResolvedImage, SourceError, MAX_MANIFEST_SIZE};
use crate::imgref::{digest_hex, ImageRef};

pub const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Clone)]
pub struct OciLayoutSource {
    dir: PathBuf,
    reference: Option<String>,
}

fn blob_path(dir: &Path, digest: &str) -> Option<PathBuf> {
    digest_hex(digest).map(|h| dir.join("blobs/sha256").join(h))
}

impl OciLayoutSource {
    /// `spec` is what follows `oci:`: `/path[:ref]`.
    pub fn open(spec: &str) -> Result<Self, SourceError> {
        let (dir, reference) = match spec.split_once(':') {
            Some((d, r)) if !r.is_empty() => (d, Some(r.to_string())),
            Some((d, _)) => (d, None),
            None => (spec, None),
        };
        if dir.is_empty() {
            return Err(SourceError::Spec {
                spec: format!("oci:{spec}"),
                reason: "no directory given".into(),
            });
        }
        Ok(OciLayoutSource {
            dir: PathBuf::from(dir),
            reference,
        })
    }

    fn read_file(&self, p: &Path, limit: u64, what: &str) -> Result<Vec<u8>, SourceError> {
        let f = File::open(p).map_err(|e| SourceError::File {
            what: "opening OCI layout file",
            path: p.to_path_buf(),
            source: e,
        })?;
        read_capped(f, limit, what)
    }

    fn name_for(&self, reference: Option<&str>) -> String {
        let dirname = self
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_else(|| "oci".into());
        let dirname: String = dirname
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        match reference {
            Some(r) if r.contains('/') || r.contains(':') => match ImageRef::parse(r) {
                Ok(i) => i.canonical(),
                Err(_) => format!("{dirname}:{}", r.replace([':', '/'], "-")),
            },
            Some(r) => format!("{dirname}:{r}"),
            None => format!("{dirname}:latest"),
        }
    }
}

impl ImageSource for OciLayoutSource {
    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("OCI layout {}:{r}", self.dir.display()),
            None => format!("OCI layout {}", self.dir.display()),
        }
    }

    fn resolve(&mut self) -> Result<ResolvedImage, SourceError> {
        let label = self.describe();
        let layout_file = self.dir.join("oci-layout");
        let raw = self.read_file(&layout_file, 4096, &format!("oci-layout of {label}"))?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Layout {
            image_layout_version: String,
        }
        let l: Layout = serde_json::from_slice(&raw).map_err(|e| SourceError::Json {
            what: format!("{}", layout_file.display()),
            source: e,
        })?;
        if !l.image_layout_version.starts_with("1.") {
            return Err(SourceError::Invalid {
                what: label,
                reason: format!(
                    "unsupported imageLayoutVersion '{}'",
                    l.image_layout_version.escape_debug()
                ),
            });
        }
        let iwhat = format!("index.json of {label}");
        let raw = self.read_file(&self.dir.join("index.json"), MAX_MANIFEST_SIZE, &iwhat)?;
        let index: LayoutIndex = serde_json::from_slice(&raw).map_err(|e| SourceError::Json {
            what: iwhat.clone(),
            source: e,
        })?;
        let ref_of = |e: &manifest::LayoutIndexEntry| e.annotations.get(REF_ANNOTATION).cloned();
        let refs: Vec<String> = index.manifests.iter().filter_map(ref_of).collect();
        let chosen = match &self.reference {
            Some(r) => index
                .manifests
                .iter()
                .find(|e| ref_of(e).as_deref() == Some(r.as_str())),
            None if index.manifests.len() == 1 => index.manifests.first(),
            None => index
                .manifests
                .iter()
                .find(|e| ref_of(e).as_deref() == Some("latest")),
        };
        let Some(entry) = chosen else {
            return Err(SourceError::NotFound {
                what: match &self.reference {
                    Some(r) => format!("image '{r}'"),
                    None => "a single or 'latest' image".into(),
                },
                url: self.dir.display().to_string(),
                detail: format!(
                    "the layout has {} images; refs: {}",
                    index.manifests.len(),
                    if refs.is_empty() {
                        "none".into()
                    } else {
                        refs.join(", ")
                    }
                ),
            });
        };
        let reference = self.reference.clone().or_else(|| ref_of(entry));
        let top = Descriptor {
            media_type: entry
                .media_type
                .clone()
                .unwrap_or_else(|| OCI_MANIFEST.to_string()),
            digest: entry.digest.clone(),
            size: entry.size,
        };
        let dir = self.dir.clone();
        let mut fetch = |d: &Descriptor, limit: u64, what: &str| {
            let p = blob_path(&dir, &d.digest).ok_or_else(|| SourceError::Invalid {
                what: what.to_string(),
                reason: format!("'{}' is not a sha256 digest", d.digest.escape_debug()),
            })?;
            if d.size > limit {
                return Err(SourceError::TooLarge {
                    what: what.to_string(),
                    limit,
                });
            }
            let f = File::open(&p).map_err(|e| SourceError::File {
                what: "opening OCI layout blob",
                path: p.clone(),
                source: e,
            })?;
            Ok((read_capped(f, limit, what)?, None))
        };
        let twhat = format!("manifest {} of {label}", top.digest);
        let (top_raw, _) = fetch(&top, MAX_MANIFEST_SIZE, &twhat)?;
        verify_blob(&top_raw, &top, &twhat)?;
        let name = self.name_for(reference.as_deref());
        resolve_from(name, top_raw, Some(&top.media_type), &label, &mut fetch)
    }

    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let p = blob_path(&self.dir, &d.digest).ok_or_else(|| SourceError::Invalid {
            what: self.describe(),
            reason: format!("'{}' is not a sha256 digest", d.digest.escape_debug()),
        })?;
        let f = File::open(&p).map_err(|e| SourceError::File {
            what: "opening OCI layout blob",
            path: p,
            source: e,
        })?;
        Ok(Box::new(f))
    }

    fn fork(&self) -> Option<Box<dyn ImageSource>> {
        Some(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_and_names() {
        let s = OciLayoutSource::open("/var/tmp/My Images:tiny").unwrap();
        assert_eq!(s.dir, PathBuf::from("/var/tmp/My Images"));
        assert_eq!(s.reference.as_deref(), Some("tiny"));
        assert_eq!(s.name_for(Some("tiny")), "my-images:tiny");
        assert_eq!(
            s.name_for(Some("docker.io/library/busybox:1")),
            "docker.io/library/busybox:1"
        );
        assert_eq!(s.name_for(None), "my-images:latest");
        let s = OciLayoutSource::open("/x/oci").unwrap();
        assert_eq!(s.reference, None);
        assert!(OciLayoutSource::open(":tag").is_err());
    }
}
