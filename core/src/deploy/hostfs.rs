//! Files copied from the image's `/exports/hostfs` onto the host.
//!
//! Each is rendered if listed in `installedFilesTemplate`, renamed per
//! `renameFiles`, and recorded with its sha256. Removal (uninstall, update)
//! only touches a file whose content is still what was installed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{io_err, DeployError, Manifest};
use crate::bundle::EXPORTS;
use crate::fsutil;
use crate::paths::Root;
use crate::record::HostFile;
use crate::template;
use crate::vars::Vars;

/// One file to put on the host.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub logical: PathBuf,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub(crate) enum Content {
    File { data: Vec<u8>, mode: u32 },
    Symlink(PathBuf),
}

impl Content {
    fn sha256(&self) -> String {
        match self {
            Content::File { data, .. } => sha256_hex(data),
            Content::Symlink(t) => symlink_sha(t),
        }
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn symlink_sha(target: &Path) -> String {
    let mut b = b"symlink:".to_vec();
    b.extend_from_slice(target.as_os_str().as_encoded_bytes());
    sha256_hex(&b)
}

fn safe_abs(p: &str) -> bool {
    p.starts_with('/')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && p.len() > 1
}

/// Walk `rootfs/exports/hostfs` and compute what goes where.
pub(crate) fn plan(
    rootfs: &Path,
    manifest: &Manifest,
    vars: &Vars,
) -> Result<Vec<Planned>, DeployError> {
    let base = rootfs.join(EXPORTS).join("hostfs");
    let mut out = Vec::new();
    if !base.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err("cannot read", &dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err("cannot read", &dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err("cannot read", &path))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&base).expect("under base");
            let src_logical = format!("/{}", rel.display());
            let dest = match manifest.rename_files.get(&src_logical) {
                Some(to) => {
                    let to = template::render("manifest.json renameFiles", to, vars)?;
                    if !safe_abs(&to) {
                        return Err(DeployError::BadRename {
                            from: src_logical,
                            to,
                        });
                    }
                    to
                }
                None => src_logical.clone(),
            };
            let content = if meta.file_type().is_symlink() {
                Content::Symlink(fs::read_link(&path).map_err(io_err("cannot read", &path))?)
            } else if meta.is_file() {
                let data = fs::read(&path).map_err(io_err("cannot read", &path))?;
                let data = if manifest.installed_files_template.contains(&src_logical) {
                    let text = String::from_utf8_lossy(&data);
                    template::render(&path.display().to_string(), &text, vars)?.into_bytes()
                } else {
                    data
                };
                Content::File {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                }
            } else {
                return Err(DeployError::HostFileType { path });
            };
            out.push(Planned {
                logical: PathBuf::from(dest),
                content,
            });
        }
    }
    out.sort_by(|a, b| a.logical.cmp(&b.logical));
    Ok(out)
}

/// The sha256 of what is at `path` now, as recorded (None if absent).
fn current_sha(path: &Path) -> Option<String> {
    let m = fs::symlink_metadata(path).ok()?;
    if m.file_type().is_symlink() {
        fs::read_link(path).ok().map(|t| symlink_sha(&t))
    } else if m.is_file() {
        fs::read(path).ok().map(|d| sha256_hex(&d))
    } else {
        Some(String::new())
    }
}

/// What installing `planned` will record.
pub(crate) fn planned_host_files(planned: &[Planned]) -> Vec<HostFile> {
    planned
        .iter()
        .map(|p| HostFile {
            path: p.logical.display().to_string(),
            sha256: p.content.sha256(),
        })
        .collect()
}

/// How [`install`] treats a file in the way that is not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Fail with [`DeployError::HostFileExists`] (install, update).
    Refuse,
    /// Leave it as it is, do not record it, and report it (rollback).
    Keep,
}

/// What [`install`] did.
#[derive(Debug, Default)]
pub(crate) struct Installed {
    /// The files installed (or already there with the planned content).
    pub files: Vec<HostFile>,
    /// Paths left as they were on the host ([`Conflict::Keep`]).
    pub kept: Vec<String>,
}

/// Install planned files. A file may replace an existing one only when the
/// existing one is ours: `owned` lists a file with that path and content
/// (what a slot of this container installed or plans to). Every path
/// created is pushed on `created` (for undo).
pub(crate) fn install(
    root: &Root,
    planned: &[Planned],
    owned: &[HostFile],
    conflict: Conflict,
    created: &mut Vec<PathBuf>,
) -> Result<Installed, DeployError> {
    let mut out = Installed::default();
    for p in planned {
        let real = root.join(&p.logical);
        if let Some(sha) = current_sha(&real) {
            let ours = owned
                .iter()
                .any(|h| Path::new(&h.path) == p.logical && h.sha256 == sha);
            if !ours {
                match conflict {
                    Conflict::Refuse => {
                        return Err(DeployError::HostFileExists {
                            path: p.logical.clone(),
                        })
                    }
                    Conflict::Keep => {
                        log::warn!(
                            "host file {} was modified on the host; left in place",
                            p.logical.display()
                        );
                        out.kept.push(p.logical.display().to_string());
                        continue;
                    }
                }
            }
        }
        let parent = real.parent().expect("absolute");
        if !parent.exists() {
            let mut top = parent.to_path_buf();
            while let Some(up) = top.parent() {
                if up.exists() {
                    break;
                }
                top = up.to_path_buf();
            }
            fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
            created.push(top);
        } else {
            created.push(real.clone());
        }
        match &p.content {
            Content::File { data, mode } => {
                fsutil::write_atomic(&real, data, *mode).map_err(io_err("cannot write", &real))?
            }
            Content::Symlink(t) => {
                fsutil::symlink_atomic(t, &real).map_err(io_err("cannot write", &real))?
            }
        }
        crate::failpoint!("hostfs.file-written");
        out.files.push(HostFile {
            path: p.logical.display().to_string(),
            sha256: p.content.sha256(),
        });
    }
    Ok(out)
}

/// Remove host files that are unchanged; return the paths left in place
/// because they were modified. `keep` lists paths not to touch (still
/// installed by the new deployment).
pub(crate) fn remove(root: &Root, files: &[HostFile], keep: &[HostFile]) -> Vec<String> {
    remove_unchanged(root, files, keep, true)
}

/// [`remove`] without a warning for a modified file: for finishing an
/// interrupted command, which has already said so.
pub(crate) fn remove_quietly(root: &Root, files: &[HostFile], keep: &[HostFile]) {
    remove_unchanged(root, files, keep, false);
}

fn remove_unchanged(root: &Root, files: &[HostFile], keep: &[HostFile], warn: bool) -> Vec<String> {
    let mut changed = Vec::new();
    for h in files {
        if keep.iter().any(|k| k.path == h.path) {
            continue;
        }
        let real = root.join(&h.path);
        match current_sha(&real) {
            None => {}
            Some(s) if s == h.sha256 => {
                if let Err(e) = fs::remove_file(&real) {
                    if e.kind() != io::ErrorKind::NotFound {
                        log::warn!("cannot remove host file {}: {e}", h.path);
                    }
                }
            }
            Some(_) => {
                if warn {
                    log::warn!(
                        "host file {} was modified since it was installed; left in place",
                        h.path
                    );
                }
                changed.push(h.path.clone());
            }
        }
    }
    changed
}
