//! `containers verify NAME`: compare a deployment's rootfs against its image.
//!
//! The rootfs is a hardlink checkout, so an edit made in place inside it also
//! edits the repo object (which `images verify` finds); an edit that replaces
//! a file, or adds or removes one, only shows here. Every file is re-hashed
//! as an OSTree object (content, mode, owner, xattrs), so a file the checkout
//! copied (its object was at the link limit) verifies when it is faithful,
//! and an edit to it shows here only.

use serde::Serialize;

use super::store::StoreSource;
use super::DeployError;
use crate::paths::Root;
use crate::record::Record;
use crate::store::{CheckoutDiff, LockMode};

/// The result of `containers verify NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerVerify {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// Logical path of the active deployment.
    pub deployment: String,
    #[serde(flatten)]
    pub diff: CheckoutDiff,
}

impl ContainerVerify {
    pub fn ok(&self) -> bool {
        self.diff.ok()
    }
}

/// Compare the active deployment of `name` against the union of its image's
/// layer commits.
pub fn verify(root: &Root, src: &StoreSource, name: &str) -> Result<ContainerVerify, DeployError> {
    let (rec, _) = Record::load(root, name)?;
    let store = src.store();
    let err = |source| DeployError::Store {
        image: rec.image.clone(),
        source: Box::new(source),
    };
    // A prune waits: the layers stay while they are read.
    let _lock = store.lock(LockMode::Shared).map_err(err)?;
    let img = store.image(&rec.image_id).map_err(err)?;
    let rootfs = root.join(&rec.deployment).join("rootfs");
    let diff = store.verify_checkout(&img, &rootfs).map_err(err)?;
    Ok(ContainerVerify {
        name: rec.name.clone(),
        image: rec.image.clone(),
        image_id: rec.image_id.clone(),
        deployment: rec.deployment.clone(),
        diff,
    })
}
