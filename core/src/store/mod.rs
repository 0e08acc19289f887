//! The OSTree image store. (issue 3)
//!
//! STUB (deploy branch only): the real store is written in the `store`
//! worktree and replaces this file on merge. It has exactly the API that
//! `deploy::store::StoreSource` uses, and every call fails.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::paths::{self, Root};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("STUB: the OSTree store is not merged into this branch (image '{image}')")]
    NotMerged { image: String },
}

#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub name: String,
    pub image_id: String,
    pub manifest_digest: String,
    pub layers: Vec<String>,
    pub config: serde_json::Value,
    pub created: Option<String>,
    pub size: u64,
}

/// STUB.
pub struct Store {
    root: Root,
}

impl Store {
    pub fn open(root: &Root) -> Result<Store, StoreError> {
        Ok(Store { root: root.clone() })
    }
    pub fn repo_logical_path(&self) -> PathBuf {
        PathBuf::from(paths::OSTREE_REPO)
    }
    pub fn checkout_root(&self) -> PathBuf {
        self.root.join(paths::CHECKOUT_ROOT)
    }
    pub fn image(&self, name_or_id: &str) -> Result<ImageInfo, StoreError> {
        Err(StoreError::NotMerged {
            image: name_or_id.to_string(),
        })
    }
    pub fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        Ok(Vec::new())
    }
    pub fn checkout(&self, img: &ImageInfo, _dest: &Path) -> Result<(), StoreError> {
        Err(StoreError::NotMerged {
            image: img.name.clone(),
        })
    }
    pub fn read_file(&self, img: &ImageInfo, _path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::NotMerged {
            image: img.name.clone(),
        })
    }
}
