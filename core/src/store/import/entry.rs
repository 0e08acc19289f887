//! One tar entry into the tree, by entry type: its metadata (header and PAX
//! records), its content (sparse files expanded), and where it goes.

use std::io::{self, Read};

use glib::prelude::ToVariant;
use sha2::{Digest, Sha256};

use super::path::{normalize, show};
use super::writer::{file_header, Importer, Meta};
use super::{budget, ContentSizes, ImportError, ImportLimits, WHITEOUT_PREFIX};
use crate::store::sparse::{
    Content, OpenError, PaxSparse, SparseReader, SparseReason, SparseSizes,
};

/// The `GNU.sparse.*` records of entry `e` (named `raw` in the archive), if
/// any; they are refused unless they describe a regular file completely.
pub(super) fn pax_sparse<R: Read>(
    e: &mut tar::Entry<'_, R>,
    raw: &[u8],
) -> Result<Option<PaxSparse>, ImportError> {
    let kind = e.header().entry_type();
    // An extension header the tar crate yields as an entry: reading its
    // "extensions" would read its whole body.
    if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
        return Ok(None);
    }
    let Some(exts) = e.pax_extensions().map_err(header_err(&show(raw), "pax"))? else {
        return Ok(None);
    };
    let mut records = Vec::new();
    for ext in exts {
        let ext = ext.map_err(header_err(&show(raw), "pax"))?;
        records.push((ext.key_bytes(), ext.value_bytes()));
    }
    let r = match PaxSparse::from_records(records) {
        None => return Ok(None),
        Some(r) => r,
    };
    let r = r.and_then(|s| match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => Ok(s),
        k => Err((
            s.format,
            SparseReason::NotRegular {
                kind: match k {
                    tar::EntryType::GNUSparse => "n old GNU sparse",
                    tar::EntryType::Directory => " directory",
                    tar::EntryType::Symlink => " symlink",
                    tar::EntryType::Link => " hardlink",
                    _ => " special",
                },
            },
        )),
    });
    r.map(Some).map_err(|(format, reason)| ImportError::Sparse {
        path: show(raw),
        format,
        reason: Box::new(reason),
    })
}

/// The content of a regular entry and its sizes: a PAX sparse file
/// expanded, an old GNU one as the tar crate expands it (its map checked by
/// [`super::guard::HeaderGuard`]), any other as it is.
pub(super) fn content<'e, 'a, R: Read>(
    e: &'e mut tar::Entry<'a, R>,
    pax: Option<PaxSparse>,
    gnu: Option<SparseSizes>,
    path: &str,
    limits: &ImportLimits,
) -> Result<(Content<&'e mut tar::Entry<'a, R>>, SparseSizes), ImportError> {
    let stored = e.size();
    if let Some(s) = pax {
        let format = s.format;
        let r =
            SparseReader::new(e, s, stored, limits.max_header_bytes).map_err(|err| match err {
                OpenError::Reason(reason) => ImportError::Sparse {
                    path: path.into(),
                    format,
                    reason: Box::new(reason),
                },
                OpenError::Read(source) if source.kind() == io::ErrorKind::UnexpectedEof => {
                    ImportError::Truncated {
                        path: path.into(),
                        got: 0,
                        size: stored,
                    }
                }
                OpenError::Read(source) => ImportError::Read {
                    last: path.into(),
                    source,
                },
            })?;
        let sizes = r.sizes();
        return Ok((Content::Sparse(r), sizes));
    }
    let sizes = gnu.unwrap_or(SparseSizes {
        real_size: stored,
        data_bytes: stored,
    });
    Ok((Content::Plain(e), sizes))
}

pub(super) fn header_err<'a>(
    path: &'a str,
    what: &'static str,
) -> impl FnOnce(io::Error) -> ImportError + 'a {
    move |source| ImportError::Header {
        path: path.to_string(),
        what,
        source,
    }
}

/// Entry metadata: header fields, overridden by PAX `uid`/`gid`, plus PAX
/// `SCHILY.xattr.*` as an OSTree `a(ayay)` (names NUL-terminated, sorted).
pub(super) fn entry_meta<R: Read>(
    e: &mut tar::Entry<'_, R>,
    path: &str,
) -> Result<Meta, ImportError> {
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

/// Where an entry goes: its components, their joined path (`/` for the
/// root), its name as the archive gives it (for errors) and where its data
/// ends in the tar stream.
pub(super) struct Target<'a> {
    pub(super) comps: &'a [&'a str],
    pub(super) path: &'a str,
    pub(super) name: &'a str,
    pub(super) end: u64,
}

impl Importer<'_> {
    /// A directory.
    pub(super) fn dir<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        t: &Target,
    ) -> Result<(), ImportError> {
        let meta = entry_meta(e, t.path)?;
        self.put_dir(t.comps, t.path, t.name, &meta)?;
        self.stats.dirs += 1;
        Ok(())
    }

    /// A regular file (a sparse one expanded, `pax` or `gnu` its sizes), or
    /// a whiteout, within the layer's content, sparse and free-space
    /// budgets.
    pub(super) fn regular<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        t: &Target,
        pax: Option<PaxSparse>,
        gnu: Option<SparseSizes>,
        limits: &ImportLimits,
        sparse: &mut budget::SparseCap,
    ) -> Result<(), ImportError> {
        let meta = entry_meta(e, t.path)?;
        let (mut e, sizes) = content(e, pax, gnu, t.path, limits)?;
        let sizes = ContentSizes::from(sizes);
        let size = sizes.declared;
        if self.stats.content_bytes.saturating_add(size) > limits.max_content_bytes {
            return Err(ImportError::TooLarge {
                path: t.name.to_string(),
                limit: limits.max_content_bytes,
            });
        }
        sparse.add(t.name, sizes, t.end)?;
        self.space.claim(t.name, size)?;
        let csum = self.write_regfile(&mut e, t.path, size, &meta)?;
        self.put_file(t.comps, t.path, t.name, &csum)?;
        let is_whiteout = t
            .comps
            .last()
            .is_some_and(|n| n.starts_with(WHITEOUT_PREFIX));
        if is_whiteout {
            self.stats.whiteouts += 1;
        } else {
            self.stats.files += 1;
        }
        self.stats.content_bytes += size;
        Ok(())
    }

    /// A symbolic link; its target must be UTF-8 without NULs.
    pub(super) fn symlink<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        t: &Target,
    ) -> Result<(), ImportError> {
        let meta = entry_meta(e, t.path)?;
        let target = e.link_name_bytes().unwrap_or_default().into_owned();
        if target.contains(&0) {
            return Err(ImportError::Nul {
                path: t.path.into(),
                what: "symlink target",
            });
        }
        let target = String::from_utf8(target).map_err(|_| ImportError::NotUtf8 {
            path: t.path.into(),
            what: "symlink target",
        })?;
        let c = match &mut self.pool {
            // Checksummed here (as libostree's `write_symlink` would: mode
            // 0777), written by the pool.
            Some(p) if self.trusted => {
                let obj = file_header(
                    meta.uid,
                    meta.gid,
                    libc::S_IFLNK | 0o777,
                    &target,
                    meta.xattrs.as_ref(),
                );
                let digest: [u8; 32] = Sha256::digest(&obj).into();
                if self.written.insert(digest) {
                    let room = p.reserve(obj.len() as u64)?;
                    p.write(room, &digest, obj, t.path)?;
                }
                hex::encode(digest)
            }
            _ => Self::wr(
                t.path,
                self.repo.write_symlink(
                    None,
                    meta.uid,
                    meta.gid,
                    meta.xattrs.as_ref(),
                    &target,
                    gio::Cancellable::NONE,
                ),
            )?
            .to_string(),
        };
        self.put_file(t.comps, t.path, t.name, &c)?;
        self.stats.symlinks += 1;
        Ok(())
    }

    /// A hardlink, to a non-directory earlier in this layer.
    pub(super) fn hardlink<R: Read>(
        &mut self,
        e: &tar::Entry<'_, R>,
        t: &Target,
    ) -> Result<(), ImportError> {
        let target_raw = e.link_name_bytes().unwrap_or_default().into_owned();
        let bad_target = || ImportError::HardlinkTarget {
            path: t.path.into(),
            target: show(&target_raw),
        };
        let tcomps = normalize(&target_raw).map_err(|_| bad_target())?;
        let Some(c) = self.find_file(&tcomps, t.path)? else {
            return Err(bad_target());
        };
        self.put_file(t.comps, t.path, t.name, &c)?;
        self.stats.hardlinks += 1;
        Ok(())
    }
}
