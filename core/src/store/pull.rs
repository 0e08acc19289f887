//! `pull`: an [`ImageSource`] into the store, in one OSTree transaction.
//!
//! For each layer not yet present: `open_blob` -> verify the compressed
//! digest -> decompress -> verify the `diff_id` -> import. The image ref is
//! set only after every layer is committed and verified; any error aborts the
//! transaction, so no ref is left behind (the repo is as it was; objects
//! already staged are reused by libostree on the next attempt).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::Ordering;

use glib::prelude::*;

use super::import::{
    import_layer_from, BlobProgress, ImportError, ImportLimits, ImportStats, LayerInfo,
};
use super::lock::LockMode;
use super::readahead::ReadAhead;
use super::{Store, StoreError};
use super::{
    META_CONFIG, META_LAYER, META_LAYER_DIFF_ID, META_LAYER_MEDIA_TYPE, META_LAYER_SIZE,
    META_LAYER_TAR_SIZE, META_MANIFEST, META_MANIFEST_DIGEST, META_NAME,
};
use crate::imgref;
use crate::source::{
    self, Descriptor, DigestReader, ImageSource, ResolvedImage, SlowTransfer, SourceError,
};

mod pipe;

/// Receives pull events. Every method has an empty default.
pub trait Progress: Send {
    fn resolved(&mut self, _img: &ResolvedImage) {}
    fn layer_skipped(&mut self, _idx: usize, _d: &Descriptor) {}
    fn layer_started(&mut self, _idx: usize, _d: &Descriptor) {}
    /// `read` compressed bytes of layer `idx` so far.
    fn layer_bytes(&mut self, _idx: usize, _read: u64) {}
    fn layer_done(&mut self, _idx: usize, _d: &Descriptor, _stats: &ImportStats) {}
    fn finished(&mut self, _report: &PullReport) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PullReport {
    pub name: String,
    pub image_id: String,
    pub manifest_digest: String,
    /// The image commit.
    pub commit: String,
    pub layers_total: usize,
    pub layers_fetched: usize,
    pub layers_skipped: usize,
    /// Compressed bytes read from the source.
    pub bytes_fetched: u64,
    /// Device nodes and FIFOs dropped from the fetched layers.
    pub dropped_special: u64,
    /// The image was already stored with the same manifest: nothing changed.
    pub up_to_date: bool,
}

struct ProgressReader<'p, R> {
    inner: R,
    n: u64,
    /// Where `n` is shared with the importer.
    blob: &'p BlobProgress,
    last: u64,
    idx: usize,
    progress: &'p mut dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        self.blob.set_read(self.n);
        if n == 0 || self.n - self.last >= 256 * 1024 {
            self.last = self.n;
            self.progress.layer_bytes(self.idx, self.n);
        }
        Ok(n)
    }
}

/// Aborts the transaction unless committed.
struct Txn<'r> {
    repo: &'r ostree::Repo,
    open: bool,
}

impl Txn<'_> {
    fn begin(repo: &ostree::Repo) -> Result<Txn<'_>, StoreError> {
        repo.prepare_transaction(gio::Cancellable::NONE)
            .map_err(|source| StoreError::Transaction {
                what: "prepare".into(),
                source,
            })?;
        Ok(Txn { repo, open: true })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.repo
            .commit_transaction(gio::Cancellable::NONE)
            .map_err(|source| StoreError::Transaction {
                what: "commit".into(),
                source,
            })?;
        Ok(())
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.repo.abort_transaction(gio::Cancellable::NONE);
        }
    }
}

fn write_commit(
    repo: &ostree::Repo,
    subject: &str,
    meta: &glib::VariantDict,
    root: &ostree::RepoFile,
) -> Result<String, StoreError> {
    // Time 0: the same content gives the same commit on every host, and a
    // re-pull leaves refs untouched.
    repo.write_commit_with_time(
        None,
        Some(subject),
        None,
        Some(&meta.end()),
        root,
        0,
        gio::Cancellable::NONE,
    )
    .and_then(|c| {
        // Until the transaction is committed and the commit is known to be
        // whole, mark it partial: a kill while libostree moves the staged
        // objects into place may leave the commit object without its tree,
        // and fsck (and prune) then treat it as the partial commit it is.
        repo.mark_commit_partial(&c, true)?;
        Ok(c.to_string())
    })
    .map_err(|source| StoreError::Transaction {
        what: format!("write commit for {subject}"),
        source,
    })
}

fn check_resolved(img: &ResolvedImage, desc: &str) -> Result<(), StoreError> {
    let bad = |reason: String| StoreError::BadImage {
        name: img.name.clone(),
        source_desc: desc.to_string(),
        reason,
    };
    if img.layers.len() != img.diff_ids.len() {
        return Err(bad(format!(
            "{} layers but {} diff_ids in the config",
            img.layers.len(),
            img.diff_ids.len()
        )));
    }
    for d in img
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain(&img.diff_ids)
        .chain([&img.config.digest, &img.manifest_digest])
    {
        if imgref::validate_digest(d).is_err() {
            return Err(bad(format!("'{d}' is not a sha256 digest")));
        }
    }
    if img.name.is_empty() || img.name.contains(char::is_control) {
        return Err(bad("empty image name".into()));
    }
    Ok(())
}

/// Pull `src` into `store`.
pub fn pull(
    store: &Store,
    src: &mut dyn ImageSource,
    progress: &mut dyn Progress,
) -> Result<PullReport, StoreError> {
    let desc = src.describe();
    let img = src.resolve().map_err(|source| StoreError::Source {
        source_desc: desc.clone(),
        source,
    })?;
    check_resolved(&img, &desc)?;
    progress.resolved(&img);
    let name = imgref::with_tag(&img.name);
    let image_ref = imgref::image_branch(&name);
    let repo = store.repo();
    let _lock = store.lock(LockMode::Exclusive)?;
    crate::failpoint!("pull.locked");

    let mut report = PullReport {
        name: name.clone(),
        image_id: img.config.digest.clone(),
        manifest_digest: img.manifest_digest.clone(),
        commit: String::new(),
        layers_total: img.layers.len(),
        layers_fetched: 0,
        layers_skipped: 0,
        bytes_fetched: 0,
        dropped_special: 0,
        up_to_date: false,
    };

    // Already stored with this very manifest and every layer present?
    if let Some(c) = store.resolve_ref(&image_ref)? {
        let same = store.image_from_commit(&name, &c).is_ok_and(|i| {
            i.manifest_digest == img.manifest_digest && i.image_id == img.config.digest
        });
        let mut all = same;
        for l in &img.layers {
            if !all {
                break;
            }
            all = store.layer_commit(&l.digest)?.is_some();
        }
        if all {
            for (i, l) in img.layers.iter().enumerate() {
                progress.layer_skipped(i, l);
            }
            report.commit = c;
            report.layers_skipped = img.layers.len();
            report.up_to_date = true;
            progress.finished(&report);
            return Ok(report);
        }
    }

    let txn = Txn::begin(repo)?;
    crate::failpoint!("pull.txn-begun");
    let mut this_pull: HashMap<String, String> = HashMap::new();
    for (i, (d, diff_id)) in img.layers.iter().zip(&img.diff_ids).enumerate() {
        if this_pull.contains_key(&d.digest) {
            report.layers_skipped += 1;
            progress.layer_skipped(i, d);
            continue;
        }
        if let Some(l) = store.layer(&d.digest)? {
            if let Some(stored) = l.diff_id.filter(|s| s != diff_id) {
                return Err(StoreError::DiffIdMismatch {
                    name: name.clone(),
                    digest: d.digest.clone(),
                    expected: diff_id.clone(),
                    stored,
                });
            }
            report.layers_skipped += 1;
            progress.layer_skipped(i, d);
            continue;
        }
        progress.layer_started(i, d);
        let (commit, stats, read) = fetch_layer(
            repo,
            store.import_limits(),
            src,
            &desc,
            &name,
            i,
            d,
            diff_id,
            progress,
        )?;
        crate::failpoint!("pull.layer-written");
        repo.transaction_set_ref(None, &imgref::layer_branch(&d.digest)?, Some(&commit));
        this_pull.insert(d.digest.clone(), commit);
        report.layers_fetched += 1;
        report.bytes_fetched += read;
        report.dropped_special += stats.dropped_special;
        progress.layer_done(i, d, &stats);
    }

    // The image commit: an empty tree, the manifest and config as metadata.
    let mtree = ostree::MutableTree::new();
    let mut metas = super::import::DirMetas::new();
    let dm = metas
        .get(repo, 0, 0, 0o755, None)
        .map_err(|source| StoreError::Transaction {
            what: "write image root".into(),
            source,
        })?;
    mtree.set_metadata_checksum(&dm);
    let root = repo
        .write_mtree(&mtree, gio::Cancellable::NONE)
        .map_err(|source| StoreError::Transaction {
            what: "write image root".into(),
            source,
        })?
        .downcast::<ostree::RepoFile>()
        .expect("write_mtree returns an OstreeRepoFile");
    let meta = glib::VariantDict::new(None);
    let manifest = String::from_utf8_lossy(&img.manifest_raw).into_owned();
    let config = String::from_utf8_lossy(&img.config_raw).into_owned();
    meta.insert(META_MANIFEST, manifest);
    meta.insert(META_MANIFEST_DIGEST, img.manifest_digest.clone());
    meta.insert(META_CONFIG, config);
    meta.insert(META_NAME, name.clone());
    let commit = write_commit(repo, &name, &meta, &root)?;
    crate::failpoint!("pull.image-commit-written");
    repo.transaction_set_ref(None, &image_ref, Some(&commit));
    txn.commit()?;
    for c in this_pull.values().chain(std::iter::once(&commit)) {
        repo.mark_commit_partial(c, false)
            .map_err(|source| StoreError::Transaction {
                what: format!("mark commit {c} complete"),
                source,
            })?;
    }
    crate::failpoint!("pull.committed");
    report.commit = commit;
    progress.finished(&report);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn fetch_layer(
    repo: &ostree::Repo,
    limits: &ImportLimits,
    src: &mut dyn ImageSource,
    desc: &str,
    name: &str,
    idx: usize,
    d: &Descriptor,
    diff_id: &str,
    progress: &mut dyn Progress,
) -> Result<(String, ImportStats, u64), StoreError> {
    let src_err = |source| StoreError::Source {
        source_desc: desc.to_string(),
        source,
    };
    let raw = src.open_blob(d).map_err(src_err)?;
    // Two threads: this one parses the tar stream and writes objects; the
    // reader fetches, verifies the blob digest, decompresses and verifies the
    // diff_id, a few chunks ahead (bounded: memory stays flat). It reports
    // its progress in `blob`: the importer may wait for compressed bytes to
    // back a sparse file, and stops when the blob fails.
    let blob = BlobProgress::default();
    let pipe = pipe::Pipe::new(&blob);
    let (imported, fed) = std::thread::scope(|s| {
        let tx = pipe.sender();
        let blob = &blob;
        let reader = s.spawn(move || feed(raw, d, diff_id, idx, progress, tx, blob));
        let imported = import_layer_from(
            repo,
            pipe.receiver(),
            limits,
            &LayerInfo {
                compressed_size: Some(d.size),
                blob: Some(blob),
            },
        );
        let fed = match reader.join() {
            Ok(f) => f,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (imported, fed)
    });
    let verified = match fed {
        Fed::Decompress(source) => return Err(src_err(source)),
        Fed::Done(v) => v,
    };
    // A blob too slow on every attempt: the reader says so on every read
    // after, so the final read to the end of the blob carries it.
    if let Some(slow) = verified.as_ref().err().and_then(SlowTransfer::from_io) {
        return Err(src_err(SourceError::Slow(slow.clone())));
    }
    let imported = match (imported, verified) {
        // Stopped by the reader: its error is the cause.
        (Err(ImportError::Stopped { .. }), Err(source)) => {
            return Err(StoreError::LayerVerify {
                name: name.to_string(),
                digest: d.digest.clone(),
                source,
            })
        }
        (_, Err(source)) if source.kind() == io::ErrorKind::InvalidData => {
            return Err(StoreError::LayerVerify {
                name: name.to_string(),
                digest: d.digest.clone(),
                source,
            })
        }
        (Err(source), _) => {
            return Err(StoreError::Layer {
                name: name.to_string(),
                digest: d.digest.clone(),
                source: Box::new(source),
            })
        }
        (Ok(_), Err(source)) => {
            return Err(StoreError::LayerVerify {
                name: name.to_string(),
                digest: d.digest.clone(),
                source,
            })
        }
        (Ok(i), Ok(_)) => i,
    };
    let stats = imported.stats;
    let meta = glib::VariantDict::new(None);
    meta.insert(META_LAYER, d.digest.clone());
    meta.insert(META_LAYER_SIZE, d.size);
    meta.insert(META_LAYER_MEDIA_TYPE, d.media_type.clone());
    meta.insert(META_LAYER_DIFF_ID, diff_id.to_string());
    meta.insert(META_LAYER_TAR_SIZE, stats.tar_bytes);
    let commit = write_commit(repo, &d.digest, &meta, &imported.root)?;
    Ok((commit, stats, d.size))
}

/// How the reader thread ended.
enum Fed {
    /// The layer's compression could not be set up.
    Decompress(source::SourceError),
    /// The decompressed stream was fed (or the importer stopped); then the
    /// blob was read to its end: the verdict of its digest check. The
    /// decompressor may stop at the end of its frame, and when the import
    /// failed, a digest mismatch is the better explanation (a tampered blob
    /// usually breaks the decompressor first).
    Done(io::Result<u64>),
}

/// Marks the blob failed unless it completed, however the reader thread
/// ends (a panic included): the importer may be waiting for it.
struct Exit<'a>(&'a BlobProgress);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        if !self.0.complete.load(Ordering::SeqCst) {
            self.0.fail();
        }
    }
}

/// The reader thread: blob -> digest check -> decompress -> diff_id check ->
/// chunks on `tx`. A read error is sent once, then the pipe closes. While
/// the pipe is full, it reads ahead the compressed bytes that the importer
/// waits for.
#[allow(clippy::too_many_arguments)]
fn feed(
    raw: Box<dyn Read + Send + '_>,
    d: &Descriptor,
    diff_id: &str,
    idx: usize,
    progress: &mut dyn Progress,
    tx: pipe::Sender<'_, '_>,
    blob: &BlobProgress,
) -> Fed {
    let _exit = Exit(blob);
    let counted = ProgressReader {
        inner: raw,
        n: 0,
        blob,
        last: 0,
        idx,
        progress,
    };
    let mut compressed = ReadAhead::new(DigestReader::new(counted, &d.digest, Some(d.size)));
    'pipe: {
        let dec = match source::decompress(d, Box::new(compressed.handle())) {
            Ok(dec) => dec,
            Err(e) => return Fed::Decompress(e),
        };
        let mut tar = DigestReader::new(dec, diff_id, None);
        loop {
            let mut buf = tx.buffer();
            let (item, last) = match read_full(&mut tar, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    (Ok(buf), false)
                }
                Err(e) => {
                    blob.fail();
                    (Err(e), true)
                }
            };
            let sent = tx.send(
                item,
                || compressed.wanted(blob),
                || compressed.read_ahead(blob),
            );
            match sent {
                // The importer stopped.
                Err(pipe::Gone) => break 'pipe,
                // The digest check keeps the error for the final drain.
                Ok(Err(_)) => {
                    blob.fail();
                    break 'pipe;
                }
                Ok(Ok(())) if last => break,
                Ok(Ok(())) => {}
            }
        }
    }
    drop(tx);
    let verdict = io::copy(&mut compressed, &mut io::sink());
    if verdict.is_ok() {
        blob.set_complete();
    }
    Fed::Done(verdict)
}

/// Read until `buf` is full or EOF.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
