//! `containers update`, `containers rollback`, `enable`, `disable`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::health::Unhealthy;
use super::hostfs::{self, Conflict};
use super::install::prepare_slot;
use super::{
    checkout_of, io_err, link_path, slot_of, slot_path, slots, DeployError, ImageSpec, ImageStore,
    Manifest, Systemd,
};
use crate::bundle::{self, EXPORTS};
use crate::fsutil;
use crate::paths::Root;
use crate::record::{HostFile, Record};
use crate::vars::{self, Vars};

#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// `--set K=V`, merged over the current values.
    pub set: Vec<String>,
    /// `--rebase IMAGE`: switch to another image.
    pub rebase: Option<String>,
    /// How long a restarted unit may take to become active.
    pub timeout: Duration,
    /// How long it must then stay active, as the same process, to pass.
    pub settle: Duration,
    /// `--health-*`, merged over the record's `health`, field by field.
    pub health: Option<crate::health::HealthSpec>,
    /// With `rebase`: the new image came from an `http:` reference.
    pub plain_http: bool,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            set: Vec::new(),
            rebase: None,
            timeout: Duration::from_secs(30),
            settle: Duration::from_secs(10),
            health: None,
            plain_http: false,
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
    /// Host files of `to` that the admin changed: left as they are, not
    /// restored (rollback).
    pub not_restored: Vec<String>,
    /// Host files of `from` that the admin changed: left in place, not
    /// removed.
    pub kept_host_files: Vec<String>,
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
/// active within `opts.timeout`, or does not stay active for `opts.settle`
/// after that, roll back (host files included) and report the failure. The
/// new slot goes beside the current one ([`checkout_of`] the record).
pub fn update(
    root: &Root,
    src: &dyn ImageStore,
    name: &str,
    opts: &UpdateOptions,
) -> Result<UpdateOutcome, DeployError> {
    let _lock = slots::lock(root, name)?;
    let (cur, _) = Record::load(root, name)?;
    slots::sync_link(root, &cur)?;
    let mut values = cur.values.clone();
    values.extend(vars::parse_set(&opts.set)?);
    let img = src.resolve(opts.rebase.as_deref().unwrap_or(&cur.image))?;
    let health = super::health::merged(opts.health.as_ref(), cur.health.as_ref());
    let intent_changed = img.name != cur.image || values != cur.values || health != cur.health;
    if intent_changed {
        // The intent file changes too: only when it is ours.
        Record::check_ours(root, name)?;
    }
    let mut base = cur.clone();
    base.values = values;
    base.health = health;
    if opts.rebase.is_some() {
        base.plain_http = opts.plain_http;
    }
    let systemd = Systemd::detect(root);
    let was_active = systemd.is_active(name);
    let Some((rec, kept)) = stage(root, src, &cur, base, &img, &systemd)? else {
        return Ok(UpdateOutcome::UpToDate);
    };
    if intent_changed {
        crate::record::state::sync_own_intent(root, name)?;
    }
    let mut sw = Switched {
        from: cur.deployment.clone(),
        to: rec.deployment.clone(),
        restarted: false,
        not_restored: Vec::new(),
        kept_host_files: kept,
    };
    if was_active && !rec.no_container_service {
        let health = match systemd.unit("restart", name) {
            Ok(()) => systemd
                .wait_healthy(name, opts.timeout, opts.settle)
                .and_then(|()| super::health::check_passes(root, name)),
            Err(e) => Err(Unhealthy::Restart {
                source: Box::new(e),
            }),
        };
        if let Err(reason) = health {
            log::error!(
                "'{name}' failed on {} ({reason}); rolling back",
                rec.deployment
            );
            switch(root, &rec, cur.clone(), &systemd)?;
            if intent_changed {
                crate::record::state::sync_own_intent(root, name)?;
            }
            // The failed version may have hit the start rate limit
            // (Restart=on-failure in a crash loop): a start would be refused.
            systemd.reset_failed(name);
            systemd.unit("restart", name)?;
            return Err(DeployError::UpdateFailed {
                name: name.to_string(),
                deployment: rec.deployment,
                previous: cur.deployment,
                reason,
            });
        }
        sw.restarted = true;
    }
    Ok(UpdateOutcome::Updated(sw))
}

/// The steps of an update up to its commit: check `img` out with `base`'s
/// values into the other slot than `cur`'s, install its host files, make it
/// the active deployment (record, link, reload), remove the old host files.
/// Restarts nothing. `None` when neither the image nor the values change.
/// Returns the new record and the old host files the admin changed (left
/// in place). The caller holds the container lock.
pub(crate) fn stage(
    root: &Root,
    src: &dyn ImageStore,
    cur: &Record,
    mut base: Record,
    img: &ImageSpec,
    systemd: &Systemd,
) -> Result<Option<(Record, Vec<String>)>, DeployError> {
    let name = cur.name.as_str();
    let other = 1 - slot_of(&cur.deployment);
    let co = checkout_of(cur);
    let other_dir = root.join(slot_path(&co, name, other));
    let other_files = slots::slot_host_files(&other_dir);
    if img.image_id == cur.image_id
        && img.name == cur.image
        && base.values == cur.values
        && base.health == cur.health
    {
        // An update interrupted after its commit point (this one, run
        // again) left the other slot's host files behind: finish it.
        hostfs::remove_quietly(root, &other_files, &cur.host_files);
        return Ok(None);
    }
    // The previous deployment (or what an interrupted update left), with
    // its host files that the current one does not have.
    slots::remove_slot(root, &co, name, other, &cur.host_files)?;
    crate::failpoint!("update.other-removed");
    // The new slot is hardlinked from this source's repo.
    base.repo = src.repo().or(base.repo);
    let prep = prepare_slot(root, src, img, &base, &co, other)?;
    let mut rec = prep.record;
    let mut created = Vec::new();
    // Ours to replace: what either slot lists (an interrupted update or
    // rollback may have left either version), and what this one plans.
    let owned = [
        cur.host_files.clone(),
        other_files,
        hostfs::planned_host_files(&prep.hostfs),
    ]
    .concat();
    rec.host_files =
        match hostfs::install(root, &prep.hostfs, &owned, Conflict::Refuse, &mut created) {
            Ok(h) => h.files,
            Err(e) => {
                let _ = slots::remove_slot(root, &co, name, other, &cur.host_files);
                return Err(e);
            }
        };
    crate::failpoint!("update.hostfs-installed");
    activate(root, &rec, systemd)?;
    // Only now that the new deployment is committed: the old host files.
    let kept = hostfs::remove(root, &cur.host_files, &rec.host_files);
    crate::failpoint!("update.old-hostfs-removed");
    Ok(Some((rec, kept)))
}

/// Make `to`, a deployment in the other slot than `cur`'s, the active one,
/// with its host files. The steps (README, "Durability"): `to`'s host files
/// (listed in its slot's host-files.json), the record (the commit point),
/// the link, then `cur`'s host files that `to` has not. A host file the
/// admin changed is neither overwritten nor removed; the result names it.
/// Interrupted before the record, running it again finishes it; after, the
/// other direction undoes it (rollback toggles).
pub(crate) fn switch(
    root: &Root,
    cur: &Record,
    mut to: Record,
    systemd: &Systemd,
) -> Result<Switched, DeployError> {
    let dir = root.join(&to.deployment);
    let rootfs = dir.join("rootfs");
    let manifest = Manifest::load(&rootfs)?;
    let planned = hostfs::plan(&rootfs, &manifest, &Vars::for_record(&to))?;
    let listed = slots::slot_host_files(&dir);
    let plan_list = hostfs::planned_host_files(&planned);
    if listed != plan_list {
        // Rendered differently now (ALL_PROCESS_CAPABILITIES follows the
        // kernel): list what will be installed before installing it.
        slots::write_host_files(&dir, &plan_list)?;
    }
    let owned = [cur.host_files.clone(), listed, plan_list].concat();
    let inst = hostfs::install(root, &planned, &owned, Conflict::Keep, &mut Vec::new())?;
    crate::failpoint!("rollback.hostfs-installed");
    to.host_files = inst.files;
    activate(root, &to, systemd)?;
    // Not removed either: the paths left alone above (remove() compares
    // paths only).
    let mut keep = to.host_files.clone();
    keep.extend(inst.kept.iter().map(|p| HostFile {
        path: p.clone(),
        sha256: String::new(),
    }));
    let kept = hostfs::remove(root, &cur.host_files, &keep);
    crate::failpoint!("rollback.old-hostfs-removed");
    Ok(Switched {
        from: cur.deployment.clone(),
        to: to.deployment,
        restarted: false,
        not_restored: inst.kept,
        kept_host_files: kept,
    })
}

/// `syscontainer containers rollback NAME`: switch to the other slot, with
/// the values it was installed with and its host files, and restart if
/// running.
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
    let manifest = Manifest::load(&rootfs)?;
    let mut rec = cur.clone();
    rec.deployment = logical.display().to_string();
    rec.image = info.image;
    rec.image_id = info.image_id;
    rec.values = info.values;
    rec.default_values = info.default_values;
    rec.no_container_service = manifest.no_container_service;
    rec.image_health = crate::health::image_health(manifest.health.as_ref(), &info.image_config);
    let st = rootfs.join(EXPORTS).join("service.template");
    rec.service_template = match fs::read_to_string(&st) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("cannot read", &st)(e)),
    };
    let systemd = Systemd::detect(root);
    let was_active = systemd.is_active(name);
    crate::failpoint!("rollback.checked");
    let run_it = !rec.no_container_service;
    let mut sw = switch(root, &cur, rec, &systemd)?;
    crate::record::state::after_rollback(
        root,
        name,
        "rolled back by syscontainer containers rollback",
    )?;
    systemd.daemon_reload()?;
    if was_active && run_it {
        systemd.unit("restart", name)?;
    }
    sw.restarted = was_active;
    Ok(sw)
}

/// `syscontainer enable|disable NAME`: boot activation, in the record.
/// Returns `false` when nothing changed.
pub fn set_enabled(root: &Root, name: &str, enabled: bool) -> Result<bool, DeployError> {
    let _lock = slots::lock(root, name)?;
    let (mut rec, _) = Record::load(root, name)?;
    if rec.enabled == enabled {
        return Ok(false);
    }
    Record::check_ours(root, name)?;
    rec.enabled = enabled;
    rec.write(root)?;
    crate::record::state::sync_own_intent(root, name)?;
    Systemd::detect(root).daemon_reload()?;
    Ok(true)
}
