//! Container records: the only input of the generator.
//!
//! A container is declared by an intent file ([`intent`]), `NAME.json`, in
//! one of three directories (highest precedence first):
//! `/etc/syscontainer/containers` (admin, Ignition, `syscontainer install`),
//! `/run/syscontainer/containers` (runtime) and
//! `/usr/lib/syscontainer/containers` (vendor). A same-named file higher up
//! masks a lower one, and a symlink to `/dev/null` masks the name entirely,
//! as with systemd units.
//!
//! What syscontainer learns by deploying, the full [`Record`], is kept in its
//! own state file ([`state`], `/etc/syscontainer/state/NAME.json`), never in
//! the intent file. [`Record::load`] and [`Record::write`] read and write the
//! record there; [`scan`] finds both kinds of file for the generator. A
//! first-wave record (one file with `image_id` and `deployment`) is intent
//! and state in one, until the next write splits it.
//!
//! Unknown fields are reported as warnings, never as failures, so that a
//! file written by a newer syscontainer still works with an older generator.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::health::{self, HealthCheck, HealthSpec};
use crate::name::{self, NameError};
use crate::paths::{self, Root};

pub mod intent;
mod scan;
pub mod state;

pub use intent::Intent;
pub use scan::{discover, scan, Candidate, Decl, Found, FoundState};
pub use state::{IntentFile, Owner, State};

/// The record format version this build writes and understands.
pub const RECORD_VERSION: u32 = 1;

/// A file checked out onto the host from the image's `/exports/hostfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFile {
    /// Logical path on the host.
    pub path: String,
    /// sha256 of the content as installed, hex.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version; see [`RECORD_VERSION`].
    pub version: u32,
    /// Container name: unit `NAME.service`, runc id `NAME`.
    pub name: String,
    /// The image reference it was installed from, e.g. `registry.example/etcd:latest`.
    pub image: String,
    /// The image ID (config digest, `sha256:...`).
    pub image_id: String,
    /// Logical path of the active deployment, e.g. `/var/lib/containers/atomic/etcd.0`.
    pub deployment: String,
    /// Values given with `--set`, kept across updates.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// The image's `manifest.json` `defaultValues`, as of the active deployment.
    #[serde(default)]
    pub default_values: BTreeMap<String, String>,
    /// Start at boot?
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The target that wants the unit when enabled.
    #[serde(default = "default_target")]
    pub target: String,
    /// The OCI runtime binary.
    #[serde(default = "default_runtime")]
    pub runtime: String,
    /// The image's `service.template`, copied at install time; `None` for the
    /// built-in default.
    #[serde(default)]
    pub service_template: Option<String>,
    /// The container's UUID, generated once and kept across updates.
    #[serde(default)]
    pub uuid: String,
    /// `HOST_UID` / `HOST_GID`: who installed it.
    #[serde(default)]
    pub host_uid: u32,
    #[serde(default)]
    pub host_gid: u32,
    /// Logical path of the OSTree repo the deployment is hardlinked from.
    #[serde(default)]
    pub repo: Option<String>,
    /// Files copied onto the host, with their checksums.
    #[serde(default)]
    pub host_files: Vec<HostFile>,
    /// The image's manifest says `noContainerService`: only host files are
    /// installed, and no unit is generated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_container_service: bool,
    /// `syscontainer auto-update` keeps this container on the newest image
    /// its reference names ([`AutoUpdate`]); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_update: Option<AutoUpdate>,
    /// The image came from an `http:` reference: its registry is reached
    /// over plain HTTP. `auto-update` asks and pulls the same way, and the
    /// intent written by `syscontainer install` keeps the `http:` prefix.
    #[serde(default, skip_serializing_if = "is_false")]
    pub plain_http: bool,
    /// The admin's health check ([`crate::health`]), kept across updates;
    /// it wins over `image_health`, field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// The image's health check (manifest `health` over the image config's
    /// `Healthcheck`), as of the active deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_health: Option<HealthSpec>,
    /// Fields this version does not know. Kept on rewrite.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

/// The `auto_update` policy of a record, as Podman's `AutoUpdate=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AutoUpdate {
    /// Ask the registry for the manifest digest of the record's image
    /// reference; pull and update when it changed.
    #[serde(rename = "registry")]
    Registry,
}

impl AutoUpdate {
    /// The values a record may hold, for messages and `--help`.
    pub const VALUES: &'static [&'static str] = &["registry"];

    pub fn as_str(self) -> &'static str {
        match self {
            AutoUpdate::Registry => "registry",
        }
    }
}

impl std::str::FromStr for AutoUpdate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "registry" => Ok(AutoUpdate::Registry),
            other => Err(format!(
                "auto_update '{}' is not a policy this syscontainer knows (known: {})",
                other.escape_debug(),
                AutoUpdate::VALUES.join(", ")
            )),
        }
    }
}

impl<'de> Deserialize<'de> for AutoUpdate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
pub(crate) fn default_true() -> bool {
    true
}
pub(crate) fn default_target() -> String {
    paths::DEFAULT_TARGET.to_string()
}
pub(crate) fn default_runtime() -> String {
    paths::DEFAULT_RUNTIME.to_string()
}

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("cannot read record {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("record {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("record {path} is not a valid record: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "record {path} has version {version}; this syscontainer understands up to {RECORD_VERSION}"
    )]
    Version { path: PathBuf, version: u32 },
    #[error("record {path}: {source}")]
    Name {
        path: PathBuf,
        #[source]
        source: NameError,
    },
    #[error("record {path} names container '{name}', but its file name says '{expected}'")]
    NameMismatch {
        path: PathBuf,
        name: String,
        expected: String,
    },
    #[error("record {path}: target '{target}' is not a valid .target unit name")]
    Target { path: PathBuf, target: String },
    #[error("cannot write record {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list records in {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container '{name}' is not installed (no record in {dirs})")]
    NotFound { name: String, dirs: String },
    #[error("container '{name}' is masked by {path}")]
    Masked { name: String, path: PathBuf },
    #[error("record {path} names no image")]
    EmptyImage { path: PathBuf },
    #[error("container '{name}' is declared in {path} but not deployed yet: start it (systemctl start {name}) or run syscontainer apply {name}")]
    Pending { name: String, path: PathBuf },
    #[error("container '{name}' is declared in {path}, which syscontainer did not write (or which was edited since): edit that file, then run systemctl daemon-reload and systemctl restart {name}; delete it (and reload) to remove the container")]
    NotOurs { name: String, path: PathBuf },
}

impl RecordError {
    /// The documented exit code: 4 when the record is not there (or
    /// masked), 3 when it is there but invalid, 1 for other I/O failures.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{FAILURE, INVALID, MISSING};
        match self {
            RecordError::NotFound { .. }
            | RecordError::Masked { .. }
            | RecordError::Pending { .. } => MISSING,
            RecordError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => MISSING,
            RecordError::Read { .. }
            | RecordError::Write { .. }
            | RecordError::ReadDir { .. }
            | RecordError::NotOurs { .. } => FAILURE,
            RecordError::Json { .. }
            | RecordError::Invalid { .. }
            | RecordError::Version { .. }
            | RecordError::Name { .. }
            | RecordError::NameMismatch { .. }
            | RecordError::Target { .. }
            | RecordError::EmptyImage { .. } => INVALID,
        }
    }
}

impl Record {
    /// A new record with defaults for everything but the identity.
    pub fn new(name: &str, image: &str, image_id: &str, deployment: &str) -> Self {
        Record {
            version: RECORD_VERSION,
            name: name.to_string(),
            image: image.to_string(),
            image_id: image_id.to_string(),
            deployment: deployment.to_string(),
            values: BTreeMap::new(),
            default_values: BTreeMap::new(),
            enabled: true,
            target: default_target(),
            runtime: default_runtime(),
            service_template: None,
            uuid: String::new(),
            host_uid: 0,
            host_gid: 0,
            repo: None,
            host_files: Vec::new(),
            no_container_service: false,
            auto_update: None,
            plain_http: false,
            health: None,
            image_health: None,
            unknown: BTreeMap::new(),
        }
    }

    /// Parse a record. `logical` is the path used in messages; the file stem
    /// must equal the `name` field. Returns the record and warnings (unknown
    /// fields).
    pub fn parse(logical: &Path, text: &[u8]) -> Result<(Record, Vec<String>), RecordError> {
        let rec: Record = parse_json(logical, text)?;
        if rec.version > RECORD_VERSION || rec.version == 0 {
            return Err(RecordError::Version {
                path: logical.to_path_buf(),
                version: rec.version,
            });
        }
        name::validate(&rec.name).map_err(|source| RecordError::Name {
            path: logical.to_path_buf(),
            source,
        })?;
        if let Some(stem) = logical
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".json"))
        {
            if stem != rec.name {
                return Err(RecordError::NameMismatch {
                    path: logical.to_path_buf(),
                    name: rec.name,
                    expected: stem.to_string(),
                });
            }
        }
        if !valid_target(&rec.target) {
            return Err(RecordError::Target {
                path: logical.to_path_buf(),
                target: rec.target,
            });
        }
        let warnings = rec
            .unknown
            .keys()
            .map(|k| {
                format!(
                    "record {}: unknown field '{}' ignored",
                    logical.display(),
                    k.escape_debug()
                )
            })
            .collect();
        Ok((rec, warnings))
    }

    /// The reference to ask the registry about and pull from: the stored
    /// name, with `http:` when its registry is reached over plain HTTP.
    pub fn reference(&self) -> String {
        if self.plain_http {
            [crate::imgref::HTTP_SCHEME, &self.image].concat()
        } else {
            self.image.clone()
        }
    }

    /// The effective health check: `health` over `image_health`.
    pub fn health_check(&self) -> Option<HealthCheck> {
        health::effective(self.health.as_ref(), self.image_health.as_ref())
    }

    /// Serialize, pretty and stable (sorted maps).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("records always serialize");
        s.push('\n');
        s
    }

    /// Write this record into the container's state, keeping the rest of
    /// the state (the commit point of install, update and rollback). A
    /// container without a state gets one: a new install writes its intent
    /// file too, in `/etc`, and a first-wave record there is split into
    /// intent and state.
    pub fn write(&self, root: &Root) -> Result<PathBuf, RecordError> {
        let st = match State::load(root, &self.name)? {
            Some(mut st) => {
                st.record = self.clone();
                st
            }
            None => self.adopt(root)?,
        };
        Ok(root.join(st.write(root)?))
    }

    /// The first state of this record.
    fn adopt(&self, root: &Root) -> Result<State, RecordError> {
        let own = |root: &Root| {
            let intent = Intent::of_record(self);
            let mut st = State::new(self.clone(), intent.clone(), Owner::Syscontainer);
            st.write_own_intent(root, &intent)?;
            Ok(st)
        };
        match IntentFile::read(root, &self.name)? {
            IntentFile::None => own(root),
            IntentFile::Masked(path) => Err(RecordError::Masked {
                name: self.name.clone(),
                path,
            }),
            IntentFile::File { path, bytes } => match Intent::parse(&path, &bytes) {
                // An admin's file, deployed by `apply`: it stays theirs.
                Ok((i, _)) if !i.is_legacy() => Ok(State::new(self.clone(), i, Owner::Admin)),
                _ if path == paths::record_path(&self.name) => own(root),
                // A first-wave record in /run or /usr: never rewritten.
                _ => Ok(State::new(
                    self.clone(),
                    Intent::of_record(self),
                    Owner::Admin,
                )),
            },
        }
    }

    /// Fail with [`RecordError::NotOurs`] unless a CLI command may rewrite or
    /// remove the intent file of `name`: syscontainer wrote it (in `/etc`)
    /// and it is unchanged since, or it is a first-wave record in `/etc`, or
    /// there is none.
    pub fn check_ours(root: &Root, name: &str) -> Result<(), RecordError> {
        let (path, bytes) = match IntentFile::read(root, name)? {
            IntentFile::None | IntentFile::Masked(_) => return Ok(()),
            IntentFile::File { path, bytes } => (path, bytes),
        };
        let in_etc = path == paths::record_path(name);
        let ours = match State::load(root, name)? {
            Some(st) => st.owns(&bytes),
            None => Intent::parse(&path, &bytes).is_ok_and(|(i, _)| i.is_legacy()),
        };
        if in_etc && ours {
            Ok(())
        } else {
            Err(RecordError::NotOurs {
                name: name.to_string(),
                path,
            })
        }
    }

    /// Remove this container's state, and its intent file when syscontainer
    /// wrote it ([`Record::check_ours`] first) or it is a first-wave record
    /// in `/etc`. The intent goes first: a crash in between leaves a state
    /// without intent, which `syscontainer reconcile` removes.
    pub fn remove(root: &Root, name: &str) -> Result<(), RecordError> {
        if Record::check_ours(root, name).is_ok() {
            if let IntentFile::File { path, .. } = IntentFile::read(root, name)? {
                state::remove_file(root, paths::RECORDS_ETC, &path)?;
            }
        }
        State::remove(root, name)
    }

    /// Load the deployed record of `name`: from its state, else from a
    /// first-wave record (following precedence and masking). A declared
    /// container that is not deployed yet is [`RecordError::Pending`].
    pub fn load(root: &Root, name: &str) -> Result<(Record, PathBuf), RecordError> {
        name::validate(name).map_err(|source| RecordError::Name {
            path: PathBuf::from(format!("{name}.json")),
            source,
        })?;
        if let Some(st) = State::load(root, name)? {
            return Ok((st.record, state::state_path(name)));
        }
        match IntentFile::read(root, name)? {
            IntentFile::None => Err(RecordError::NotFound {
                name: name.to_string(),
                dirs: paths::RECORD_DIRS.join(", "),
            }),
            IntentFile::Masked(path) => Err(RecordError::Masked {
                name: name.to_string(),
                path,
            }),
            IntentFile::File { path, bytes } => {
                let (intent, _) = Intent::parse(&path, &bytes)?;
                if !intent.is_legacy() {
                    return Err(RecordError::Pending {
                        name: name.to_string(),
                        path,
                    });
                }
                let (rec, warnings) = Record::parse(&path, &bytes)?;
                for w in warnings {
                    log::warn!("{w}");
                }
                Ok((rec, path))
            }
        }
    }
}

/// Parse a versioned JSON file (a record or an intent); `logical` names it
/// in errors. Valid UTF-8 (every file syscontainer writes) is parsed as a
/// str, so that serde_json does not check each string again; the errors are
/// the same. When parsing fails and the file's `version` is newer than
/// this build's, that is the error: a newer format may lack fields this
/// version requires.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    logical: &Path,
    text: &[u8],
) -> Result<T, RecordError> {
    let parsed = match std::str::from_utf8(text) {
        Ok(s) => serde_json::from_str(s),
        Err(_) => serde_json::from_slice(text),
    };
    parsed.map_err(|source| {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let path = logical.to_path_buf();
        match serde_json::from_slice::<VersionOnly>(text) {
            Ok(v) if v.version > RECORD_VERSION => RecordError::Version {
                path,
                version: v.version,
            },
            _ if source.is_data() => RecordError::Invalid { path, source },
            _ => RecordError::Json { path, source },
        }
    })
}

/// `true` for a valid `*.target` unit name.
pub(crate) fn valid_target(t: &str) -> bool {
    match t.strip_suffix(".target") {
        Some(stem) => name::validate(&stem.replacen('@', "-", 1)).is_ok(),
        None => false,
    }
}

/// A symlink to `/dev/null`, or an empty file, masks a record.
pub(crate) fn is_mask(path: &Path) -> bool {
    match fs::read_link(path) {
        Ok(t) => t == Path::new("/dev/null"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Record {
        let mut r = Record::new(
            "etcd",
            "example.org/etcd:latest",
            "sha256:abc",
            "/var/lib/containers/atomic/etcd.0",
        );
        r.values.insert("ETCD_NAME".into(), "one".into());
        r.uuid = "u".into();
        r
    }

    #[test]
    fn roundtrip_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let r = sample();
        let p = r.write(&root).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dmode = fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        let (back, logical) = Record::load(&root, "etcd").unwrap();
        assert_eq!(back, r);
        assert_eq!(logical, PathBuf::from("/etc/syscontainer/state/etcd.json"));
        // The intent file, as an admin would write it, and syscontainer's.
        let intent =
            fs::read_to_string(root.join("/etc/syscontainer/containers/etcd.json")).unwrap();
        assert_eq!(
            intent,
            "{\n  \"version\": 1,\n  \"image\": \"example.org/etcd:latest\",\n  \"values\": {\n    \"ETCD_NAME\": \"one\"\n  },\n  \"enabled\": true\n}\n"
        );
        Record::check_ours(&root, "etcd").unwrap();
        fs::write(
            root.join("/etc/syscontainer/containers/etcd.json"),
            intent.replace("one", "two"),
        )
        .unwrap();
        let e = Record::check_ours(&root, "etcd").unwrap_err().to_string();
        assert!(
            e.contains("/etc/syscontainer/containers/etcd.json")
                && e.contains("systemctl daemon-reload"),
            "{e}"
        );
        // Removing keeps a file that is not ours.
        Record::remove(&root, "etcd").unwrap();
        assert!(root.join("/etc/syscontainer/containers/etcd.json").exists());
        assert!(matches!(
            Record::load(&root, "etcd"),
            Err(RecordError::Pending { .. })
        ));
    }

    /// The state keeps the identity of the intent file it applied, and the
    /// generator trusts it only while the file is that file, unchanged.
    #[test]
    fn intent_file_identity() {
        use super::scan::{discover, Decl};
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let decl_of = |root: &Root| {
            let (found, errs) = discover(root);
            assert!(errs.is_empty(), "{errs:?}");
            match &found[0].state {
                FoundState::Ok { decl, .. } => decl.clone(),
                s => panic!("{s:?}"),
            }
        };
        let state = |root: &Root| State::load(root, "etcd").unwrap().unwrap();
        let etc = root.join(paths::RECORDS_ETC);
        let file = etc.join("etcd.json");

        // syscontainer install: its own file, recorded at once.
        sample().write(&root).unwrap();
        let id = state(&root).intent_file.expect("install records its file");
        let st = rustix::fs::stat(&file).unwrap();
        assert_eq!(id, state::FileId::of(&st));
        assert_eq!(decl_of(&root), Decl::Applied);

        // Edited in place, same size: the change time and the content say so.
        let text = fs::read_to_string(&file).unwrap();
        fs::write(&file, text.replace("\"one\"", "\"two\"")).unwrap();
        assert_eq!(rustix::fs::stat(&file).unwrap().st_size, st.st_size);
        assert!(matches!(decl_of(&root), Decl::Edited { .. }));
        // A state written now does not take the edited file for the applied one.
        state(&root).write(&root).unwrap();
        assert_eq!(state(&root).intent_file, None);
        assert!(matches!(decl_of(&root), Decl::Edited { .. }));

        // An admin's file with the applied content, just written: not
        // recorded (it could change again within the same clock tick); once
        // settled, it is.
        fs::write(&file, &text).unwrap();
        state(&root).write(&root).unwrap();
        assert_eq!(state(&root).intent_file, None);
        assert_eq!(decl_of(&root), Decl::Applied, "read and compared");
        std::thread::sleep(std::time::Duration::from_millis(30));
        state(&root).write(&root).unwrap();
        let id = state(&root).intent_file.expect("settled: recorded");
        assert_eq!(id, state::FileId::of(&rustix::fs::stat(&file).unwrap()));

        // Replaced by a rename (another inode), same content and size: read
        // again, still applied.
        let tmp = etc.join(".etcd.json.new");
        fs::write(&tmp, &text).unwrap();
        fs::rename(&tmp, &file).unwrap();
        assert_ne!(
            Some(id),
            Some(state::FileId::of(&rustix::fs::stat(&file).unwrap()))
        );
        assert_eq!(decl_of(&root), Decl::Applied);

        // The file is not read while its identity matches: a state that
        // names the current file as applied is taken at its word.
        std::thread::sleep(std::time::Duration::from_millis(30));
        state(&root).write(&root).unwrap();
        let mut st = state(&root);
        assert!(st.intent_file.is_some());
        st.applied
            .values
            .insert("ETCD_NAME".into(), "elsewhere".into());
        let logical = state::state_path("etcd");
        let mut raw = serde_json::to_string_pretty(&st).unwrap();
        raw.push('\n');
        state::write_private(&root, paths::STATE_DIR, &logical, raw.as_bytes()).unwrap();
        assert_eq!(decl_of(&root), Decl::Applied, "identity matched: not read");
        // ... and a real write of that state does not record it.
        st.write(&root).unwrap();
        assert_eq!(state(&root).intent_file, None);
        assert!(matches!(decl_of(&root), Decl::Edited { .. }));
    }

    #[test]
    fn first_wave_record_is_split_on_write() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let r = sample();
        let etc = root.join(paths::RECORDS_ETC);
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("etcd.json"), r.to_json()).unwrap();
        assert_eq!(Record::load(&root, "etcd").unwrap().0, r);
        Record::check_ours(&root, "etcd").unwrap();
        let mut r2 = r.clone();
        r2.image_id = "sha256:def".into();
        r2.write(&root).unwrap();
        let intent = fs::read_to_string(etc.join("etcd.json")).unwrap();
        assert!(
            !intent.contains("image_id") && !intent.contains("deployment"),
            "{intent}"
        );
        assert_eq!(Record::load(&root, "etcd").unwrap().0, r2);
        Record::check_ours(&root, "etcd").unwrap();
        Record::remove(&root, "etcd").unwrap();
        assert!(!etc.join("etcd.json").exists());
        assert!(matches!(
            Record::load(&root, "etcd"),
            Err(RecordError::NotFound { .. })
        ));
    }

    #[test]
    fn auto_update_policy() {
        let p = Path::new("/etc/syscontainer/containers/a.json");
        let base = r#""version":1,"name":"a","image":"i","image_id":"x","deployment":"/d""#;
        // An old record, without the field: no auto-update, and none written.
        let (r, w) = Record::parse(p, format!("{{{base}}}").as_bytes()).unwrap();
        assert_eq!((r.auto_update, w.len()), (None, 0));
        assert!(!r.to_json().contains("auto_update"));
        let (r, _) = Record::parse(
            p,
            format!(r#"{{{base},"auto_update":"registry"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(r.auto_update, Some(AutoUpdate::Registry));
        assert!(r.to_json().contains(r#""auto_update": "registry""#));
        let e = Record::parse(p, format!(r#"{{{base},"auto_update":"daily"}}"#).as_bytes())
            .unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::INVALID);
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/syscontainer/containers/a.json")
                && msg.contains("auto_update 'daily'")
                && msg.contains("known: registry"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_fields_warn_and_survive() {
        let text = br#"{"version":1,"name":"a","image":"i","image_id":"x","deployment":"/d","future_field":{"x":1}}"#;
        let (r, w) = Record::parse(Path::new("/etc/syscontainer/containers/a.json"), text).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("future_field"), "{w:?}");
        assert!(r.to_json().contains("future_field"));
        assert!(r.enabled);
        assert_eq!(r.target, "multi-user.target");
    }

    #[test]
    fn rejects_bad_records() {
        let p = Path::new("/etc/syscontainer/containers/a.json");
        let e = Record::parse(p, b"{not json").unwrap_err().to_string();
        assert!(e.contains("a.json") && e.contains("not valid JSON"), "{e}");
        let e = Record::parse(
            p,
            br#"{"version":9,"name":"a","image":"i","image_id":"x","deployment":"/d"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("version 9"), "{e}");
        let e = Record::parse(
            p,
            br#"{"version":1,"name":"b","image":"i","image_id":"x","deployment":"/d"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'b'") && e.contains("'a'"), "{e}");
        let e = Record::parse(p, br#"{"version":1,"name":"a","image":"i","image_id":"x","deployment":"/d","target":"x\ny.target"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("target"), "{e}");
        let e = Record::parse(p, br#"{"version":1,"name":"a"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a valid record") && e.contains("image"),
            "{e}"
        );
        let e = Record::parse(p, br#"{"version":2,"name":"a"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 2"), "{e}");
    }

    #[test]
    fn precedence_and_masking() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let put = |dir: &str, name: &str, image: &str| {
            let p = root.join(dir);
            fs::create_dir_all(&p).unwrap();
            let mut r = sample();
            r.name = name.into();
            r.image = image.into();
            fs::write(p.join(format!("{name}.json")), r.to_json()).unwrap();
        };
        put(paths::RECORDS_USR, "a", "usr");
        put(paths::RECORDS_RUN, "a", "run");
        put(paths::RECORDS_USR, "b", "usr");
        put(paths::RECORDS_USR, "c", "usr");
        fs::create_dir_all(root.join(paths::RECORDS_ETC)).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join(paths::RECORDS_ETC).join("c.json"))
            .unwrap();
        let (found, errs) = discover(&root);
        assert!(errs.is_empty());
        let names: Vec<_> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        match &found[0].state {
            FoundState::Ok { record, .. } => assert_eq!(record.image, "run"),
            s => panic!("{s:?}"),
        }
        assert!(matches!(found[2].state, FoundState::Masked));
        assert_eq!(Record::load(&root, "a").unwrap().0.image, "run");
        assert!(matches!(
            Record::load(&root, "c"),
            Err(RecordError::Masked { .. })
        ));
        assert!(matches!(
            Record::load(&root, "zz"),
            Err(RecordError::NotFound { .. })
        ));
    }
}
