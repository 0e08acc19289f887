//! What one layer may still write: the free space of the repo's filesystem
//! (less a reserve), and how far its sparse files may expand.
//!
//! OSTree stores whole files, so a sparse file costs its declared size in the
//! repo, although the layer carries only its data: a few kB of layer can
//! declare 60 GB. Both checks run on an entry's header, before any of its
//! content is written; free space is looked up again every
//! [`RECHECK_BYTES`] written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::pool::ObjectPool;
use super::{ImportError, ImportLimits};

/// Free space is looked up again after this many bytes were written.
pub const RECHECK_BYTES: u64 = 64 << 20;

/// An entry's content sizes, which differ only for a sparse entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSizes {
    /// The file's real size, holes included: what OSTree stores.
    pub declared: u64,
    /// The data bytes the archive carries for it.
    pub stored: u64,
}

impl ContentSizes {
    /// Has holes: the archive carries less than the file's size.
    pub fn is_sparse(&self) -> bool {
        self.declared > self.stored
    }
}

impl From<crate::store::sparse::SparseSizes> for ContentSizes {
    /// The sizes the sparse reader found (a dense entry has both equal).
    fn from(s: crate::store::sparse::SparseSizes) -> Self {
        ContentSizes {
            declared: s.real_size,
            stored: s.data_bytes.min(s.real_size),
        }
    }
}

/// How far the caller has read a layer's compressed blob, shared with the
/// import while it runs (`pull` reads in another thread).
///
/// Whoever changes it calls [`BlobProgress::notify`] (or a method that does)
/// to wake the other side; a waiter checks its condition under the same
/// lock, so no wake-up is lost and nobody polls.
#[derive(Debug, Default)]
pub struct BlobProgress {
    /// Compressed bytes read so far.
    pub read: AtomicU64,
    /// Compressed bytes the import waits for: the reader reads ahead to
    /// them even when the import is not consuming.
    pub wanted: AtomicU64,
    /// The blob was read to its end and its digest matched.
    pub complete: AtomicBool,
    /// The blob failed (or the reader is gone): the import stops.
    pub failed: AtomicBool,
    /// The threads waiting in [`wait_while`](Self::wait_while).
    waiters: Mutex<usize>,
    changed: Condvar,
}

impl BlobProgress {
    /// Wake every thread waiting on this blob (after a change of its state,
    /// or of anything a waiter's condition reads).
    pub fn notify(&self) {
        let waiting = *self.waiters.lock().unwrap_or_else(PoisonError::into_inner) > 0;
        if waiting {
            self.changed.notify_all();
        }
    }

    /// Block while `busy()` holds, re-checking it after each
    /// [`notify`](Self::notify).
    pub fn wait_while(&self, mut busy: impl FnMut() -> bool) {
        let mut g = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        while busy() {
            *g += 1;
            g = self.changed.wait(g).unwrap_or_else(PoisonError::into_inner);
            *g -= 1;
        }
    }

    /// `n` compressed bytes were read; wakes an import that waits for them.
    pub fn set_read(&self, n: u64) {
        let before = self.read.swap(n, Ordering::SeqCst);
        let wanted = self.wanted.load(Ordering::SeqCst);
        if before < wanted && n >= wanted {
            self.notify();
        }
    }

    /// The import needs `n` compressed bytes read (see [`SparseCap`]).
    pub fn want(&self, n: u64) {
        self.wanted.fetch_max(n, Ordering::SeqCst);
        self.notify();
    }

    /// The blob failed, or its reader is gone.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// The blob was read whole and verified.
    pub fn set_complete(&self) {
        self.complete.store(true, Ordering::SeqCst);
        self.notify();
    }
}

/// The cap on the declared bytes of a layer's sparse entries: the larger of
/// `floor` and `ratio` times the layer's compressed size. The size declared
/// for the layer may overstate it, so when the caller reports its progress,
/// the compressed bytes that back the cap must have been read before a
/// sparse entry is written.
#[derive(Debug)]
pub(super) struct SparseCap<'a> {
    floor: u64,
    ratio: u64,
    /// The compressed layer's size, when the caller knows it.
    compressed: Option<u64>,
    blob: Option<&'a BlobProgress>,
    /// Declared bytes of the sparse entries so far.
    total: u64,
}

impl<'a> SparseCap<'a> {
    pub(super) fn new(
        limits: &ImportLimits,
        compressed: Option<u64>,
        blob: Option<&'a BlobProgress>,
    ) -> Self {
        SparseCap {
            floor: limits.sparse_floor,
            ratio: limits.max_sparse_ratio,
            compressed,
            blob,
            total: 0,
        }
    }

    fn refuse(&self, path: &str, sizes: ContentSizes, total: u64, compressed: u64) -> ImportError {
        ImportError::TooSparse {
            path: path.to_string(),
            declared: sizes.declared,
            stored: sizes.stored,
            total,
            limit: self.floor.max(compressed.saturating_mul(self.ratio)),
            floor: self.floor,
            ratio: self.ratio,
            compressed,
        }
    }

    /// Count entry `path`; `tar_so_far` (the tar stream's bytes up to the end
    /// of this entry's data) stands in for the compressed size when it is
    /// not known (an uncompressed tar). May wait for the reader.
    pub(super) fn add(
        &mut self,
        path: &str,
        sizes: ContentSizes,
        tar_so_far: u64,
    ) -> Result<(), ImportError> {
        if !sizes.is_sparse() {
            return Ok(());
        }
        let total = self.total.saturating_add(sizes.declared);
        // The compressed bytes that allow `total`.
        let need = if total <= self.floor {
            0
        } else {
            total.div_ceil(self.ratio.max(1))
        };
        let compressed = self.compressed.unwrap_or(tar_so_far);
        if need > compressed {
            return Err(self.refuse(path, sizes, total, compressed));
        }
        if let Some(b) = self.blob {
            if b.read.load(Ordering::SeqCst) < need {
                b.want(need);
                b.wait_while(|| {
                    !b.failed.load(Ordering::SeqCst)
                        && !b.complete.load(Ordering::SeqCst)
                        && b.read.load(Ordering::SeqCst) < need
                });
                let read = b.read.load(Ordering::SeqCst);
                if b.failed.load(Ordering::SeqCst) {
                    return Err(ImportError::Stopped { path: path.into() });
                }
                if read < need {
                    return Err(self.refuse(path, sizes, total, read));
                }
            }
        }
        self.total = total;
        Ok(())
    }
}

/// What the imports that share it may still write: the free space less the
/// reserve at the last lookup, less what was charged since.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Bytes that may still be written.
    budget: u64,
    /// Bytes charged since the last lookup.
    since: u64,
    /// Free and reserved bytes at the last lookup (for errors).
    free: u64,
    reserve: u64,
}

/// Free space of the repo's filesystem, as the import spends it. Imports
/// that run at once, into one [`ObjectPool`], share its ledger: what one
/// charges, the others cannot spend, and a lookup counts the objects still
/// queued for the pool's writers as spent.
#[derive(Debug)]
pub(super) struct Space<'a> {
    /// Where statvfs(2) looks.
    dir: PathBuf,
    min_free_percent: u64,
    /// The ledger when there is no pool.
    own: Mutex<Ledger>,
    pool: Option<&'a ObjectPool>,
    /// The caller's reader, whose failure stops the import.
    blob: Option<&'a BlobProgress>,
}

impl<'a> Space<'a> {
    pub(super) fn new(
        dir: PathBuf,
        limits: &ImportLimits,
        blob: Option<&'a BlobProgress>,
        pool: Option<&'a ObjectPool>,
    ) -> Result<Self, ImportError> {
        let s = Space {
            dir,
            min_free_percent: limits.min_free_percent,
            own: Mutex::default(),
            pool,
            blob,
        };
        s.lookup(&mut s.ledger(), "/")?;
        Ok(s)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        match self.pool {
            Some(p) => p.ledger(),
            None => self.own.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    fn lookup(&self, l: &mut Ledger, path: &str) -> Result<(), ImportError> {
        if self.blob.is_some_and(|b| b.failed.load(Ordering::Acquire)) {
            return Err(ImportError::Stopped { path: path.into() });
        }
        let st = rustix::fs::statvfs(&self.dir).map_err(|e| ImportError::FreeSpace {
            dir: self.dir.clone(),
            source: e.into(),
        })?;
        let (free, reserve) =
            free_and_reserve(st.f_bavail, st.f_blocks, st.f_frsize, self.min_free_percent);
        l.free = free;
        l.reserve = reserve;
        // A filesystem that reports no size (some FUSE or network ones)
        // cannot be checked.
        l.budget = if st.f_blocks == 0 {
            u64::MAX
        } else {
            let queued = self.pool.map_or(0, ObjectPool::queued_bytes);
            free.saturating_sub(reserve).saturating_sub(queued)
        };
        l.since = 0;
        Ok(())
    }

    fn refused(&self, l: &Ledger, path: &str, declared: u64, remaining: u64) -> ImportError {
        ImportError::NoSpace {
            path: path.into(),
            declared,
            remaining,
            free: l.free,
            reserve: l.reserve,
            percent: self.min_free_percent,
            dir: self.dir.clone(),
        }
    }

    /// Before entry `path` writes `declared` bytes: refused unless they fit
    /// (looked up again when the last lookup is stale or they seem not to).
    pub(super) fn claim(&mut self, path: &str, declared: u64) -> Result<(), ImportError> {
        let mut l = self.ledger();
        if l.since >= RECHECK_BYTES || declared > l.budget {
            self.lookup(&mut l, path)?;
        }
        if declared > l.budget {
            return Err(self.refused(&l, path, declared, declared));
        }
        l.budget -= declared;
        l.since = l.since.saturating_add(declared);
        Ok(())
    }

    /// While entry `path` (`declared` bytes, `written` of them written) is
    /// written: every [`RECHECK_BYTES`], the rest must still fit.
    pub(super) fn recheck(
        &mut self,
        path: &str,
        declared: u64,
        written: u64,
    ) -> Result<(), ImportError> {
        let mut l = self.ledger();
        self.lookup(&mut l, path)?;
        let remaining = declared - written;
        if remaining > l.budget {
            return Err(self.refused(&l, path, declared, remaining));
        }
        l.budget -= remaining;
        Ok(())
    }
}

/// `(free, reserve)` in bytes: what statvfs calls available to unprivileged
/// users (df's "Avail"), and `percent` of the filesystem's size.
fn free_and_reserve(bavail: u64, blocks: u64, frsize: u64, percent: u64) -> (u64, u64) {
    let free = bavail.saturating_mul(frsize);
    let size = blocks.saturating_mul(frsize);
    (free, (size / 100).saturating_mul(percent))
}

/// The directory whose filesystem holds `repo`'s objects.
pub(super) fn repo_dir(repo: &ostree::Repo) -> PathBuf {
    use gio::prelude::FileExt;
    repo.path()
        .path()
        .unwrap_or_else(|| Path::new("/proc/self/fd").join(repo.dfd().to_string()))
}

/// `, N of them still to write` when a write is under way.
pub(super) fn still(declared: &u64, remaining: &u64) -> String {
    if remaining == declared {
        String::new()
    } else {
        format!(" ({remaining} of them still to write)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(declared: u64, stored: u64) -> ContentSizes {
        ContentSizes { declared, stored }
    }

    #[test]
    fn sparse_cap_is_the_floor_or_the_ratio() {
        let limits = ImportLimits::default();
        assert_eq!(
            (limits.sparse_floor, limits.max_sparse_ratio),
            (256 << 20, 1000)
        );
        // 60 GiB declared by a 145-byte layer (GNU tar --sparse | gzip -9).
        let mut c = SparseCap::new(&limits, Some(145), None);
        let e = c.add("f", sizes(60 << 30, 4096), 10240).unwrap_err();
        assert!(matches!(e, ImportError::TooSparse { limit, .. } if limit == 256 << 20));
        // Dense entries never count, whatever their size.
        let mut c = SparseCap::new(&limits, Some(145), None);
        c.add("zeros", sizes(60 << 30, 60 << 30), 0).unwrap();
        // Under the floor: fine, and the floor is shared by the layer.
        c.add("a", sizes(200 << 20, 0), 0).unwrap();
        let e = c.add("b", sizes(100 << 20, 0), 0).unwrap_err();
        assert!(e.to_string().contains("declare 314572800 bytes"), "{e}");
        // Over the floor but within the ratio.
        let mut c = SparseCap::new(&limits, Some(1 << 20), None);
        c.add("a", sizes(1000 << 20, 1 << 20), 0).unwrap();
        c.add("b", sizes(1, 0), 0).unwrap_err();
        // Without a compressed size, the tar's length so far stands in.
        let mut c = SparseCap::new(&limits, None, None);
        c.add("a", sizes(1000 << 20, 1 << 20), 1 << 20).unwrap();
        let mut c = SparseCap::new(&limits, None, None);
        c.add("a", sizes(1000 << 20, 1 << 20), 1 << 19).unwrap_err();
        // With a reader: the bytes that back the cap must have been read.
        // An overstated size (1 GiB, would allow 1000 GiB) of a blob that
        // ends after 1 MB allows 1 GB.
        let blob = BlobProgress::default();
        blob.read.store(1_000_000, Ordering::Release);
        let mut c = SparseCap::new(&limits, Some(1 << 30), Some(&blob));
        c.add("a", sizes(900_000_000, 0), 0).unwrap();
        assert_eq!(blob.wanted.load(Ordering::Acquire), 0, "no wait");
        blob.complete.store(true, Ordering::Release);
        let e = c.add("b", sizes(200_000_000, 0), 0).unwrap_err();
        assert_eq!(blob.wanted.load(Ordering::Acquire), 1_100_000);
        let m = e.to_string();
        assert!(
            m.contains("1000 times the layer's 1000000 compressed bytes"),
            "{m}"
        );
        // A failing reader stops the import.
        blob.complete.store(false, Ordering::Release);
        blob.failed.store(true, Ordering::Release);
        let e = c.add("b", sizes(200_000_000, 0), 0).unwrap_err();
        assert!(matches!(e, ImportError::Stopped { .. }), "{e}");
    }

    #[test]
    fn free_space_keeps_the_reserve() {
        // 1000 blocks of 4 KiB, 100 available, 5%: 400 KiB free, 200 KiB kept.
        assert_eq!(free_and_reserve(100, 1000, 4096, 5), (409_600, 204_800));
        assert_eq!(free_and_reserve(u64::MAX, u64::MAX, 4096, 5).0, u64::MAX);
        assert_eq!(still(&5, &5), "");
        assert_eq!(still(&5, &2), " (2 of them still to write)");
    }
}
