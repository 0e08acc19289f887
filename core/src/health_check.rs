//! Running a container's health check: `syscontainer-exec health NAME` (the
//! ExecStart of `NAME-health.service`, started by its timer) and
//! `syscontainer-exec wait-healthy NAME` (an ExecStartPost of `NAME.service`,
//! so that `systemctl start` returns once the container is healthy).
//!
//! The check runs inside the container through the runtime's `exec`
//! (`runc exec NAME ARGV...`), bounded by its timeout. The state (`starting`,
//! `healthy`, `unhealthy`, the failures in a row, the last exit status and
//! output) is kept in `/run/syscontainer/health/NAME.json`, written
//! atomically, per run of the container: a new container process (another
//! pid or start time) starts again at `starting`. Failures within the start
//! period after the container started do not count, until a first check has
//! passed. After `retries` counted failures in a row the container is
//! `unhealthy`, and with `onFailure: kill` it is killed (SIGKILL through the
//! runtime): the unit's main process exits with a failure and `Restart=`
//! takes over.
//!
//! Failures and changes of state are written to the journal as entries of
//! `NAME.service` ([`crate::journal`]), so that `systemctl status NAME` and
//! `journalctl -u NAME` show them.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::exec::{ExecError, Runtime};
use crate::exit;
use crate::fsutil;
use crate::health::{timespan, HealthCheck, OnFailure};
use crate::journal;
use crate::paths::Root;
use crate::record::{Record, RecordError};

/// Where the states are kept (volatile: a reboot starts again).
pub const STATE_DIR: &str = "/run/syscontainer/health";

/// The most output of a check that is kept (as Docker).
pub const MAX_OUTPUT: usize = 4096;

#[derive(Debug, Error)]
pub enum HealthError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(
        "container '{name}' has no health check (none in its record's health, nor in its image's)"
    )]
    NoCheck { name: String },
    #[error("cannot write the health state {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the health check of '{name}' failed: {what}")]
    Failed { name: String, what: String },
    #[error("container '{name}' did not become healthy within {secs} s (start period + retries x interval): the last check {what}")]
    NotHealthy {
        name: String,
        secs: u64,
        what: String,
    },
}

impl HealthError {
    /// 1 for a check that failed, else the code of the cause.
    pub fn exit_code(&self) -> i32 {
        match self {
            // as the exec helper's other commands
            HealthError::Record(e) => match e.exit_code() {
                exit::MISSING => exit::MISSING,
                _ => exit::INVALID,
            },
            HealthError::Exec(e) => e.exit_code(),
            HealthError::NoCheck { .. } => exit::INVALID,
            HealthError::Write { .. } => exit::RUNTIME,
            HealthError::Failed { .. } | HealthError::NotHealthy { .. } => exit::FAILURE,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// `/run/syscontainer/health/NAME.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    pub status: Status,
    /// Counted failures in a row.
    pub failing_streak: u32,
    /// The last check's exit status; `None` when it timed out or could not
    /// run.
    pub last_exit: Option<i32>,
    /// Its output (stdout and stderr), at most [`MAX_OUTPUT`] bytes.
    pub last_output: String,
    /// When it ran, seconds since the epoch.
    pub last_time: u64,
    /// The run of the container the state is about: `PID:STARTTIME` of its
    /// init process.
    pub container: String,
}

/// The result of one run of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Option<i32>,
    pub output: String,
    /// Why there is no exit status: timed out, or could not run.
    pub error: Option<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.exit == Some(0)
    }

    /// "exited with status 1: OUTPUT", "timed out after 5s", ...
    pub fn describe(&self) -> String {
        let mut s = match (&self.error, self.exit) {
            (Some(e), _) => e.clone(),
            (None, Some(0)) => "passed".to_string(),
            (None, Some(c)) => format!("exited with status {c}"),
            (None, None) => "was killed by a signal".to_string(),
        };
        let out = self.output.trim();
        if !out.is_empty() {
            s.push_str(": ");
            s.push_str(out);
        }
        s
    }
}

/// What a check changed, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A failure; `counted` unless within the start period.
    Failed {
        counted: bool,
        streak: u32,
    },
    BecameHealthy,
    BecameUnhealthy,
}

/// The next state after `outcome`. Pure. `in_start_period`: the container
/// started less than the start period ago.
pub fn apply(
    prev: &HealthState,
    outcome: &Outcome,
    in_start_period: bool,
    retries: u32,
) -> (HealthState, Vec<Event>) {
    let mut next = HealthState {
        last_exit: outcome.exit,
        last_output: outcome.output.clone(),
        ..prev.clone()
    };
    let mut events = Vec::new();
    if outcome.passed() {
        next.failing_streak = 0;
        next.status = Status::Healthy;
        if prev.status != Status::Healthy {
            events.push(Event::BecameHealthy);
        }
    } else if in_start_period && prev.status == Status::Starting {
        events.push(Event::Failed {
            counted: false,
            streak: prev.failing_streak,
        });
    } else {
        next.failing_streak = prev.failing_streak.saturating_add(1);
        events.push(Event::Failed {
            counted: true,
            streak: next.failing_streak,
        });
        if next.failing_streak >= retries {
            next.status = Status::Unhealthy;
            if prev.status != Status::Unhealthy {
                events.push(Event::BecameUnhealthy);
            }
        }
    }
    (next, events)
}

pub fn state_path(root: &Root, name: &str) -> PathBuf {
    root.join(STATE_DIR).join(format!("{name}.json"))
}

/// The state of `name`, if a check has run.
pub fn read_state(root: &Root, name: &str) -> Option<HealthState> {
    let text = fs::read(state_path(root, name)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_state(root: &Root, name: &str, st: &HealthState) -> Result<(), HealthError> {
    let path = state_path(root, name);
    let err = |source| HealthError::Write {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(root.join(STATE_DIR)).map_err(err)?;
    let mut text = serde_json::to_string_pretty(st).expect("states serialize");
    text.push('\n');
    fsutil::write_replace(&path, text.as_bytes(), 0o644).map_err(err)
}

/// The container's run: `PID:STARTTIME` of its init, and its age; `None`
/// when it is not running.
pub fn container_run(runtime: &Runtime, name: &str) -> Option<(String, Duration)> {
    if runtime.status(name).as_deref() != Some("running") {
        return None;
    }
    let out = runtime
        .command(&["state", name])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let pid = v.get("pid")?.as_i64()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // starttime is field 22; fields 3.. follow the ")" that ends the comm
    let start: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // starttime is in USER_HZ ticks: 100 on every architecture we build for
    let hz = 100.0;
    let age = (uptime - start as f64 / hz).max(0.0);
    Some((format!("{pid}:{start}"), Duration::from_secs_f64(age)))
}

/// Run the check's command in the container, at most `check.timeout`.
pub fn run_check(runtime: &Runtime, name: &str, check: &HealthCheck) -> Outcome {
    let mut args: Vec<&str> = vec!["exec", name];
    args.extend(check.command.iter().map(String::as_str));
    let failed = |error: String| Outcome {
        exit: None,
        output: String::new(),
        error: Some(error),
    };
    let (mut reader, writer) = match io::pipe() {
        Ok(p) => p,
        Err(e) => return failed(format!("could not run: cannot make a pipe: {e}")),
    };
    let mut cmd = runtime.command(&args);
    match writer.try_clone() {
        Ok(w) => cmd.stdout(w).stderr(writer),
        Err(e) => return failed(format!("could not run: {e}")),
    };
    let child = cmd.spawn();
    drop(cmd); // our copies of the pipe's write end
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return failed(format!("could not run {}: {e}", runtime.path.display())),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut reader).take(MAX_OUTPUT as u64).read_to_end(&mut buf);
        let _ = tx.send(buf);
        // the rest is not kept, but read, so that the command never blocks
        let _ = io::copy(&mut reader, &mut io::sink());
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() >= check.timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return failed(format!("could not wait for the check: {e}")),
        }
    };
    let Some(status) = status else {
        stop(&mut child);
        let output = rx
            .recv_timeout(Duration::from_millis(100))
            .map(|b| text(&b))
            .unwrap_or_default();
        return Outcome {
            exit: None,
            output,
            error: Some(format!("timed out after {}", timespan(check.timeout))),
        };
    };
    // A process the check left behind may hold the pipe: do not wait long.
    let output = rx
        .recv_timeout(Duration::from_secs(1))
        .map(|b| text(&b))
        .unwrap_or_default();
    Outcome {
        exit: status.code(),
        output,
        error: None,
    }
}

/// Stop a runtime `exec` that timed out: SIGTERM (runc forwards it to the
/// process in the container), then SIGKILL.
fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_string()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A journal entry of `NAME.service`; also logged to stderr (the journal of
/// the unit that runs the helper). Without a journal, only logged.
fn report(root: &Root, name: &str, priority: u8, msg: &str) {
    match priority {
        journal::ERR => log::error!("{msg}"),
        journal::WARNING => log::warn!("{msg}"),
        _ => log::info!("{msg}"),
    }
    let unit = format!("{name}.service");
    let prio = priority.to_string();
    let fields = [
        ("MESSAGE", msg),
        ("PRIORITY", prio.as_str()),
        ("SYSLOG_IDENTIFIER", "syscontainer-health"),
        ("OBJECT_SYSTEMD_UNIT", unit.as_str()),
        ("SYSCONTAINER_NAME", name),
    ];
    if let Err(e) = journal::send_to(&root.join(journal::SOCKET), &fields) {
        log::debug!("cannot write to the journal: {e}");
    }
}

fn load_check(root: &Root, name: &str) -> Result<(Record, Option<HealthCheck>), HealthError> {
    crate::name::validate(name).map_err(|source| RecordError::Name {
        path: PathBuf::from(name),
        source,
    })?;
    let (rec, _) = Record::load(root, name)?;
    let check = rec.health_check();
    Ok((rec, check))
}

/// What `health` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The container is not running: nothing was checked.
    NotRunning,
    /// The check ran; the new state.
    Ran { passed: bool, state: HealthState },
}

/// `syscontainer-exec health NAME`: one check, the state updated, the
/// journal told, and `onFailure` applied when the container has become (or
/// stays) unhealthy. A failed check is an error ([`HealthError::Failed`],
/// exit status 1), so that `NAME-health.service` shows it too.
pub fn health(root: &Root, name: &str) -> Result<Checked, HealthError> {
    let (rec, check) = load_check(root, name)?;
    let check = check.ok_or_else(|| HealthError::NoCheck {
        name: name.to_string(),
    })?;
    let runtime = Runtime::new(&rec.runtime);
    let Some((run, age)) = container_run(&runtime, name) else {
        log::info!("container '{name}' is not running: no check");
        return Ok(Checked::NotRunning);
    };
    let prev = read_state(root, name)
        .filter(|s| s.container == run)
        .unwrap_or(HealthState {
            container: run,
            ..HealthState::default()
        });
    let outcome = run_check(&runtime, name, &check);
    let in_start = age < check.start_period;
    let (mut next, events) = apply(&prev, &outcome, in_start, check.retries);
    next.last_time = now_secs();
    write_state(root, name, &next)?;
    let what = outcome.describe();
    for e in &events {
        match e {
            Event::Failed { counted: false, .. } => report(
                root,
                name,
                journal::NOTICE,
                &format!(
                    "health check of {name} failed within its start period ({} of {}; not counted): {what}",
                    timespan(Duration::from_secs(age.as_secs())),
                    timespan(check.start_period)
                ),
            ),
            Event::Failed { streak, .. } => report(
                root,
                name,
                journal::WARNING,
                &format!(
                    "health check of {name} failed ({streak} of {} in a row): {what}",
                    check.retries
                ),
            ),
            Event::BecameHealthy => {
                report(root, name, journal::NOTICE, &format!("{name} is healthy"))
            }
            Event::BecameUnhealthy => report(
                root,
                name,
                journal::ERR,
                &format!(
                    "{name} is unhealthy: {} health checks failed in a row (onFailure: {})",
                    next.failing_streak, check.on_failure
                ),
            ),
        }
    }
    if next.status == Status::Unhealthy && check.on_failure == OnFailure::Kill {
        report(
            root,
            name,
            journal::ERR,
            &format!("killing {name} (onFailure: kill), so that its unit's Restart= applies"),
        );
        if let Err(e) = runtime.call(&["kill", name, "KILL"]) {
            // it may have gone in between
            if container_run(&runtime, name).is_some() {
                return Err(e.into());
            }
        }
    }
    if outcome.passed() {
        Ok(Checked::Ran {
            passed: true,
            state: next,
        })
    } else {
        Err(HealthError::Failed {
            name: name.to_string(),
            what,
        })
    }
}

/// `syscontainer-exec wait-healthy NAME` (ExecStartPost= after `wait`):
/// run the check until it passes, at most [`HealthCheck::wait_bound`], retrying every
/// half second (or every interval, when shorter). Returns at once without a
/// check, and with success when the unit's main process (`main_pid`) is
/// gone (systemd judges its exit status). Failures are not counted and no
/// `onFailure` applies: a start that never passes fails.
pub fn wait_healthy(root: &Root, name: &str, main_pid: Option<i32>) -> Result<(), HealthError> {
    let (rec, check) = load_check(root, name)?;
    let Some(check) = check else {
        return Ok(());
    };
    let runtime = Runtime::new(&rec.runtime);
    let bound = check.wait_bound();
    let pause = check.interval.min(Duration::from_millis(500));
    let start = Instant::now();
    let mut last: Option<Outcome> = None;
    let mut tries = 0u32;
    loop {
        if main_pid.is_some_and(|p| !crate::exec::process_alive(p)) {
            return Ok(());
        }
        if let Some((run, _)) = container_run(&runtime, name) {
            let outcome = run_check(&runtime, name, &check);
            tries += 1;
            let prev = HealthState {
                container: run,
                ..HealthState::default()
            };
            let (mut next, _) = apply(&prev, &outcome, true, check.retries);
            next.last_time = now_secs();
            write_state(root, name, &next)?;
            if outcome.passed() {
                log::info!(
                    "{name} is healthy (first check passed after {:.1} s, {tries} tries)",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if tries == 1 {
                log::info!(
                    "waiting for {name} to become healthy (at most {}): the first check {}",
                    timespan(bound),
                    outcome.describe()
                );
            }
            last = Some(outcome);
        }
        if start.elapsed() >= bound {
            return Err(HealthError::NotHealthy {
                name: name.to_string(),
                secs: bound.as_secs(),
                what: last.map_or("did not run: the container was not running".into(), |o| {
                    o.describe()
                }),
            });
        }
        std::thread::sleep(pause.min(bound.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(exit: i32) -> Outcome {
        Outcome {
            exit: Some(exit),
            output: format!("out{exit}"),
            error: None,
        }
    }

    #[test]
    fn start_period_then_retries() {
        let s0 = HealthState::default();
        // within the start period, failures do not count
        let (s1, e) = apply(&s0, &out(1), true, 2);
        assert_eq!((s1.status, s1.failing_streak), (Status::Starting, 0));
        assert_eq!(
            e,
            [Event::Failed {
                counted: false,
                streak: 0
            }]
        );
        assert_eq!((s1.last_exit, s1.last_output.as_str()), (Some(1), "out1"));
        // after it, they do
        let (s2, e) = apply(&s1, &out(1), false, 2);
        assert_eq!((s2.status, s2.failing_streak), (Status::Starting, 1));
        assert_eq!(
            e,
            [Event::Failed {
                counted: true,
                streak: 1
            }]
        );
        let (s3, e) = apply(&s2, &out(1), false, 2);
        assert_eq!((s3.status, s3.failing_streak), (Status::Unhealthy, 2));
        assert_eq!(
            e,
            [
                Event::Failed {
                    counted: true,
                    streak: 2
                },
                Event::BecameUnhealthy
            ]
        );
        // unhealthy stays, without a second transition
        let (s4, e) = apply(&s3, &out(1), false, 2);
        assert_eq!((s4.status, s4.failing_streak), (Status::Unhealthy, 3));
        assert_eq!(
            e,
            [Event::Failed {
                counted: true,
                streak: 3
            }]
        );
        // a pass resets
        let (s5, e) = apply(&s4, &out(0), false, 2);
        assert_eq!((s5.status, s5.failing_streak), (Status::Healthy, 0));
        assert_eq!(e, [Event::BecameHealthy]);
        let (_, e) = apply(&s5, &out(0), false, 2);
        assert!(e.is_empty());
        // once healthy, a failure counts even within the start period
        let (s6, e) = apply(&s5, &out(1), true, 2);
        assert_eq!((s6.status, s6.failing_streak), (Status::Healthy, 1));
        assert_eq!(
            e,
            [Event::Failed {
                counted: true,
                streak: 1
            }]
        );
    }

    #[test]
    fn timeouts_and_descriptions() {
        let o = Outcome {
            exit: None,
            output: String::new(),
            error: Some("timed out after 1s".into()),
        };
        assert!(!o.passed());
        assert_eq!(o.describe(), "timed out after 1s");
        assert_eq!(out(3).describe(), "exited with status 3: out3");
    }

    /// The real runtime path with a stand-in for runc: `sh` runs the argv
    /// after "exec NAME" (argv[1] is "exec", so `sh -c` is not usable).
    #[test]
    fn run_check_bounds_and_captures() {
        let d = tempfile::tempdir().unwrap();
        let fake = d.path().join("runtime");
        fs::write(&fake, "#!/bin/sh\nshift 2\nexec \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let rt = Runtime::new(&fake);
        let check = |cmd: &[&str], timeout_ms| HealthCheck {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(timeout_ms),
            start_period: Duration::ZERO,
            retries: 1,
            on_failure: OnFailure::None,
        };
        let o = run_check(
            &rt,
            "x",
            &check(&["/bin/sh", "-c", "echo out; echo err >&2; exit 7"], 5000),
        );
        assert_eq!(o.exit, Some(7));
        assert_eq!(o.output, "out\nerr");
        let o = run_check(&rt, "x", &check(&["/bin/true"], 5000));
        assert!(o.passed(), "{o:?}");
        let t = Instant::now();
        let o = run_check(&rt, "x", &check(&["/bin/sleep", "10"], 300));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(
            (o.exit, o.error.as_deref()),
            (None, Some("timed out after 300ms"))
        );
        let o = run_check(
            &rt,
            "x",
            &check(
                &["/bin/sh", "-c", "head -c 10000 /dev/zero | tr '\\0' a"],
                5000,
            ),
        );
        assert_eq!((o.exit, o.output.len()), (Some(0), MAX_OUTPUT));
    }

    #[test]
    fn state_file_is_written_whole() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        assert_eq!(read_state(&root, "a"), None);
        let st = HealthState {
            status: Status::Unhealthy,
            failing_streak: 3,
            last_exit: Some(1),
            last_output: "no".into(),
            last_time: 5,
            container: "1:2".into(),
        };
        write_state(&root, "a", &st).unwrap();
        assert_eq!(read_state(&root, "a"), Some(st));
        let text = fs::read_to_string(state_path(&root, "a")).unwrap();
        assert!(text.contains("\"status\": \"unhealthy\""), "{text}");
    }
}
