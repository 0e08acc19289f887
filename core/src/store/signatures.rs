//! The signatures read when an image was pulled ([`crate::trust`]), kept
//! beside the repo so that `images verify` and an install of a stored
//! image re-check them against the policy in force without the network.
//!
//! One JSON file per image name,
//! `REPO/extensions/syscontainer/signatures/<escaped NAME:TAG>.json`
//! (libostree leaves `extensions/` to its users; the name is escaped as in
//! the image's branch), holding the manifest digest it was read for and
//! the signatures. It is per name, not per manifest: the lookaside path and
//! the attachment's repository depend on the name. It is written atomically
//! and durably under the store lock, before the image's ref; a file whose
//! digest is not the image's is ignored, and prune drops the files of
//! names no image has.

use std::collections::HashSet;
use std::path::PathBuf;

use super::{Store, StoreError};
use crate::trust::Signatures;

const DIR: &str = "extensions/syscontainer/signatures";

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Stored {
    manifest_digest: String,
    #[serde(flatten)]
    signatures: Signatures,
}

fn file_name(name: &str) -> String {
    let b = crate::imgref::image_branch(name);
    let esc = b.strip_prefix("ociimage/").unwrap_or(&b);
    format!("{esc}.json")
}

impl Store {
    fn signatures_path(&self, name: &str) -> PathBuf {
        self.repo_real.join(DIR).join(file_name(name))
    }

    /// The signatures stored for image `name` when it was pulled with
    /// manifest `manifest_digest`; `None` when none were.
    pub fn signatures(
        &self,
        name: &str,
        manifest_digest: &str,
    ) -> Result<Option<Signatures>, StoreError> {
        let path = self.signatures_path(name);
        let bad = |what: String| StoreError::Signatures {
            name: name.to_string(),
            path: path.clone(),
            what,
        };
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(format!("cannot read: {e}"))),
        };
        let s: Stored = serde_json::from_slice(&data).map_err(|e| bad(format!("invalid: {e}")))?;
        if s.manifest_digest != manifest_digest {
            return Ok(None);
        }
        let mut sigs = s.signatures;
        sigs.from = format!("the signatures stored with the image in {}", path.display());
        Ok(Some(sigs))
    }

    /// Keep `sigs` for image `name` with manifest `manifest_digest`,
    /// replacing what was there; nothing is written when the file already
    /// says the same (a re-pull). Call it under the exclusive lock.
    pub(super) fn put_signatures(
        &self,
        name: &str,
        manifest_digest: &str,
        sigs: &Signatures,
    ) -> Result<(), StoreError> {
        if self
            .signatures(name, manifest_digest)
            .ok()
            .flatten()
            .as_ref()
            == Some(sigs)
        {
            return Ok(());
        }
        let path = self.signatures_path(name);
        let bad = |what: String| StoreError::Signatures {
            name: name.to_string(),
            path: path.clone(),
            what,
        };
        let dir = path.parent().expect("a file under DIR");
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
        let s = Stored {
            manifest_digest: manifest_digest.to_string(),
            signatures: sigs.clone(),
        };
        let data = serde_json::to_vec(&s).map_err(|e| bad(e.to_string()))?;
        crate::fsutil::write_atomic(&path, &data, 0o644)
            .map_err(|e| bad(format!("cannot write: {e}")))
    }

    /// Remove the signature files of names not in `keep`; returns how
    /// many. Call it under the exclusive lock.
    pub(super) fn prune_signatures(&self, keep: &[String]) -> Result<usize, StoreError> {
        let dir = self.repo_real.join(DIR);
        let keep: HashSet<String> = keep.iter().map(|n| file_name(n)).collect();
        let rd = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(StoreError::Signatures {
                    name: String::new(),
                    path: dir,
                    what: format!("cannot list: {e}"),
                })
            }
        };
        let mut n = 0;
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if f.ends_with(".json") && !keep.contains(&f) && std::fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }
}
