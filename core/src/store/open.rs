//! Opening the store: where the repo is, and creating it when missing.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};

use super::import::ImportLimits;
use super::{lock, same_fs, CheckoutMethod, Location, Store, StoreError};
use crate::paths::{self, Root};

impl Store {
    /// Open the store under `root` at the default [`Location`]; the repo is
    /// created if missing.
    pub fn open(root: &Root) -> Result<Store, StoreError> {
        Store::open_with(root, &Location::default())
    }

    /// Open with an explicit location (the binary's settings).
    pub fn open_with(root: &Root, loc: &Location) -> Result<Store, StoreError> {
        let checkout_logical = loc.checkout_root();
        let checkout_real = root.join(&checkout_logical);
        mkdir_all(&checkout_real)?;
        let repo_logical = match &loc.repo {
            Some(p) => p.clone(),
            None => {
                let sys = root.join(paths::OSTREE_REPO);
                if sys.join("config").exists() && same_fs(&sys, &checkout_real) {
                    PathBuf::from(paths::OSTREE_REPO)
                } else {
                    checkout_logical.join(paths::OSTREE_REPO_FALLBACK)
                }
            }
        };
        let repo_real = root.join(&repo_logical);
        let open_err = |source| StoreError::OpenRepo {
            path: repo_logical.clone(),
            source,
        };
        if !repo_real.join("config").exists() {
            // Create it aside and rename it into place: a concurrent command
            // sees no repo or a whole one, never one being created.
            let parent = repo_real.parent().unwrap_or(Path::new("/"));
            mkdir_all(parent)?;
            let tmp = parent.join(format!(".ostree.new.{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            ostree::Repo::new_for_path(&tmp)
                .create(ostree::RepoMode::Bare, gio::Cancellable::NONE)
                .map_err(open_err)?;
            if fs::rename(&tmp, &repo_real).is_err() {
                // Another command created it first (or a leftover empty
                // directory is in the way): use what is there.
                let _ = fs::remove_dir_all(&tmp);
                if !repo_real.join("config").exists() && fs::remove_dir(&repo_real).is_ok() {
                    return Store::open_with(root, loc);
                }
            }
        }
        let repo = ostree::Repo::new_for_path(&repo_real);
        repo.open(gio::Cancellable::NONE).map_err(open_err)?;
        if repo.mode() != ostree::RepoMode::Bare {
            return Err(StoreError::RepoMode {
                path: repo_logical,
                mode: format!("{:?}", repo.mode()),
            });
        }
        Ok(Store {
            lock_path: lock::lock_path(root),
            root: root.clone(),
            repo,
            repo_logical,
            repo_real,
            checkout_logical,
            checkout_real,
            lock: RefCell::new(lock::LockState::default()),
            checkout_method: CheckoutMethod::Hardlink,
            import_limits: ImportLimits::default(),
        })
    }

    /// Check out with `method` (the binary's settings; default
    /// [`CheckoutMethod::Hardlink`]).
    pub fn with_checkout_method(mut self, method: CheckoutMethod) -> Store {
        self.checkout_method = method;
        self
    }

    /// Import layers under `limits` (the binary's settings; default
    /// [`ImportLimits::default`]).
    pub fn with_import_limits(mut self, limits: ImportLimits) -> Store {
        self.import_limits = limits;
        self
    }

    /// The limits that [`super::pull`] imports layers under.
    pub fn import_limits(&self) -> &ImportLimits {
        &self.import_limits
    }
}

fn mkdir_all(p: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(p).map_err(|source| StoreError::Mkdir {
        path: p.to_path_buf(),
        source,
    })
}
