//! `syscontainer apply [--confirm] NAME` and `syscontainer reconcile`:
//! declared containers converge on their intent files.

use anyhow::{Context, Result};
use clap::Args;
use syscontainer::deploy::apply::{self, Edited, Plan};
use syscontainer::deploy::{self, Systemd};
use syscontainer::record::{self, Decl, FoundState, Intent};

use crate::Settings;

/// Converge a declared container on its record file
///
/// Deploy it when it is not yet (pulling its image), apply an edit of the
/// file as an update into the other slot (kept once `--confirm` saw it stay
/// up), or do nothing when the file is what was applied. The generated unit
/// runs it before each start that needs it (ExecStartPre=); a pull that
/// fails exits 1, so that Restart= retries.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Confirm an applied edit: the container must stay running for the
    /// settle time (the unit's ExecStartPost=); otherwise switch back
    #[arg(long)]
    pub confirm: bool,
    /// Container name
    pub name: String,
}

/// Remove the containers whose record file was deleted or masked
///
/// Stops the unit, uninstalls, removes the state, then rewrites the
/// generator's cache (/etc/syscontainer/state/generator.cache).
/// syscontainer-reconcile.path runs it when a record directory changes.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only rewrite the generator's cache, remove nothing (the package runs
    /// this after an upgrade, whose new build does not use the old cache)
    #[arg(long)]
    pub cache_only: bool,
}

pub fn apply(settings: &Settings, a: ApplyArgs) -> Result<()> {
    let root = &settings.root;
    let name = a.name.as_str();
    if a.confirm {
        return apply::confirm(root, name, settings.main_pid)
            .with_context(|| format!("cannot confirm {name}"));
    }
    match apply::plan(root, name).with_context(|| format!("cannot apply {name}"))? {
        Plan::Nothing => log::debug!("{name}: up to date"),
        Plan::Removing => {
            log::warn!("{name}: its record is gone; syscontainer reconcile removes the container")
        }
        Plan::Refused { path, reason } => {
            log::warn!("edit of {} refused: {reason}", path.display())
        }
        // By hand, while the unit runs the edit: its own start confirms it.
        Plan::FailedTrial if !in_unit(name) && Systemd::detect(root).is_active(name) => {
            println!("{name}: an applied edit is on trial; its start confirms it")
        }
        Plan::FailedTrial => {
            let reason = "the applied edit did not start (its start was not confirmed)";
            apply::rollback_trial(root, name, reason)
                .with_context(|| format!("cannot roll back {name}"))?;
            log::error!("{name}: {reason}; rolled back to the previous deployment");
        }
        Plan::Install { path, intent } => {
            let image = pull(settings, &intent)
                .inspect_err(|e| notify_status(settings, &format!("{e:#}")))?;
            let src = settings.store_source()?;
            let rec = apply::install(
                root,
                &src,
                name,
                &intent,
                &image,
                &settings.location.checkout_root(),
            )
            .with_context(|| format!("cannot deploy {name} from {}", path.display()))
            .inspect_err(|e| notify_status(settings, &format!("{e:#}")))?;
            println!(
                "Deployed {} as {} ({})",
                rec.image, rec.name, rec.deployment
            );
        }
        Plan::Edit {
            path,
            intent,
            sha256,
            image_changed,
        } => {
            let image = if image_changed {
                match pull(settings, &intent) {
                    Ok(i) => i,
                    Err(e) => {
                        // Not recorded: the next start tries again.
                        log::warn!(
                            "edit of {} refused: {e:#}; the next start tries again",
                            path.display()
                        );
                        return Ok(());
                    }
                }
            } else {
                record::Record::load(root, name)?.0.image
            };
            let src = settings.store_source()?;
            match apply::edit(root, &src, name, &intent, &sha256, &image)
                .with_context(|| format!("cannot apply {}", path.display()))?
            {
                Edited::Refused { reason } => {
                    log::warn!("edit of {} refused: {reason}", path.display())
                }
                Edited::Settings => println!("{name}: applied {}", path.display()),
                Edited::Staged { from, to } => {
                    println!(
                        "{name}: applied {} (from {from} to {to}, on trial)",
                        path.display()
                    );
                    // By hand, on a running unit: restart it to run the edit.
                    let systemd = Systemd::detect(root);
                    if !in_unit(name) && systemd.is_active(name) {
                        systemd.unit("restart", name)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Tell systemd why the start is failing (`STATUS=`, shown by `systemctl
/// status`), when it listens (`NOTIFY_SOCKET`; the pending unit has
/// `NotifyAccess=all`). Best effort.
fn notify_status(settings: &Settings, msg: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(sock) = settings.notify_socket.as_deref() else {
        return;
    };
    let addr = match sock.strip_prefix('@') {
        Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()),
        None => SocketAddr::from_pathname(sock),
    };
    let line: String = msg
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    if let (Ok(addr), Ok(s)) = (addr, UnixDatagram::unbound()) {
        let _ = s.send_to_addr(format!("STATUS={line}").as_bytes(), &addr);
    }
}

/// This process runs in `NAME.service` (its ExecStartPre=).
fn in_unit(name: &str) -> bool {
    let unit = format!("/{name}.service");
    std::fs::read_to_string("/proc/self/cgroup")
        .is_ok_and(|c| c.lines().any(|l| l.trim_end().ends_with(&unit)))
}

/// Pull the intent's image if it is not stored (with its authfile). The
/// error is a plain message, so that its exit code is 1 (a unit's
/// RestartPreventExitStatus= is 3 and 4): Restart= retries.
fn pull(settings: &Settings, intent: &Intent) -> Result<String> {
    crate::containers::pull_if_needed(
        settings,
        &intent.image,
        None,
        intent.authfile.clone(),
        true,
        syscontainer::source::LowSpeed::default(),
        &crate::images::TrustArgs::default(),
    )
    .map_err(|e| anyhow::anyhow!("cannot pull {}: {e:#}", intent.image))
}

pub fn reconcile(settings: &Settings, a: ReconcileArgs) -> Result<()> {
    let root = &settings.root;
    if a.cache_only {
        return syscontainer::gencache::refresh(root).with_context(|| {
            format!(
                "cannot write the generator's cache {}",
                root.join(syscontainer::gencache::CACHE_FILE).display()
            )
        });
    }
    let (found, errors) = record::discover(root);
    for e in errors {
        log::warn!("{e}");
    }
    let mut failed = 0;
    for f in found {
        if !matches!(
            f.state,
            FoundState::Ok {
                decl: Decl::Removing,
                ..
            }
        ) {
            continue;
        }
        match deploy::uninstall(root, &f.name, &settings.location.checkout_root()) {
            Ok(rep) => {
                println!("Removed {} (its record is gone)", f.name);
                for k in rep.kept_host_files {
                    println!("{k} was modified since it was installed; left in place");
                }
            }
            // Removed meanwhile (by the uninstall that deleted the record).
            Err(e) if e.exit_code() == syscontainer::exit::MISSING => {}
            Err(e) => {
                eprintln!("{}: {:#}", f.name, anyhow::Error::new(e));
                failed += 1;
            }
        }
    }
    // The generator's cache, for the containers as they are now (every
    // state write refreshes it too; this also renews one that another
    // build of syscontainer wrote).
    syscontainer::gencache::refresh_or_log(root);
    if failed > 0 {
        anyhow::bail!("{failed} container(s) could not be removed");
    }
    Ok(())
}
