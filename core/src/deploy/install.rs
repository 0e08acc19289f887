//! `install` and `uninstall`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::hostfs::{self, Conflict, Planned};
use super::{
    checkout_of, default_name, io_err, link_path, remove_any, slot_path, slots, DeployError,
    ImageSpec, ImageStore, Manifest, Systemd,
};
use crate::bundle::{self, DeploymentInfo, EXPORTS};
use crate::exec::{self, Runtime};
use crate::fsutil;
use crate::name;
use crate::paths::{self, Root};
use crate::record::{Record, RecordError};
use crate::template;
use crate::vars::{self, Vars};

#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Container name; default from the image name ([`default_name`]).
    pub name: Option<String>,
    /// `--set K=V` arguments.
    pub set: Vec<String>,
    /// OCI runtime binary; default [`paths::DEFAULT_RUNTIME`].
    pub runtime: Option<String>,
    /// Do not start at boot.
    pub no_enable: bool,
    /// Start the unit now (when systemd runs).
    pub now: bool,
    /// Logical directory the deployments go in: `ATOMIC_OSTREE_CHECKOUT_PATH`
    /// (the CLI's [`crate::store::Location::checkout_root`]); default
    /// [`paths::CHECKOUT_ROOT`]. The record keeps it, in `deployment`.
    pub checkout_root: Option<PathBuf>,
    /// `--auto-update POLICY`: kept in the record, across updates.
    pub auto_update: Option<crate::record::AutoUpdate>,
    /// The image was pulled from an `http:` reference ([`Record::plain_http`]).
    pub plain_http: bool,
    /// `syscontainer apply`: the container is declared by an intent file
    /// (which stays as it is); only its state is written.
    pub declared: bool,
    /// `--health-*`: the record's `health`, kept across updates.
    pub health: Option<crate::health::HealthSpec>,
}

/// The runtime must exist.
pub(crate) fn check_runtime(runtime: &str) -> Result<(), DeployError> {
    let p = Path::new(runtime);
    if p.is_absolute() && p.is_file() {
        Ok(())
    } else {
        Err(DeployError::RuntimeMissing {
            runtime: runtime.to_string(),
        })
    }
}

/// A checked-out, rendered and validated deployment slot, not yet active.
pub(crate) struct Prepared {
    pub record: Record,
    pub hostfs: Vec<Planned>,
}

/// Check out `img` into slot `slot` of `rec.name` in the checkout root `co`,
/// and render and validate everything with `rec` updated for the new image.
/// The slot is staged as `.NAME.N.tmp` and renamed into place only when
/// complete and synced; the slot must not exist. On error the staging
/// directory is removed.
pub(crate) fn prepare_slot(
    root: &Root,
    src: &dyn ImageStore,
    img: &ImageSpec,
    base: &Record,
    co: &Path,
    slot: u8,
) -> Result<Prepared, DeployError> {
    let dir = slots::staging(root, co, &base.name, slot);
    remove_any(&dir)?;
    let res = prepare_staged(root, src, img, base, slot_path(co, &base.name, slot), &dir)
        .and_then(|p| slots::commit_staged(root, co, &base.name, slot).map(|()| p));
    match &res {
        Ok(_) => crate::failpoint!("prepare.renamed"),
        Err(_) => {
            let _ = remove_any(&dir);
        }
    }
    res
}

fn prepare_staged(
    root: &Root,
    src: &dyn ImageStore,
    img: &ImageSpec,
    base: &Record,
    logical: PathBuf,
    dir: &Path,
) -> Result<Prepared, DeployError> {
    fs::create_dir(dir).map_err(io_err("cannot create", dir))?;
    crate::failpoint!("prepare.dir-created");
    let rootfs = dir.join("rootfs");
    src.materialize(img, &rootfs)?;
    crate::failpoint!("prepare.checked-out");
    let manifest = Manifest::load(&rootfs)?;
    let exports = rootfs.join(EXPORTS);

    let mut rec = base.clone();
    rec.image = img.name.clone();
    rec.image_id = img.image_id.clone();
    rec.deployment = logical.display().to_string();
    rec.default_values = manifest.defaults();
    rec.no_container_service = manifest.no_container_service;
    rec.image_health = crate::health::image_health(
        manifest.health.as_ref(),
        img.config.get("config").unwrap_or(&serde_json::Value::Null),
    );
    let st = exports.join("service.template");
    rec.service_template = match fs::read_to_string(&st) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("cannot read", &st)(e)),
    };

    let info = DeploymentInfo {
        image: rec.image.clone(),
        image_id: rec.image_id.clone(),
        values: rec.values.clone(),
        default_values: rec.default_values.clone(),
        image_config: img.config.get("config").cloned().unwrap_or_default(),
    };
    let vars = Vars::for_record(&rec);
    if !rec.no_container_service {
        // Render once now, so that a missing variable fails the install and
        // not the first start.
        let (config, _) = bundle::render_config(&rec, &vars, dir, Some(&info))?;
        bundle::render_tmpfiles(root, &rec, &vars, dir, &config)?;
        if let Some(t) = &rec.service_template {
            template::render(&st.display().to_string(), t, &vars)?;
        }
    }
    let hostfs = hostfs::plan(&rootfs, &manifest, &vars)?;
    slots::write_host_files(dir, &hostfs::planned_host_files(&hostfs))?;
    bundle::write_info(dir, &info)?;
    crate::failpoint!("prepare.info-written");
    Ok(Prepared {
        record: rec,
        hostfs,
    })
}

/// `syscontainer install`: check out, render, copy host files, write the
/// record, link `NAME -> NAME.0`, reload systemd (and start with `now`).
/// On any failure, everything this install created is removed.
pub fn install(
    root: &Root,
    src: &dyn ImageStore,
    image: &str,
    opts: &InstallOptions,
) -> Result<Record, DeployError> {
    let values = vars::parse_set(&opts.set)?;
    let runtime = opts
        .runtime
        .clone()
        .unwrap_or_else(|| paths::DEFAULT_RUNTIME.to_string());
    check_runtime(&runtime)?;
    let img = src.resolve(image)?;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => default_name(&img.name),
    };
    name::validate(&name)?;
    let _lock = slots::lock(root, &name)?;
    match Record::load(root, &name) {
        Ok((_, path)) => return Err(DeployError::AlreadyPresent { name, path }),
        Err(RecordError::Masked { path, .. }) => {
            return Err(DeployError::AlreadyPresent { name, path })
        }
        Err(RecordError::Pending { path, .. }) if !opts.declared => {
            return Err(DeployError::AlreadyPresent { name, path })
        }
        Err(RecordError::NotFound { .. }) if opts.declared => {
            return Err(RecordError::NotFound {
                name,
                dirs: paths::RECORD_DIRS.join(", "),
            }
            .into())
        }
        Err(RecordError::NotFound { .. } | RecordError::Pending { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let co = opts
        .checkout_root
        .clone()
        .unwrap_or_else(|| PathBuf::from(paths::CHECKOUT_ROOT));
    let checkout = root.join(&co);
    fs::create_dir_all(&checkout).map_err(io_err("cannot create", &checkout))?;
    // No record: a link or slots are what an interrupted install or
    // uninstall left behind (the record is written last, removed first).
    if slots::remove_leftovers(root, &co, &name, false)? {
        log::warn!("removed what an interrupted install or uninstall of '{name}' left behind");
    }

    let mut base = Record::new(&name, &img.name, &img.image_id, "");
    base.values = values;
    base.runtime = runtime;
    base.enabled = !opts.no_enable;
    base.auto_update = opts.auto_update;
    base.plain_http = opts.plain_http;
    base.health = opts.health.clone();
    base.uuid = uuid::Uuid::new_v4().to_string();
    base.host_uid = nix::unistd::getuid().as_raw();
    base.host_gid = nix::unistd::getgid().as_raw();
    base.repo = src.repo();

    let systemd = Systemd::detect(root);
    let mut created: Vec<PathBuf> = Vec::new();
    let mut record_written = false;
    let res = (|| {
        // 1. The slot, complete, renamed into place.
        let prep = prepare_slot(root, src, &img, &base, &co, 0)?;
        let mut rec = prep.record;
        crate::failpoint!("install.prepared");
        // 2. Host files (listed in the slot first, for recovery).
        rec.host_files =
            hostfs::install(root, &prep.hostfs, &[], Conflict::Refuse, &mut created)?.files;
        crate::failpoint!("install.hostfs-done");
        // 3. The link, 4. the record: the commit point.
        let link = root.join(link_path(&co, &name));
        fsutil::symlink_atomic(Path::new(&format!("{name}.0")), &link)
            .map_err(io_err("cannot link", &link))?;
        crate::failpoint!("install.linked");
        record_written = true;
        rec.write(root)?;
        crate::failpoint!("install.record-written");
        systemd.daemon_reload()?;
        if opts.now && !rec.no_container_service {
            systemd.unit("start", &name)?;
        }
        Ok(rec)
    })();
    if res.is_err() {
        if record_written {
            if opts.now {
                let _ = systemd.unit("stop", &name);
            }
            let _ = Record::remove(root, &name);
            let _ = systemd.daemon_reload();
        }
        for p in created.iter().rev() {
            if let Err(e) = remove_any(p) {
                log::warn!("{e}");
            }
        }
        if let Err(e) = slots::remove_leftovers(root, &co, &name, false) {
            log::warn!("{e}");
        }
    }
    res
}

/// What `uninstall` left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UninstallReport {
    /// Host files left in place because they were modified.
    pub kept_host_files: Vec<String>,
}

/// `syscontainer uninstall NAME`: stop, remove tmpfiles entries, remove
/// unchanged host files, remove the record, reload, remove the deployments
/// (in the record's checkout root). The image stays. Without a record, what
/// an interrupted install left in `checkout_root` (the install's setting) is
/// removed.
pub fn uninstall(
    root: &Root,
    name: &str,
    checkout_root: &Path,
) -> Result<UninstallReport, DeployError> {
    name::validate(name)?;
    let _lock = slots::lock(root, name)?;
    let rec = match Record::load(root, name) {
        Ok((r, _)) => Some(r),
        Err(RecordError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    // The intent file goes too: only when it is ours (or gone).
    Record::check_ours(root, name)?;
    let Some(rec) = rec else {
        // An install or uninstall was interrupted before its commit point.
        if !slots::remove_leftovers(root, checkout_root, name, true)? {
            return Err(RecordError::NotFound {
                name: name.to_string(),
                dirs: paths::RECORD_DIRS.join(", "),
            }
            .into());
        }
        return Ok(UninstallReport::default());
    };
    let systemd = Systemd::detect(root);
    // 1. Stop (generated units cannot be disabled: removing the record below
    //    removes the boot activation).
    if systemd.running {
        if let Err(e) = systemd.unit("stop", name) {
            log::warn!("{e}");
        }
    }
    let runtime = Runtime::new(&rec.runtime);
    if runtime.path.is_file() {
        if let Err(e) = runtime.delete(name) {
            log::warn!("{e}");
        }
    }
    // 2. tmpfiles --remove.
    if !rec.no_container_service {
        if let Err(e) = tmpfiles_remove(root, &rec) {
            log::warn!("cannot apply the tmpfiles removal of '{name}': {e}");
        }
    }
    // 3. Host files.
    crate::failpoint!("uninstall.stopped");
    let kept = hostfs::remove(root, &rec.host_files, &[]);
    crate::failpoint!("uninstall.hostfs-removed");
    // 4. Record, 5. reload.
    Record::remove(root, name)?;
    crate::failpoint!("uninstall.record-removed");
    systemd.daemon_reload()?;
    // 6. Link, deployments (each renamed out of the way first), rendered bundle.
    slots::remove_leftovers(root, &checkout_of(&rec), name, true)?;
    remove_any(&root.join(bundle::bundle_dir(name)))?;
    Ok(UninstallReport {
        kept_host_files: kept,
    })
}

fn tmpfiles_remove(root: &Root, rec: &Record) -> Result<(), DeployError> {
    let dir = bundle::deployment_dir(root, rec);
    if !dir.join("rootfs").is_dir() {
        return Ok(());
    }
    let vars = Vars::for_record(rec);
    let (config, _) = bundle::render_config(rec, &vars, &dir, None)?;
    let text = bundle::render_tmpfiles(root, rec, &vars, &dir, &config)?;
    if bundle::tmpfiles_empty(&text) {
        return Ok(());
    }
    let tmp = tempfile_in(&root.join(paths::RUN_STATE))?;
    fs::write(&tmp, text).map_err(io_err("cannot write", &tmp))?;
    let res = exec::tmpfiles(root, "--remove", &tmp);
    let _ = fs::remove_file(&tmp);
    Ok(res?)
}

fn tempfile_in(dir: &Path) -> Result<PathBuf, DeployError> {
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    Ok(dir.join(format!(".tmpfiles-remove.{}.conf", std::process::id())))
}
