//! `containers update`, `containers rollback`, `enable`, `disable`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::hostfs;
use super::install::prepare_slot;
use super::{
    checkout_of, io_err, link_path, slot_of, slot_path, slots, DeployError, ImageSource, Systemd,
};
use crate::bundle::{self, EXPORTS};
use crate::fsutil;
use crate::paths::Root;
use crate::record::Record;
use crate::vars;

#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// `--set K=V`, merged over the current values.
    pub set: Vec<String>,
    /// `--rebase IMAGE`: switch to another image.
    pub rebase: Option<String>,
    /// How long a restarted unit may take to become active.
    pub timeout: Duration,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            set: Vec::new(),
            rebase: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A switch between deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    pub from: String,
    pub to: String,
    /// The unit was running and has been restarted.
    pub restarted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Neither the image nor the values change: "Latest version already installed."
    UpToDate,
    Updated(Switched),
}

/// Make `rec` the active deployment: write the record (the commit point),
/// switch the symlink atomically, reload. A crash in between leaves the link
/// behind the record; [`slots::sync_link`] repairs it.
fn activate(root: &Root, rec: &Record, systemd: &Systemd) -> Result<(), DeployError> {
    rec.write(root)?;
    crate::failpoint!("activate.record-written");
    let link = root.join(link_path(&checkout_of(rec), &rec.name));
    let target = Path::new(&rec.deployment)
        .file_name()
        .expect("deployment has a file name")
        .to_owned();
    fsutil::symlink_atomic(Path::new(&target), &link).map_err(io_err("cannot link", &link))?;
    crate::failpoint!("activate.linked");
    systemd.daemon_reload()
}

/// `syscontainer containers update NAME`: check out the new image (or the
/// same one with new values) into the other slot, keeping values and UUID,
/// switch, and restart if running. If the restarted unit does not become
/// active within `opts.timeout`, roll back and report the failure. The new
/// slot goes beside the current one ([`checkout_of`] the record).
pub fn update(
    root: &Root,
    src: &dyn ImageSource,
    name: &str,
    opts: &UpdateOptions,
) -> Result<UpdateOutcome, DeployError> {
    let _lock = slots::lock(root, name)?;
    let (cur, _) = Record::load(root, name)?;
    slots::sync_link(root, &cur)?;
    let mut values = cur.values.clone();
    values.extend(vars::parse_set(&opts.set)?);
    let img = src.resolve(opts.rebase.as_deref().unwrap_or(&cur.image))?;
    if img.image_id == cur.image_id && img.name == cur.image && values == cur.values {
        return Ok(UpdateOutcome::UpToDate);
    }
    let other = 1 - slot_of(&cur.deployment);
    let co = checkout_of(&cur);
    // The previous deployment (or what an interrupted update left), with
    // its host files that the current one does not have.
    slots::remove_slot(root, &co, name, other, &cur.host_files)?;
    crate::failpoint!("update.other-removed");
    let mut base = cur.clone();
    base.values = values;
    // The new slot is hardlinked from this source's repo.
    base.repo = src.repo().or(base.repo);
    let prep = prepare_slot(root, src, &img, &base, &co, other)?;
    let mut rec = prep.record;
    let mut created = Vec::new();
    rec.host_files = match hostfs::install(root, &prep.hostfs, &cur.host_files, &mut created) {
        Ok(h) => h,
        Err(e) => {
            let _ = slots::remove_slot(root, &co, name, other, &cur.host_files);
            return Err(e);
        }
    };
    crate::failpoint!("update.hostfs-installed");

    let systemd = Systemd::detect(root);
    let was_active = systemd.is_active(name);
    activate(root, &rec, &systemd)?;
    // Only now that the new deployment is committed: the old host files.
    hostfs::remove(root, &cur.host_files, &rec.host_files);
    crate::failpoint!("update.old-hostfs-removed");
    let mut sw = Switched {
        from: cur.deployment.clone(),
        to: rec.deployment.clone(),
        restarted: false,
    };
    if was_active && !rec.no_container_service {
        let started = systemd.unit("restart", name).map_err(|e| e.to_string());
        let state = started.and_then(|()| systemd.wait_active(name, opts.timeout));
        if let Err(state) = state {
            log::error!(
                "'{name}' did not become active on {}; rolling back",
                rec.deployment
            );
            activate(root, &cur, &systemd)?;
            // The failed version may have hit the start rate limit
            // (Restart=on-failure in a crash loop): a start would be refused.
            systemd.reset_failed(name);
            systemd.unit("restart", name)?;
            return Err(DeployError::UpdateFailed {
                name: name.to_string(),
                deployment: rec.deployment,
                previous: cur.deployment,
                state,
                secs: opts.timeout.as_secs(),
            });
        }
        sw.restarted = true;
    }
    Ok(UpdateOutcome::Updated(sw))
}

/// `syscontainer containers rollback NAME`: switch to the other slot, with
/// the values it was installed with, and restart if running.
pub fn rollback(root: &Root, name: &str) -> Result<Switched, DeployError> {
    let _lock = slots::lock(root, name)?;
    let (cur, _) = Record::load(root, name)?;
    slots::sync_link(root, &cur)?;
    let other = 1 - slot_of(&cur.deployment);
    let logical = slot_path(&checkout_of(&cur), name, other);
    let dir = root.join(&logical);
    if !dir.join(bundle::INFO_FILE).is_file() || !dir.join("rootfs").is_dir() {
        return Err(DeployError::NoOtherDeployment {
            name: name.to_string(),
            path: logical,
        });
    }
    let info = bundle::load_info(&dir)?;
    let rootfs = dir.join("rootfs");
    let manifest = super::Manifest::load(&rootfs)?;
    let mut rec = cur.clone();
    rec.deployment = logical.display().to_string();
    rec.image = info.image;
    rec.image_id = info.image_id;
    rec.values = info.values;
    rec.default_values = info.default_values;
    rec.no_container_service = manifest.no_container_service;
    let st = rootfs.join(EXPORTS).join("service.template");
    rec.service_template = match fs::read_to_string(&st) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("cannot read", &st)(e)),
    };
    let systemd = Systemd::detect(root);
    let was_active = systemd.is_active(name);
    crate::failpoint!("rollback.checked");
    activate(root, &rec, &systemd)?;
    if was_active && !rec.no_container_service {
        systemd.unit("restart", name)?;
    }
    Ok(Switched {
        from: cur.deployment,
        to: rec.deployment,
        restarted: was_active,
    })
}

/// `syscontainer enable|disable NAME`: boot activation, in the record.
/// Returns `false` when nothing changed.
pub fn set_enabled(root: &Root, name: &str, enabled: bool) -> Result<bool, DeployError> {
    let _lock = slots::lock(root, name)?;
    let (mut rec, _) = Record::load(root, name)?;
    if rec.enabled == enabled {
        return Ok(false);
    }
    rec.enabled = enabled;
    rec.write(root)?;
    Systemd::detect(root).daemon_reload()?;
    Ok(true)
}
