//! A compressed blob reader that can read ahead of its decompressor, into
//! memory, while the importer waits for compressed bytes to back a sparse
//! file (see `import::BlobProgress`). The pipe to the importer is full then,
//! so the decompressor cannot run; the bytes read ahead are what it reads
//! next. At most what the importer asked for is held (its sparse cap bounds
//! that to `max_content_bytes / max_sparse_ratio`, 64 MiB by default).

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use super::import::BlobProgress;

const PIECE: usize = 256 * 1024;

struct State<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    /// The inner reader returned EOF (or an error) while reading ahead.
    done: bool,
}

/// Shared by the decompressor (as its input) and the reader thread (which
/// reads ahead); both run on the reader thread.
pub(super) struct ReadAhead<R>(Arc<Mutex<State<R>>>);

impl<R: Read> ReadAhead<R> {
    pub(super) fn new(inner: R) -> Self {
        ReadAhead(Arc::new(Mutex::new(State {
            inner,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })))
    }

    pub(super) fn handle(&self) -> Self {
        ReadAhead(self.0.clone())
    }

    /// Whether the importer wants more compressed bytes than were read, and
    /// the blob may still have them: [`read_ahead`](Self::read_ahead) has
    /// something to do.
    pub(super) fn wanted(&self, blob: &BlobProgress) -> bool {
        let s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        !s.done && blob.read.load(Ordering::SeqCst) < blob.wanted.load(Ordering::SeqCst)
    }

    /// When the importer wants more compressed bytes than were read, read
    /// one more piece ahead (at the blob's end, mark it complete). False
    /// when there was nothing to do.
    pub(super) fn read_ahead(&self, blob: &BlobProgress) -> io::Result<bool> {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if s.done || blob.read.load(Ordering::SeqCst) >= blob.wanted.load(Ordering::SeqCst) {
            return Ok(false);
        }
        if s.pos > 0 && s.pos == s.buf.len() {
            s.buf.clear();
            s.pos = 0;
        }
        let start = s.buf.len();
        s.buf.resize(start + PIECE, 0);
        let State { inner, buf, .. } = &mut *s;
        let r = inner.read(&mut buf[start..]);
        let n = *r.as_ref().unwrap_or(&0);
        s.buf.truncate(start + n);
        match r {
            Ok(0) => {
                s.done = true;
                blob.set_complete();
            }
            Ok(_) => {}
            Err(e) => {
                s.done = true;
                return Err(e);
            }
        }
        Ok(true)
    }
}

impl<R: Read> Read for ReadAhead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if s.pos < s.buf.len() {
            let n = out.len().min(s.buf.len() - s.pos);
            out[..n].copy_from_slice(&s.buf[s.pos..s.pos + n]);
            s.pos += n;
            return Ok(n);
        }
        // The inner reader (a digest check) keeps its verdict: after EOF or
        // an error it says the same again.
        s.inner.read(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ahead_only_when_wanted_and_loses_nothing() {
        let data: Vec<u8> = (0..700_000u32).map(|i| i as u8).collect();
        let blob = BlobProgress::default();
        struct Counting<'a>(&'a [u8], &'a BlobProgress);
        impl Read for Counting<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(b)?;
                self.1.read.fetch_add(n as u64, Ordering::AcqRel);
                Ok(n)
            }
        }
        let ahead = ReadAhead::new(Counting(&data, &blob));
        let mut dec = ahead.handle();
        let mut first = [0u8; 1000];
        dec.read_exact(&mut first).unwrap();
        assert!(!ahead.read_ahead(&blob).unwrap(), "nothing wanted");
        blob.wanted.store(600_000, Ordering::Release);
        while ahead.read_ahead(&blob).unwrap() {}
        assert!(blob.read.load(Ordering::Acquire) >= 600_000);
        assert!(!blob.complete.load(Ordering::Acquire));
        blob.wanted.store(u64::MAX, Ordering::Release);
        while ahead.read_ahead(&blob).unwrap() {}
        assert!(blob.complete.load(Ordering::Acquire), "read to the end");
        let mut rest = Vec::new();
        dec.read_to_end(&mut rest).unwrap();
        assert_eq!([&first[..], &rest[..]].concat(), data);
    }
}
