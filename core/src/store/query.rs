//! Ref and image queries: layers and images by digest, name or ID prefix.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Store, StoreError};
use super::{
    META_CONFIG, META_LAYER_DIFF_ID, META_LAYER_SIZE, META_LAYER_TAR_SIZE, META_MANIFEST,
    META_MANIFEST_DIGEST,
};
use crate::imgref::{self, Branch};

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
        imgref::short_id(&self.image_id)
    }

    /// `(repository, tag)` split from the name ([`imgref::split_name`]).
    pub fn repo_tag(&self) -> (&str, &str) {
        imgref::split_name(&self.name)
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
            .filter(|(r, _)| r.starts_with(imgref::BRANCH_PREFIX))
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
        match imgref::layer_branch(digest) {
            Ok(branch) => self.resolve_ref(&branch),
            Err(_) => Ok(None),
        }
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
            match imgref::parse_branch(&r) {
                Ok(Branch::Image(name)) => out.push(self.image_from_commit(&name, &commit)?),
                Ok(Branch::Layer(_)) => {}
                Err(e) => log::warn!("ignoring ref '{r}': {e}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Layer refs that no image uses.
    pub fn dangling_layers(&self) -> Result<Vec<LayerInfo>, StoreError> {
        let used: BTreeSet<String> = self.images()?.into_iter().flat_map(|i| i.layers).collect();
        let mut out = Vec::new();
        for r in self.refs()?.keys() {
            let Ok(Branch::Layer(digest)) = imgref::parse_branch(r) else {
                continue;
            };
            if !used.contains(&digest) {
                if let Some(l) = self.layer(&digest)? {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// An image by name (as given, then fully qualified, `:latest` added
    /// when untagged) or by image ID prefix (lowercase hex, with or without
    /// `sha256:`; [`imgref::id_prefix`]).
    pub fn image(&self, name_or_id: &str) -> Result<ImageInfo, StoreError> {
        let given = imgref::strip_docker_scheme(name_or_id);
        if given.is_empty() {
            return Err(StoreError::BadName {
                name: name_or_id.to_string(),
            });
        }
        for n in [given.to_string(), imgref::qualify(given)] {
            let full = imgref::with_tag(&n);
            if let Some(c) = self.resolve_ref(&imgref::image_branch(&full))? {
                return self.image_from_commit(&full, &c);
            }
        }
        if let Some(hex) = imgref::id_prefix(given) {
            let found: Vec<ImageInfo> = self
                .images()?
                .into_iter()
                .filter(|i| {
                    i.image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|h| h.starts_with(hex))
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
