//! State: what syscontainer learned by deploying a container, in a file of
//! its own, `/etc/syscontainer/state/NAME.json` (0600, directory 0700).
//!
//! It holds the full [`Record`] (image ID, deployment, UUID, host files,
//! the image's service template), the intent it applied (normalized), who
//! wrote the intent file, an edit that was refused and why, and an applied
//! edit still on trial. It sits under `/etc`, not `/var`: the generator
//! reads it (systemd.generator(7)).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::intent::Intent;
use super::{is_mask, Record, RecordError, RECORD_VERSION};
use crate::fsutil;
use crate::paths::{self, Root};

/// Who wrote the intent file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// `syscontainer install` (or another CLI command); `intentSha256` is
    /// what it wrote.
    Syscontainer,
    /// Someone else: an admin, Ignition, a configuration tool.
    Admin,
}

/// An edit that was refused, or that failed on trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    /// sha256 of the intent file refused, hex.
    pub sha256: String,
    /// The refused intent, normalized (the generator compares it, without
    /// hashing the file).
    pub intent: Intent,
    pub reason: String,
}

/// An applied edit whose start is not confirmed yet (`apply --confirm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// The record before the edit, to switch back to.
    pub previous: Record,
    /// The intent applied before the edit.
    pub previous_applied: Intent,
    /// sha256 of the intent file that was applied.
    pub sha256: String,
    /// Seconds the container must stay running.
    pub settle: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub version: u32,
    pub record: Record,
    pub applied: Intent,
    pub intent_owner: Owner,
    /// sha256 of the intent file as syscontainer wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
    /// The intent file that holds `applied`, as it was when this state was
    /// written ([`FileId`]). While the winning intent file is still that
    /// file, unchanged, the generator takes the state alone and does not
    /// read or parse the intent file. Set by [`State::write`], never by
    /// hand; a state without it (or with a stale one) costs a read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_file: Option<FileId>,
}

/// What tells one version of a file from another without reading it: its
/// device and inode (a rename of another file over it changes them), its
/// size, and its change time (any write or metadata change moves it, and
/// nobody can set it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl FileId {
    pub fn of(st: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            ctime: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec as i64,
        }
    }

    /// How long before `now` the file last changed; `None` for a change
    /// time in the future.
    fn age(&self, now: std::time::SystemTime) -> Option<std::time::Duration> {
        let changed = std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(
            u64::try_from(self.ctime).ok()?,
            u32::try_from(self.ctime_nsec).ok()?,
        ))?;
        now.duration_since(changed).ok()
    }
}

/// A change time is taken from a coarse clock (a kernel tick, up to 10 ms,
/// on kernels without fine-grained timestamps): a file that changed less
/// than this before it was read might change again within the same tick,
/// with the same change time. Its identity is not recorded then.
const SETTLED: std::time::Duration = std::time::Duration::from_millis(20);

/// sha256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Logical path of a container's state file.
pub fn state_path(name: &str) -> PathBuf {
    Path::new(paths::STATE_DIR).join(format!("{name}.json"))
}

/// The effective intent file of a container, raw.
#[derive(Debug)]
pub enum IntentFile {
    None,
    Masked(PathBuf),
    File { path: PathBuf, bytes: Vec<u8> },
}

impl IntentFile {
    /// Find the file that wins precedence (a mask wins too).
    pub fn read(root: &Root, name: &str) -> Result<IntentFile, RecordError> {
        Ok(IntentFile::read_with_id(root, name)?.0)
    }

    /// [`IntentFile::read`], with the identity of the file read (taken from
    /// the descriptor the bytes came from) when it is a file of its own, not
    /// a symlink: what [`State::intent_file`] records.
    pub fn read_with_id(
        root: &Root,
        name: &str,
    ) -> Result<(IntentFile, Option<FileId>), RecordError> {
        for dir in paths::RECORD_DIRS {
            let logical = Path::new(dir).join(format!("{name}.json"));
            let path = root.join(&logical);
            let err = |source| RecordError::Read {
                path: logical.clone(),
                source,
            };
            let symlink = match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(err(source)),
                Ok(m) => m.file_type().is_symlink(),
            };
            if symlink && is_mask(&path) {
                return Ok((IntentFile::Masked(logical), None));
            }
            let mut f = fs::File::open(&path).map_err(err)?;
            let id = rustix::fs::fstat(&f)
                .ok()
                .filter(|_| !symlink)
                .map(|st| FileId::of(&st));
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut f, &mut bytes).map_err(err)?;
            return Ok((
                IntentFile::File {
                    path: logical,
                    bytes,
                },
                id,
            ));
        }
        Ok((IntentFile::None, None))
    }
}

impl State {
    /// A new state for `rec`, having applied `applied`.
    pub fn new(rec: Record, applied: Intent, owner: Owner) -> State {
        State {
            version: RECORD_VERSION,
            record: rec,
            applied: applied.normalized(),
            intent_owner: owner,
            intent_sha256: None,
            refused: None,
            trial: None,
            intent_file: None,
        }
    }

    pub fn parse(logical: &Path, text: &[u8]) -> Result<State, RecordError> {
        let st: State = serde_json::from_slice(text).map_err(|source| {
            let path = logical.to_path_buf();
            if source.is_data() {
                RecordError::Invalid { path, source }
            } else {
                RecordError::Json { path, source }
            }
        })?;
        if st.version > RECORD_VERSION || st.version == 0 {
            return Err(RecordError::Version {
                path: logical.to_path_buf(),
                version: st.version,
            });
        }
        Ok(st)
    }

    /// The state of `name`, if it has one.
    pub fn load(root: &Root, name: &str) -> Result<Option<State>, RecordError> {
        let logical = state_path(name);
        match fs::read(root.join(&logical)) {
            Ok(t) => State::parse(&logical, &t).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RecordError::Read {
                path: logical,
                source,
            }),
        }
    }

    /// Write atomically, 0600 in a 0700 directory (values may be secret),
    /// with the identity of the intent file when it holds what was applied
    /// ([`State::intent_file`]).
    pub fn write(&self, root: &Root) -> Result<PathBuf, RecordError> {
        let logical = state_path(&self.record.name);
        let st = State {
            intent_file: self.applied_file(root),
            ..self.clone()
        };
        let mut text = serde_json::to_string_pretty(&st).expect("states serialize");
        text.push('\n');
        write_private(root, paths::STATE_DIR, &logical, text.as_bytes())?;
        crate::gencache::refresh_or_log(root);
        Ok(logical)
    }

    pub fn remove(root: &Root, name: &str) -> Result<(), RecordError> {
        remove_file(root, paths::STATE_DIR, &state_path(name))?;
        crate::gencache::refresh_or_log(root);
        Ok(())
    }

    /// The identity of the winning intent file, when it holds the applied
    /// intent: read and checked through one descriptor, so that the
    /// identity is that of the content compared. `None` for a symlink (the
    /// generator reads those), a file that does not hold `applied`, or one
    /// that changed too recently ([`SETTLED`]) unless it is the very file
    /// recorded already (written by [`State::write_own_intent`]).
    fn applied_file(&self, root: &Root) -> Option<FileId> {
        // Before the read: a change between the two makes the file look
        // younger, never older.
        let now = std::time::SystemTime::now();
        let Ok((IntentFile::File { path, bytes }, Some(id))) =
            IntentFile::read_with_id(root, &self.record.name)
        else {
            return None;
        };
        let (intent, _) = Intent::parse(&path, &bytes).ok()?;
        if intent.is_legacy() || !intent.same(&self.applied) {
            return None;
        }
        let settled = id.age(now).is_some_and(|a| a >= SETTLED);
        (settled || self.intent_file == Some(id)).then_some(id)
    }

    /// The intent file `bytes` is the one syscontainer wrote, unchanged.
    pub fn owns(&self, bytes: &[u8]) -> bool {
        self.intent_owner == Owner::Syscontainer
            && self.intent_sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    }

    /// Write `intent` as the container's intent file in `/etc` (syscontainer
    /// owns it from now on), and make it the applied intent.
    pub fn write_own_intent(&mut self, root: &Root, intent: &Intent) -> Result<(), RecordError> {
        let text = intent.to_json();
        let logical = paths::record_path(&self.record.name);
        write_private(root, paths::RECORDS_ETC, &logical, text.as_bytes())?;
        // The file as renamed into place (a rename changes its ctime).
        self.intent_file = rustix::fs::lstat(root.join(&logical))
            .ok()
            .map(|st| FileId::of(&st));
        self.applied = intent.normalized();
        self.intent_owner = Owner::Syscontainer;
        self.intent_sha256 = Some(sha256_hex(text.as_bytes()));
        self.refused = None;
        Ok(())
    }

    /// The intent of the deployed record, keeping what only intents have
    /// (authfile, settle) from the applied one.
    pub fn record_intent(&self) -> Intent {
        Intent {
            authfile: self.applied.authfile.clone(),
            settle: self.applied.settle,
            ..Intent::of_record(&self.record)
        }
    }
}

/// After a CLI command changed the deployed record's intent (values, image,
/// enabled; the caller checked [`super::Record::check_ours`]): rewrite the
/// intent file to match, and the applied intent.
pub fn sync_own_intent(root: &Root, name: &str) -> Result<(), RecordError> {
    let Some(mut st) = State::load(root, name)? else {
        return Ok(());
    };
    let intent = st.record_intent();
    st.write_own_intent(root, &intent)?;
    st.write(root).map(drop)
}

/// After `containers rollback`: the rolled-back record is what was applied.
/// syscontainer's own intent file is rewritten to match; an admin's, which
/// still asks for what was rolled back, is recorded as refused (so that the
/// next start does not apply it again until the file changes).
pub fn after_rollback(root: &Root, name: &str, reason: &str) -> Result<(), RecordError> {
    let Some(mut st) = State::load(root, name)? else {
        return Ok(());
    };
    let intent = st.record_intent();
    st.trial = None;
    match IntentFile::read(root, name)? {
        IntentFile::File { path, bytes } if st.owns(&bytes) && path == paths::record_path(name) => {
            st.write_own_intent(root, &intent)?;
        }
        IntentFile::File { path, bytes } => {
            st.applied = intent.normalized();
            if let Ok((file, _)) = Intent::parse(&path, &bytes) {
                if !file.same(&st.applied) {
                    st.refused = Some(Refused {
                        sha256: sha256_hex(&bytes),
                        intent: file.normalized(),
                        reason: reason.to_string(),
                    });
                }
            }
        }
        IntentFile::None | IntentFile::Masked(_) => st.applied = intent.normalized(),
    }
    st.write(root).map(drop)
}

/// Write a file under `dir` (made 0700 if it is not already) atomically,
/// mode 0600.
pub(crate) fn write_private(
    root: &Root,
    dir: &str,
    logical: &Path,
    data: &[u8],
) -> Result<(), RecordError> {
    let err = |source| RecordError::Write {
        path: logical.to_path_buf(),
        source,
    };
    let d = root.join(dir);
    if !d.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .map_err(err)?;
    }
    // Also when it already existed (made by hand, or by an older version):
    // the file names are container names, the files may hold secrets.
    let mode = fs::metadata(&d).map_err(err)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    fsutil::write_atomic(&root.join(logical), data, 0o600).map_err(err)
}

/// Remove a file (durably); a missing one is fine.
pub(crate) fn remove_file(root: &Root, dir: &str, logical: &Path) -> Result<(), RecordError> {
    match fs::remove_file(root.join(logical)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RecordError::Write {
                path: logical.to_path_buf(),
                source,
            })
        }
    }
    let _ = fsutil::fsync_dir(&root.join(dir));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_mode_and_ownership() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let rec = Record::new(
            "etcd",
            "r/etcd:1",
            "sha256:a",
            "/var/lib/containers/atomic/etcd.0",
        );
        let mut st = State::new(rec.clone(), Intent::of_record(&rec), Owner::Admin);
        st.write_own_intent(&root, &Intent::of_record(&rec))
            .unwrap();
        let p = st.write(&root).unwrap();
        assert_eq!(p, PathBuf::from("/etc/syscontainer/state/etcd.json"));
        let meta = |p: &Path| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(meta(&p), 0o600);
        assert_eq!(meta(Path::new(paths::STATE_DIR)), 0o700);
        let back = State::load(&root, "etcd").unwrap().unwrap();
        assert_eq!(back, st);
        let IntentFile::File { bytes, .. } = IntentFile::read(&root, "etcd").unwrap() else {
            panic!()
        };
        assert!(back.owns(&bytes));
        let mut edited = bytes.clone();
        edited.extend_from_slice(b" ");
        assert!(!back.owns(&edited));
        assert!(State::load(&root, "other").unwrap().is_none());
        fs::write(root.join(state_path("bad")), b"{").unwrap();
        let e = State::load(&root, "bad").unwrap_err().to_string();
        assert!(e.contains("/etc/syscontainer/state/bad.json"), "{e}");
    }
}
