//! Bundle rendering: the runc `config.json` and the tmpfiles of a deployment.
//!
//! A deployment `CHECKOUT_ROOT/NAME.N` holds `rootfs/` (the image, read-only
//! by convention, with its `/exports` files) and `info.json`
//! ([`DeploymentInfo`], written at install). Nothing here touches OSTree or
//! the network: the exec helper calls [`prepare`] on every start.
//!
//! The config comes from, in order: `rootfs/exports/config.json` (as is),
//! `rootfs/exports/config.json.template` (rendered with the record's
//! variables), or a built-in default made from the image config
//! ([`default_config`]). Pre-1.0 configs found in published images are
//! brought up to date first ([`normalize`]). Then the config is validated
//! with `oci-spec`, and must have `root.path == "rootfs"` and
//! `root.readonly == true`.
//!
//! The rendered bundle points `root.path` at the deployment's rootfs by
//! absolute path, so the bundle directory can live in `/run`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use crate::fsutil;
use crate::paths::{self, Root};
use crate::record::Record;
use crate::template::{self, TemplateError};
use crate::vars::Vars;

/// Where the image's `/exports` files are, inside a deployment's rootfs.
pub const EXPORTS: &str = "exports";
/// Per-deployment information, in the deployment directory.
pub const INFO_FILE: &str = "info.json";

/// What was installed into one deployment slot: enough to roll back to it
/// and to render its default config without the image store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeploymentInfo {
    /// The image reference, e.g. `registry.example/etcd:latest`.
    pub image: String,
    /// `sha256:...` of the image config.
    pub image_id: String,
    /// `--set` values this deployment was rendered with.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// The image's `manifest.json` `defaultValues`.
    #[serde(default)]
    pub default_values: BTreeMap<String, String>,
    /// The `config` object of the OCI image config (`Entrypoint`, `Cmd`,
    /// `Env`, `WorkingDir`, `User`), for the built-in default config.
    #[serde(default)]
    pub image_config: Value,
}

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("the deployment {path} of container '{name}' is missing; reinstall it with `syscontainer install`")]
    DeploymentMissing { name: String, path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{file} is not valid JSON")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file} is not a valid OCI runtime config")]
    Spec {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: the container root must be read-only (\"root\": {{\"path\": \"rootfs\", \"readonly\": true}})")]
    NotReadOnly { file: String },
    #[error("{file}: root.path must be \"rootfs\", not {path:?}")]
    RootPath { file: String, path: String },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error("image {image}: no /exports/run.sh, Entrypoint or Cmd to run")]
    NoCommand { image: String },
}

impl BundleError {
    /// The documented exit code: 4 when something is missing on disk, 5
    /// when the bundle cannot be written (the CLI reports that as 1), else
    /// 3 (an invalid or unreadable config or template).
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{INVALID, MISSING, RUNTIME};
        match self {
            BundleError::DeploymentMissing { .. } => MISSING,
            BundleError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => MISSING,
            BundleError::Write { .. } => RUNTIME,
            BundleError::Template(t) => t.exit_code(),
            BundleError::Read { .. }
            | BundleError::Json { .. }
            | BundleError::Spec { .. }
            | BundleError::NotReadOnly { .. }
            | BundleError::RootPath { .. }
            | BundleError::Invalid { .. }
            | BundleError::NoCommand { .. } => INVALID,
        }
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Read a file, `Ok(None)` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>, BundleError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(path)(e)),
    }
}

/// Where a config came from (for messages and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Json,
    Template,
    Default,
}

/// The deployment directory of `rec`, resolved under `root`.
pub fn deployment_dir(root: &Root, rec: &Record) -> PathBuf {
    root.join(&rec.deployment)
}

/// Load `info.json` of a deployment directory (real path).
pub fn load_info(dir: &Path) -> Result<DeploymentInfo, BundleError> {
    let p = dir.join(INFO_FILE);
    let text = fs::read(&p).map_err(read_err(&p))?;
    serde_json::from_slice(&text).map_err(|source| BundleError::Json {
        file: p.display().to_string(),
        source,
    })
}

/// Write `info.json` into a deployment directory (real path).
pub fn write_info(dir: &Path, info: &DeploymentInfo) -> Result<(), BundleError> {
    let p = dir.join(INFO_FILE);
    let mut text = serde_json::to_string_pretty(info).expect("info serializes");
    text.push('\n');
    fsutil::write_atomic(&p, text.as_bytes(), 0o600).map_err(|source| BundleError::Write {
        path: p.clone(),
        source,
    })
}

/// Render and validate the config of the deployment at `dir` (real path)
/// for `rec`. Returns the validated config (still with `root.path ==
/// "rootfs"`) and where it came from.
pub fn render_config(
    rec: &Record,
    vars: &Vars,
    dir: &Path,
    info: Option<&DeploymentInfo>,
) -> Result<(Value, ConfigSource), BundleError> {
    let rootfs = dir.join("rootfs");
    let exports = rootfs.join(EXPORTS);
    let json_path = exports.join("config.json");
    let tmpl_path = exports.join("config.json.template");
    let (file, text, source) = if let Some(t) = read_opt(&json_path)? {
        (json_path.display().to_string(), t, ConfigSource::Json)
    } else if let Some(t) = read_opt(&tmpl_path)? {
        let file = tmpl_path.display().to_string();
        let out = template::render(&file, &t, vars)?;
        (file, out, ConfigSource::Template)
    } else {
        let loaded;
        let info = match info {
            Some(i) => i,
            None => {
                loaded = load_info(dir)?;
                &loaded
            }
        };
        let v = default_config(&rec.image, &info.image_config, &rootfs)?;
        return Ok((
            validate("built-in default config", v)?,
            ConfigSource::Default,
        ));
    };
    let v: Value = serde_json::from_str(&text).map_err(|source| BundleError::Json {
        file: file.clone(),
        source,
    })?;
    Ok((validate(&file, v)?, source))
}

/// Bring configs written for pre-1.0 runc up to date, as published system
/// container images have them:
/// - `capabilities` as a plain list (under `process` or `linux`) becomes
///   `process.capabilities` with that list as the bounding, effective and
///   permitted sets;
/// - a `capabilities` object under `linux` moves to `process`;
/// - a `seccomp` with an empty `defaultAction` is dropped (it meant "none").
pub fn normalize(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    let linux_caps = obj
        .get_mut("linux")
        .and_then(Value::as_object_mut)
        .and_then(|l| l.remove("capabilities"));
    let process = obj.entry("process").or_insert_with(|| json!({}));
    if let Some(p) = process.as_object_mut() {
        if let Some(caps) = linux_caps {
            p.entry("capabilities").or_insert(caps);
        }
        if let Some(Value::Array(list)) = p.get("capabilities") {
            let list = Value::Array(list.clone());
            p.insert(
                "capabilities".into(),
                json!({"bounding": list, "effective": list, "permitted": list}),
            );
        }
    }
    if let Some(l) = obj.get_mut("linux").and_then(Value::as_object_mut) {
        let empty = l
            .get("seccomp")
            .map(|s| {
                s.is_null()
                    || s.get("defaultAction")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .is_empty()
            })
            .unwrap_or(false);
        if empty {
            l.remove("seccomp");
        }
    }
}

/// Normalize, parse with `oci-spec`, and check the root.
pub fn validate(file: &str, mut v: Value) -> Result<Value, BundleError> {
    normalize(&mut v);
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(v.clone()).map_err(|source| BundleError::Spec {
            file: file.to_string(),
            source,
        })?;
    let root = spec.root().as_ref().ok_or(BundleError::NotReadOnly {
        file: file.to_string(),
    })?;
    if root.path() != Path::new("rootfs") {
        return Err(BundleError::RootPath {
            file: file.to_string(),
            path: root.path().display().to_string(),
        });
    }
    if root.readonly() != Some(true) {
        return Err(BundleError::NotReadOnly {
            file: file.to_string(),
        });
    }
    let has_args =
        matches!(spec.process().as_ref().and_then(|p| p.args().as_ref()), Some(a) if !a.is_empty());
    if !has_args {
        return Err(BundleError::Invalid {
            file: file.to_string(),
            what: "process.args is missing or empty".into(),
        });
    }
    Ok(v)
}

/// The built-in config for an image without `config.json(.template)`: what
/// `runc spec` gives, with a read-only root, no terminal, the host's network
/// (system containers are host services), and the image's command,
/// environment, working directory and user.
pub fn default_config(
    image: &str,
    image_config: &Value,
    rootfs: &Path,
) -> Result<Value, BundleError> {
    let strs = |k: &str| -> Vec<String> {
        image_config
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let args: Vec<String> = if rootfs.join(EXPORTS).join("run.sh").exists() {
        vec!["/exports/run.sh".into()]
    } else {
        strs("Entrypoint").into_iter().chain(strs("Cmd")).collect()
    };
    if args.is_empty() {
        return Err(BundleError::NoCommand {
            image: image.to_string(),
        });
    }
    let mut env = strs("Env");
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let cwd = image_config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with('/'))
        .unwrap_or("/");
    let user = image_config
        .get("User")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (uid, gid) = resolve_user(user, rootfs).map_err(|what| BundleError::Invalid {
        file: format!("image {image} config"),
        what,
    })?;
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    }))
}

/// Resolve an image `User` (`""`, `uid`, `uid:gid`, `name`, `name:group`)
/// against the rootfs's `/etc/passwd` and `/etc/group`.
fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, key: &str| -> Option<(u32, u32)> {
        let text = fs::read_to_string(rootfs.join("etc").join(file)).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 3 && f[0] == key {
                let id = f[2].parse().ok()?;
                let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
                Some((id, gid))
            } else {
                None
            }
        })
    };
    let (uid, pgid) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_by_id(rootfs, n).unwrap_or(0)),
        Err(_) => lookup("passwd", u).ok_or(format!("user '{u}' is not in /etc/passwd"))?,
    };
    let gid = match g {
        None => pgid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup("group", g)
                    .ok_or(format!("group '{g}' is not in /etc/group"))?
                    .0
            }
        },
    };
    Ok((uid, gid))
}

fn lookup_by_id(rootfs: &Path, uid: u32) -> Option<u32> {
    let text = fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse() == Ok(uid))
            .then(|| f[3].parse().ok())
            .flatten()
    })
}

/// The bind mounts of a config: `(source, destination)`.
pub fn bind_sources(config: &Value) -> Vec<String> {
    config
        .get("mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            m.get("type").and_then(Value::as_str) == Some("bind")
                || m.get("options")
                    .and_then(Value::as_array)
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
        })
        .filter_map(|m| m.get("source").and_then(Value::as_str))
        .filter(|s| s.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// Render the tmpfiles of a deployment: `rootfs/exports/tmpfiles.template`
/// rendered, or else one `d SRC 0700 HOST_UID HOST_GID - -` line for every
/// bind-mount source of `config` that does not exist under `root`.
pub fn render_tmpfiles(
    root: &Root,
    rec: &Record,
    vars: &Vars,
    dir: &Path,
    config: &Value,
) -> Result<String, BundleError> {
    let p = dir.join("rootfs").join(EXPORTS).join("tmpfiles.template");
    if let Some(t) = read_opt(&p)? {
        let mut out = template::render(&p.display().to_string(), &t, vars)?;
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        return Ok(out);
    }
    let mut out = String::new();
    for src in bind_sources(config) {
        if fs::symlink_metadata(root.join(&src)).is_err() && !src.contains(char::is_whitespace) {
            out.push_str(&format!(
                "d {src} 0700 {} {} - -\n",
                rec.host_uid, rec.host_gid
            ));
        }
    }
    Ok(out)
}

/// `true` when a tmpfiles text has no lines to apply.
pub fn tmpfiles_empty(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'))
}

/// The cgroup for the container: a `container` sub-cgroup of the unit's own,
/// so systemd accounts for it and stopping the unit stops it (needs
/// `Delegate=yes`). `proc_self_cgroup` is the text of `/proc/self/cgroup`.
/// `unified` says whether `/sys/fs/cgroup` is cgroup2 (see
/// [`unified_cgroup_fs`]), which is what runc goes by: then the `0::` line
/// is used, else the `name=systemd` one. The number of lines in
/// `/proc/self/cgroup` says nothing: a unified system (e.g. systemd in a
/// container) on a kernel with v1 hierarchies mounted elsewhere still lists
/// them all, `name=systemd:/` included. `None` unless the caller runs in a
/// `.service` cgroup.
pub fn cgroups_path(proc_self_cgroup: &str, unified: bool) -> Option<String> {
    let lines: Vec<&str> = proc_self_cgroup.lines().filter(|l| !l.is_empty()).collect();
    let path = lines.iter().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
        let want = if unified { "" } else { "name=systemd" };
        (ctrl == want).then_some(path)
    })?;
    let last = path.rsplit('/').next().unwrap_or("");
    if last.ends_with(".service") {
        Some(format!("{path}/container"))
    } else {
        None
    }
}

/// Whether `/sys/fs/cgroup` is a cgroup2 file system (the unified
/// hierarchy), as runc decides it.
pub fn unified_cgroup_fs() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// A rendered bundle on disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Real path of the bundle directory.
    pub dir: PathBuf,
    /// Real path of the rendered tmpfiles file, when it has lines to apply.
    pub tmpfiles: Option<PathBuf>,
    /// Its text.
    pub tmpfiles_text: String,
    /// The final config, as written.
    pub config: Value,
}

/// Logical path of a container's bundle directory.
pub fn bundle_dir(name: &str) -> PathBuf {
    Path::new(paths::BUNDLES).join(name)
}

/// Make the final config from a validated one: absolute `root.path`, the
/// cgroup, and, when `root` is not `/`, bind-mount sources resolved under it
/// (so that tests and image builders see the same tree as tmpfiles).
pub fn finalize(root: &Root, dir: &Path, mut config: Value, cgroup: Option<&str>) -> Value {
    let rootfs = dir.join("rootfs");
    config["root"]["path"] = Value::String(rootfs.display().to_string());
    if let Some(cg) = cgroup {
        if !config.get("linux").is_some_and(Value::is_object) {
            config["linux"] = json!({});
        }
        config["linux"]["cgroupsPath"] = Value::String(cg.to_string());
    }
    if !root.is_host() {
        let binds = bind_sources(&config);
        if let Some(mounts) = config.get_mut("mounts").and_then(Value::as_array_mut) {
            for m in mounts {
                let src = m.get("source").and_then(Value::as_str).map(str::to_string);
                if let Some(src) = src.filter(|s| binds.contains(s)) {
                    m["source"] = Value::String(root.join(&src).display().to_string());
                }
            }
        }
    }
    config
}

/// Render the bundle of `rec` into `BUNDLES/NAME/` (under `root`):
/// `config.json` and `tmpfiles.conf`. `cgroup` is the value of
/// `linux.cgroupsPath`, if any (see [`cgroups_path`]).
pub fn prepare(root: &Root, rec: &Record, cgroup: Option<&str>) -> Result<Bundle, BundleError> {
    let dir = deployment_dir(root, rec);
    if !dir.join("rootfs").is_dir() {
        return Err(BundleError::DeploymentMissing {
            name: rec.name.clone(),
            path: PathBuf::from(&rec.deployment),
        });
    }
    let vars = Vars::for_record(rec);
    let (config, _) = render_config(rec, &vars, &dir, None)?;
    let tmpfiles = render_tmpfiles(root, rec, &vars, &dir, &config)?;
    let config = finalize(root, &dir, config, cgroup);

    let bdir = root.join(bundle_dir(&rec.name));
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Write { path, source }
    };
    // config.json carries rendered `--set` values, which may be secrets:
    // 0600 in a 0700 directory, whatever the umask and whether or not
    // tmpfiles.d made /run/syscontainer 0700 first.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&bdir)
        .map_err(werr(&bdir))?;
    fs::set_permissions(&bdir, fs::Permissions::from_mode(0o700)).map_err(werr(&bdir))?;
    let cpath = bdir.join("config.json");
    let text = serde_json::to_vec(&config).expect("config serializes");
    // The bundle is volatile (under /run) and rendered again at every
    // start: atomic, but not synced.
    fsutil::write_replace(&cpath, &text, 0o600).map_err(werr(&cpath))?;
    let tpath = bdir.join("tmpfiles.conf");
    let tmpfiles_path = if tmpfiles_empty(&tmpfiles) {
        let _ = fs::remove_file(&tpath);
        None
    } else {
        fsutil::write_replace(&tpath, tmpfiles.as_bytes(), 0o600).map_err(werr(&tpath))?;
        Some(tpath)
    };
    Ok(Bundle {
        dir: bdir,
        tmpfiles: tmpfiles_path,
        tmpfiles_text: tmpfiles,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_from_unified_and_hybrid() {
        assert_eq!(
            cgroups_path("0::/system.slice/etcd.service\n", true).as_deref(),
            Some("/system.slice/etcd.service/container")
        );
        assert_eq!(cgroups_path("0::/user.slice/session-1.scope\n", true), None);
        assert_eq!(cgroups_path("0::/\n", true), None);
        let hybrid =
            "9:name=systemd:/system.slice/a.service\n1:cpu:/\n0::/system.slice/a.service\n";
        assert_eq!(
            cgroups_path(hybrid, false).as_deref(),
            Some("/system.slice/a.service/container")
        );
        let host = "9:name=systemd:/\n8:pids:/\n0::/\n";
        assert_eq!(cgroups_path(host, false), None);
        assert_eq!(cgroups_path(host, true), None);
    }

    #[test]
    fn cgroup_of_a_unified_guest_on_a_hybrid_kernel() {
        // systemd in a container with the unified hierarchy (nspawn), on a
        // kernel that has v1 hierarchies mounted elsewhere: every hierarchy
        // is listed, name=systemd at "/", the real one is the 0:: line.
        let guest = "9:name=systemd:/\n8:pids:/\n1:cpu:/\n0::/system.slice/hello.service\n";
        assert_eq!(
            cgroups_path(guest, true).as_deref(),
            Some("/system.slice/hello.service/container")
        );
        assert_eq!(cgroups_path(guest, false), None);
    }

    #[test]
    fn cgroup_unified_systemd_on_a_kernel_with_v1_hierarchies() {
        // systemd-nspawn with SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 on a hybrid
        // host: the guest's systemd uses cgroup v2 only, but /proc/self/cgroup
        // still lists the kernel's v1 hierarchies, all at "/".
        let guest =
            "9:name=systemd:/\n8:pids:/\n4:memory:/\n1:cpu:/\n0::/system.slice/etcd.service\n";
        assert_eq!(
            cgroups_path(guest, true).as_deref(),
            Some("/system.slice/etcd.service/container")
        );
        // legacy (v1 only): the unit is in the name=systemd hierarchy
        let legacy = "9:name=systemd:/system.slice/b.service\n1:cpu:/system.slice\n";
        assert_eq!(
            cgroups_path(legacy, false).as_deref(),
            Some("/system.slice/b.service/container")
        );
        // a legacy host whose unified line is the root: still name=systemd
        let legacy2 = "9:name=systemd:/system.slice/b.service\n0::/\n";
        assert_eq!(
            cgroups_path(legacy2, false).as_deref(),
            Some("/system.slice/b.service/container")
        );
        assert_eq!(
            cgroups_path("9:name=systemd:/\n0::/init.scope\n", true),
            None
        );
    }

    fn ro(extra: Value) -> Value {
        let mut v = json!({"ociVersion": "1.0.0", "root": {"path": "rootfs", "readonly": true},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    #[test]
    fn validate_root_rules() {
        assert!(validate("f", ro(json!({}))).is_ok());
        let e = validate(
            "f.json",
            ro(json!({"root": {"path": "rootfs", "readonly": false}})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f.json") && e.contains("read-only"), "{e}");
        let e = validate("f", ro(json!({"root": {"path": "/x", "readonly": true}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"/x\""), "{e}");
        assert!(validate("f", ro(json!({"root": null}))).is_err());
        let e = validate("g", ro(json!({"mounts": "nope"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("g is not a valid OCI runtime config"), "{e}");
    }

    #[test]
    fn normalize_old_capabilities_and_seccomp() {
        let mut v = ro(json!({"linux": {"capabilities": ["CAP_KILL"],
            "seccomp": {"defaultAction": "", "architectures": null}}}));
        let v2 = validate("f", v.clone()).unwrap();
        normalize(&mut v);
        assert_eq!(v, v2);
        assert_eq!(
            v["process"]["capabilities"]["bounding"],
            json!(["CAP_KILL"])
        );
        assert_eq!(
            v["process"]["capabilities"]["permitted"],
            json!(["CAP_KILL"])
        );
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("capabilities").is_none());
        let mut w = ro(json!({"linux": {"capabilities": {"bounding": ["CAP_KILL"]}}}));
        normalize(&mut w);
        assert_eq!(
            w["process"]["capabilities"],
            json!({"bounding": ["CAP_KILL"]})
        );
    }

    #[test]
    fn default_config_from_image() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path();
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nsvc:x:101:102::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\nadm:x:4:\n").unwrap();
        let cfg = json!({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
            "Env": ["A=1"], "WorkingDir": "/srv", "User": "svc"});
        let v = validate("d", default_config("img", &cfg, rootfs).unwrap()).unwrap();
        assert_eq!(v["process"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(v["process"]["env"][1], "A=1");
        assert!(v["process"]["env"][0]
            .as_str()
            .unwrap()
            .starts_with("PATH="));
        assert_eq!(v["process"]["cwd"], "/srv");
        assert_eq!(v["process"]["user"], json!({"uid": 101, "gid": 102}));
        assert_eq!(v["process"]["terminal"], false);
        assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
        let v = default_config("img", &json!({"Cmd": ["x"], "User": "svc:adm"}), rootfs).unwrap();
        assert_eq!(v["process"]["user"], json!({"uid": 101, "gid": 4}));
        assert!(default_config("img", &json!({"Cmd": ["x"], "User": "nobody"}), rootfs).is_err());
        let e = default_config("reg/img", &json!({}), rootfs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reg/img"), "{e}");
        fs::create_dir_all(rootfs.join("exports")).unwrap();
        fs::write(rootfs.join("exports/run.sh"), "#!/bin/sh\n").unwrap();
        let v = default_config("img", &cfg, rootfs).unwrap();
        assert_eq!(v["process"]["args"], json!(["/exports/run.sh"]));
    }

    #[test]
    fn binds_and_finalize() {
        let cfg = json!({"root": {"path": "rootfs", "readonly": true}, "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/a", "type": "bind", "source": "/run/a", "options": ["rbind"]},
            {"destination": "/b", "source": "/var/b", "options": ["bind", "ro"]},
            {"destination": "/c", "type": "bind", "source": "relative"}]});
        assert_eq!(bind_sources(&cfg), ["/run/a", "/var/b"]);
        let root = Root::new("/tmp/r");
        let f = finalize(
            &root,
            Path::new("/tmp/r/d/x.0"),
            cfg.clone(),
            Some("/s/x.service/container"),
        );
        assert_eq!(f["root"]["path"], "/tmp/r/d/x.0/rootfs");
        assert_eq!(f["linux"]["cgroupsPath"], "/s/x.service/container");
        assert_eq!(f["mounts"][1]["source"], "/tmp/r/run/a");
        assert_eq!(f["mounts"][2]["source"], "/tmp/r/var/b");
        assert_eq!(f["mounts"][0]["source"], "proc");
        let f = finalize(&Root::new("/"), Path::new("/d/x.0"), cfg, None);
        assert_eq!(f["mounts"][1]["source"], "/run/a");
        assert!(f.get("linux").is_none());
    }

    #[test]
    fn tmpfiles_emptiness() {
        assert!(tmpfiles_empty("\n# c\n  \n"));
        assert!(!tmpfiles_empty("d /x 0700 0 0 - -\n"));
    }
}
