//! `syscontainer auto-update`: what it remembers between runs, and what it
//! decides for one container from three digests (the reference's now, the
//! deployed image's, the last one that failed).
//!
//! The state is ours, in [`paths::AUTO_UPDATE_STATE`], never in the admin's
//! record: per container, the manifest digest of the image an auto-update
//! deployed (a pull moves the tag, so the store may no longer name the
//! deployed image), and the digest that failed (rolled back), which is not
//! tried again until the reference names another digest.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fsutil;
use crate::paths::{self, Root};
use crate::record::Record;
use crate::store::Store;

/// The state format version this build writes.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid auto-update state file: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StateError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StateError::Json { .. } => crate::exit::INVALID,
            StateError::Read { .. } | StateError::Write { .. } => crate::exit::FAILURE,
        }
    }
}

/// The image an auto-update deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub image_id: String,
    pub digest: String,
}

/// A digest whose update failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub digest: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed: Option<Deployed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            containers: BTreeMap::new(),
        }
    }
}

impl State {
    /// The state under `root`; empty when there is none yet.
    pub fn load(root: &Root) -> Result<State, StateError> {
        let logical = PathBuf::from(paths::AUTO_UPDATE_STATE);
        let text = match fs::read(root.join(&logical)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: logical,
                    source,
                })
            }
        };
        serde_json::from_slice(&text).map_err(|source| StateError::Json {
            path: logical,
            source,
        })
    }

    /// Write it atomically (0644: digests only), creating the directory.
    pub fn save(&self, root: &Root) -> Result<(), StateError> {
        let logical = PathBuf::from(paths::AUTO_UPDATE_STATE);
        let path = root.join(&logical);
        let err = |source| StateError::Write {
            path: logical.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(err)?;
        }
        let mut text = serde_json::to_string_pretty(self).expect("state serializes");
        text.push('\n');
        fsutil::write_atomic(&path, text.as_bytes(), 0o644).map_err(err)
    }

    /// Forget containers that are no longer installed.
    pub fn retain(&mut self, names: &[&str]) {
        self.containers.retain(|n, _| names.contains(&n.as_str()));
    }
}

/// The manifest digest of `rec`'s deployed image: from our state when it
/// is about the same image ID, else from the store (the record's image
/// name, else any stored name of the same image ID). `None` when nothing
/// knows it.
pub fn deployed_digest(store: &Store, rec: &Record, st: &ContainerState) -> Option<String> {
    if let Some(d) = st.deployed.as_ref().filter(|d| d.image_id == rec.image_id) {
        return Some(d.digest.clone());
    }
    if let Ok(i) = store.image(&rec.image) {
        if i.image_id == rec.image_id && !i.manifest_digest.is_empty() {
            return Some(i.manifest_digest);
        }
    }
    store
        .images()
        .ok()?
        .into_iter()
        .find(|i| i.image_id == rec.image_id && !i.manifest_digest.is_empty())
        .map(|i| i.manifest_digest)
}

/// What one run does with one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The reference names the deployed image.
    Unchanged,
    /// The reference names the digest that failed before: not retried.
    KnownBad,
    /// The reference moved: pull and update.
    Update,
}

/// Decide from the reference's digest now (`remote`), the deployed one,
/// and the one that failed last.
pub fn decide(remote: &str, deployed: Option<&str>, failed: Option<&str>) -> Decision {
    if deployed == Some(remote) {
        Decision::Unchanged
    } else if failed == Some(remote) {
        Decision::KnownBad
    } else {
        Decision::Update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(decide("a", Some("a"), None), Decision::Unchanged);
        // Back on the deployed digest, whatever failed since.
        assert_eq!(decide("a", Some("a"), Some("b")), Decision::Unchanged);
        assert_eq!(decide("b", Some("a"), Some("b")), Decision::KnownBad);
        // The reference moved on from the failed digest: tried again.
        assert_eq!(decide("c", Some("a"), Some("b")), Decision::Update);
        assert_eq!(decide("c", None, None), Decision::Update);
    }

    #[test]
    fn state_roundtrip_atomic_and_missing() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        assert_eq!(State::load(&root).unwrap(), State::default());
        let mut s = State::default();
        s.containers.insert(
            "web".into(),
            ContainerState {
                deployed: None,
                failed: Some(Failed {
                    digest: "sha256:b".into(),
                    reason: "left active".into(),
                }),
            },
        );
        s.containers
            .insert("gone".into(), ContainerState::default());
        s.retain(&["web"]);
        s.save(&root).unwrap();
        assert_eq!(State::load(&root).unwrap(), s);
        assert_eq!(s.containers.len(), 1);
        fs::write(root.join(paths::AUTO_UPDATE_STATE), "{").unwrap();
        let e = State::load(&root).unwrap_err();
        assert!(e.to_string().contains(paths::AUTO_UPDATE_STATE), "{e}");
        assert_eq!(e.exit_code(), crate::exit::INVALID);
    }
}
