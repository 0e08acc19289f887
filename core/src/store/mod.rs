//! The OSTree image store. (issue 3)
//!
//! A bare OSTree repo, laid out like atomic's:
//!
//! - each layer is one commit on `ociimage/<hex digest>` (the compressed
//!   digest from the manifest), with its sizes and uncompressed digest
//!   (`diff_id`) as commit metadata;
//! - each image is a commit on `ociimage/<escaped NAME:TAG>` with an empty
//!   tree and the manifest and the config as commit metadata
//!   (`docker.manifest`, `docker.digest`, `syscontainer.config`), so that the
//!   image ID and the layer list can be read back offline.
//!
//! The repo lives at `/ostree/repo` when that exists on the same filesystem
//! as the checkout root (`/var/lib/containers/atomic`), else at
//! `CHECKOUT_ROOT/.storage/ostree`. `ATOMIC_OSTREE_REPO` and
//! `ATOMIC_OSTREE_CHECKOUT_PATH` override both: the binary reads them into a
//! [`Location`] (see `location.rs`). Every path is resolved under the [`Root`].
//!
//! Locking: mutations take an exclusive `flock` on
//! `/run/syscontainer/lock/store.lock`; see [`Store::lock`].

mod checkout;
mod error;
pub mod import;
mod location;
mod lock;
mod names;
mod open;
pub mod pull;
mod query;
mod readahead;
pub mod sparse;
mod union;
mod verify;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::paths::Root;

pub use checkout::{CheckoutFailure, CheckoutMethod, CheckoutReport};
pub use error::StoreError;
pub use import::{ImportError, ImportStats};
pub use location::{Location, LocationError};
pub use lock::{LockMode, StoreLock};
pub use pull::{human, pull, ConsoleProgress, NoProgress, Progress, PullReport};
pub use query::{split_name, valid_digest, ImageInfo, LayerInfo};
pub use union::ImageVariables;
pub use verify::{CheckoutDiff, LayerVerify, VerifyReport};

/// Image commit: the manifest, as stored by atomic.
pub const META_MANIFEST: &str = "docker.manifest";
/// Image commit: the manifest digest, as stored by atomic.
pub const META_MANIFEST_DIGEST: &str = "docker.digest";
/// Image commit: the image config JSON.
pub const META_CONFIG: &str = "syscontainer.config";
/// Image commit: the name the image was pulled as.
pub const META_NAME: &str = "syscontainer.name";
/// Layer commit: the layer digest, as stored by atomic.
pub const META_LAYER: &str = "docker.layer";
/// Layer commit: compressed size (u64).
pub const META_LAYER_SIZE: &str = "syscontainer.layer.size";
/// Layer commit: media type.
pub const META_LAYER_MEDIA_TYPE: &str = "syscontainer.layer.media-type";
/// Layer commit: uncompressed digest, the config's `diff_id`.
pub const META_LAYER_DIFF_ID: &str = "syscontainer.layer.diff-id";
/// Layer commit: uncompressed (tar) size (u64).
pub const META_LAYER_TAR_SIZE: &str = "syscontainer.layer.uncompressed-size";

/// Largest file [`Store::read_file`] returns.
pub const READ_FILE_MAX: u64 = 16 * 1024 * 1024;

/// `images prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Layer digests whose refs were removed.
    pub layers: Vec<String>,
    pub objects_total: i32,
    pub objects_pruned: i32,
    pub bytes_freed: u64,
}

/// The image store.
pub struct Store {
    root: Root,
    repo: ostree::Repo,
    repo_logical: PathBuf,
    repo_real: PathBuf,
    checkout_logical: PathBuf,
    checkout_real: PathBuf,
    lock_path: PathBuf,
    lock: RefCell<lock::LockState>,
}

fn same_fs(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

impl Store {
    /// The repo's logical path, e.g. `/ostree/repo`.
    pub fn repo_logical_path(&self) -> PathBuf {
        self.repo_logical.clone()
    }

    /// The repo's real path (under the root).
    pub fn repo_path(&self) -> PathBuf {
        self.repo_real.clone()
    }

    /// The real path (under the root) of the checkout root.
    pub fn checkout_root(&self) -> PathBuf {
        self.checkout_real.clone()
    }

    /// The logical path of the checkout root.
    pub fn checkout_root_logical(&self) -> PathBuf {
        self.checkout_logical.clone()
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The libostree repo, for tests and tools.
    pub fn repo(&self) -> &ostree::Repo {
        &self.repo
    }

    /// Take the store lock. Pull, delete, tag and prune take it exclusive
    /// themselves; an install should hold it shared from reading the image
    /// to the end of its checkout, so that a concurrent prune waits. Nested
    /// calls on the same `Store` do not deadlock (shared -> exclusive
    /// upgrades for the guard's lifetime).
    pub fn lock(&self, mode: LockMode) -> Result<StoreLock<'_>, StoreError> {
        lock::acquire(&self.lock, &self.lock_path, mode)
    }

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
            .resolve_ref(&names::branch_for_image(&img.name))?
            .is_some()
            && (names::with_tag(name_or_id) == img.name
                || names::with_tag(&names::qualify(name_or_id)) == img.name);
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
            self.set_ref_now(&names::branch_for_image(n), None)?;
        }
        crate::failpoint!("delete.done");
        Ok(victims)
    }

    /// Give the image `src` the additional name `dst` (same commit).
    pub fn tag(&self, src: &str, dst: &str) -> Result<String, StoreError> {
        let _l = self.lock(LockMode::Exclusive)?;
        let img = self.image(src)?;
        let commit = self
            .resolve_ref(&names::branch_for_image(&img.name))?
            .ok_or_else(|| StoreError::ImageNotFound {
                name: src.to_string(),
            })?;
        let dst = dst.strip_prefix("docker://").unwrap_or(dst);
        if dst.is_empty() || dst.contains(char::is_whitespace) || dst.starts_with('/') {
            return Err(StoreError::BadName {
                name: dst.to_string(),
            });
        }
        let dst = names::with_tag(&names::qualify(dst));
        self.set_ref_now(&names::branch_for_image(&dst), Some(&commit))?;
        Ok(dst)
    }

    /// Remove layer refs that no image uses, then unreachable objects.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _l = self.lock(LockMode::Exclusive)?;
        let mut report = PruneReport::default();
        for l in self.dangling_layers()? {
            crate::failpoint!("prune.before-layer-ref");
            self.set_ref_now(&names::branch_for_layer(&l.digest), None)?;
            report.layers.push(l.digest);
        }
        crate::failpoint!("prune.refs-removed");
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
