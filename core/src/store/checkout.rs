//! Our own hardlink union checkout of one layer commit (the default; see
//! `Store::checkout`). libostree's `checkout_at` opens every file object and
//! reads its xattrs; in a bare repo the object files *are* the checked-out
//! files (content, mode, owner, xattrs; symlinks are stored as symlinks), so
//! one `linkat` per file is enough. We read only the dirtree and dirmeta
//! objects.
//!
//! Semantics are those of libostree's `checkout_at` with `UnionFiles`,
//! `process_whiteouts` and `no_copy_fallback`, so that both give the same
//! tree (`core/tests/store_fixtures.rs` compares them):
//! - a directory that already exists keeps its metadata (the first layer that
//!   created it wins; the importer gives implicit parents 0755 root:root, so
//!   letting a higher layer win would reset e.g. a 1777 /tmp), except an opaque
//!   one (`.wh..wh..opq`), which is removed and created afresh;
//! - `.wh.NAME` removes NAME (recursively) from the lower layers' result; no
//!   marker is created in the checkout;
//! - a non-directory replaces whatever is there (unlink, or remove the
//!   directory recursively), unless it is the same inode already.
//!
//! One deliberate difference: a directory over a non-directory replaces it
//! (libostree fails with ENOTDIR there).
//!
//! Created directories are made 0700, get their xattrs at once, and their
//! owner, mode and mtime (0, like libostree's `OSTREE_TIMESTAMP`) once their
//! children are in place.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags, CWD};
use rustix::io::Errno;

use super::import::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// What failed in our checkout, and where.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct CheckoutFailure {
    what: String,
    path: PathBuf,
    #[source]
    source: io::Error,
}

type Res<T> = Result<T, CheckoutFailure>;

fn fail(what: impl Into<String>, path: &Path, e: impl Into<io::Error>) -> CheckoutFailure {
    CheckoutFailure {
        what: what.into(),
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn glib_fail(what: &str, path: &Path, e: glib::Error) -> CheckoutFailure {
    fail(what, path, io::Error::other(e.to_string()))
}

struct DirMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: Vec<(CString, Vec<u8>)>,
}

pub(crate) struct Linker<'r> {
    repo: &'r ostree::Repo,
    objects: OwnedFd,
    metas: HashMap<String, Rc<DirMeta>>,
}

/// `objects/XX/YYYY….file` relative to the objects directory.
fn object_path(csum: &[u8]) -> Option<CString> {
    if csum.len() != 32 {
        return None;
    }
    let h = hex::encode(csum);
    CString::new(format!("{}/{}.file", &h[..2], &h[2..])).ok()
}

/// A name from a dirtree must be one path component.
fn component(name: &str, path: &Path) -> Res<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(fail(
            format!("invalid file name '{name}' in"),
            path,
            io::Error::from(io::ErrorKind::InvalidData),
        ));
    }
    CString::new(name).map_err(|_| {
        fail(
            format!("invalid file name '{}' in", name.escape_debug()),
            path,
            io::Error::from(io::ErrorKind::InvalidData),
        )
    })
}

/// Remove `name` in `dir` (whatever it is, recursively); absent is fine.
fn rm_rf_at(dir: BorrowedFd, name: &CStr, path: &Path) -> Res<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(fail("stat", path, e)),
        Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
            std::fs::remove_dir_all(path).map_err(|e| fail("remove", path, e))
        }
        Ok(_) => rfs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| fail("unlink", path, e)),
    }
}

impl<'r> Linker<'r> {
    pub(crate) fn new(repo: &'r ostree::Repo, repo_path: &Path) -> Res<Self> {
        let objects = repo_path.join("objects");
        let fd = rfs::open(
            &objects,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail("open", &objects, e))?;
        Ok(Linker {
            repo,
            objects: fd,
            metas: HashMap::new(),
        })
    }

    fn dirmeta(&mut self, csum: &[u8], path: &Path) -> Res<Rc<DirMeta>> {
        let h = hex::encode(csum);
        if let Some(m) = self.metas.get(&h) {
            return Ok(m.clone());
        }
        let v = self
            .repo
            .load_variant(ostree::ObjectType::DirMeta, &h)
            .map_err(|e| glib_fail("loading the dirmeta of", path, e))?;
        let p = ostree::DirMetaParsed::from_variant(&v).map_err(|e| {
            fail(
                "bad dirmeta object for",
                path,
                io::Error::other(e.to_string()),
            )
        })?;
        let mut xattrs = Vec::with_capacity(p.xattrs.len());
        for (mut name, value) in p.xattrs {
            if name.last() == Some(&0) {
                name.pop();
            }
            let name = CString::new(name).map_err(|_| {
                fail(
                    "bad xattr name in the dirmeta of",
                    path,
                    io::Error::from(io::ErrorKind::InvalidData),
                )
            })?;
            xattrs.push((name, value));
        }
        let m = Rc::new(DirMeta {
            uid: p.uid,
            gid: p.gid,
            mode: p.mode,
            xattrs,
        });
        self.metas.insert(h, m.clone());
        Ok(m)
    }

    /// Check out the layer `commit` over `dest` (which exists unless this
    /// is the first layer).
    pub(crate) fn layer(&mut self, commit: &str, dest: &Path) -> Res<()> {
        let v = self
            .repo
            .load_variant(ostree::ObjectType::Commit, commit)
            .map_err(|e| glib_fail("loading commit", dest, e))?;
        let c = v.try_get::<ostree::CommitVariantType>().map_err(|e| {
            fail(
                format!("bad commit object {commit} for"),
                dest,
                io::Error::other(e.to_string()),
            )
        })?;
        let name = CString::new(dest.as_os_str().as_encoded_bytes())
            .map_err(|e| fail("bad path", dest, io::Error::other(e)))?;
        let mut path = dest.to_path_buf();
        self.tree(CWD, &name, &mut path, &c.6, &c.7, true)
    }

    fn tree(
        &mut self,
        parent: BorrowedFd,
        name: &CStr,
        path: &mut PathBuf,
        tree_csum: &[u8],
        meta_csum: &[u8],
        root: bool,
    ) -> Res<()> {
        let v = self
            .repo
            .load_variant(ostree::ObjectType::DirTree, &hex::encode(tree_csum))
            .map_err(|e| glib_fail("loading the dirtree of", path, e))?;
        let (files, dirs) = v.try_get::<ostree::TreeVariantType>().map_err(|e| {
            fail(
                "bad dirtree object for",
                path,
                io::Error::other(e.to_string()),
            )
        })?;
        let opaque = files.iter().any(|(n, _)| n == OPAQUE_WHITEOUT);
        if opaque && !root {
            rm_rf_at(parent, name, path)?;
        }
        let mut created = match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => {
                let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fail("stat", path, e))?;
                if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
                    false
                } else {
                    rfs::unlinkat(parent, name, AtFlags::empty())
                        .map_err(|e| fail("unlink", path, e))?;
                    rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| fail("mkdir", path, e))?;
                    true
                }
            }
            Err(e) => return Err(fail("mkdir", path, e)),
        };
        let dir = rfs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail("open", path, e))?;
        let dfd = dir.as_fd();
        if opaque && root && !created {
            // An opaque root over lower layers: empty it, and give it this
            // layer's metadata, like a directory created afresh.
            let mut names = Vec::new();
            for e in std::fs::read_dir(&*path).map_err(|e| fail("read", path, e))? {
                names.push(e.map_err(|e| fail("read", path, e))?.file_name());
            }
            for n in names {
                path.push(&n);
                let c = CString::new(n.as_encoded_bytes()).expect("no NUL in a file name");
                let r = rm_rf_at(dfd, &c, path);
                path.pop();
                r?;
            }
            created = true;
        }
        let meta = if created {
            let m = self.dirmeta(meta_csum, path)?;
            for (n, val) in &m.xattrs {
                rfs::fsetxattr(dfd, n.as_c_str(), val, XattrFlags::empty()).map_err(|e| {
                    fail(format!("setting xattr {} on", n.to_string_lossy()), path, e)
                })?;
            }
            Some(m)
        } else {
            None
        };

        // Whiteouts first: they remove what the lower layers put here.
        if !created {
            for (fname, _) in &files {
                let Some(target) = fname.strip_prefix(WHITEOUT_PREFIX) else {
                    continue;
                };
                if fname == OPAQUE_WHITEOUT {
                    continue;
                }
                let t = component(target, path)?;
                path.push(target);
                let r = rm_rf_at(dfd, &t, path);
                path.pop();
                r?;
            }
        }

        for (fname, csum) in &files {
            if fname.starts_with(WHITEOUT_PREFIX) {
                continue;
            }
            let n = component(fname, path)?;
            let obj = object_path(csum).ok_or_else(|| {
                fail(
                    format!("bad checksum for '{fname}' in"),
                    path,
                    io::Error::from(io::ErrorKind::InvalidData),
                )
            })?;
            match rfs::linkat(&self.objects, &obj, dfd, &n, AtFlags::empty()) {
                Ok(()) => {}
                Err(Errno::EXIST) if !created => {
                    path.push(fname);
                    let r = self.replace(dfd, &obj, &n, path);
                    path.pop();
                    r?;
                }
                Err(e) => {
                    path.push(fname);
                    let f = fail(
                        format!("hardlinking object {} to", obj.to_string_lossy()),
                        path,
                        e,
                    );
                    path.pop();
                    return Err(f);
                }
            }
        }

        for (dname, t, m) in &dirs {
            let n = component(dname, path)?;
            path.push(dname);
            let r = self.tree(dfd, &n, path, t, m, false);
            path.pop();
            r?;
        }

        if let Some(m) = meta {
            rfs::fchown(
                dfd,
                Some(rfs::Uid::from_raw(m.uid)),
                Some(rfs::Gid::from_raw(m.gid)),
            )
            .map_err(|e| fail("chown", path, e))?;
            rfs::fchmod(dfd, Mode::from_raw_mode(m.mode & 0o7777))
                .map_err(|e| fail("chmod", path, e))?;
            let times = Timestamps {
                last_access: Timespec {
                    tv_sec: 0,
                    tv_nsec: rfs::UTIME_OMIT,
                },
                last_modification: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
            };
            rfs::futimens(dfd, &times).map_err(|e| fail("set the mtime of", path, e))?;
        }
        Ok(())
    }

    /// `name` exists in `dir`: replace it with the object `obj`, unless it is
    /// that object already.
    fn replace(&self, dir: BorrowedFd, obj: &CStr, name: &CStr, path: &Path) -> Res<()> {
        let src = rfs::statat(&self.objects, obj, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail("stat object for", path, e))?;
        let dst =
            rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail("stat", path, e))?;
        if src.st_dev == dst.st_dev && src.st_ino == dst.st_ino {
            return Ok(());
        }
        rm_rf_at(dir, name, path)?;
        rfs::linkat(&self.objects, obj, dir, name, AtFlags::empty()).map_err(|e| {
            fail(
                format!("hardlinking object {} to", obj.to_string_lossy()),
                path,
                e,
            )
        })
    }
}
