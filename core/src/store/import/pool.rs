//! Content objects written by other threads, while the layer's tar stream is
//! parsed on one.
//!
//! Writing a file object (a tmpfile in the staging directory, its content,
//! owner, mode and times, then its link: about ten syscalls, most of them
//! creating an inode) was most of an import's time, on one core. The
//! importer now checksums each object itself and hands header and content to
//! the pool; the pool's writers write them with `write_content_trusted`.
//! libostree allows one transaction per `OstreeRepo`, and an `ostree::Repo`
//! cannot cross threads, so each writer opens its own handle on the store's
//! repo and holds its own transaction (with its own staging directory).
//!
//! - An object always goes to the same writer (chosen by its checksum),
//!   which finds it staged when it comes again.
//! - At most [`MAX_QUEUED`] bytes wait for the writers, reserved before an
//!   entry's content is read, however many layers import at once: memory
//!   stays bounded.
//! - A failed write fails its layer: the importer sees it at its next
//!   object, or when it waits for its objects at the end of the layer.
//! - Nothing is durable until [`ObjectPool::finish`] commits: each writer
//!   commits its transaction (syncfs, then the staged objects renamed into
//!   place, as libostree commits any transaction). Otherwise each aborts,
//!   and what it staged stays for the next pull to reuse.
//!
//! The pool also holds the free-space ledger of the imports that run at once
//! (see `budget::Space`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::budget::Ledger;
use super::ImportError;

/// Bytes of objects (headers and content) reserved for the writers at most.
pub const MAX_QUEUED: u64 = 8 << 20;
/// Messages queued for one writer at most (the byte budget binds first,
/// except for tiny files).
const QUEUE: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes reserved for the writers, and the importers waiting for room.
#[derive(Debug, Default)]
struct Queued {
    state: Mutex<(u64, usize)>,
    room: Condvar,
}

/// `n` bytes of the budget, given back when dropped.
pub(super) struct Reservation {
    queued: Arc<Queued>,
    n: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut s = lock(&self.queued.state);
        s.0 -= self.n;
        let waiting = s.1 > 0;
        drop(s);
        if waiting {
            self.queued.room.notify_all();
        }
    }
}

/// The objects of one import: how many are still to be written, and the
/// first write that failed.
#[derive(Default)]
struct Batch {
    state: Mutex<BatchState>,
    settled: Condvar,
    /// A write failed, or the import ended early: skip the rest.
    failed: AtomicBool,
}

#[derive(Default)]
struct BatchState {
    pending: usize,
    error: Option<ImportError>,
    /// The importer waits for `pending` to reach 0.
    waiting: bool,
}

impl Batch {
    fn settle(&self, err: Option<ImportError>) {
        let mut s = lock(&self.state);
        s.pending -= 1;
        if let Some(e) = err {
            self.failed.store(true, Ordering::SeqCst);
            s.error.get_or_insert(e);
        }
        let wake = s.waiting && s.pending == 0;
        drop(s);
        if wake {
            self.settled.notify_all();
        }
    }
}

/// One object to write. However it ends (written, skipped, or dropped
/// with a writer that stopped), its batch hears of it and its bytes are
/// given back.
struct Job {
    csum: String,
    obj: Vec<u8>,
    path: String,
    batch: Arc<Batch>,
    outcome: Option<Option<ImportError>>,
    _bytes: Reservation,
}

impl Drop for Job {
    fn drop(&mut self) {
        let err = match self.outcome.take() {
            Some(e) => e,
            None if self.batch.failed.load(Ordering::SeqCst) => None,
            None => Some(ImportError::Write {
                path: std::mem::take(&mut self.path),
                source: glib::Error::new(
                    gio::IOErrorEnum::Failed,
                    "the object writer thread stopped",
                ),
            }),
        };
        self.batch.settle(err);
    }
}

enum Msg {
    /// A few objects at a time: one wake-up of the writer for them all.
    Write(Vec<Job>),
    /// Everything was sent: commit the transaction.
    Commit,
}

/// A writer's end of its queue, for [`ObjectPool::run_writer`].
pub struct WriterQueue(Receiver<Msg>);

/// The object writers of one pull (see the module docs).
pub struct ObjectPool {
    /// Taken by [`finish`](Self::finish); each importer holds clones.
    senders: Mutex<Option<Vec<SyncSender<Msg>>>>,
    queued: Arc<Queued>,
    ledger: Mutex<Ledger>,
}

impl ObjectPool {
    /// A pool of `n` writers (at least one): run each queue with
    /// [`run_writer`](Self::run_writer) on its own thread.
    pub fn new(n: usize) -> (ObjectPool, Vec<WriterQueue>) {
        let (senders, queues) = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::sync_channel(QUEUE);
                (tx, WriterQueue(rx))
            })
            .unzip();
        let pool = ObjectPool {
            senders: Mutex::new(Some(senders)),
            queued: Arc::default(),
            ledger: Mutex::default(),
        };
        (pool, queues)
    }

    /// One writer: opens the repo at `repo`, prepares a transaction, writes
    /// what it is sent, and commits when [`finish`](Self::finish) says so,
    /// else aborts once every sender is gone.
    pub fn run_writer(repo: &Path, queue: WriterQueue) -> Result<(), glib::Error> {
        let opened = open_in_transaction(repo);
        let mut commit = false;
        for msg in queue.0.iter() {
            let jobs = match msg {
                Msg::Write(jobs) => jobs,
                Msg::Commit => {
                    commit = true;
                    break;
                }
            };
            for mut job in jobs {
                if job.batch.failed.load(Ordering::SeqCst) {
                    continue;
                }
                let written = opened.as_ref().map_err(Clone::clone).and_then(|repo| {
                    let len = job.obj.len() as u64;
                    let bytes = glib::Bytes::from_owned(std::mem::take(&mut job.obj));
                    let input = gio::MemoryInputStream::from_bytes(&bytes);
                    repo.write_content_trusted(&job.csum, &input, len, gio::Cancellable::NONE)
                });
                job.outcome = Some(written.err().map(|source| ImportError::Write {
                    path: std::mem::take(&mut job.path),
                    source,
                }));
            }
        }
        let repo = opened?;
        if commit {
            repo.commit_transaction(gio::Cancellable::NONE)?;
        } else {
            let _ = repo.abort_transaction(gio::Cancellable::NONE);
        }
        Ok(())
    }

    /// End the writers: with `commit`, each commits its transaction (call
    /// it once every import is done); without, each aborts. Only the first
    /// call counts.
    pub fn finish(&self, commit: bool) {
        if let Some(senders) = lock(&self.senders).take() {
            if commit {
                for s in &senders {
                    let _ = s.send(Msg::Commit);
                }
            }
        }
    }

    /// The free-space ledger of the imports into this pool.
    pub(super) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// Bytes reserved for the writers and not yet written.
    pub(super) fn queued_bytes(&self) -> u64 {
        lock(&self.queued.state).0
    }

    /// An import's handle: its own batch, and the queues.
    pub(super) fn handle(&self) -> Result<PoolHandle<'_>, ImportError> {
        let senders = lock(&self.senders)
            .clone()
            .ok_or_else(|| ImportError::Write {
                path: "/".into(),
                source: glib::Error::new(gio::IOErrorEnum::Closed, "the object writers have ended"),
            })?;
        Ok(PoolHandle {
            pool: self,
            unsent: senders.iter().map(|_| (Vec::new(), 0)).collect(),
            senders,
            batch: Arc::default(),
        })
    }
}

impl std::fmt::Debug for ObjectPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectPool")
            .field("queued_bytes", &self.queued_bytes())
            .finish_non_exhaustive()
    }
}

fn open_in_transaction(path: &Path) -> Result<ostree::Repo, glib::Error> {
    let repo = ostree::Repo::new_for_path(path);
    repo.open(gio::Cancellable::NONE)?;
    repo.prepare_transaction(gio::Cancellable::NONE)?;
    Ok(repo)
}

/// Objects for one writer are sent once there are this many...
const SEND_JOBS: usize = 32;
/// ... or this many bytes of them.
const SEND_BYTES: u64 = 1 << 20;

/// What one import writes through the pool.
pub(super) struct PoolHandle<'p> {
    pool: &'p ObjectPool,
    senders: Vec<SyncSender<Msg>>,
    /// Per writer: the objects not sent yet, and their bytes.
    unsent: Vec<(Vec<Job>, u64)>,
    batch: Arc<Batch>,
}

impl PoolHandle<'_> {
    /// The first failed write of this import, if any.
    fn check(&self) -> Result<(), ImportError> {
        if !self.batch.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut s = lock(&self.batch.state);
        Err(s.error.take().unwrap_or_else(|| ImportError::Write {
            path: "/".into(),
            source: glib::Error::new(gio::IOErrorEnum::Failed, "an object write failed"),
        }))
    }

    /// Send writer `w` what it has not been sent (a writer that is gone
    /// drops the jobs, which fails the batch).
    fn send(&mut self, w: usize) {
        let (jobs, _) = std::mem::take(&mut self.unsent[w]);
        if !jobs.is_empty() {
            let _ = self.senders[w].send(Msg::Write(jobs));
        }
    }

    fn send_all(&mut self) {
        for w in 0..self.unsent.len() {
            self.send(w);
        }
    }

    /// Room for an object of `n` bytes, waiting while the writers hold too
    /// much (an object larger than the budget waits until they hold
    /// nothing). What this import has not sent yet is sent first.
    pub(super) fn reserve(&mut self, n: u64) -> Result<Reservation, ImportError> {
        self.check()?;
        let q = self.pool.queued.clone();
        let mut s = lock(&q.state);
        if s.0 > 0 && s.0 + n > MAX_QUEUED {
            drop(s);
            self.send_all();
            s = lock(&q.state);
            while s.0 > 0 && s.0 + n > MAX_QUEUED {
                s.1 += 1;
                s = q.room.wait(s).unwrap_or_else(PoisonError::into_inner);
                s.1 -= 1;
            }
        }
        s.0 += n;
        drop(s);
        Ok(Reservation { queued: q, n })
    }

    /// Queue object `obj` (header and content, checksum `digest`) of entry
    /// `path` for its writer.
    pub(super) fn write(
        &mut self,
        bytes: Reservation,
        digest: &[u8; 32],
        obj: Vec<u8>,
        path: &str,
    ) -> Result<(), ImportError> {
        self.check()?;
        lock(&self.batch.state).pending += 1;
        let w = usize::from(digest[0]) % self.senders.len();
        let n = bytes.n;
        let unsent = &mut self.unsent[w];
        unsent.0.push(Job {
            csum: hex::encode(digest),
            obj,
            path: path.to_string(),
            batch: self.batch.clone(),
            outcome: None,
            _bytes: bytes,
        });
        unsent.1 += n;
        if unsent.0.len() >= SEND_JOBS || unsent.1 >= SEND_BYTES {
            self.send(w);
        }
        Ok(())
    }

    /// Wait until every object of this import is written.
    pub(super) fn wait(&mut self) -> Result<(), ImportError> {
        self.send_all();
        let mut s = lock(&self.batch.state);
        s.waiting = true;
        let s = self
            .batch
            .settled
            .wait_while(s, |s| s.pending > 0)
            .unwrap_or_else(PoisonError::into_inner);
        drop(s);
        self.check()
    }
}

impl Drop for PoolHandle<'_> {
    /// An import that ends without waiting failed: its remaining objects
    /// are skipped.
    fn drop(&mut self) {
        self.batch.failed.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{import_layer_from, ImportLimits, LayerInfo};
    use super::*;
    use gio::prelude::*;

    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (i, name) in ["etc/a", "etc/b", "usr/c"].iter().enumerate() {
            let data = vec![i as u8; 1000 * (i + 1)];
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        b.append_link(&mut h, "etc/link", "a").unwrap();
        b.into_inner().unwrap()
    }

    fn repo(dir: &Path) -> ostree::Repo {
        let r = ostree::Repo::new_for_path(dir);
        r.create(ostree::RepoMode::Bare, gio::Cancellable::NONE)
            .unwrap();
        r.prepare_transaction(gio::Cancellable::NONE).unwrap();
        r
    }

    /// Import `tar` into `repo` with a pool of `n` writers on `writers_at`;
    /// the writers commit when the import succeeded.
    fn import(
        repo: &ostree::Repo,
        writers_at: &Path,
        n: usize,
        tar: &[u8],
    ) -> (
        Result<super::super::Imported, ImportError>,
        Vec<Result<(), glib::Error>>,
    ) {
        let (pool, queues) = ObjectPool::new(n);
        std::thread::scope(|s| {
            let handles: Vec<_> = queues
                .into_iter()
                .map(|q| s.spawn(move || ObjectPool::run_writer(writers_at, q)))
                .collect();
            let r = import_layer_from(
                repo,
                tar,
                &ImportLimits::default(),
                &LayerInfo {
                    pool: Some(&pool),
                    ..Default::default()
                },
            );
            pool.finish(r.is_ok());
            let done = handles.into_iter().map(|h| h.join().unwrap()).collect();
            (r, done)
        })
    }

    #[test]
    fn objects_written_by_the_pool_are_in_the_repo_once_it_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = repo(&dir);
        let (r, done) = import(&repo, &dir, 3, &layer());
        let imported = r.unwrap();
        assert!(done.iter().all(Result::is_ok), "{done:?}");
        assert_eq!((imported.stats.files, imported.stats.symlinks), (3, 1));
        // The root tree and its dirmeta are in the caller's transaction.
        repo.commit_transaction(gio::Cancellable::NONE).unwrap();
        for (path, size) in [("/etc/a", 1000), ("/etc/b", 2000), ("/usr/c", 3000)] {
            let f = imported.root.resolve_relative_path(path);
            let info = f
                .query_info(
                    "standard::size",
                    gio::FileQueryInfoFlags::NONE,
                    gio::Cancellable::NONE,
                )
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(info.size(), size, "{path}");
        }
        let link = imported.root.resolve_relative_path("/etc/link");
        let info = link
            .query_info(
                "standard::symlink-target",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                gio::Cancellable::NONE,
            )
            .unwrap();
        assert_eq!(info.symlink_target().unwrap().to_str(), Some("a"));
        // Nothing is left staged.
        let staged = std::fs::read_dir(dir.join("tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("staging-"))
            .count();
        assert_eq!(staged, 0);
    }

    #[test]
    fn a_failing_writer_fails_the_import_naming_the_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = repo(&dir);
        // The writers cannot open their repo: every write fails.
        let (r, done) = import(&repo, &tmp.path().join("nothing"), 2, &layer());
        match r {
            Err(ImportError::Write { path, source }) => {
                assert!(
                    ["etc/a", "etc/b", "usr/c", "etc/link"].contains(&path.as_str()),
                    "{path}"
                );
                assert!(!source.message().is_empty());
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("imported without writers"),
        }
        // Told to abort, the writers return what they have.
        assert_eq!(done.len(), 2);
        repo.abort_transaction(gio::Cancellable::NONE).unwrap();
    }
}
