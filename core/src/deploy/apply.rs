//! `syscontainer apply NAME`: converge a declared container on its intent
//! file. The `ExecStartPre=` of a container that is not deployed yet, whose
//! intent file was edited, or whose applied edit is on trial; also usable by
//! hand.
//!
//! - Not deployed: install the (pulled) image into slot 0, write the state,
//!   reload systemd so that the unit is rendered from the image's template.
//! - Edited: update into the other slot (the steps of `containers update`),
//!   and put the edit on trial: the unit's `ExecStartPost=CLI apply
//!   --confirm NAME` ([`confirm`]) keeps it once the container stayed up for
//!   the settle time, and switches back otherwise. An edit that cannot be
//!   deployed (a value that fails to render, ...) is refused: the last good
//!   deployment stays, and the state says why.
//! - A trial whose start never got confirmed (the unit failed, and
//!   `Restart=` started it again) is rolled back first.
//!
//! Pulls are the CLI's: [`plan`] says what is needed, the CLI pulls, then
//! calls [`install`] or [`edit`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::update::{stage, switch};
use super::{install::check_runtime, slots, DeployError, ImageStore, InstallOptions, Systemd};
use crate::exec::Runtime;
use crate::paths;
use crate::paths::Root;
use crate::record::state::{sha256_hex, Refused, Trial};
use crate::record::{Intent, IntentFile, Record, State};

/// What [`plan`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The intent is what was applied: nothing to do (no network).
    Nothing,
    /// Declared, not deployed: pull `intent.image`, then [`install`].
    Install { path: PathBuf, intent: Box<Intent> },
    /// The intent file changed: pull when `image_changed`, then [`edit`].
    Edit {
        path: PathBuf,
        intent: Box<Intent>,
        sha256: String,
        image_changed: bool,
    },
    /// An applied edit's start was never confirmed: [`rollback_trial`].
    FailedTrial,
    /// The intent file cannot be used, or this edit was refused before: the
    /// last good deployment stays.
    Refused { path: PathBuf, reason: String },
    /// The intent file is gone: `syscontainer reconcile` removes it.
    Removing,
}

/// Compare the intent file of `name` with its state.
pub fn plan(root: &Root, name: &str) -> Result<Plan, DeployError> {
    crate::name::validate(name)?;
    let st = State::load(root, name)?;
    if st.as_ref().is_some_and(|s| s.trial.is_some()) {
        return Ok(Plan::FailedTrial);
    }
    let (path, bytes) = match IntentFile::read(root, name)? {
        IntentFile::File { path, bytes } => (path, bytes),
        IntentFile::None | IntentFile::Masked(_) if st.is_some() => return Ok(Plan::Removing),
        IntentFile::None => {
            return Err(crate::record::RecordError::NotFound {
                name: name.to_string(),
                dirs: paths::RECORD_DIRS.join(", "),
            }
            .into())
        }
        IntentFile::Masked(path) => {
            return Err(crate::record::RecordError::Masked {
                name: name.to_string(),
                path,
            }
            .into())
        }
    };
    let parsed = Intent::parse(&path, &bytes);
    let Some(st) = st else {
        let (intent, warnings) = parsed?;
        for w in warnings {
            log::warn!("{w}");
        }
        if intent.is_legacy() {
            return Ok(Plan::Nothing); // a first-wave record: deployed
        }
        return Ok(Plan::Install {
            path,
            intent: Box::new(intent),
        });
    };
    let intent = match parsed {
        Err(e) => {
            return Ok(Plan::Refused {
                path,
                reason: e.to_string(),
            })
        }
        Ok((i, _)) => i,
    };
    if intent.same(&st.applied) {
        return Ok(Plan::Nothing);
    }
    if let Some(r) = st.refused.as_ref().filter(|r| r.intent.same(&intent)) {
        return Ok(Plan::Refused {
            path,
            reason: r.reason.clone(),
        });
    }
    Ok(Plan::Edit {
        path,
        image_changed: intent.image != st.applied.image,
        intent: Box::new(intent.normalized()),
        sha256: sha256_hex(&bytes),
    })
}

/// Deploy a declared container for the first time: `image` (stored) into
/// slot 0 of `checkout_root`, not enabled or started here (its unit is
/// starting), the state written, systemd reloaded.
pub fn install(
    root: &Root,
    src: &dyn ImageStore,
    name: &str,
    intent: &Intent,
    image: &str,
    checkout_root: &Path,
) -> Result<Record, DeployError> {
    let opts = InstallOptions {
        name: Some(name.to_string()),
        set: intent
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        runtime: Some(intent.runtime.clone()),
        no_enable: !intent.enabled,
        now: false,
        checkout_root: Some(checkout_root.to_path_buf()),
        auto_update: intent.auto_update,
        declared: true,
        health: intent.health.clone(),
        plain_http: intent.image.starts_with(crate::imgref::HTTP_SCHEME),
    };
    let mut rec = super::install(root, src, image, &opts)?;
    if rec.target != intent.target {
        let _lock = slots::lock(root, name)?;
        rec.target = intent.target.clone();
        rec.write(root)?;
        Systemd::detect(root).daemon_reload()?;
    }
    Ok(rec)
}

/// What [`edit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// Only settings the deployment does not depend on changed (enabled,
    /// target, runtime, autoUpdate, ...): applied at once.
    Settings,
    /// Deployed into the other slot, on trial.
    Staged { from: String, to: String },
    /// Refused; the last good deployment stays.
    Refused { reason: String },
}

/// Apply an edited intent: `image` is the stored image it names (pulled
/// when the reference changed, else the deployed one's).
pub fn edit(
    root: &Root,
    src: &dyn ImageStore,
    name: &str,
    intent: &Intent,
    sha256: &str,
    image: &str,
) -> Result<Edited, DeployError> {
    let _lock = slots::lock(root, name)?;
    let Some(st) = State::load(root, name)? else {
        return Err(crate::record::RecordError::Pending {
            name: name.to_string(),
            path: crate::record::state::state_path(name),
        }
        .into());
    };
    let cur = st.record.clone();
    slots::sync_link(root, &cur)?;
    let systemd = Systemd::detect(root);
    let mut base = cur.clone();
    base.values = intent.values.clone();
    base.enabled = intent.enabled;
    base.target = intent.target.clone();
    base.runtime = intent.runtime.clone();
    base.auto_update = intent.auto_update;
    base.health = intent.health.clone();
    base.plain_http = intent.image.starts_with(crate::imgref::HTTP_SCHEME);
    let staged = check_runtime(&base.runtime)
        .and_then(|()| src.resolve(image))
        .and_then(|img| stage(root, src, &cur, base.clone(), &img, &systemd));
    let mut st = State::load(root, name)?.unwrap_or(st);
    let out = match staged {
        Ok(None) => {
            st.record.enabled = base.enabled;
            st.record.target = base.target;
            st.record.runtime = base.runtime;
            st.record.auto_update = base.auto_update;
            st.applied = intent.normalized();
            st.refused = None;
            Edited::Settings
        }
        Ok(Some((rec, _kept))) => {
            st.trial = Some(Trial {
                previous: cur.clone(),
                previous_applied: st.applied.clone(),
                sha256: sha256.to_string(),
                settle: intent.settle_secs(),
            });
            st.applied = intent.normalized();
            st.refused = None;
            Edited::Staged {
                from: cur.deployment,
                to: rec.deployment,
            }
        }
        Err(e) => {
            let reason = format!("{:#}", anyhow_like(&e));
            st.refused = Some(Refused {
                sha256: sha256.to_string(),
                intent: intent.normalized(),
                reason: reason.clone(),
            });
            Edited::Refused { reason }
        }
    };
    st.write(root)?;
    systemd.daemon_reload()?;
    Ok(out)
}

/// An error and its causes, on one line.
fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// Switch back from an applied edit on trial, and record the edit as
/// refused with `reason` (it is not applied again until the file changes).
/// Nothing to do without a trial.
pub fn rollback_trial(root: &Root, name: &str, reason: &str) -> Result<bool, DeployError> {
    let _lock = slots::lock(root, name)?;
    let Some(st) = State::load(root, name)? else {
        return Ok(false);
    };
    let Some(trial) = st.trial.clone() else {
        return Ok(false);
    };
    let systemd = Systemd::detect(root);
    switch(root, &st.record, trial.previous.clone(), &systemd)?;
    let mut now = State::load(root, name)?.unwrap_or(st.clone());
    now.refused = Some(Refused {
        sha256: trial.sha256,
        intent: st.applied.clone(),
        reason: reason.to_string(),
    });
    now.applied = trial.previous_applied;
    now.trial = None;
    now.write(root)?;
    systemd.daemon_reload()?;
    Ok(true)
}

/// `apply --confirm NAME` (`ExecStartPost=` while an edit is on trial): the
/// container must stay running for the trial's settle time; then the edit
/// is kept. Otherwise it is rolled back ([`rollback_trial`]) and the error
/// says why (the unit fails, and `Restart=` starts the previous version).
pub fn confirm(root: &Root, name: &str, main_pid: Option<i32>) -> Result<(), DeployError> {
    let Some(st) = State::load(root, name)? else {
        return Ok(());
    };
    let Some(trial) = &st.trial else {
        return Ok(());
    };
    let runtime = Runtime::new(&st.record.runtime);
    let settle = Duration::from_secs(trial.settle);
    let start = Instant::now();
    // A Type=oneshot unit's ExecStartPost= runs after its main process
    // exited: it passed when that exit was a success.
    let systemd = Systemd::detect(root);
    if main_pid.is_none() && systemd.property(name, "Type").as_deref() == Some("oneshot") {
        match systemd.property(name, "ExecMainStatus").as_deref() {
            Some("0") => return keep(root, name),
            other => {
                let reason = format!(
                    "the main process exited with status {}",
                    other.unwrap_or("unknown")
                );
                rollback_trial(root, name, &reason)?;
                return Err(DeployError::TrialFailed {
                    name: name.to_string(),
                    reason,
                });
            }
        }
    }
    loop {
        // The unit's main process (`$MAINPID`), else the container.
        let down = match main_pid {
            Some(pid) => {
                (!crate::exec::process_alive(pid)).then(|| format!("main process {pid} gone"))
            }
            None => match runtime.status(name).as_deref() {
                Some("running" | "paused") => None,
                other => Some(format!("container {}", other.unwrap_or("gone"))),
            },
        };
        if let Some(what) = down {
            let reason = format!(
                "{what} {:.1}s after the start of the edit (it must stay up for {}s)",
                start.elapsed().as_secs_f64(),
                trial.settle
            );
            rollback_trial(root, name, &reason)?;
            return Err(DeployError::TrialFailed {
                name: name.to_string(),
                reason,
            });
        }
        if start.elapsed() >= settle {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    keep(root, name)
}

/// Keep an applied edit: end its trial.
fn keep(root: &Root, name: &str) -> Result<(), DeployError> {
    let _lock = slots::lock(root, name)?;
    if let Some(mut st) = State::load(root, name)? {
        if st.trial.take().is_some() {
            st.write(root)?;
            Systemd::detect(root).daemon_reload()?;
        }
    }
    Ok(())
}
