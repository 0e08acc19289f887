//! Container records: the only input of the generator.
//!
//! A record is a versioned JSON file, `NAME.json`, in one of three directories
//! (highest precedence first): `/etc/syscontainer/containers` (admin, written by
//! `syscontainer install`), `/run/syscontainer/containers` (runtime) and
//! `/usr/lib/syscontainer/containers` (vendor). A same-named file higher up
//! masks a lower one, and a symlink to `/dev/null` masks the name entirely,
//! as with systemd units.
//!
//! Unknown fields are kept and reported as warnings, never as failures, so
//! that a record written by a newer syscontainer still works with an older
//! generator.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fsutil;
use crate::health::{self, HealthCheck, HealthSpec};
use crate::name::{self, NameError};
use crate::paths::{self, Root};

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
fn default_true() -> bool {
    true
}
fn default_target() -> String {
    paths::DEFAULT_TARGET.to_string()
}
fn default_runtime() -> String {
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
}

impl RecordError {
    /// The documented exit code: 4 when the record is not there (or
    /// masked), 3 when it is there but invalid, 1 for other I/O failures.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{FAILURE, INVALID, MISSING};
        match self {
            RecordError::NotFound { .. } | RecordError::Masked { .. } => MISSING,
            RecordError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => MISSING,
            RecordError::Read { .. } | RecordError::Write { .. } | RecordError::ReadDir { .. } => {
                FAILURE
            }
            RecordError::Json { .. }
            | RecordError::Invalid { .. }
            | RecordError::Version { .. }
            | RecordError::Name { .. }
            | RecordError::NameMismatch { .. }
            | RecordError::Target { .. } => INVALID,
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
            health: None,
            image_health: None,
            unknown: BTreeMap::new(),
        }
    }

    /// Parse a record. `logical` is the path used in messages; the file stem
    /// must equal the `name` field. Returns the record and warnings (unknown
    /// fields).
    pub fn parse(logical: &Path, text: &[u8]) -> Result<(Record, Vec<String>), RecordError> {
        // Valid UTF-8 (every record syscontainer writes) is parsed as a str,
        // so that serde_json does not check each string again; the errors
        // are the same.
        let parsed = match std::str::from_utf8(text) {
            Ok(s) => serde_json::from_str(s),
            Err(_) => serde_json::from_slice(text),
        };
        let rec: Record = match parsed {
            Ok(r) => r,
            Err(source) => {
                // A newer format may lack fields this version requires: say
                // so rather than report a missing field.
                #[derive(Deserialize)]
                struct VersionOnly {
                    version: u32,
                }
                if let Ok(v) = serde_json::from_slice::<VersionOnly>(text) {
                    if v.version > RECORD_VERSION {
                        return Err(RecordError::Version {
                            path: logical.to_path_buf(),
                            version: v.version,
                        });
                    }
                }
                let path = logical.to_path_buf();
                return Err(if source.is_data() {
                    RecordError::Invalid { path, source }
                } else {
                    RecordError::Json { path, source }
                });
            }
        };
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

    /// Write this record to the admin directory, atomically, mode 0600 (it may
    /// hold secret values) in a 0700 directory.
    pub fn write(&self, root: &Root) -> Result<PathBuf, RecordError> {
        let logical = paths::record_path(&self.name);
        let path = root.join(&logical);
        let err = |source| RecordError::Write {
            path: logical.clone(),
            source,
        };
        let dir = root.join(paths::RECORDS_ETC);
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(err)?;
        }
        // Also when it already existed (made by hand, or by an older
        // version): the file names are container names, the files may hold
        // secrets.
        let mode = fs::metadata(&dir).map_err(err)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        fsutil::write_atomic(&path, self.to_json().as_bytes(), 0o600).map_err(err)?;
        Ok(path)
    }

    /// Remove this container's admin record (durably).
    pub fn remove(root: &Root, name: &str) -> Result<(), RecordError> {
        let logical = paths::record_path(name);
        let path = root.join(&logical);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(RecordError::Write {
                    path: logical,
                    source,
                })
            }
        }
        let _ = fsutil::fsync_dir(&root.join(paths::RECORDS_ETC));
        Ok(())
    }

    /// Load the effective record of `name`, following precedence and masking.
    pub fn load(root: &Root, name: &str) -> Result<(Record, PathBuf), RecordError> {
        name::validate(name).map_err(|source| RecordError::Name {
            path: PathBuf::from(format!("{name}.json")),
            source,
        })?;
        for dir in paths::RECORD_DIRS {
            let logical = Path::new(dir).join(format!("{name}.json"));
            let path = root.join(&logical);
            match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(RecordError::Read {
                        path: logical,
                        source,
                    })
                }
                Ok(_) => {}
            }
            if is_mask(&path) {
                return Err(RecordError::Masked {
                    name: name.to_string(),
                    path: logical,
                });
            }
            let text = fs::read(&path).map_err(|source| RecordError::Read {
                path: logical.clone(),
                source,
            })?;
            let (rec, warnings) = Record::parse(&logical, &text)?;
            for w in warnings {
                log::warn!("{w}");
            }
            return Ok((rec, logical));
        }
        Err(RecordError::NotFound {
            name: name.to_string(),
            dirs: paths::RECORD_DIRS.join(", "),
        })
    }
}

/// `true` for a valid `*.target` unit name.
fn valid_target(t: &str) -> bool {
    match t.strip_suffix(".target") {
        Some(stem) => name::validate(&stem.replacen('@', "-", 1)).is_ok(),
        None => false,
    }
}

/// A symlink to `/dev/null`, or an empty file, masks a record.
fn is_mask(path: &Path) -> bool {
    match fs::read_link(path) {
        Ok(t) => t == Path::new("/dev/null"),
        Err(_) => false,
    }
}

/// One record file found by [`discover`].
#[derive(Debug)]
pub struct Found {
    /// The container name, from the file name.
    pub name: String,
    /// Logical path of the file that wins.
    pub path: PathBuf,
    pub state: FoundState,
}

#[derive(Debug)]
pub enum FoundState {
    Ok {
        record: Box<Record>,
        warnings: Vec<String>,
    },
    Masked,
    /// The file exists but cannot be used. The name is still a valid unit name.
    Broken(RecordError),
    /// The file name itself is not a valid container name: no unit can be made.
    BadName(RecordError),
}

/// A record file that wins precedence, not read yet.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    /// Logical path, for messages and `SourcePath=`.
    pub path: PathBuf,
    /// The record directory under the root; the file is read relative to it.
    dir: Arc<Dir>,
    /// The directory entry is a symlink (possibly a mask).
    symlink: bool,
}

impl Candidate {
    /// Read and parse the record.
    pub fn load(&self) -> Found {
        self.load_with(&mut Vec::new())
    }

    /// [`Candidate::load`], reading the file into `buf` (a buffer kept from
    /// one record to the next saves an allocation per record).
    pub fn load_with(&self, buf: &mut Vec<u8>) -> Found {
        let state = if let Err(source) = name::validate(&self.name) {
            FoundState::BadName(RecordError::Name {
                path: self.path.clone(),
                source,
            })
        } else if self.symlink && self.is_mask() {
            FoundState::Masked
        } else {
            match self.read(buf) {
                Err(source) => FoundState::Broken(RecordError::Read {
                    path: self.path.clone(),
                    source,
                }),
                Ok(text) => match Record::parse(&self.path, text) {
                    Ok((record, warnings)) => FoundState::Ok {
                        record: Box::new(record),
                        warnings,
                    },
                    Err(e) => FoundState::Broken(e),
                },
            }
        };
        Found {
            name: self.name.clone(),
            path: self.path.clone(),
            state,
        }
    }

    /// The file's name in its directory.
    fn file(&self) -> &OsStr {
        self.path.file_name().unwrap_or_default()
    }

    /// A symlink to `/dev/null` masks a record (see [`is_mask`]).
    fn is_mask(&self) -> bool {
        let Ok(dir) = self.dir.fd() else {
            return false;
        };
        rfs::readlinkat(dir, self.file(), Vec::new()).is_ok_and(|t| t.as_bytes() == b"/dev/null")
    }

    /// The whole file: `openat` relative to the directory, then `read` until
    /// end of file into `buf` (no `stat` for a size hint).
    fn read<'b>(&self, buf: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
        let fd = rfs::openat(
            self.dir.fd()?,
            self.file(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut len = 0;
        loop {
            if buf.len() - len < READ_CHUNK {
                buf.resize(len + 2 * READ_CHUNK, 0);
            }
            match rustix::io::read(&fd, &mut buf[len..]) {
                Ok(0) => return Ok(&buf[..len]),
                Ok(n) => len += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The least free space [`Candidate::read`] offers to one `read`.
const READ_CHUNK: usize = 8192;

/// List the record files under `root` that win precedence, sorted by name,
/// without reading them. A missing directory is not an error; an unreadable
/// one is.
pub fn scan(root: &Root) -> (Vec<Candidate>, Vec<RecordError>) {
    let mut seen: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut errors = Vec::new();
    for dir in paths::RECORD_DIRS {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let opened = rfs::open(root.join(dir), flags, Mode::empty()).and_then(Dir::new);
        let mut list = match opened {
            Ok(d) => d,
            Err(Errno::NOENT) => continue,
            Err(e) => {
                errors.push(RecordError::ReadDir {
                    path: PathBuf::from(dir),
                    source: e.into(),
                });
                continue;
            }
        };
        let mut files = Vec::new();
        while let Some(e) = list.read() {
            let Ok(e) = e else {
                continue;
            };
            let Ok(file) = e.file_name().to_str() else {
                continue;
            };
            let Some(stem) = file.strip_suffix(".json") else {
                continue;
            };
            if file.starts_with('.') || seen.contains_key(stem) {
                continue; // a temp file, or masked by a higher-precedence file
            }
            let symlink = match e.file_type() {
                FileType::Symlink => true,
                // The file system does not say (d_type): ask.
                FileType::Unknown => list.fd().is_ok_and(|d| {
                    rfs::statat(d, file, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_symlink())
                }),
                _ => false,
            };
            files.push((stem.len(), file.to_string(), symlink));
        }
        let list = Arc::new(list);
        for (stem_len, file, symlink) in files {
            let name = file[..stem_len].to_string();
            let path = Path::new(dir).join(&file);
            let dir = Arc::clone(&list);
            seen.insert(
                name.clone(),
                Candidate {
                    name,
                    path,
                    dir,
                    symlink,
                },
            );
        }
    }
    (seen.into_values().collect(), errors)
}

/// Find and read every record under `root`, applying precedence and masking,
/// sorted by name.
pub fn discover(root: &Root) -> (Vec<Found>, Vec<RecordError>) {
    let (cands, errors) = scan(root);
    (cands.iter().map(Candidate::load).collect(), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            logical,
            PathBuf::from("/etc/syscontainer/containers/etcd.json")
        );
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
