//! Union checkouts of an image's layers: the dispatch between our hardlink
//! checkout (`hardlink.rs`, the default) and libostree's (`libostree.rs`).

mod hardlink;
mod libostree;

use std::fs;
use std::path::Path;

pub use hardlink::CheckoutFailure;

use super::{ImageInfo, Store, StoreError};

/// What a checkout did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckoutReport {
    /// Regular files copied instead of hardlinked, because their object had
    /// reached the filesystem's link limit (EMLINK: 65,000 on ext4).
    pub copied: u64,
}

/// How [`Store::checkout_with`] checks the layers out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMethod {
    /// Our own walk of the dirtree objects: one `linkat` per file (default).
    Hardlink,
    /// libostree's `checkout_at`, layer by layer (`SYSCONTAINER_CHECKOUT=libostree`,
    /// read by the CLI).
    Libostree,
}

impl CheckoutMethod {
    /// From the value of [`crate::paths::ENV_CHECKOUT`] as the binary read
    /// it: `libostree`, else the default.
    pub fn from_var(value: Option<&std::ffi::OsStr>) -> CheckoutMethod {
        match value {
            Some(v) if v == "libostree" => CheckoutMethod::Libostree,
            _ => CheckoutMethod::Hardlink,
        }
    }
}

impl Store {
    /// Union checkout of all layers into `dest`, which must not exist (its
    /// parent must, on the repo's filesystem): regular files hardlinked into
    /// the repo, symlinks created, layers in order with whiteouts and opaque
    /// directories applied, one `syncfs` at the end. A file whose object has
    /// reached the link limit is copied (the report counts them); nothing
    /// else is. On failure, `dest` is removed.
    ///
    /// Uses the store's method ([`Store::with_checkout_method`]; by default
    /// our own, [`CheckoutMethod::Hardlink`]).
    pub fn checkout(&self, img: &ImageInfo, dest: &Path) -> Result<CheckoutReport, StoreError> {
        self.checkout_with(img, dest, self.checkout_method)
    }

    /// [`Store::checkout`] with the given implementation.
    pub fn checkout_with(
        &self,
        img: &ImageInfo,
        dest: &Path,
        method: CheckoutMethod,
    ) -> Result<CheckoutReport, StoreError> {
        if fs::symlink_metadata(dest).is_ok() {
            return Err(StoreError::DestExists {
                path: dest.to_path_buf(),
            });
        }
        let mut commits = Vec::with_capacity(img.layers.len());
        for l in &img.layers {
            let c = self
                .layer_commit(l)?
                .ok_or_else(|| StoreError::LayerMissing {
                    name: img.name.clone(),
                    digest: l.clone(),
                })?;
            commits.push((l, c));
        }
        let res = (|| {
            if commits.is_empty() {
                fs::create_dir(dest).map_err(|source| StoreError::Mkdir {
                    path: dest.to_path_buf(),
                    source,
                })?;
            }
            let report = match method {
                CheckoutMethod::Hardlink => self.checkout_hardlink(img, &commits, dest)?,
                CheckoutMethod::Libostree => self.checkout_libostree(img, &commits, dest)?,
            };
            syncfs(dest)?;
            Ok(report)
        })();
        if res.is_err() {
            let _ = fs::remove_dir_all(dest);
        }
        res
    }
}

/// `syncfs(2)` on the filesystem holding `path`.
fn syncfs(path: &Path) -> Result<(), StoreError> {
    let f = fs::File::open(path).map_err(|source| StoreError::Sync {
        path: path.to_path_buf(),
        source,
    })?;
    rustix::fs::syncfs(&f).map_err(|e| StoreError::Sync {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::CheckoutMethod;
    use std::ffi::OsStr;

    #[test]
    fn method_from_its_variable() {
        assert_eq!(CheckoutMethod::from_var(None), CheckoutMethod::Hardlink);
        assert_eq!(
            CheckoutMethod::from_var(Some(OsStr::new("libostree"))),
            CheckoutMethod::Libostree
        );
        assert_eq!(
            CheckoutMethod::from_var(Some(OsStr::new("hardlink"))),
            CheckoutMethod::Hardlink
        );
    }
}
