//! Our own hardlink union checkout of one layer commit (the default; see
//! `Store::checkout`). libostree's `checkout_at` opens every file object and
//! reads its xattrs; in a bare repo the object files *are* the checked-out
//! files (content, mode, owner, xattrs; symlinks are stored as symlinks), so
//! one `linkat` per regular file is enough. We read only the dirtree and
//! dirmeta objects, and `stat` each file object for its type.
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
//! Deliberate differences:
//! - a directory over a non-directory replaces it (libostree fails with
//!   ENOTDIR there);
//! - symlinks are created (`symlinkat`, then owner and xattrs), never
//!   hardlinked: a busybox image has ~270 symlinks that are one object, and
//!   ext4 allows 65,000 links per inode, so hardlinking them stops installs
//!   of the same image at about 240 containers. libostree hardlinks them
//!   (and copies once the link fails with EMLINK);
//! - a regular file whose object has reached the link limit (EMLINK) is
//!   copied, for that file only, as libostree's copy fallback does (content,
//!   owner, xattrs, then mode), and also given the object's mtime (libostree
//!   leaves the copy's mtime at the time of the copy). [`Linker::copied`]
//!   counts them. `containers verify` re-hashes files, so a faithful copy
//!   verifies and an edited one does not.
//!
//! Created directories are made 0700, get their xattrs at once, and their
//! owner, mode and mtime (0, like libostree's `OSTREE_TIMESTAMP`) once their
//! children are in place.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags, CWD};
use rustix::io::Errno;

use super::CheckoutReport;
use crate::store::import::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::store::{ImageInfo, Store, StoreError};

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

/// A symlink object: what `symlinkat` and its metadata need.
struct SymlinkObject {
    target: CString,
    uid: u32,
    gid: u32,
    xattrs: Vec<(CString, Vec<u8>)>,
}

pub(crate) struct Linker<'r> {
    repo: &'r ostree::Repo,
    objects: OwnedFd,
    objects_path: PathBuf,
    metas: HashMap<String, Rc<DirMeta>>,
    /// Symlink objects met so far, by object path (busybox: one for ~270).
    symlinks: HashMap<CString, Rc<SymlinkObject>>,
    copied: u64,
}

/// What a file object is, for placing it.
enum Object {
    Regular,
    Symlink(Rc<SymlinkObject>),
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
            objects_path: objects,
            metas: HashMap::new(),
            symlinks: HashMap::new(),
            copied: 0,
        })
    }

    /// Regular files copied so far because their object had reached the
    /// filesystem's link limit.
    pub(crate) fn copied(&self) -> u64 {
        self.copied
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
            path.push(fname);
            let r = self.place(dfd, &obj, &n, path, !created);
            path.pop();
            r?;
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

    /// The object `obj`: a regular file, or a symlink (read once).
    fn object(&mut self, obj: &CStr, path: &Path) -> Res<Object> {
        if let Some(l) = self.symlinks.get(obj) {
            return Ok(Object::Symlink(l.clone()));
        }
        let st = rfs::statat(&self.objects, obj, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail(obj_what("stat object", obj), path, e))?;
        match rfs::FileType::from_raw_mode(st.st_mode) {
            rfs::FileType::RegularFile => Ok(Object::Regular),
            rfs::FileType::Symlink => {
                let target = rfs::readlinkat(&self.objects, obj, Vec::new())
                    .map_err(|e| fail(obj_what("read symlink object", obj), path, e))?;
                let full = self
                    .objects_path
                    .join(std::ffi::OsStr::from_bytes(obj.to_bytes()));
                let xattrs = list_xattrs(
                    |b| rfs::llistxattr(&full, b),
                    |n, b| rfs::lgetxattr(&full, n, b),
                )
                .map_err(|e| fail(obj_what("read the xattrs of object", obj), path, e))?;
                let l = Rc::new(SymlinkObject {
                    target,
                    uid: st.st_uid,
                    gid: st.st_gid,
                    xattrs,
                });
                self.symlinks.insert(obj.to_owned(), l.clone());
                Ok(Object::Symlink(l))
            }
            _ => Err(fail(
                obj_what("unexpected file type of object", obj),
                path,
                io::Error::from(io::ErrorKind::InvalidData),
            )),
        }
    }

    /// Put the object `obj` at `name` in `dir`. With `union`, `name` may
    /// exist (from a lower layer) and is replaced unless it is that object
    /// already.
    fn place(
        &mut self,
        dir: BorrowedFd,
        obj: &CStr,
        name: &CStr,
        path: &Path,
        union: bool,
    ) -> Res<()> {
        match self.object(obj, path)? {
            Object::Symlink(l) => symlink(dir, &l, name, path, union),
            Object::Regular => match rfs::linkat(&self.objects, obj, dir, name, AtFlags::empty()) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST) if union => self.replace(dir, obj, name, path),
                Err(Errno::MLINK) => self.copy(dir, obj, name, path),
                Err(e) => Err(fail(obj_what("hardlinking object", obj) + " to", path, e)),
            },
        }
    }

    /// `name` exists in `dir`: replace it with the regular file object
    /// `obj`, unless it is that object already.
    fn replace(&mut self, dir: BorrowedFd, obj: &CStr, name: &CStr, path: &Path) -> Res<()> {
        let src = rfs::statat(&self.objects, obj, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail("stat object for", path, e))?;
        let dst =
            rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail("stat", path, e))?;
        if src.st_dev == dst.st_dev && src.st_ino == dst.st_ino {
            return Ok(());
        }
        rm_rf_at(dir, name, path)?;
        match rfs::linkat(&self.objects, obj, dir, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::MLINK) => self.copy(dir, obj, name, path),
            Err(e) => Err(fail(obj_what("hardlinking object", obj) + " to", path, e)),
        }
    }

    /// The regular file object `obj` has reached the link limit: copy it to
    /// `name` (which does not exist) with its owner, xattrs, mode and mtime.
    fn copy(&mut self, dir: BorrowedFd, obj: &CStr, name: &CStr, path: &Path) -> Res<()> {
        let what = obj_what("copying object", obj) + " (at the link limit) to";
        let f = |e: Errno| fail(what.clone(), path, e);
        let src = rfs::openat(
            &self.objects,
            obj,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(f)?;
        let st = rfs::fstat(&src).map_err(f)?;
        let xattrs = list_xattrs(
            |b| rfs::flistxattr(&src, b),
            |n, b| rfs::fgetxattr(&src, n, b),
        )
        .map_err(f)?;
        let dst = rfs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(f)?;
        let mut from = std::fs::File::from(src);
        let mut to = std::fs::File::from(dst);
        // copy_file_range where the kernel has it.
        let n = io::copy(&mut from, &mut to).map_err(|e| fail(what.clone(), path, e))?;
        if n != st.st_size as u64 {
            return Err(fail(
                what.clone(),
                path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("copied {n} of {} bytes", st.st_size),
                ),
            ));
        }
        // Owner first: chown clears setuid bits and file capabilities.
        rfs::fchown(
            &to,
            Some(rfs::Uid::from_raw(st.st_uid)),
            Some(rfs::Gid::from_raw(st.st_gid)),
        )
        .map_err(f)?;
        for (n, v) in &xattrs {
            rfs::fsetxattr(&to, n.as_c_str(), v, XattrFlags::empty()).map_err(f)?;
        }
        rfs::fchmod(&to, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(f)?;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rfs::futimens(&to, &times).map_err(f)?;
        self.copied += 1;
        Ok(())
    }
}

fn obj_what(what: &str, obj: &CStr) -> String {
    format!("{what} {}", obj.to_string_lossy())
}

/// Create the symlink `l` at `name` in `dir`, replacing what is there with
/// `union`, with the object's owner and xattrs.
fn symlink(dir: BorrowedFd, l: &SymlinkObject, name: &CStr, path: &Path, union: bool) -> Res<()> {
    match rfs::symlinkat(l.target.as_c_str(), dir, name) {
        Ok(()) => {}
        Err(Errno::EXIST) if union => {
            rm_rf_at(dir, name, path)?;
            rfs::symlinkat(l.target.as_c_str(), dir, name)
                .map_err(|e| fail("creating symlink", path, e))?;
        }
        Err(e) => return Err(fail("creating symlink", path, e)),
    }
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(l.uid)),
        Some(rfs::Gid::from_raw(l.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| fail("chown", path, e))?;
    for (n, v) in &l.xattrs {
        rfs::lsetxattr(path, n.as_c_str(), v, XattrFlags::empty())
            .map_err(|e| fail(format!("setting xattr {} on", n.to_string_lossy()), path, e))?;
    }
    Ok(())
}

/// All xattrs, through `list` and `get` (the `l*` or `f*` calls).
fn list_xattrs(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&CStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> Result<Vec<(CString, Vec<u8>)>, Errno> {
    let names = grow(|b| list(b))?;
    let mut out = Vec::new();
    for n in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let n = CString::new(n).expect("split at NUL");
        let v = grow(|b| get(&n, b))?;
        out.push((n, v));
    }
    Ok(out)
}

/// Call `f` with a buffer large enough for its answer (ERANGE: retry larger).
fn grow(f: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

impl Store {
    pub(super) fn checkout_hardlink(
        &self,
        img: &ImageInfo,
        commits: &[(&String, String)],
        dest: &Path,
    ) -> Result<CheckoutReport, StoreError> {
        let err = |digest: &str, f: CheckoutFailure| StoreError::CheckoutIo {
            name: img.name.clone(),
            digest: digest.to_string(),
            dest: dest.to_path_buf(),
            source: Box::new(f),
        };
        let first = commits.first().map(|(d, _)| d.as_str()).unwrap_or_default();
        let mut linker = Linker::new(&self.repo, &self.repo_real).map_err(|f| err(first, f))?;
        for (digest, commit) in commits {
            linker.layer(commit, dest).map_err(|f| err(digest, f))?;
            crate::failpoint!("checkout.layer");
        }
        Ok(CheckoutReport {
            copied: linker.copied(),
        })
    }
}
