//! Deployments: install, uninstall, update, rollback, enable/disable, list.
//!
//! A container `NAME` lives in `CHECKOUT/NAME.0` or `NAME.1` (each with
//! `rootfs/` and `info.json`), the symlink `CHECKOUT/NAME` points at the
//! active one, and the record `/etc/syscontainer/containers/NAME.json` is
//! what the generator and the exec helper read. `CHECKOUT` is
//! `/var/lib/containers/atomic`, or `ATOMIC_OSTREE_CHECKOUT_PATH` at install
//! time ([`InstallOptions::checkout_root`]); from then on it is the
//! directory of the record's `deployment` ([`checkout_of`]), whatever the
//! environment of later commands says.
//!
//! The image store is reached only through [`ImageStore`], so all of this
//! works (and is tested) with any way of filling a rootfs; [`store`] is the
//! OSTree-backed source. The one exception is [`variables`] (`images
//! info`), which reads an image's `/exports` from the store without a
//! checkout, through the store's public `list_dir` and `read_file`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use thiserror::Error;

use crate::bundle::BundleError;
use crate::exec::{self, ExecError};
use crate::name::NameError;
use crate::paths::{self, Root};
use crate::record::{Record, RecordError};
use crate::template::TemplateError;
use crate::vars::VarsError;

pub mod apply;
pub mod auto_update;
mod health;
mod hostfs;
mod install;
mod list;
pub mod slots;
pub mod store;
mod update;
mod variables;
mod verify;

pub use health::Unhealthy;
pub use install::{install, uninstall, InstallOptions, UninstallReport};
pub use list::{list, ContainerRow};
pub use update::{rollback, set_enabled, update, Switched, UpdateOptions, UpdateOutcome};
pub use variables::{variables, ImageVariables, VariablesError};
pub use verify::{verify, ContainerVerify};

/// An image, as far as deployments care.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// The image reference, e.g. `registry.example/etcd:latest`.
    pub name: String,
    /// `sha256:...` of the image config.
    pub image_id: String,
    /// The OCI image config (with its `config` object).
    pub config: serde_json::Value,
}

/// The images deployments are made from: the OSTree store in production
/// ([`store::StoreSource`]), anything that can fill a directory in tests.
pub trait ImageStore {
    /// Look an image up by name or ID.
    fn resolve(&self, image: &str) -> Result<ImageSpec, DeployError>;
    /// Fill `dest` (which does not exist yet) with the image's files.
    fn materialize(&self, image: &ImageSpec, dest: &Path) -> Result<(), DeployError>;
    /// Logical path of the repo the checkouts are hardlinked from.
    fn repo(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("container '{name}' is already present ({path})")]
    AlreadyPresent { name: String, path: PathBuf },
    #[error("the runtime '{runtime}' is not installed")]
    RuntimeMissing { runtime: String },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Vars(#[from] VarsError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid manifest")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot install {path} from the image's hostfs: the file already exists on the host")]
    HostFileExists { path: PathBuf },
    #[error("hostfs file {path} is not a regular file, directory or symlink")]
    HostFileType { path: PathBuf },
    #[error("renameFiles maps {from} to {to}, which is not an absolute path without '..'")]
    BadRename { from: String, to: String },
    #[error("image '{image}' cannot be used")]
    Store {
        image: String,
        #[source]
        source: Box<crate::store::StoreError>,
    },
    #[error("container '{name}' has no other deployment to roll back to ({path} is missing)")]
    NoOtherDeployment { name: String, path: PathBuf },
    #[error("update of '{name}' to {deployment} failed, rolled back to {previous}")]
    UpdateFailed {
        name: String,
        deployment: String,
        previous: String,
        #[source]
        reason: Unhealthy,
    },
    #[error("the applied edit of '{name}' was rolled back: {reason}")]
    TrialFailed { name: String, reason: String },
}

impl DeployError {
    /// The documented exit code, from the wrapped error where there is one:
    /// `uninstall` of a container with no record is 4 however deep the
    /// record error sits.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{FAILURE, INVALID, MISSING};
        match self {
            DeployError::Name(e) => e.exit_code(),
            DeployError::Vars(e) => e.exit_code(),
            DeployError::Record(e) => e.exit_code(),
            DeployError::Bundle(e) => e.exit_code(),
            DeployError::Template(e) => e.exit_code(),
            DeployError::Exec(e) => e.exit_code(),
            DeployError::Store { source, .. } => source.exit_code(),
            DeployError::RuntimeMissing { .. } | DeployError::NoOtherDeployment { .. } => MISSING,
            DeployError::Manifest { .. }
            | DeployError::HostFileType { .. }
            | DeployError::BadRename { .. } => INVALID,
            DeployError::AlreadyPresent { .. }
            | DeployError::Io { .. }
            | DeployError::HostFileExists { .. }
            | DeployError::UpdateFailed { .. }
            | DeployError::TrialFailed { .. } => FAILURE,
        }
    }
}

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DeployError {
    let path = path.to_path_buf();
    move |source| DeployError::Io { what, path, source }
}

/// The image's `/exports/manifest.json`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub default_values: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub rename_files: BTreeMap<String, String>,
    #[serde(default)]
    pub installed_files_template: Vec<String>,
    #[serde(default)]
    pub no_container_service: bool,
    /// atomic hardlinked hostfs files when true; syscontainer always copies
    /// (hardlinks would let the host edit the OSTree objects).
    #[serde(default)]
    pub use_links: Option<bool>,
    /// The image's health check ([`crate::health`]).
    #[serde(default)]
    pub health: Option<crate::health::HealthSpec>,
}

impl Manifest {
    /// Read `rootfs/exports/manifest.json`, or the default when absent.
    pub fn load(rootfs: &Path) -> Result<Manifest, DeployError> {
        let p = rootfs.join(crate::bundle::EXPORTS).join("manifest.json");
        match fs::read(&p) {
            Ok(t) => serde_json::from_slice(&t)
                .map_err(|source| DeployError::Manifest { path: p, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(io_err("cannot read", &p)(e)),
        }
    }

    /// `defaultValues` as `images info` shows them, from the raw manifest:
    /// only `defaultValues` is read, and only when it is an object, so that
    /// `info` still works on a manifest that [`Manifest::load`] refuses (a
    /// wrongly-typed field, `defaultValues` null or a list, a manifest that
    /// is a list, a duplicate key: the last one wins). Values that are not
    /// strings are written as JSON, a null as `null` (where
    /// [`Manifest::defaults`] gives ""). `None` when `raw` is not JSON.
    pub fn info_defaults(raw: &[u8]) -> Option<BTreeMap<String, String>> {
        let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
        let Some(o) = v.get("defaultValues").and_then(|d| d.as_object()) else {
            return Some(BTreeMap::new());
        };
        Some(
            o.iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        )
    }

    /// `defaultValues` as strings (numbers and booleans are written as JSON).
    pub fn defaults(&self) -> BTreeMap<String, String> {
        self.default_values
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()
    }
}

/// The default container name for an image reference: its last path
/// component, with `-TAG` appended when the tag is not `latest`.
pub fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    match last.split_once(':') {
        Some((n, "latest")) | Some((n, "")) => n.to_string(),
        Some((n, tag)) => format!("{n}-{tag}"),
        None => last.to_string(),
    }
}

/// Logical path of a deployment slot in the checkout root `checkout`.
pub fn slot_path(checkout: &Path, name: &str, slot: u8) -> PathBuf {
    checkout.join(format!("{name}.{slot}"))
}

/// Logical path of the symlink to the active deployment.
pub fn link_path(checkout: &Path, name: &str) -> PathBuf {
    checkout.join(name)
}

/// The checkout root of an installed container: the directory of its
/// record's deployment (both slots and the link sit side by side), or
/// [`paths::CHECKOUT_ROOT`] for a record without an absolute one.
pub fn checkout_of(rec: &Record) -> PathBuf {
    let d = Path::new(&rec.deployment);
    match d.parent() {
        Some(p) if d.is_absolute() && d.file_name().is_some() => p.to_path_buf(),
        _ => PathBuf::from(paths::CHECKOUT_ROOT),
    }
}

/// The slot (0 or 1) of a deployment path.
pub fn slot_of(deployment: &str) -> u8 {
    if deployment.ends_with(".1") {
        1
    } else {
        0
    }
}

/// The systemd we may talk to: only when it runs (`/run/systemd/system`
/// under the root exists).
#[derive(Debug, Clone, Copy)]
pub struct Systemd {
    pub running: bool,
}

impl Systemd {
    pub fn detect(root: &Root) -> Self {
        Systemd {
            running: root.join(paths::SYSTEMD_RUNNING).is_dir(),
        }
    }

    fn systemctl(&self, args: &[&str]) -> Result<Vec<u8>, DeployError> {
        let mut c = Command::new("systemctl");
        c.args(args);
        Ok(exec::output(c)?)
    }

    pub fn daemon_reload(&self) -> Result<(), DeployError> {
        if self.running {
            self.systemctl(&["daemon-reload"])?;
        }
        Ok(())
    }

    /// `systemctl ACTION NAME.service` (start, stop, restart).
    pub fn unit(&self, action: &str, name: &str) -> Result<(), DeployError> {
        if self.running {
            self.systemctl(&[action, &format!("{name}.service")])?;
        }
        Ok(())
    }

    /// `systemctl is-active NAME.service`: active, inactive, failed, ...
    pub fn state(&self, name: &str) -> Option<String> {
        if !self.running {
            return None;
        }
        let out = Command::new("systemctl")
            .args(["is-active", &format!("{name}.service")])
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `systemctl show -P PROP NAME.service`; `None` when systemd does not
    /// run or does not answer.
    pub fn property(&self, name: &str, prop: &str) -> Option<String> {
        if !self.running {
            return None;
        }
        let out = Command::new("systemctl")
            .args(["show", "-P", prop, &format!("{name}.service")])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn is_active(&self, name: &str) -> bool {
        matches!(
            self.state(name).as_deref(),
            Some("active" | "activating" | "reloading")
        )
    }

    /// `systemctl reset-failed NAME.service`, so that a start is not refused
    /// by the start rate limit a crash loop has hit. Errors are ignored.
    pub fn reset_failed(&self, name: &str) {
        if self.running {
            let _ = self.systemctl(&["reset-failed", &format!("{name}.service")]);
        }
    }
}

/// Remove a path (file, symlink or tree), ignoring "not found".
pub(crate) fn remove_any(p: &Path) -> Result<(), DeployError> {
    let res = match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    };
    res.map_err(io_err("cannot remove", p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        assert_eq!(default_name("registry.example/etcd"), "etcd");
        assert_eq!(default_name("registry.example/etcd:latest"), "etcd");
        assert_eq!(default_name("localhost:5000/a/flannel:0.9"), "flannel-0.9");
        assert_eq!(default_name("busybox"), "busybox");
        assert_eq!(default_name("r.io/x@sha256:abc"), "x");
    }

    #[test]
    fn manifest_defaults_as_strings() {
        let m: Manifest = serde_json::from_str(
            r#"{"version":"1.0","defaultValues":{"A":"x","N":5,"B":true,"Z":null},"noContainerService":true}"#,
        )
        .unwrap();
        let d = m.defaults();
        assert_eq!(d["A"], "x");
        assert_eq!(d["N"], "5");
        assert_eq!(d["B"], "true");
        assert_eq!(d["Z"], "");
        assert!(m.no_container_service);
    }

    #[test]
    fn info_defaults_read_only_default_values() {
        let d = |raw: &str| Manifest::info_defaults(raw.as_bytes());
        let m = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        assert_eq!(
            d(r#"{"defaultValues":{"A":"x","N":5,"B":true,"Z":null,"O":{"k":[1]}}}"#),
            m(&[
                ("A", "x"),
                ("N", "5"),
                ("B", "true"),
                ("Z", "null"),
                ("O", r#"{"k":[1]}"#)
            ])
        );
        // What Manifest::load refuses is still read.
        let wrong = r#"{"version":2,"renameFiles":5,"defaultValues":{"A":"x"}}"#;
        assert!(serde_json::from_str::<Manifest>(wrong).is_err());
        assert_eq!(d(wrong), m(&[("A", "x")]));
        assert_eq!(
            d(r#"{"defaultValues":{"A":"1"},"defaultValues":{"B":"2"}}"#),
            m(&[("B", "2")])
        );
        for none in [
            r#"{}"#,
            r#"{"defaultValues":null}"#,
            r#"{"defaultValues":["A"]}"#,
            "[1]",
            "7",
        ] {
            assert_eq!(d(none), m(&[]), "{none}");
        }
        assert_eq!(d("{,}"), None);
        assert_eq!(
            Manifest::info_defaults(b"{\"defaultValues\":{\"A\":\"\xff\"}}"),
            None
        );
    }

    #[test]
    fn slots() {
        assert_eq!(slot_of("/var/lib/containers/atomic/a.0"), 0);
        assert_eq!(slot_of("/var/lib/containers/atomic/a.1"), 1);
        assert_eq!(
            slot_path(Path::new(paths::CHECKOUT_ROOT), "x.0", 1),
            PathBuf::from("/var/lib/containers/atomic/x.0.1")
        );
        assert_eq!(
            link_path(Path::new("/srv/co"), "x"),
            PathBuf::from("/srv/co/x")
        );
    }

    #[test]
    fn checkout_root_comes_from_the_record() {
        let mut r = Record::new("web", "i", "sha256:x", "/srv/co/web.1");
        assert_eq!(checkout_of(&r), PathBuf::from("/srv/co"));
        r.deployment = "/var/lib/containers/atomic/web.0".into();
        assert_eq!(checkout_of(&r), PathBuf::from(paths::CHECKOUT_ROOT));
        for odd in ["", "web.0", "/"] {
            r.deployment = odd.into();
            assert_eq!(
                checkout_of(&r),
                PathBuf::from(paths::CHECKOUT_ROOT),
                "{odd}"
            );
        }
    }
}
