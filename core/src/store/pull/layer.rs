//! One layer: its blob fetched, verified, decompressed and imported.
//!
//! Two threads: the caller's parses the tar stream and builds the tree (the
//! pool's writers write its objects); the reader fetches, verifies the blob
//! digest, decompresses and verifies the diff_id, a few chunks ahead
//! (bounded: memory stays flat). It reports its progress in the blob's
//! [`BlobProgress`]: the importer may wait for compressed bytes to back a
//! sparse file, and stops when the blob fails.

use std::io::{self, Read};
use std::sync::atomic::Ordering;

use super::super::import::{import_layer_from, BlobProgress, ImportError, ImportStats, LayerInfo};
use super::super::readahead::ReadAhead;
use super::super::{
    StoreError, META_LAYER, META_LAYER_DIFF_ID, META_LAYER_MEDIA_TYPE, META_LAYER_SIZE,
    META_LAYER_TAR_SIZE,
};
use super::workers::Work;
use super::{pipe, write_commit};
use crate::source::{self, Descriptor, DigestReader, ImageSource, SlowTransfer, SourceError};

/// Counts the compressed bytes for the importer and the progress callback,
/// and stops the blob when another layer of the pull failed.
struct ProgressReader<'p, 'w, R> {
    inner: R,
    n: u64,
    /// Where `n` is shared with the importer.
    blob: &'p BlobProgress,
    last: u64,
    idx: usize,
    work: &'p Work<'w>,
}

impl<R: Read> Read for ProgressReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.work.stopped() {
            return Err(io::Error::other(
                "stopped: another layer of the pull failed",
            ));
        }
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        self.blob.set_read(self.n);
        if n == 0 || self.n - self.last >= 256 * 1024 {
            self.last = self.n;
            self.work.progress().layer_bytes(self.idx, self.n);
        }
        Ok(n)
    }
}

/// Fetch and import layer `idx` (`d`, whose tar stream has digest
/// `diff_id`) from `src`, and write its commit (marked partial) into
/// `repo`'s transaction; its content objects go to the pull's pool. The
/// commit and the import's counts.
pub(super) fn fetch_layer(
    repo: &ostree::Repo,
    src: &mut dyn ImageSource,
    idx: usize,
    d: &Descriptor,
    diff_id: &str,
    work: &Work<'_>,
) -> Result<(String, ImportStats), StoreError> {
    let (desc, name) = (work.desc, work.name);
    let src_err = |source| StoreError::Source {
        source_desc: desc.to_string(),
        source,
    };
    let raw = src.open_blob(d).map_err(src_err)?;
    let blob = BlobProgress::default();
    let pipe = pipe::Pipe::new(&blob);
    let (imported, fed) = std::thread::scope(|s| {
        let tx = pipe.sender();
        let blob = &blob;
        let reader = s.spawn(move || feed(raw, d, diff_id, idx, work, tx, blob));
        let imported = import_layer_from(
            repo,
            pipe.receiver(),
            work.limits,
            &LayerInfo {
                compressed_size: Some(d.size),
                blob: Some(blob),
                pool: Some(work.pool),
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
    Ok((commit, stats))
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
fn feed(
    raw: Box<dyn Read + Send + '_>,
    d: &Descriptor,
    diff_id: &str,
    idx: usize,
    work: &Work<'_>,
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
        work,
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
