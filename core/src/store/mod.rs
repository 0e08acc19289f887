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
//!
//! One job per file: `error.rs` (the error type), `open.rs` (location and
//! repo creation), `query.rs` (refs, layers and images), `checkout/` (the
//! union checkout: ours and libostree's), `union.rs` (reading files through
//! the layers), `verify.rs`, `gc.rs` (delete, tag, prune), `signatures.rs` (the
//! signatures kept with an image), and `pull.rs`,
//! `import.rs` for getting images in. Image names, digests and branch
//! names are parsed and built by [`crate::imgref`] only.

mod checkout;
mod error;
mod gc;
pub mod import;
mod location;
mod lock;
mod open;
pub mod pull;
mod query;
mod readahead;
mod signatures;
pub mod sparse;
mod union;
mod verify;

use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::paths::Root;

pub use checkout::{CheckoutFailure, CheckoutMethod, CheckoutReport};
pub use error::StoreError;
pub use gc::PruneReport;
pub use import::{ImportError, ImportStats};
pub use location::{Location, LocationError};
pub use lock::{LockMode, StoreLock};
pub use pull::{pull, pull_checked, AcceptAll, NoProgress, Progress, PullCheck, PullReport};
pub use query::{ImageInfo, LayerInfo};
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
    checkout_method: CheckoutMethod,
    import_limits: import::ImportLimits,
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
}
