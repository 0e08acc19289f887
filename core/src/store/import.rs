//! One layer's tar stream -> an OSTree tree, straight from the stream.
//!
//! Nothing is extracted to a temporary directory. Each regular file of up to
//! [`BUFFER_MAX`] bytes is read into memory behind its OSTree file header and
//! its object checksum is computed here (sha256 of header and content, with
//! the CPU's SHA instructions), then handed to libostree as a trusted content
//! stream: glib's portable sha256, which libostree otherwise runs over every
//! byte, was a quarter of a pull's CPU time. The header format is checked
//! against libostree once per process ([`trusted_checksums`]); if it ever
//! disagrees, and for larger files, each file is streamed into a libostree
//! `ContentWriter` sized from its tar header instead. The tree is built in a
//! `MutableTree`. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are kept as ordinary
//! files, so that `checkout_at(process_whiteouts)` applies them later. Device
//! nodes and FIFOs are dropped and counted.
//!
//! Hostile input fails with an error naming the entry, and nothing outside
//! the repo is touched (the importer never writes to the filesystem itself).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::OnceLock;

use gio::prelude::*;
use glib::prelude::ToVariant;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Longest accepted path, in bytes (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest accepted path component (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Files up to this size are read into memory and written in one call.
const INLINE_MAX: u64 = 64 * 1024;
/// Files up to this size are checksummed here and written as trusted content
/// (one buffer of at most this size is alive at a time).
pub const BUFFER_MAX: u64 = 8 << 20;
const BUF_SIZE: usize = 128 * 1024;
/// Prefix of a whiteout file.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// An opaque-directory marker.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("layer entry '{path}' has an absolute path")]
    Absolute { path: String },
    #[error("layer entry '{path}' has a '..' path component")]
    DotDot { path: String },
    #[error(
        "layer entry '{path}...' has a path of {len} bytes, longer than PATH_MAX ({PATH_MAX})"
    )]
    PathTooLong { path: String, len: usize },
    #[error("layer entry '{path}' has a path component longer than {NAME_MAX} bytes")]
    NameTooLong { path: String },
    #[error("layer entry '{path}': the {what} is not valid UTF-8, which OSTree cannot store")]
    NotUtf8 { path: String, what: &'static str },
    #[error("layer entry '{path}' is a hardlink to '{target}', which is not a file earlier in the same layer")]
    HardlinkTarget { path: String, target: String },
    #[error("layer entry '{path}': its parent '{parent}' is not a directory in this layer")]
    ParentNotDir { path: String, parent: String },
    #[error("layer entry '{path}' has an unsupported tar entry type '{kind}'")]
    EntryType { path: String, kind: char },
    #[error("layer entry '{path}' has an invalid header field ({what})")]
    Header {
        path: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the layer ends inside entry '{path}' ({got} of {size} bytes)")]
    Truncated { path: String, got: u64, size: u64 },
    #[error(
        "the layer's tar stream ends early, without an end-of-archive block (last entry: '{last}')"
    )]
    NoEndMarker { last: String },
    #[error("reading the layer's tar stream (last entry: '{last}')")]
    Read {
        last: String,
        #[source]
        source: io::Error,
    },
    #[error("layer entry '{path}': writing it to the OSTree repo")]
    Write {
        path: String,
        #[source]
        source: glib::Error,
    },
}

/// What an import saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub whiteouts: u64,
    /// Device nodes and FIFOs, which are dropped.
    pub dropped_special: u64,
    /// Bytes of regular file content.
    pub content_bytes: u64,
    /// Length of the tar stream, end-of-archive padding included.
    pub tar_bytes: u64,
}

/// The result of importing one layer: the written root tree.
pub struct Imported {
    pub root: ostree::RepoFile,
    pub stats: ImportStats,
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Display form of a raw path, shortened for very long ones.
fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    } else {
        s.into_owned()
    }
}

/// Validate and split a tar path into its components (empty for the root).
pub fn normalize(raw: &[u8]) -> Result<Vec<&str>, ImportError> {
    if raw.len() > PATH_MAX {
        return Err(ImportError::PathTooLong {
            path: show(raw),
            len: raw.len(),
        });
    }
    let s = std::str::from_utf8(raw).map_err(|_| ImportError::NotUtf8 {
        path: show(raw),
        what: "path",
    })?;
    if s.starts_with('/') {
        return Err(ImportError::Absolute { path: s.into() });
    }
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(ImportError::DotDot { path: s.into() }),
            c if c.len() > NAME_MAX => return Err(ImportError::NameTooLong { path: s.into() }),
            c => out.push(c),
        }
    }
    Ok(out)
}

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

struct Importer<'r> {
    repo: &'r ostree::Repo,
    root: ostree::MutableTree,
    metas: DirMetas,
    default_meta: String,
    /// The last parent directory used, by path: most entries share it.
    cache: Option<(String, ostree::MutableTree)>,
    buf: Vec<u8>,
    /// Checksum here and write trusted content (see [`trusted_checksums`]).
    trusted: bool,
    /// Content objects already written by this import.
    written: HashSet<[u8; 32]>,
    stats: ImportStats,
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
        match theirs {
            Ok(t) if t.to_hex() == ours => true,
            other => {
                log::warn!("OSTree file checksums differ from ours ({other:?} vs {ours}): letting libostree checksum every file");
                false
            }
        }
    })
}

/// Per-entry metadata from the header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: Option<glib::Variant>,
}

impl<'r> Importer<'r> {
    fn wr<T>(path: &str, r: Result<T, glib::Error>) -> Result<T, ImportError> {
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
    fn find_file(&self, comps: &[&str], path: &str) -> Result<Option<String>, ImportError> {
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

    /// Put a non-directory at `comps`, replacing whatever was there.
    fn put_file(&mut self, comps: &[&str], path: &str, csum: &str) -> Result<(), ImportError> {
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        if Self::wr(path, lookup(&parent, name))?.1.is_some() {
            Self::wr(path, parent.remove(name, true))?;
            self.cache = None;
        }
        Self::wr(path, parent.replace_file(name, csum))
    }

    fn put_dir(&mut self, comps: &[&str], path: &str, meta: &Meta) -> Result<(), ImportError> {
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
            Self::wr(path, parent.remove(name, true))?;
        }
        let sub = Self::wr(path, parent.ensure_dir(name))?;
        sub.set_metadata_checksum(&m);
        Ok(())
    }

    fn write_regfile<R: Read>(
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
        loop {
            let want = BUF_SIZE.min((size - got) as usize);
            if want == 0 {
                break;
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

fn header_err<'a>(path: &'a str, what: &'static str) -> impl FnOnce(io::Error) -> ImportError + 'a {
    move |source| ImportError::Header {
        path: path.to_string(),
        what,
        source,
    }
}

/// Entry metadata: header fields, overridden by PAX `uid`/`gid`, plus PAX
/// `SCHILY.xattr.*` as an OSTree `a(ayay)` (names NUL-terminated, sorted).
fn entry_meta<R: Read>(e: &mut tar::Entry<'_, R>, path: &str) -> Result<Meta, ImportError> {
    let h = e.header();
    let too_big = |what| ImportError::Header {
        path: path.to_string(),
        what,
        source: io::Error::new(io::ErrorKind::InvalidData, "value does not fit in 32 bits"),
    };
    let mut uid = h.uid().map_err(header_err(path, "uid"))?;
    let mut gid = h.gid().map_err(header_err(path, "gid"))?;
    let mode = h.mode().map_err(header_err(path, "mode"))?;
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if let Some(exts) = e.pax_extensions().map_err(header_err(path, "pax"))? {
        for ext in exts {
            let ext = ext.map_err(header_err(path, "pax"))?;
            let key = ext.key_bytes();
            let num = || {
                std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if name.is_empty() || name.contains(&0) {
                    continue;
                }
                let mut n = name.to_vec();
                n.push(0);
                xattrs.push((n, ext.value_bytes().to_vec()));
            } else if key == b"uid" {
                uid = num().unwrap_or(uid);
            } else if key == b"gid" {
                gid = num().unwrap_or(gid);
            }
        }
    }
    xattrs.sort();
    xattrs.dedup_by(|a, b| a.0 == b.0);
    Ok(Meta {
        uid: u32::try_from(uid).map_err(|_| too_big("uid"))?,
        gid: u32::try_from(gid).map_err(|_| too_big("gid"))?,
        mode,
        xattrs: (!xattrs.is_empty()).then(|| xattrs.to_variant()),
    })
}

/// Import one layer's (uncompressed) tar stream into `repo`, which must be in
/// a transaction. The stream is read to EOF, so that a verifying reader
/// underneath sees the end and checks its digest.
pub fn import_layer<R: Read>(repo: &ostree::Repo, r: R) -> Result<Imported, ImportError> {
    let mut metas = DirMetas::new();
    let default_meta = metas
        .get(repo, 0, 0, 0o755, None)
        .map_err(|source| ImportError::Write {
            path: "/".into(),
            source,
        })?;
    let root = ostree::MutableTree::new();
    root.set_metadata_checksum(&default_meta);
    let mut imp = Importer {
        repo,
        root,
        metas,
        default_meta,
        cache: None,
        buf: vec![0u8; BUF_SIZE],
        trusted: trusted_checksums(),
        written: HashSet::new(),
        stats: ImportStats::default(),
    };
    let mut counter = CountingReader { inner: r, n: 0 };
    let mut last = String::from("(none)");
    let mut last_end = 0u64;
    {
        let mut ar = tar::Archive::new(&mut counter);
        let entries = ar.entries().map_err(|source| ImportError::Read {
            last: last.clone(),
            source,
        })?;
        for e in entries {
            let mut e = e.map_err(|source| ImportError::Read {
                last: last.clone(),
                source,
            })?;
            let raw = e.path_bytes().into_owned();
            last = show(&raw);
            let kind = e.header().entry_type();
            let stored = e.header().entry_size().map_err(header_err(&last, "size"))?;
            last_end = e.raw_file_position() + stored.div_ceil(512) * 512;
            if kind.is_pax_global_extensions() {
                continue;
            }
            let comps = normalize(&raw)?;
            let path = comps.join("/");
            let path = if path.is_empty() { "/" } else { path.as_str() };
            if comps.is_empty() && !kind.is_dir() {
                return Err(ImportError::ParentNotDir {
                    path: last.clone(),
                    parent: "/".into(),
                });
            }
            let is_whiteout = comps.last().is_some_and(|n| n.starts_with(WHITEOUT_PREFIX));
            match kind {
                tar::EntryType::Directory => {
                    let meta = entry_meta(&mut e, path)?;
                    imp.put_dir(&comps, path, &meta)?;
                    imp.stats.dirs += 1;
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let meta = entry_meta(&mut e, path)?;
                    let size = e.size();
                    let csum = imp.write_regfile(&mut e, path, size, &meta)?;
                    imp.put_file(&comps, path, &csum)?;
                    if is_whiteout {
                        imp.stats.whiteouts += 1;
                    } else {
                        imp.stats.files += 1;
                    }
                    imp.stats.content_bytes += size;
                }
                tar::EntryType::Symlink => {
                    let meta = entry_meta(&mut e, path)?;
                    let target = e.link_name_bytes().unwrap_or_default().into_owned();
                    let target = String::from_utf8(target).map_err(|_| ImportError::NotUtf8 {
                        path: path.into(),
                        what: "symlink target",
                    })?;
                    let c = Importer::wr(
                        path,
                        repo.write_symlink(
                            None,
                            meta.uid,
                            meta.gid,
                            meta.xattrs.as_ref(),
                            &target,
                            gio::Cancellable::NONE,
                        ),
                    )?;
                    imp.put_file(&comps, path, &c)?;
                    imp.stats.symlinks += 1;
                }
                tar::EntryType::Link => {
                    let target_raw = e.link_name_bytes().unwrap_or_default().into_owned();
                    let bad_target = || ImportError::HardlinkTarget {
                        path: path.into(),
                        target: show(&target_raw),
                    };
                    let tcomps = normalize(&target_raw).map_err(|_| bad_target())?;
                    let Some(c) = imp.find_file(&tcomps, path)? else {
                        return Err(bad_target());
                    };
                    imp.put_file(&comps, path, &c)?;
                    imp.stats.hardlinks += 1;
                }
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    imp.stats.dropped_special += 1;
                }
                other => {
                    return Err(ImportError::EntryType {
                        path: path.into(),
                        kind: other.as_byte() as char,
                    })
                }
            }
        }
    }
    // The tar crate stops at the first zero block, or silently at EOF on a
    // block boundary: only the former is a complete archive.
    let seen = counter.n;
    if seen < last_end + 512 {
        return Err(ImportError::NoEndMarker { last });
    }
    // Drain the padding, so that verifying readers underneath reach EOF.
    io::copy(&mut counter, &mut io::sink()).map_err(|source| ImportError::Read {
        last: last.clone(),
        source,
    })?;
    imp.stats.tar_bytes = counter.n;
    let written = repo
        .write_mtree(&imp.root, gio::Cancellable::NONE)
        .map_err(|source| ImportError::Write {
            path: "/".into(),
            source,
        })?;
    let root = written
        .downcast::<ostree::RepoFile>()
        .expect("write_mtree returns an OstreeRepoFile");
    Ok(Imported {
        root,
        stats: imp.stats,
    })
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

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(b"./a//b/./c").unwrap(), vec!["a", "b", "c"]);
        assert!(normalize(b"./").unwrap().is_empty());
        assert!(matches!(
            normalize(b"/etc/x"),
            Err(ImportError::Absolute { .. })
        ));
        assert!(matches!(
            normalize(b"a/../../x"),
            Err(ImportError::DotDot { .. })
        ));
        assert!(matches!(
            normalize(&vec![b'a'; PATH_MAX + 1]),
            Err(ImportError::PathTooLong { .. })
        ));
        assert!(matches!(
            normalize(&[b'a'; 256]),
            Err(ImportError::NameTooLong { .. })
        ));
        assert!(matches!(
            normalize(b"a\xff"),
            Err(ImportError::NotUtf8 { .. })
        ));
        // "..." and "..x" are ordinary names.
        assert_eq!(normalize(b"...").unwrap(), vec!["..."]);
    }
}
