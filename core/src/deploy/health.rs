//! The health gate of `containers update`: the restarted unit must become
//! `active` within a timeout, then stay active, as the same process, for a
//! settle time. A version that starts and crashes a moment later fails the
//! gate, although systemd saw it active (and may have restarted it since).
//! With a health check declared ([`crate::health`]), the check must also pass
//! once the settle time is over (the restart itself returned only once a
//! first check had passed: `wait-healthy`).

use std::process::Command;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::{DeployError, Systemd};
use crate::exec::Runtime;
use crate::health::HealthSpec;
use crate::health_check;
use crate::paths::Root;
use crate::record::Record;

/// Why a restarted unit failed the gate.
#[derive(Debug, Error)]
pub enum Unhealthy {
    #[error("systemctl restart failed")]
    Restart {
        #[source]
        source: Box<DeployError>,
    },
    #[error("the unit was '{state}' after {secs} s (--timeout)")]
    NotActive { state: String, secs: u64 },
    #[error(
        "the unit became active, then left 'active' after {:.1} s (it was '{state}'; --settle {settle_secs} s)",
        .after.as_secs_f64()
    )]
    Left {
        state: String,
        after: Duration,
        settle_secs: u64,
    },
    #[error(
        "the unit became active, then restarted after {:.1} s ({what} changed; --settle {settle_secs} s)",
        .after.as_secs_f64()
    )]
    Restarted {
        what: &'static str,
        after: Duration,
        settle_secs: u64,
    },
    #[error("the unit stayed active, but its health check {what}")]
    Check { what: String },
}

/// The record's `health` with the `--health-*` options over it.
pub(crate) fn merged(opts: Option<&HealthSpec>, cur: Option<&HealthSpec>) -> Option<HealthSpec> {
    match (opts, cur) {
        (None, c) => c.cloned(),
        (Some(o), None) => Some(o.clone()),
        (Some(o), Some(c)) => Some(o.over(c)),
    }
}

/// The health check of `name`, when one is declared, must pass now (one run,
/// bounded by its timeout). No check: passes.
pub(crate) fn check_passes(root: &Root, name: &str) -> Result<(), Unhealthy> {
    let Ok((rec, _)) = Record::load(root, name) else {
        return Ok(()); // the gate judges the unit; the record is ours
    };
    let Some(check) = rec.health_check() else {
        return Ok(());
    };
    let o = health_check::run_check(&Runtime::new(&rec.runtime), name, &check);
    if o.passed() {
        Ok(())
    } else {
        Err(Unhealthy::Check { what: o.describe() })
    }
}

/// The properties that tell one run of a unit from the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Run {
    state: String,
    main_pid: String,
    n_restarts: String,
    active_enter: String,
    invocation: String,
}

impl Run {
    const PROPS: [&'static str; 5] = [
        "ActiveState",
        "MainPID",
        "NRestarts",
        "ActiveEnterTimestampMonotonic",
        "InvocationID",
    ];

    fn parse(text: &str) -> Run {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or_default()
                .to_string()
        };
        Run {
            state: field("ActiveState"),
            main_pid: field("MainPID"),
            n_restarts: field("NRestarts"),
            active_enter: field("ActiveEnterTimestampMonotonic"),
            invocation: field("InvocationID"),
        }
    }

    /// What differs between two observations of an active unit, if it is
    /// not the same run.
    fn changed(&self, now: &Run) -> Option<&'static str> {
        if self.main_pid != now.main_pid {
            Some("MainPID")
        } else if self.n_restarts != now.n_restarts {
            Some("NRestarts")
        } else if self.active_enter != now.active_enter {
            Some("ActiveEnterTimestamp")
        } else if self.invocation != now.invocation {
            Some("InvocationID")
        } else {
            None
        }
    }
}

impl Systemd {
    fn run_of(&self, name: &str) -> Run {
        let mut c = Command::new("systemctl");
        c.arg("show");
        for p in Run::PROPS {
            c.args(["-p", p]);
        }
        match c.arg(format!("{name}.service")).output() {
            Ok(out) => Run::parse(&String::from_utf8_lossy(&out.stdout)),
            Err(_) => Run::default(),
        }
    }

    /// Wait until the unit is `active` (not merely activating), at most
    /// `timeout`; then watch it for `settle`: it must stay active, with the
    /// same MainPID, NRestarts, ActiveEnterTimestamp and InvocationID (an
    /// automatic restart changes them).
    pub fn wait_healthy(
        &self,
        name: &str,
        timeout: Duration,
        settle: Duration,
    ) -> Result<(), Unhealthy> {
        if !self.running {
            return Ok(());
        }
        let start = Instant::now();
        let first = loop {
            let r = self.run_of(name);
            if r.state == "active" {
                break r;
            }
            if start.elapsed() >= timeout {
                return Err(Unhealthy::NotActive {
                    state: r.state,
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let since = Instant::now();
        let settle_secs = settle.as_secs();
        loop {
            let left = settle.saturating_sub(since.elapsed());
            let now = self.run_of(name);
            if now.state != "active" {
                return Err(Unhealthy::Left {
                    state: now.state,
                    after: since.elapsed(),
                    settle_secs,
                });
            }
            if let Some(what) = first.changed(&now) {
                return Err(Unhealthy::Restarted {
                    what,
                    after: since.elapsed(),
                    settle_secs,
                });
            }
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_a_new_run() {
        let a = Run::parse(
            "ActiveState=active\nMainPID=42\nNRestarts=0\nActiveEnterTimestampMonotonic=100\nInvocationID=ab\n",
        );
        assert_eq!(a.state, "active");
        assert_eq!(a.changed(&a.clone()), None);
        let b = Run {
            n_restarts: "1".into(),
            ..a.clone()
        };
        assert_eq!(a.changed(&b), Some("NRestarts"));
        let c = Run {
            main_pid: "43".into(),
            ..a.clone()
        };
        assert_eq!(a.changed(&c), Some("MainPID"));
        let d = Run {
            active_enter: "200".into(),
            ..a.clone()
        };
        assert_eq!(a.changed(&d), Some("ActiveEnterTimestamp"));
    }
}
