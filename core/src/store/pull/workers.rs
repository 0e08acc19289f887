//! The layers of one pull, fetched at once.
//!
//! Up to [`MAX_LAYERS_IN_FLIGHT`] layer workers (no more than the cores, but
//! at least two), each with its own blob stream and its own transaction, and
//! one [`ObjectPool`] whose writers write the content objects of all of them.
//! The calling thread is the first worker, in the store's own transaction
//! (the one that writes the refs at the end). The others open their own
//! handle on the repo (an `ostree::Repo` cannot cross threads, and libostree
//! allows one transaction per handle) and stream their blobs from a
//! [`fork`](ImageSource::fork) of the source; a source that cannot fork has
//! its layers fetched one after the other, still with the pool.
//!
//! When every layer is imported, the pool's writers and the other workers
//! commit their transactions (each: syncfs, then its objects renamed into
//! place). Only then does the caller set the refs, in its own transaction.
//! When a layer fails, the others stop at their next read of their blob,
//! every other transaction is aborted, and the caller aborts its own: no ref
//! is written, and what was staged stays for the next pull.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::super::import::{ImportLimits, ImportStats, ObjectPool};
use super::super::{Store, StoreError};
use super::layer::fetch_layer;
use super::{Progress, Txn};
use crate::source::{ImageSource, ResolvedImage};

/// Layers fetched at once at most.
pub const MAX_LAYERS_IN_FLIGHT: usize = 3;
/// Object writers at most (and at least two).
pub const MAX_WRITERS: usize = 4;

/// A layer imported, its commit written (and marked partial).
pub(super) struct Fetched {
    pub(super) idx: usize,
    pub(super) commit: String,
    pub(super) stats: ImportStats,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the workers of one pull share.
pub(super) struct Work<'a> {
    img: &'a ResolvedImage,
    /// The layers to fetch (indexes into `img.layers`), taken in order.
    todo: &'a [usize],
    next: AtomicUsize,
    pub(super) desc: &'a str,
    pub(super) name: &'a str,
    pub(super) limits: &'a ImportLimits,
    pub(super) pool: &'a ObjectPool,
    progress: Mutex<&'a mut dyn Progress>,
    /// The first failure; the others it caused are not kept.
    failure: Mutex<Option<StoreError>>,
    /// A layer failed (or a worker panicked): the others stop.
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// Workers still fetching, the caller included.
    running: usize,
    /// Whether the workers commit their transactions, once decided.
    verdict: Option<bool>,
}

impl<'a> Work<'a> {
    /// The pull's progress callback.
    pub(super) fn progress(&self) -> MutexGuard<'_, &'a mut dyn Progress> {
        lock(&self.progress)
    }

    /// Another layer failed: stop.
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn fail(&self, e: StoreError) {
        lock(&self.failure).get_or_insert(e);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Fetch layers into `repo`'s transaction until none is left or one
    /// failed.
    fn run(&self, repo: &ostree::Repo, src: &mut dyn ImageSource) -> Vec<Fetched> {
        let mut out = Vec::new();
        while !self.stopped() {
            let Some(&idx) = self.todo.get(self.next.fetch_add(1, Ordering::SeqCst)) else {
                break;
            };
            let (d, diff_id) = (&self.img.layers[idx], &self.img.diff_ids[idx]);
            self.progress().layer_started(idx, d);
            let t0 = std::time::Instant::now();
            match fetch_layer(repo, src, idx, d, diff_id, self) {
                Ok((commit, stats)) => {
                    log::debug!("pull: layer {} imported in {:?}", d.digest, t0.elapsed());
                    crate::failpoint!("pull.layer-written");
                    self.progress().layer_done(idx, d, &stats);
                    out.push(Fetched { idx, commit, stats });
                }
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
        out
    }

    /// Wait until no worker is fetching any more.
    fn wait_fetched(&self) {
        let s = lock(&self.state);
        drop(
            self.changed
                .wait_while(s, |s| s.running > 0)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    fn decide(&self, commit: bool) {
        lock(&self.state).verdict.get_or_insert(commit);
        self.changed.notify_all();
    }

    /// Wait for the decision.
    fn verdict(&self) -> bool {
        let s = lock(&self.state);
        let s = self
            .changed
            .wait_while(s, |s| s.verdict.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        s.verdict == Some(true)
    }
}

/// One worker fetching: counted out when dropped, a panic stopping the
/// others.
struct Running<'w, 'a>(&'w Work<'a>);

impl Drop for Running<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop.store(true, Ordering::SeqCst);
        }
        lock(&self.0.state).running -= 1;
        self.0.changed.notify_all();
    }
}

/// Unless disarmed (the pull got as far as committing): every worker and
/// writer aborts.
struct Abort<'w, 'a>(&'w Work<'a>, bool);

impl Drop for Abort<'_, '_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.decide(false);
            self.0.pool.finish(false);
        }
    }
}

/// A worker on its own thread: its own repo handle and transaction. What
/// it fetched, once its transaction is committed.
fn helper(repo: &Path, src: &mut dyn ImageSource, work: &Work) -> Result<Vec<Fetched>, StoreError> {
    let running = Running(work);
    let opened = ostree::Repo::new_for_path(repo);
    let txn = match opened
        .open(gio::Cancellable::NONE)
        .map_err(|source| StoreError::OpenRepo {
            path: repo.to_path_buf(),
            source,
        })
        .and_then(|()| Txn::begin(&opened))
    {
        Ok(t) => t,
        Err(e) => {
            work.fail(e);
            return Ok(Vec::new());
        }
    };
    let out = work.run(&opened, src);
    drop(running);
    if !work.verdict() {
        return Ok(Vec::new());
    }
    txn.commit()?;
    Ok(out)
}

/// Fetch layers `todo` of `img` from `src` into `store` (see the module
/// docs). Once every layer is in, `commit` runs on this thread: it commits
/// the store's own transaction (which holds the commits of the layers
/// fetched on this thread), while the other workers and the writers commit
/// theirs. The layers, in order, with their commits, all durable, and what
/// `commit` returned.
#[allow(clippy::too_many_arguments)]
pub(super) fn fetch_layers<T>(
    store: &Store,
    src: &mut dyn ImageSource,
    img: &ResolvedImage,
    todo: &[usize],
    desc: &str,
    name: &str,
    progress: &mut dyn Progress,
    commit: impl FnOnce() -> Result<T, StoreError>,
) -> Result<(Vec<Fetched>, T), StoreError> {
    if todo.is_empty() {
        return Ok((Vec::new(), commit()?));
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = todo.len().min(MAX_LAYERS_IN_FLIGHT).min(cores.max(2));
    let mut forks: Vec<Box<dyn ImageSource>> = (1..workers).map_while(|_| src.fork()).collect();
    let (pool, queues) = ObjectPool::new(cores.clamp(2, MAX_WRITERS));
    let path = store.repo_path();
    let work = Work {
        img,
        todo,
        next: AtomicUsize::new(0),
        desc,
        name,
        limits: store.import_limits(),
        pool: &pool,
        progress: Mutex::new(progress),
        failure: Mutex::new(None),
        stop: AtomicBool::new(false),
        state: Mutex::new(State {
            running: 1 + forks.len(),
            verdict: None,
        }),
        changed: Condvar::new(),
    };
    std::thread::scope(|s| {
        let (path, work) = (&path, &work);
        let mut abort = Abort(work, true);
        let writers: Vec<_> = queues
            .into_iter()
            .map(|q| s.spawn(move || ObjectPool::run_writer(path, q)))
            .collect();
        let helpers: Vec<_> = forks
            .iter_mut()
            .map(|f| {
                let src: &mut dyn ImageSource = f.as_mut();
                s.spawn(move || helper(path, src, work))
            })
            .collect();
        let mut fetched = {
            let _running = Running(work);
            work.run(store.repo(), src)
        };
        work.wait_fetched();
        if work.stopped() {
            drop(abort);
            let first = lock(&work.failure).take();
            for h in helpers {
                if let Err(panic) = h.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            for w in writers {
                if let Err(panic) = w.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            return Err(first.expect("a stopped pull has a failure, or a panic resumed above"));
        }
        // Every layer is in: the writers and the other workers commit.
        let t0 = std::time::Instant::now();
        log::debug!(
            "pull: {} layers imported; committing the objects",
            todo.len()
        );
        abort.1 = false;
        work.pool.finish(true);
        work.decide(true);
        let mut first = None;
        let ours = commit();
        for (i, w) in writers.into_iter().enumerate() {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    first.get_or_insert(StoreError::Transaction {
                        what: format!("commit (object writer {i})"),
                        source,
                    });
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for h in helpers {
            match h.join() {
                Ok(Ok(f)) => fetched.extend(f),
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let ours = ours?;
        if let Some(e) = first {
            return Err(e);
        }
        log::debug!("pull: objects committed in {:?}", t0.elapsed());
        fetched.sort_by_key(|f| f.idx);
        Ok((fetched, ours))
    })
}
