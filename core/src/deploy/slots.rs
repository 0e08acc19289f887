//! Crash safety of deployments: the container lock, staging and removal of
//! slots, and recovery of what an interrupted command left behind.
//!
//! Every function takes the container's checkout root `co` (a logical
//! path): [`super::checkout_of`] its record, or the install's setting.
//!
//! The rules (README, "Durability"):
//!
//! - A slot `NAME.N` is checked out and rendered as `.NAME.N.tmp`, synced,
//!   and renamed into place: a `NAME.N` that exists is complete.
//! - A slot is removed by renaming it back to `.NAME.N.tmp` first: it never
//!   exists half-deleted under its real name.
//! - The record is the commit point and the source of truth. The link `NAME`
//!   is derived from it: written before the record on install, after it on
//!   update and rollback, and repaired from the record by the next command.
//! - Without a record, a link, slots and staging directories are leftovers
//!   of an interrupted install or uninstall; the next install or uninstall of
//!   that name removes them, with the host files the slots list in
//!   `host-files.json`.
//! - Every command that changes a container holds its lock,
//!   `/run/syscontainer/lock/container.NAME.lock`.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use super::{checkout_of, io_err, link_path, remove_any, slot_path, DeployError};
use crate::fsutil;
use crate::paths::{self, Root};
use crate::record::{HostFile, Record};

/// Host files a slot installs, written into the slot before they are copied.
pub(crate) const HOST_FILES: &str = "host-files.json";

/// An exclusive lock on one container, held while alive.
#[must_use = "the lock is released when dropped"]
pub struct ContainerLock {
    _file: File,
}

/// Take the lock of container `name`, saying so when it takes over a second.
pub fn lock(root: &Root, name: &str) -> Result<ContainerLock, DeployError> {
    let dir = root.join(paths::LOCK_DIR);
    fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let path = dir.join(format!("container.{name}.lock"));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("cannot open", &path))?;
    let why = format!("another syscontainer command is changing container '{name}'");
    crate::flock::wait(&f, true, &path, &why).map_err(io_err("cannot lock", &path))?;
    Ok(ContainerLock { _file: f })
}

/// Real path of the staging directory of slot `slot`.
pub(crate) fn staging(root: &Root, co: &Path, name: &str, slot: u8) -> PathBuf {
    root.join(co).join(format!(".{name}.{slot}.tmp"))
}

/// Move the complete staging directory into place as `NAME.N`, durably.
pub(crate) fn commit_staged(
    root: &Root,
    co: &Path,
    name: &str,
    slot: u8,
) -> Result<(), DeployError> {
    let from = staging(root, co, name, slot);
    let to = root.join(slot_path(co, name, slot));
    fsutil::fsync_dir(&from).map_err(io_err("cannot sync", &from))?;
    fs::rename(&from, &to).map_err(io_err("cannot rename into place", &to))?;
    let parent = root.join(co);
    fsutil::fsync_dir(&parent).map_err(io_err("cannot sync", &parent))
}

/// The host files slot `dir` (real path) lists.
pub(crate) fn slot_host_files(dir: &Path) -> Vec<HostFile> {
    fs::read(dir.join(HOST_FILES))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

pub(crate) fn write_host_files(dir: &Path, files: &[HostFile]) -> Result<(), DeployError> {
    let p = dir.join(HOST_FILES);
    let text = serde_json::to_string_pretty(files).expect("host files serialize");
    fsutil::write_atomic(&p, text.as_bytes(), 0o600).map_err(io_err("cannot write", &p))
}

/// Remove slot `slot` of `name` (and its staging directory): rename it out
/// of the way first, then delete it. Host files it lists that `keep` does
/// not are removed too, when unchanged.
pub(crate) fn remove_slot(
    root: &Root,
    co: &Path,
    name: &str,
    slot: u8,
    keep: &[HostFile],
) -> Result<(), DeployError> {
    let real = root.join(slot_path(co, name, slot));
    let tmp = staging(root, co, name, slot);
    if fs::symlink_metadata(&real).is_ok() {
        remove_any(&tmp)?;
        fs::rename(&real, &tmp).map_err(io_err("cannot rename", &real))?;
        let parent = root.join(co);
        fsutil::fsync_dir(&parent).map_err(io_err("cannot sync", &parent))?;
        crate::failpoint!("slot.renamed-for-removal");
    }
    if tmp.is_dir() {
        super::hostfs::remove(root, &slot_host_files(&tmp), keep);
    }
    remove_any(&tmp)?;
    crate::failpoint!("slot.removed");
    Ok(())
}

/// Is `p` (real path) the link `NAME -> NAME.0|1`?
fn is_our_link(p: &Path, name: &str) -> bool {
    fs::read_link(p)
        .is_ok_and(|t| t == Path::new(&format!("{name}.0")) || t == Path::new(&format!("{name}.1")))
}

/// Is `p` (real path) a slot directory of ours (not a symlink, with our
/// info.json, written before a slot is renamed into place)?
fn is_our_slot(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) && p.join(crate::bundle::INFO_FILE).is_file()
}

/// Remove what an interrupted install or uninstall of `name` left under the
/// checkout root (for a container without a record only): the link first
/// (so that it never points at a slot being removed), then the slots and
/// staging directories, then stale temp links. Returns whether there was
/// anything. A path that is not ours (another container's link, such as
/// `foo.0` of container `foo.0`, or a slot without our info.json, such as
/// one of atomic's) makes it fail with `AlreadyPresent`, unless `force`
/// (uninstall), which leaves such paths alone.
pub(crate) fn remove_leftovers(
    root: &Root,
    co: &Path,
    name: &str,
    force: bool,
) -> Result<bool, DeployError> {
    let link = root.join(link_path(co, name));
    let link_here = fs::symlink_metadata(&link).is_ok();
    let link_ours = link_here && is_our_link(&link, name);
    let mut found = link_ours;
    let mut slots = Vec::new();
    for slot in [0, 1] {
        let p = root.join(slot_path(co, name, slot));
        let here = fs::symlink_metadata(&p).is_ok();
        let ours = here
            && (is_our_slot(&p) || (force && fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir())));
        if here && !ours && !force {
            return Err(DeployError::AlreadyPresent {
                name: name.to_string(),
                path: slot_path(co, name, slot),
            });
        }
        found |= ours || fs::symlink_metadata(staging(root, co, name, slot)).is_ok();
        slots.push((slot, ours));
    }
    if link_here && !link_ours && !force {
        return Err(DeployError::AlreadyPresent {
            name: name.to_string(),
            path: link_path(co, name),
        });
    }
    if link_ours {
        remove_any(&link)?;
        let parent = root.join(co);
        fsutil::fsync_dir(&parent).map_err(io_err("cannot sync", &parent))?;
    }
    for (slot, ours) in slots {
        if ours {
            remove_slot(root, co, name, slot, &[])?;
        } else {
            // Only the staging directory.
            let tmp = staging(root, co, name, slot);
            if tmp.is_dir() {
                super::hostfs::remove(root, &slot_host_files(&tmp), &[]);
            }
            remove_any(&tmp)?;
        }
    }
    // Temp links of an interrupted symlink_atomic: `.NAME.tmp.PID`.
    let prefix = format!(".{name}.tmp.");
    if let Ok(rd) = fs::read_dir(root.join(co)) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.strip_prefix(&prefix)
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            {
                remove_any(&e.path())?;
            }
        }
    }
    Ok(found)
}

/// Point `NAME` at the record's deployment, if it does not already (a
/// command was interrupted between writing the record and the link).
pub(crate) fn sync_link(root: &Root, rec: &Record) -> Result<(), DeployError> {
    let co = checkout_of(rec);
    let link = root.join(link_path(&co, &rec.name));
    let target = Path::new(&rec.deployment)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
        return Ok(());
    }
    if !root.join(&rec.deployment).is_dir() {
        // Nothing to point at; the record's own error will say so.
        return Ok(());
    }
    log::warn!(
        "repairing {} -> {} (an earlier command was interrupted)",
        link_path(&co, &rec.name).display(),
        target.display()
    );
    fsutil::symlink_atomic(&target, &link).map_err(io_err("cannot link", &link))
}
