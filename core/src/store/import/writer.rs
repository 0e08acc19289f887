//! The object writer: an import's OSTree objects (file content, symlinks,
//! dirmeta), checksummed here where libostree agrees, and the
//! `MutableTree` they go into.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::OnceLock;

use gio::prelude::*;
use glib::prelude::ToVariant;
use sha2::{Digest, Sha256};

use super::pool::PoolHandle;
use super::{budget, ImportError, ImportStats, BUFFER_MAX, BUF_SIZE, INLINE_MAX, RECHECK_BYTES};

fn not_found(e: &glib::Error) -> bool {
    e.matches(gio::IOErrorEnum::NotFound)
}

/// Look up `name` in `t`: `(file checksum, subdir)`, both `None` if absent.
fn lookup(
    t: &ostree::MutableTree,
    name: &str,
) -> Result<(Option<glib::GString>, Option<ostree::MutableTree>), glib::Error> {
    match t.lookup(name) {
        Ok(r) => Ok(r),
        Err(e) if not_found(&e) => Ok((None, None)),
        Err(e) => Err(e),
    }
}

/// Write a dirmeta object; cached per (uid, gid, mode, xattrs).
pub(crate) struct DirMetas {
    cache: HashMap<(u32, u32, u32, Vec<u8>), String>,
}

impl DirMetas {
    pub(crate) fn new() -> Self {
        DirMetas {
            cache: HashMap::new(),
        }
    }

    pub(crate) fn get(
        &mut self,
        repo: &ostree::Repo,
        uid: u32,
        gid: u32,
        mode: u32,
        xattrs: Option<&glib::Variant>,
    ) -> Result<String, glib::Error> {
        let key = (
            uid,
            gid,
            mode & 0o7777,
            xattrs.map(|v| v.data().to_vec()).unwrap_or_default(),
        );
        if let Some(c) = self.cache.get(&key) {
            return Ok(c.clone());
        }
        let fi = gio::FileInfo::new();
        fi.set_attribute_uint32("unix::uid", uid);
        fi.set_attribute_uint32("unix::gid", gid);
        fi.set_attribute_uint32("unix::mode", libc::S_IFDIR | (mode & 0o7777));
        fi.set_file_type(gio::FileType::Directory);
        let v = ostree::create_directory_metadata(&fi, xattrs);
        let c = repo
            .write_metadata(
                ostree::ObjectType::DirMeta,
                None,
                &v,
                gio::Cancellable::NONE,
            )?
            .to_hex();
        self.cache.insert(key, c.clone());
        Ok(c)
    }
}

pub(super) struct Importer<'r> {
    pub(super) repo: &'r ostree::Repo,
    pub(super) root: ostree::MutableTree,
    pub(super) metas: DirMetas,
    pub(super) default_meta: String,
    /// The last parent directory used, by path: most entries share it.
    pub(super) cache: Option<(String, ostree::MutableTree)>,
    pub(super) buf: Vec<u8>,
    /// Checksum here and write trusted content (see [`trusted_checksums`]).
    pub(super) trusted: bool,
    /// Content objects already written by this import.
    pub(super) written: HashSet<[u8; 32]>,
    /// Free space of the repo's filesystem.
    pub(super) space: budget::Space<'r>,
    /// Writes the trusted objects on other threads, when given.
    pub(super) pool: Option<PoolHandle<'r>>,
    pub(super) stats: ImportStats,
}

/// An OSTree file object's header, as libostree checksums and parses it:
/// the `(uuuusa(ayay))` variant (uid, gid, mode big-endian, rdev 0, symlink
/// target, xattrs), prefixed by its length (u32 big-endian) and 4 NULs.
pub(crate) fn file_header(
    uid: u32,
    gid: u32,
    mode: u32,
    symlink_target: &str,
    xattrs: Option<&glib::Variant>,
) -> Vec<u8> {
    let xattrs = xattrs
        .cloned()
        .unwrap_or_else(|| Vec::<(Vec<u8>, Vec<u8>)>::new().to_variant());
    let v = glib::Variant::tuple_from_iter([
        uid.to_be().to_variant(),
        gid.to_be().to_variant(),
        mode.to_be().to_variant(),
        0u32.to_variant(),
        symlink_target.to_variant(),
        xattrs,
    ]);
    let data = v.data();
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(data);
    out
}

/// Whether [`file_header`] gives libostree's own checksums, checked once per
/// process on a sample file with xattrs (a few hundred bytes of glib
/// sha256). When it does not (a libostree with another object format), every
/// file is checksummed by libostree.
pub(crate) fn trusted_checksums() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let (uid, gid, mode) = (1000, 100, libc::S_IFREG | 0o4751);
        let xattrs = vec![(b"user.a\0".to_vec(), b"1".to_vec())].to_variant();
        let content = b"syscontainer header self-check\n";
        let fi = gio::FileInfo::new();
        fi.set_file_type(gio::FileType::Regular);
        fi.set_attribute_uint32("unix::uid", uid);
        fi.set_attribute_uint32("unix::gid", gid);
        fi.set_attribute_uint32("unix::mode", mode);
        fi.set_size(content.len() as i64);
        let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from_static(content));
        let theirs = ostree::checksum_file_from_input(
            &fi,
            Some(&xattrs),
            Some(&input),
            ostree::ObjectType::File,
            gio::Cancellable::NONE,
        );
        let mut obj = file_header(uid, gid, mode, "", Some(&xattrs));
        obj.extend_from_slice(content);
        let ours = hex::encode(Sha256::digest(&obj));
        // And a symlink, as `write_symlink` checksums it.
        let link = gio::FileInfo::new();
        link.set_file_type(gio::FileType::SymbolicLink);
        link.set_symlink_target("../target");
        link.set_attribute_uint32("unix::uid", uid);
        link.set_attribute_uint32("unix::gid", gid);
        link.set_attribute_uint32("unix::mode", libc::S_IFLNK | 0o777);
        let theirs_link = ostree::checksum_file_from_input(
            &link,
            Some(&xattrs),
            gio::InputStream::NONE,
            ostree::ObjectType::File,
            gio::Cancellable::NONE,
        );
        let ours_link = hex::encode(Sha256::digest(file_header(
            uid,
            gid,
            libc::S_IFLNK | 0o777,
            "../target",
            Some(&xattrs),
        )));
        match (theirs, theirs_link) {
            (Ok(t), Ok(l)) if t.to_hex() == ours && l.to_hex() == ours_link => true,
            other => {
                log::warn!("OSTree file checksums differ from ours ({other:?} vs {ours}, {ours_link}): letting libostree checksum every file");
                false
            }
        }
    })
}

/// Per-entry metadata from the header and PAX records.
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) xattrs: Option<glib::Variant>,
}

impl<'r> Importer<'r> {
    /// An empty tree (its root 0755, root-owned) to import into `repo`.
    pub(super) fn new(
        repo: &'r ostree::Repo,
        space: budget::Space<'r>,
        pool: Option<PoolHandle<'r>>,
    ) -> Result<Self, ImportError> {
        let mut metas = DirMetas::new();
        let default_meta =
            metas
                .get(repo, 0, 0, 0o755, None)
                .map_err(|source| ImportError::Write {
                    path: "/".into(),
                    source,
                })?;
        let root = ostree::MutableTree::new();
        root.set_metadata_checksum(&default_meta);
        Ok(Importer {
            repo,
            root,
            metas,
            default_meta,
            cache: None,
            buf: vec![0u8; BUF_SIZE],
            trusted: trusted_checksums(),
            written: HashSet::new(),
            space,
            pool,
            stats: ImportStats::default(),
        })
    }

    pub(super) fn wr<T>(path: &str, r: Result<T, glib::Error>) -> Result<T, ImportError> {
        r.map_err(|source| ImportError::Write {
            path: path.to_string(),
            source,
        })
    }

    /// The directory that holds `comps`' last component, created (0755,
    /// root) where missing.
    fn parent(&mut self, comps: &[&str], path: &str) -> Result<ostree::MutableTree, ImportError> {
        let parents = &comps[..comps.len().saturating_sub(1)];
        let key = parents.join("/");
        if let Some((k, t)) = &self.cache {
            if *k == key {
                return Ok(t.clone());
            }
        }
        let mut t = self.root.clone();
        for (i, c) in parents.iter().enumerate() {
            let (file, sub) = Self::wr(path, lookup(&t, c))?;
            t = match (file, sub) {
                (_, Some(sub)) => sub,
                (Some(_), None) => {
                    return Err(ImportError::ParentNotDir {
                        path: path.to_string(),
                        parent: parents[..=i].join("/"),
                    })
                }
                (None, None) => {
                    let sub = Self::wr(path, t.ensure_dir(c))?;
                    sub.set_metadata_checksum(&self.default_meta);
                    sub
                }
            };
        }
        self.cache = Some((key, t.clone()));
        Ok(t)
    }

    /// The file checksum at `comps`, if it is a non-directory in this layer.
    pub(super) fn find_file(
        &self,
        comps: &[&str],
        path: &str,
    ) -> Result<Option<String>, ImportError> {
        let Some((last, parents)) = comps.split_last() else {
            return Ok(None);
        };
        let mut t = self.root.clone();
        for c in parents {
            match Self::wr(path, lookup(&t, c))? {
                (_, Some(sub)) => t = sub,
                _ => return Ok(None),
            }
        }
        Ok(Self::wr(path, lookup(&t, last))?.0.map(|c| c.to_string()))
    }

    /// Put a non-directory at `comps`. Anything already there came from an
    /// earlier entry of this layer (`raw` is this entry's name as written):
    /// a collision, since tar readers disagree on which one wins.
    pub(super) fn put_file(
        &mut self,
        comps: &[&str],
        path: &str,
        raw: &str,
        csum: &str,
    ) -> Result<(), ImportError> {
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        let (file, dir) = Self::wr(path, lookup(&parent, name))?;
        if file.is_some() || dir.is_some() {
            return Err(ImportError::Collision {
                path: raw.to_string(),
                normalized: path.to_string(),
            });
        }
        Self::wr(path, parent.replace_file(name, csum))
    }

    /// Put a directory at `comps`. Repeating a directory is allowed (the last
    /// metadata wins); replacing a non-directory of this layer is not.
    pub(super) fn put_dir(
        &mut self,
        comps: &[&str],
        path: &str,
        raw: &str,
        meta: &Meta,
    ) -> Result<(), ImportError> {
        let m = Self::wr(
            path,
            self.metas.get(
                self.repo,
                meta.uid,
                meta.gid,
                meta.mode,
                meta.xattrs.as_ref(),
            ),
        )?;
        if comps.is_empty() {
            self.root.set_metadata_checksum(&m);
            return Ok(());
        }
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        if Self::wr(path, lookup(&parent, name))?.0.is_some() {
            return Err(ImportError::Collision {
                path: raw.to_string(),
                normalized: path.to_string(),
            });
        }
        let sub = Self::wr(path, parent.ensure_dir(name))?;
        sub.set_metadata_checksum(&m);
        Ok(())
    }

    pub(super) fn write_regfile<R: Read>(
        &mut self,
        e: &mut R,
        path: &str,
        size: u64,
        meta: &Meta,
    ) -> Result<String, ImportError> {
        let mode = libc::S_IFREG | (meta.mode & 0o7777);
        let read_err = |source| ImportError::Read {
            last: path.to_string(),
            source,
        };
        if self.trusted && size <= BUFFER_MAX {
            let mut obj = file_header(meta.uid, meta.gid, mode, "", meta.xattrs.as_ref());
            let header = obj.len();
            let room = match &mut self.pool {
                Some(p) => Some(p.reserve(header as u64 + size)?),
                None => None,
            };
            obj.reserve_exact(size as usize);
            e.take(size).read_to_end(&mut obj).map_err(read_err)?;
            let got = (obj.len() - header) as u64;
            if got != size {
                return Err(ImportError::Truncated {
                    path: path.into(),
                    got,
                    size,
                });
            }
            let digest: [u8; 32] = Sha256::digest(&obj).into();
            let csum = hex::encode(digest);
            if let (Some(p), Some(room)) = (&mut self.pool, room) {
                if self.written.insert(digest) {
                    p.write(room, &digest, obj, path)?;
                }
                return Ok(csum);
            }
            if self.written.insert(digest) {
                let len = obj.len() as u64;
                let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from_owned(obj));
                Self::wr(
                    path,
                    self.repo
                        .write_content_trusted(&csum, &input, len, gio::Cancellable::NONE),
                )?;
            }
            return Ok(csum);
        }
        if size <= INLINE_MAX {
            let mut data = Vec::with_capacity(size as usize);
            e.take(size).read_to_end(&mut data).map_err(read_err)?;
            if data.len() as u64 != size {
                return Err(ImportError::Truncated {
                    path: path.into(),
                    got: data.len() as u64,
                    size,
                });
            }
            let c = self.repo.write_regfile_inline(
                None,
                meta.uid,
                meta.gid,
                mode,
                meta.xattrs.as_ref(),
                &data,
                gio::Cancellable::NONE,
            );
            return Ok(Self::wr(path, c)?.to_string());
        }
        let w = Self::wr(
            path,
            self.repo
                .write_regfile(None, meta.uid, meta.gid, mode, size, meta.xattrs.as_ref()),
        )?;
        let mut got = 0u64;
        let mut checked = 0u64;
        loop {
            let want = BUF_SIZE.min((size - got) as usize);
            if want == 0 {
                break;
            }
            if got - checked >= RECHECK_BYTES {
                self.space.recheck(path, size, got)?;
                checked = got;
            }
            let n = e.read(&mut self.buf[..want]).map_err(read_err)?;
            if n == 0 {
                return Err(ImportError::Truncated {
                    path: path.into(),
                    got,
                    size,
                });
            }
            let werr = match w.write_all(&self.buf[..n], gio::Cancellable::NONE) {
                Ok((_, None)) => None,
                Ok((_, Some(e))) | Err(e) => Some(e),
            };
            if let Some(source) = werr {
                return Err(ImportError::Write {
                    path: path.into(),
                    source,
                });
            }
            got += n as u64;
        }
        Ok(Self::wr(path, w.finish(gio::Cancellable::NONE))?.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libostree_checksum(
        uid: u32,
        gid: u32,
        mode: u32,
        target: &str,
        xattrs: Option<&glib::Variant>,
        content: &'static [u8],
    ) -> String {
        let fi = gio::FileInfo::new();
        let link = target.is_empty().then_some(gio::FileType::Regular);
        fi.set_file_type(link.unwrap_or(gio::FileType::SymbolicLink));
        if !target.is_empty() {
            fi.set_symlink_target(target);
        }
        fi.set_attribute_uint32("unix::uid", uid);
        fi.set_attribute_uint32("unix::gid", gid);
        fi.set_attribute_uint32("unix::mode", mode);
        fi.set_size(content.len() as i64);
        let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from_static(content));
        ostree::checksum_file_from_input(
            &fi,
            xattrs,
            target.is_empty().then_some(&input),
            ostree::ObjectType::File,
            gio::Cancellable::NONE,
        )
        .unwrap()
        .to_hex()
    }

    #[test]
    fn file_header_gives_libostree_checksums() {
        assert!(trusted_checksums());
        let two = vec![
            (
                b"security.capability\0".to_vec(),
                vec![1u8, 0, 0, 2, 0, 0x20],
            ),
            (b"user.x\0".to_vec(), Vec::new()),
        ]
        .to_variant();
        type Case<'a> = (
            u32,
            u32,
            u32,
            &'a str,
            Option<&'a glib::Variant>,
            &'static [u8],
        );
        let cases: [Case; 5] = [
            (0, 0, libc::S_IFREG | 0o644, "", None, b""),
            (0, 0, libc::S_IFREG | 0o755, "", None, b"#!/bin/sh\n"),
            (
                65534,
                7,
                libc::S_IFREG | 0o2711,
                "",
                Some(&two),
                &[0u8; 70000],
            ),
            (0, 0, libc::S_IFLNK | 0o777, "../lib/x.so", None, b""),
            (1, 2, libc::S_IFLNK | 0o777, "t", Some(&two), b""),
        ];
        for (uid, gid, mode, target, xattrs, content) in cases {
            let mut obj = file_header(uid, gid, mode, target, xattrs);
            obj.extend_from_slice(content);
            assert_eq!(
                hex::encode(Sha256::digest(&obj)),
                libostree_checksum(uid, gid, mode, target, xattrs, content),
                "uid {uid} mode {mode:o} target {target:?}"
            );
        }
    }
}
