//! The logic of `syscontainer-exec run|stop|cleanup NAME`, the ExecStart,
//! ExecStop and ExecStopPost of every generated unit.
//!
//! `run` reads the record and the active deployment, renders the bundle
//! ([`crate::bundle::prepare`]), applies the container's tmpfiles, clears
//! stale runc state, and `exec`s the runtime, so that runc (and the container
//! under it) is the service's main process, in the unit's cgroup. Nothing
//! here touches OSTree or the network.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::bundle::{self, BundleError};
use crate::exit;
use crate::paths::{self, Root};
use crate::record::{Record, RecordError};

/// Exit codes of `syscontainer-exec`, for `RestartPreventExitStatus=`
/// (the shared values of [`crate::exit`]).
pub const EXIT_USAGE: i32 = exit::USAGE;
/// Invalid record, config or template.
pub const EXIT_INVALID: i32 = exit::INVALID;
/// Record, deployment, image files or runtime missing.
pub const EXIT_MISSING: i32 = exit::MISSING;
/// The runtime (runc) or systemd-tmpfiles failed.
pub const EXIT_RUNTIME: i32 = exit::RUNTIME;

#[derive(Debug, Error)]
pub enum ExecError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("the runtime {runtime} of container '{name}' is not installed")]
    RuntimeMissing { name: String, runtime: String },
    #[error("cannot run {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("{cmd} failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("the tmpfiles of {file} cannot be applied: {errors}")]
    Tmpfiles { file: PathBuf, errors: String },
    #[error("cannot exec {cmd}")]
    Exec {
        cmd: String,
        #[source]
        source: nix::Error,
    },
    #[error("container '{name}' was still running {secs} s after SIGTERM")]
    StopTimeout { name: String, secs: u64 },
    #[error("{what} {arg:?} contains a NUL byte")]
    Nul { what: &'static str, arg: String },
}

impl ExecError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            // The exec helper has no code for "other failure": a record it
            // cannot read counts as invalid.
            ExecError::Record(r) => match r.exit_code() {
                EXIT_MISSING => EXIT_MISSING,
                _ => EXIT_INVALID,
            },
            ExecError::Bundle(b) => b.exit_code(),
            ExecError::RuntimeMissing { .. } => EXIT_MISSING,
            ExecError::Nul { .. } => EXIT_INVALID,
            ExecError::Spawn { .. }
            | ExecError::Failed { .. }
            | ExecError::Tmpfiles { .. }
            | ExecError::Exec { .. }
            | ExecError::StopTimeout { .. } => EXIT_RUNTIME,
        }
    }
}

/// An OCI runtime binary, and the commands we run it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub path: PathBuf,
}

impl Runtime {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Runtime { path: path.into() }
    }

    /// `runc run --bundle DIR NAME`, as argv (argv[0] is the runtime path).
    pub fn run_argv(&self, bundle: &Path, name: &str) -> Vec<String> {
        vec![
            self.path.display().to_string(),
            "run".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            name.into(),
        ]
    }

    /// A `Command` for `runtime ARGS...`, stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        c.args(args).stdin(Stdio::null());
        c
    }

    /// Run `runtime ARGS...` to completion; an error names the command and
    /// carries its stderr.
    pub fn call(&self, args: &[&str]) -> Result<Vec<u8>, ExecError> {
        output(self.command(args))
    }

    /// `true` when the runtime may hold state for `name`. For runc this is a
    /// stat of its state directory (cheap); other runtimes are asked.
    pub fn may_have_state(&self, name: &str) -> bool {
        if self.path.file_name().is_some_and(|f| f == "runc") {
            Path::new(paths::RUNC_STATE).join(name).exists()
        } else {
            true
        }
    }

    /// The container's status (`running`, `stopped`, ...), `None` if the
    /// runtime does not know it.
    pub fn status(&self, name: &str) -> Option<String> {
        if !self.may_have_state(name) {
            return None;
        }
        let out = self
            .command(&["state", name])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.get("status").and_then(|s| s.as_str()).map(str::to_string)
    }

    /// `runtime delete -f NAME`, if there may be state.
    pub fn delete(&self, name: &str) -> Result<(), ExecError> {
        if self.may_have_state(name) {
            self.call(&["delete", "-f", name])?;
        }
        Ok(())
    }
}

fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run a command to completion, capturing stdout; a failure names the
/// command and carries its stderr.
pub fn output(mut c: Command) -> Result<Vec<u8>, ExecError> {
    let cmd = describe(&c);
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ExecError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(ExecError::Failed {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `systemd-tmpfiles ACTION [--root=ROOT] FILE`.
pub fn tmpfiles(root: &Root, action: &str, file: &Path) -> Result<(), ExecError> {
    let mut c = Command::new("systemd-tmpfiles");
    c.arg(action);
    if !root.is_host() {
        c.arg(format!("--root={}", root.path().display()));
    }
    c.arg(file).stdin(Stdio::null());
    output(c).map(drop)
}

/// Everything `run` does before `exec`: returns the runtime's argv.
pub fn prepare_run(root: &Root, name: &str) -> Result<Vec<String>, ExecError> {
    let (rec, _) = Record::load(root, name)?;
    let runtime = Runtime::new(&rec.runtime);
    if !runtime.path.is_file() {
        return Err(ExecError::RuntimeMissing {
            name: name.to_string(),
            runtime: rec.runtime.clone(),
        });
    }
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| bundle::cgroups_path(&t, bundle::unified_cgroup_fs()));
    let b = bundle::prepare(root, &rec, cgroup.as_deref())?;
    log::debug!("rendered bundle {}", b.dir.display());
    if let Some(t) = &b.tmpfiles {
        use crate::tmpfiles::{create_in_process, InProcess};
        match create_in_process(root.path(), &b.tmpfiles_text) {
            InProcess::Done => {}
            InProcess::Spawn(why) => {
                log::debug!("tmpfiles: {why}; running systemd-tmpfiles");
                tmpfiles(root, "--create", t)?;
            }
            InProcess::Failed(errors) => {
                return Err(ExecError::Tmpfiles {
                    file: t.clone(),
                    errors: errors.join("; "),
                })
            }
        }
    }
    if runtime.may_have_state(name) {
        log::info!("removing stale runtime state of '{name}'");
        runtime.delete(name)?;
    }
    Ok(runtime.run_argv(&b.dir, name))
}

fn cstring(what: &'static str, s: &str) -> Result<CString, ExecError> {
    CString::new(s).map_err(|_| ExecError::Nul {
        what,
        arg: s.to_string(),
    })
}

/// `syscontainer-exec run NAME`: prepare, then `exec` the runtime. Returns
/// only on error. The environment (including `NOTIFY_SOCKET`) is kept.
pub fn run(root: &Root, name: &str) -> Result<Infallible, ExecError> {
    let argv = prepare_run(root, name)?;
    let cargs = argv
        .iter()
        .map(|a| cstring("argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let prog =
        CString::new(Path::new(&argv[0]).as_os_str().as_bytes()).map_err(|_| ExecError::Nul {
            what: "runtime",
            arg: argv[0].clone(),
        })?;
    let err = nix::unistd::execv(&prog, &cargs).unwrap_err();
    Err(ExecError::Exec {
        cmd: argv.join(" "),
        source: err,
    })
}

/// The runtime of `name`: from its record, else the default.
fn runtime_of(root: &Root, name: &str) -> Result<Runtime, ExecError> {
    match Record::load(root, name) {
        Ok((rec, _)) => Ok(Runtime::new(rec.runtime)),
        Err(RecordError::NotFound { .. }) => Ok(Runtime::new(paths::DEFAULT_RUNTIME)),
        Err(e) => Err(e.into()),
    }
}

/// `syscontainer-exec wait NAME` (ExecStartPost= of units of `Type=exec`):
/// return once the container is running, so that `systemctl start` returns
/// only then and not as soon as `run` was exec'd. Returns early, with
/// success, when the main process (`$MAINPID`, set by systemd; `main_pid`)
/// is gone: systemd judges its exit status. No timeout of its own: the
/// unit's `TimeoutStartSec=` covers it.
pub fn wait_running(root: &Root, name: &str, main_pid: Option<i32>) -> Result<(), ExecError> {
    crate::name::validate(name).map_err(|source| RecordError::Name {
        path: PathBuf::from(name),
        source,
    })?;
    let runtime = runtime_of(root, name)?;
    loop {
        if matches!(runtime.status(name).as_deref(), Some("running" | "paused")) {
            return Ok(());
        }
        if let Some(pid) = main_pid {
            if !process_alive(pid) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process exists and is not a zombie.
pub(crate) fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state is the first field after the ")" that ends the comm
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// `syscontainer-exec stop NAME`: SIGTERM through the runtime, then wait
/// (at most `timeout`) until the container has stopped.
pub fn stop(root: &Root, name: &str, timeout: Duration) -> Result<(), ExecError> {
    crate::name::validate(name).map_err(|source| RecordError::Name {
        path: PathBuf::from(name),
        source,
    })?;
    let runtime = runtime_of(root, name)?;
    match runtime.status(name).as_deref() {
        None | Some("stopped") => return Ok(()),
        Some(_) => {}
    }
    if let Err(e) = runtime.call(&["kill", name, "TERM"]) {
        // It may have exited in between.
        if matches!(runtime.status(name).as_deref(), Some("running" | "paused")) {
            return Err(e);
        }
    }
    let start = Instant::now();
    while start.elapsed() < timeout {
        match runtime.status(name).as_deref() {
            None | Some("stopped") => return Ok(()),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Err(ExecError::StopTimeout {
        name: name.to_string(),
        secs: timeout.as_secs(),
    })
}

/// `syscontainer-exec cleanup NAME`: delete the runtime state and the
/// rendered bundle.
pub fn cleanup(root: &Root, name: &str) -> Result<(), ExecError> {
    crate::name::validate(name).map_err(|source| RecordError::Name {
        path: PathBuf::from(name),
        source,
    })?;
    let runtime = runtime_of(root, name)?;
    if runtime.path.is_file() {
        runtime.delete(name)?;
    }
    let dir = root.join(bundle::bundle_dir(name));
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BundleError::Write { path: dir, source }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_processes() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(i32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // a zombie until reaped
        std::thread::sleep(Duration::from_millis(200));
        assert!(!process_alive(pid));
        child.wait().unwrap();
    }

    #[test]
    fn run_argv_shape() {
        let r = Runtime::new("/usr/sbin/runc");
        assert_eq!(
            r.run_argv(Path::new("/run/syscontainer/bundle/a"), "a"),
            [
                "/usr/sbin/runc",
                "run",
                "--bundle",
                "/run/syscontainer/bundle/a",
                "a"
            ]
        );
    }

    #[test]
    fn exit_codes() {
        let e = ExecError::Record(RecordError::NotFound {
            name: "x".into(),
            dirs: "d".into(),
        });
        assert_eq!(e.exit_code(), EXIT_MISSING);
        let e = ExecError::Bundle(BundleError::DeploymentMissing {
            name: "x".into(),
            path: "/p".into(),
        });
        assert_eq!(e.exit_code(), EXIT_MISSING);
        let e = ExecError::Bundle(BundleError::NotReadOnly { file: "f".into() });
        assert_eq!(e.exit_code(), EXIT_INVALID);
        let e = ExecError::Failed {
            cmd: "runc".into(),
            status: "1".into(),
            stderr: String::new(),
        };
        assert_eq!(e.exit_code(), EXIT_RUNTIME);
    }
}
