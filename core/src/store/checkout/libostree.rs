//! libostree's checkout (`SYSCONTAINER_CHECKOUT=libostree`), layer by layer.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::CheckoutReport;
use crate::store::{same_fs, ImageInfo, Store, StoreError};

impl Store {
    /// libostree's checkout. It hardlinks symlinks too, and with
    /// `no_copy_fallback` fails on the first object at the link limit; so
    /// the copy fallback is allowed (libostree then copies a file or
    /// recreates a symlink when `linkat` fails with EMLINK, EXDEV or EPERM),
    /// and the same-filesystem check that `no_copy_fallback` made is ours.
    /// libostree does not say what it copied: the report counts the regular
    /// files with one link (libostree also always copies empty files, which
    /// are not counted).
    pub(super) fn checkout_libostree(
        &self,
        img: &ImageInfo,
        commits: &[(&String, String)],
        dest: &Path,
    ) -> Result<CheckoutReport, StoreError> {
        let parent = dest.parent().unwrap_or(Path::new("/"));
        if !same_fs(&self.repo_real, parent) {
            return Err(StoreError::CrossDevice {
                repo: self.repo_real.clone(),
                dest: dest.to_path_buf(),
            });
        }
        let opts = ostree::RepoCheckoutAtOptions {
            mode: ostree::RepoCheckoutMode::None,
            overwrite_mode: ostree::RepoCheckoutOverwriteMode::UnionFiles,
            process_whiteouts: true,
            no_copy_fallback: false,
            ..Default::default()
        };
        for (digest, commit) in commits {
            self.repo
                .checkout_at(
                    Some(&opts),
                    libc::AT_FDCWD,
                    dest,
                    commit,
                    gio::Cancellable::NONE,
                )
                .map_err(|source| StoreError::Checkout {
                    name: img.name.clone(),
                    digest: digest.to_string(),
                    dest: dest.to_path_buf(),
                    source,
                })?;
            crate::failpoint!("checkout.layer");
        }
        let mut copied = 0;
        let mut stack = vec![dest.to_path_buf()];
        let rd_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::ReadDeployment { path: p, source }
        };
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).map_err(rd_err(&d))? {
                let e = e.map_err(rd_err(&d))?;
                let md = fs::symlink_metadata(e.path()).map_err(rd_err(&e.path()))?;
                if md.is_dir() {
                    stack.push(e.path());
                } else if md.is_file() && md.nlink() == 1 && md.len() > 0 {
                    copied += 1;
                }
            }
        }
        Ok(CheckoutReport { copied })
    }
}
