//! The signatures read when an image was pulled ([`crate::trust`]), kept
//! beside the repo so that `images verify` and an install of a stored
//! image re-check them against the policy in force without the network.
//!
//! One JSON file per manifest digest,
//! `REPO/extensions/syscontainer/signatures/sha256-<hex>.json` (libostree
//! leaves `extensions/` to its users), written atomically and durably under
//! the store lock. The file is content-addressed like the layers: images
//! with the same manifest share it, and prune drops the files of manifests
//! no image has.

use std::collections::HashSet;
use std::path::PathBuf;

use super::{Store, StoreError};
use crate::trust::Signatures;

const DIR: &str = "extensions/syscontainer/signatures";

impl Store {
    fn signatures_path(&self, manifest_digest: &str) -> Result<PathBuf, StoreError> {
        let hex =
            crate::imgref::digest_hex(manifest_digest).ok_or_else(|| StoreError::Signatures {
                digest: manifest_digest.to_string(),
                path: self.repo_real.join(DIR),
                what: "not a sha256 digest".into(),
            })?;
        Ok(self.repo_real.join(DIR).join(format!("sha256-{hex}.json")))
    }

    /// The signatures stored for `manifest_digest`; `None` when none were.
    pub fn signatures(&self, manifest_digest: &str) -> Result<Option<Signatures>, StoreError> {
        let path = self.signatures_path(manifest_digest)?;
        let bad = |what: String| StoreError::Signatures {
            digest: manifest_digest.to_string(),
            path: path.clone(),
            what,
        };
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(format!("cannot read: {e}"))),
        };
        let mut s: Signatures =
            serde_json::from_slice(&data).map_err(|e| bad(format!("invalid: {e}")))?;
        s.from = format!("the signatures stored with the image in {}", path.display());
        Ok(Some(s))
    }

    /// Keep `sigs` for `manifest_digest`, replacing what was there; nothing
    /// is written when the file already says the same. Call it under the
    /// exclusive lock.
    pub(super) fn put_signatures(
        &self,
        manifest_digest: &str,
        sigs: &Signatures,
    ) -> Result<(), StoreError> {
        if self.signatures(manifest_digest).ok().flatten().as_ref() == Some(sigs) {
            return Ok(());
        }
        let path = self.signatures_path(manifest_digest)?;
        let bad = |what: String| StoreError::Signatures {
            digest: manifest_digest.to_string(),
            path: path.clone(),
            what,
        };
        let dir = path.parent().expect("a file under DIR");
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
        let data = serde_json::to_vec(sigs).map_err(|e| bad(e.to_string()))?;
        crate::fsutil::write_atomic(&path, &data, 0o644)
            .map_err(|e| bad(format!("cannot write: {e}")))
    }

    /// Remove the signature files of manifests not in `keep`; returns how
    /// many. Call it under the exclusive lock.
    pub(super) fn prune_signatures(&self, keep: &HashSet<String>) -> Result<usize, StoreError> {
        let dir = self.repo_real.join(DIR);
        let rd = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(StoreError::Signatures {
                    digest: String::new(),
                    path: dir,
                    what: format!("cannot list: {e}"),
                })
            }
        };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name
                .strip_prefix("sha256-")
                .and_then(|r| r.strip_suffix(".json"))
            else {
                continue;
            };
            if !keep.contains(&format!("sha256:{hex}")) && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}
