//! The OSTree store as an [`ImageStore`].

use std::cell::Cell;
use std::path::Path;

use super::{DeployError, ImageSpec, ImageStore};
use crate::paths::Root;
use crate::store::{CheckoutMethod, Location, LockMode, Store};

/// Images from the OSTree store; checkouts are hardlinks into the repo.
pub struct StoreSource {
    store: Store,
    copied: Cell<u64>,
}

impl StoreSource {
    /// Open the store at `loc` (the binary's settings).
    pub fn open(root: &Root, loc: &Location) -> Result<Self, DeployError> {
        let store = Store::open_with(root, loc).map_err(|source| DeployError::Store {
            image: String::from("(store)"),
            source: Box::new(source),
        })?;
        Ok(StoreSource {
            store,
            copied: Cell::new(0),
        })
    }

    /// Check out with `method` (the binary's settings); see
    /// [`Store::with_checkout_method`].
    pub fn with_checkout_method(self, method: CheckoutMethod) -> Self {
        StoreSource {
            store: self.store.with_checkout_method(method),
            ..self
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Files that the checkouts made through this source so far copied
    /// instead of hardlinking, because their objects had reached the
    /// filesystem's link limit ([`crate::store::CheckoutReport::copied`]).
    /// Read it after `install` or `update` to report them.
    pub fn copied_files(&self) -> u64 {
        self.copied.get()
    }
}

impl ImageStore for StoreSource {
    fn resolve(&self, image: &str) -> Result<ImageSpec, DeployError> {
        let i = self
            .store
            .image(image)
            .map_err(|source| DeployError::Store {
                image: image.to_string(),
                source: Box::new(source),
            })?;
        Ok(ImageSpec {
            name: i.name,
            image_id: i.image_id,
            config: i.config,
        })
    }

    fn materialize(&self, image: &ImageSpec, dest: &Path) -> Result<(), DeployError> {
        let err = |source| DeployError::Store {
            image: image.name.clone(),
            source: Box::new(source),
        };
        // A concurrent prune waits until the checkout is complete.
        let _lock = self.store.lock(LockMode::Shared).map_err(err)?;
        // By ID: the name may have moved to another image since resolve().
        let info = self.store.image(&image.image_id).map_err(err)?;
        let report = self.store.checkout(&info, dest).map_err(err)?;
        self.copied.set(self.copied.get() + report.copied);
        Ok(())
    }

    fn repo(&self) -> Option<String> {
        Some(self.store.repo_logical_path().display().to_string())
    }
}
