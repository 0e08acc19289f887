//! Ref and image queries: layers and images by digest, name or ID prefix.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{names, Store, StoreError};
use super::{
    META_CONFIG, META_LAYER_DIFF_ID, META_LAYER_SIZE, META_LAYER_TAR_SIZE, META_MANIFEST,
    META_MANIFEST_DIGEST,
};

/// An image in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageInfo {
    /// `registry/repo:tag`, from the ref.
    pub name: String,
    /// `sha256:<hex>`, the config digest.
    pub image_id: String,
    pub manifest_digest: String,
    /// Layer digests, bottom first.
    pub layers: Vec<String>,
    /// The image config JSON (`null` for images stored without it).
    pub config: serde_json::Value,
    pub created: Option<String>,
    /// Virtual size: the sum of the layers' uncompressed sizes.
    pub size: u64,
}

impl ImageInfo {
    /// The image ID's first 12 hex digits.
    pub fn short_id(&self) -> &str {
        let h = self
            .image_id
            .strip_prefix("sha256:")
            .unwrap_or(&self.image_id);
        &h[..h.len().min(12)]
    }

    /// `(repository, tag)` split from the name.
    pub fn repo_tag(&self) -> (&str, &str) {
        split_name(&self.name)
    }
}

/// `("registry/repo", "tag")`; a digest reference keeps `@sha256:..` as tag.
pub fn split_name(name: &str) -> (&str, &str) {
    if let Some((r, d)) = name.split_once('@') {
        return (r, d);
    }
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "latest"),
    }
}

/// A layer ref.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerInfo {
    pub digest: String,
    pub commit: String,
    pub diff_id: Option<String>,
    pub size: Option<u64>,
    pub uncompressed_size: Option<u64>,
}

fn meta_str(d: &glib::VariantDict, k: &str) -> Option<String> {
    d.lookup::<String>(k).ok().flatten()
}

fn meta_u64(d: &glib::VariantDict, k: &str) -> Option<u64> {
    d.lookup::<u64>(k).ok().flatten()
}

impl Store {
    /// Every `ociimage/` ref: full ref name -> commit.
    fn refs(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let all = self
            .repo
            .list_refs(None, gio::Cancellable::NONE)
            .map_err(|source| StoreError::ListRefs { source })?;
        Ok(all
            .into_iter()
            .filter(|(r, _)| r.starts_with(names::PREFIX))
            .collect())
    }

    pub(super) fn resolve_ref(&self, r: &str) -> Result<Option<String>, StoreError> {
        self.repo
            .resolve_rev(r, true)
            .map(|o| o.map(|s| s.to_string()))
            .map_err(|source| StoreError::Ref {
                name: r.to_string(),
                source,
            })
    }

    pub(super) fn commit_meta(
        &self,
        commit: &str,
        what: &str,
    ) -> Result<glib::VariantDict, StoreError> {
        let (v, _) = self
            .repo
            .load_commit(commit)
            .map_err(|source| StoreError::Commit {
                commit: commit.to_string(),
                what: what.to_string(),
                source,
            })?;
        Ok(glib::VariantDict::new(Some(&v.child_value(0))))
    }

    /// The commit of a layer, if present.
    pub fn layer_commit(&self, digest: &str) -> Result<Option<String>, StoreError> {
        if !valid_digest(digest) {
            return Ok(None);
        }
        self.resolve_ref(&names::branch_for_layer(digest))
    }

    /// A layer ref's details.
    pub fn layer(&self, digest: &str) -> Result<Option<LayerInfo>, StoreError> {
        let Some(commit) = self.layer_commit(digest)? else {
            return Ok(None);
        };
        let d = self.commit_meta(&commit, &format!("layer {digest}"))?;
        Ok(Some(LayerInfo {
            digest: digest.to_string(),
            diff_id: meta_str(&d, META_LAYER_DIFF_ID),
            size: meta_u64(&d, META_LAYER_SIZE),
            uncompressed_size: meta_u64(&d, META_LAYER_TAR_SIZE),
            commit,
        }))
    }

    pub(super) fn image_from_commit(
        &self,
        name: &str,
        commit: &str,
    ) -> Result<ImageInfo, StoreError> {
        let d = self.commit_meta(commit, &format!("image {name}"))?;
        let bad = |reason: &str| StoreError::BadImageCommit {
            name: name.to_string(),
            commit: commit.to_string(),
            reason: reason.to_string(),
        };
        let manifest =
            meta_str(&d, META_MANIFEST).ok_or_else(|| bad("no docker.manifest metadata"))?;
        let m: serde_json::Value =
            serde_json::from_str(&manifest).map_err(|source| StoreError::ManifestJson {
                name: name.to_string(),
                commit: commit.to_string(),
                source,
            })?;
        let image_id = m["config"]["digest"]
            .as_str()
            .ok_or_else(|| bad("the manifest has no config digest (schema 1?)"))?
            .to_string();
        let layers = m["layers"]
            .as_array()
            .ok_or_else(|| bad("the manifest has no layers array"))?
            .iter()
            .map(|l| l["digest"].as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("a layer in the manifest has no digest"))?;
        let config = match meta_str(&d, META_CONFIG) {
            Some(c) => serde_json::from_str(&c).map_err(|source| StoreError::ManifestJson {
                name: name.to_string(),
                commit: commit.to_string(),
                source,
            })?,
            None => serde_json::Value::Null,
        };
        let created = config["created"].as_str().map(str::to_string);
        let mut size = 0;
        for (i, l) in layers.iter().enumerate() {
            let s = match self.layer(l)? {
                Some(LayerInfo {
                    uncompressed_size: Some(s),
                    ..
                }) => Some(s),
                _ => m["layers"][i]["size"].as_u64(),
            };
            size += s.unwrap_or(0);
        }
        Ok(ImageInfo {
            name: name.to_string(),
            image_id,
            manifest_digest: meta_str(&d, META_MANIFEST_DIGEST).unwrap_or_default(),
            layers,
            config,
            created,
            size,
        })
    }

    /// Every image, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        let mut out = Vec::new();
        for (r, commit) in self.refs()? {
            let suffix = &r[names::PREFIX.len()..];
            if names::is_layer_suffix(suffix) {
                continue;
            }
            let Some(name) = names::unescape(suffix) else {
                log::warn!("ignoring ref '{r}': not an escaped image name");
                continue;
            };
            out.push(self.image_from_commit(&name, &commit)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Layer refs that no image uses.
    pub fn dangling_layers(&self) -> Result<Vec<LayerInfo>, StoreError> {
        let used: BTreeSet<String> = self.images()?.into_iter().flat_map(|i| i.layers).collect();
        let mut out = Vec::new();
        for r in self.refs()?.keys() {
            let suffix = &r[names::PREFIX.len()..];
            if !names::is_layer_suffix(suffix) {
                continue;
            }
            let digest = format!("sha256:{suffix}");
            if !used.contains(&digest) {
                if let Some(l) = self.layer(&digest)? {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// An image by name (as given, then fully qualified, `:latest` added
    /// when untagged) or by image ID prefix (with or without `sha256:`).
    pub fn image(&self, name_or_id: &str) -> Result<ImageInfo, StoreError> {
        let given = name_or_id.strip_prefix("docker://").unwrap_or(name_or_id);
        if given.is_empty() {
            return Err(StoreError::BadName {
                name: name_or_id.to_string(),
            });
        }
        for n in [given.to_string(), names::qualify(given)] {
            let full = names::with_tag(&n);
            if let Some(c) = self.resolve_ref(&names::branch_for_image(&full))? {
                return self.image_from_commit(&full, &c);
            }
        }
        let hex = given.strip_prefix("sha256:").unwrap_or(given);
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let found: Vec<ImageInfo> = self
                .images()?
                .into_iter()
                .filter(|i| {
                    i.image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|h| h.starts_with(&hex))
                })
                .collect();
            let ids: BTreeSet<&str> = found.iter().map(|i| i.image_id.as_str()).collect();
            if ids.len() > 1 {
                return Err(StoreError::AmbiguousId {
                    prefix: name_or_id.to_string(),
                    matches: ids.into_iter().collect::<Vec<_>>().join(", "),
                });
            }
            if let Some(i) = found.into_iter().next() {
                return Ok(i);
            }
        }
        Err(StoreError::ImageNotFound {
            name: name_or_id.to_string(),
        })
    }

    /// Image names by ID, for callers that map records to images.
    pub fn names_by_id(&self) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for i in self.images()? {
            m.entry(i.image_id).or_default().push(i.name);
        }
        Ok(m)
    }
}

/// `sha256:` followed by 64 lower-case hex digits.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn digests() {
        assert!(valid_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!valid_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!valid_digest("sha256:../../etc"));
    }
}
