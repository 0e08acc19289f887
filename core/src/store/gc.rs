//! Removing and naming images: delete, tag, and prune of unused layers and
//! objects.

use std::collections::BTreeSet;

use super::{LockMode, Store, StoreError, META_LAYER, META_MANIFEST};
use crate::imgref;

/// `images prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Layer digests whose refs were removed.
    pub layers: Vec<String>,
    pub objects_total: i32,
    pub objects_pruned: i32,
    pub bytes_freed: u64,
}

impl Store {
    fn set_ref_now(&self, r: &str, commit: Option<&str>) -> Result<(), StoreError> {
        self.repo
            .set_ref_immediate(None, r, commit, gio::Cancellable::NONE)
            .map_err(|source| StoreError::SetRef {
                name: r.to_string(),
                source,
            })
    }

    /// Delete an image by name (that name only) or by ID prefix (every name
    /// of that image). Refused when the image ID is in `in_use`, unless
    /// `force`. Layers stay until [`Store::prune`]. Returns the removed names.
    pub fn delete(
        &self,
        name_or_id: &str,
        in_use: &[String],
        force: bool,
    ) -> Result<Vec<String>, StoreError> {
        let _l = self.lock(LockMode::Exclusive)?;
        let img = self.image(name_or_id)?;
        if !force && in_use.contains(&img.image_id) {
            return Err(StoreError::InUse {
                name: img.name,
                id: img.image_id,
            });
        }
        let by_name = self
            .resolve_ref(&imgref::image_branch(&img.name))?
            .is_some()
            && (imgref::with_tag(name_or_id) == img.name
                || imgref::with_tag(&imgref::qualify(name_or_id)) == img.name);
        let victims: Vec<String> = if by_name {
            vec![img.name.clone()]
        } else {
            self.images()?
                .into_iter()
                .filter(|i| i.image_id == img.image_id)
                .map(|i| i.name)
                .collect()
        };
        for n in &victims {
            crate::failpoint!("delete.before-ref");
            self.set_ref_now(&imgref::image_branch(n), None)?;
        }
        crate::failpoint!("delete.done");
        Ok(victims)
    }

    /// Give the image `src` the additional name `dst` (same commit).
    pub fn tag(&self, src: &str, dst: &str) -> Result<String, StoreError> {
        let _l = self.lock(LockMode::Exclusive)?;
        let img = self.image(src)?;
        let commit = self
            .resolve_ref(&imgref::image_branch(&img.name))?
            .ok_or_else(|| StoreError::ImageNotFound {
                name: src.to_string(),
            })?;
        let dst = imgref::strip_docker_scheme(dst);
        if dst.is_empty() || dst.contains(char::is_whitespace) || dst.starts_with('/') {
            return Err(StoreError::BadName {
                name: dst.to_string(),
            });
        }
        let dst = imgref::with_tag(&imgref::qualify(dst));
        self.set_ref_now(&imgref::image_branch(&dst), Some(&commit))?;
        Ok(dst)
    }

    /// Remove layer refs that no image uses, then unreachable objects.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _l = self.lock(LockMode::Exclusive)?;
        let mut report = PruneReport::default();
        for l in self.dangling_layers()? {
            crate::failpoint!("prune.before-layer-ref");
            self.set_ref_now(&imgref::layer_branch(&l.digest)?, None)?;
            report.layers.push(l.digest);
        }
        crate::failpoint!("prune.refs-removed");
        let keep: Vec<String> = self.images()?.into_iter().map(|i| i.name).collect();
        self.prune_signatures(&keep)?;
        // Our commits that no ref names go first, one unlink each: libostree
        // deletes unreachable objects in no particular order, and a prune
        // killed half-way must not leave a commit whose tree is gone (fsck
        // fails on it). Loose trees and files without a commit are harmless.
        self.delete_orphan_commits()?;
        crate::failpoint!("prune.orphan-commits-deleted");
        let (total, pruned, freed) = self
            .repo
            .prune(
                ostree::RepoPruneFlags::REFS_ONLY,
                -1,
                gio::Cancellable::NONE,
            )
            .map_err(|source| StoreError::Prune { source })?;
        crate::failpoint!("prune.done");
        report.objects_total = total;
        report.objects_pruned = pruned;
        report.bytes_freed = freed;
        Ok(report)
    }

    /// Delete the commit objects of layers and images (our metadata) that no
    /// ref points at. Ours have no parents, so no other commit reaches them.
    fn delete_orphan_commits(&self) -> Result<(), StoreError> {
        let err = |source| StoreError::Prune { source };
        let targets: BTreeSet<String> = self
            .repo
            .list_refs(None, gio::Cancellable::NONE)
            .map_err(|source| StoreError::ListRefs { source })?
            .into_values()
            .collect();
        let commits = self
            .repo
            .list_commit_objects_starting_with(None, gio::Cancellable::NONE)
            .map_err(err)?;
        let mut commits: Vec<String> = commits.into_iter().map(|c| c.to_string()).collect();
        commits.sort();
        for c in commits {
            if targets.contains(&c) {
                continue;
            }
            let Ok(d) = self.commit_meta(&c, "prune") else {
                continue;
            };
            if d.contains(META_LAYER) || d.contains(META_MANIFEST) {
                self.repo
                    .delete_object(ostree::ObjectType::Commit, &c, gio::Cancellable::NONE)
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}
