//! The decompressed layer between the reader thread and the importer: a few
//! chunks in flight (memory stays flat), spent chunks handed back for reuse.
//! Both ends block on the blob's [`BlobProgress`] signal, never poll: the
//! reader wakes when a chunk was taken, when the importer wants compressed
//! bytes read ahead, or when the importer is gone; the importer wakes when a
//! chunk arrives or the reader is done.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::super::import::BlobProgress;

/// Chunks in flight between the reader thread and the importer.
pub(super) const PIPE_CHUNKS: usize = 4;
/// The size of one chunk.
pub(super) const CHUNK: usize = 256 * 1024;

#[derive(Default)]
struct State {
    chunks: VecDeque<io::Result<Vec<u8>>>,
    /// Spent chunks, for the reader to fill again.
    spare: Vec<Vec<u8>>,
    /// The reader sends nothing more.
    closed: bool,
    /// The importer takes nothing more.
    gone: bool,
}

/// The pipe itself, shared by its two ends.
pub(super) struct Pipe<'b> {
    state: Mutex<State>,
    blob: &'b BlobProgress,
}

/// The importer stopped reading: nothing more needs to be sent.
pub(super) struct Gone;

impl<'b> Pipe<'b> {
    pub(super) fn new(blob: &'b BlobProgress) -> Self {
        Pipe {
            state: Mutex::new(State::default()),
            blob,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader's end.
    pub(super) fn sender(&self) -> Sender<'_, 'b> {
        Sender(self)
    }

    /// The importer's end.
    pub(super) fn receiver(&self) -> Receiver<'_, 'b> {
        Receiver {
            pipe: self,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

/// Closes the pipe when dropped (the reader thread ended, a panic included).
pub(super) struct Sender<'p, 'b>(&'p Pipe<'b>);

impl Sender<'_, '_> {
    /// A buffer to fill: a spent chunk, or a new one.
    pub(super) fn buffer(&self) -> Vec<u8> {
        let mut b = self.0.lock().spare.pop().unwrap_or_default();
        b.resize(CHUNK, 0);
        b
    }

    /// Send `item` once there is room. While the pipe is full and
    /// `wanted()` says the importer wants compressed bytes read ahead,
    /// `read_ahead()` is called instead of waiting (it returns false when
    /// it had nothing to do).
    pub(super) fn send(
        &self,
        item: io::Result<Vec<u8>>,
        wanted: impl Fn() -> bool,
        mut read_ahead: impl FnMut() -> io::Result<bool>,
    ) -> Result<io::Result<()>, Gone> {
        let pipe = self.0;
        let mut item = Some(item);
        loop {
            {
                let mut s = pipe.lock();
                if s.gone {
                    return Err(Gone);
                }
                if s.chunks.len() < PIPE_CHUNKS {
                    s.chunks.push_back(item.take().expect("sent once"));
                    drop(s);
                    pipe.blob.notify();
                    return Ok(Ok(()));
                }
            }
            match read_ahead() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Ok(Err(e)),
            }
            pipe.blob.wait_while(|| {
                let s = pipe.lock();
                !s.gone && s.chunks.len() >= PIPE_CHUNKS && !wanted()
            });
        }
    }
}

impl Drop for Sender<'_, '_> {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.blob.notify();
    }
}

/// Reads the chunks in order; EOF once the reader closed the pipe. Tells
/// the reader when dropped.
pub(super) struct Receiver<'p, 'b> {
    pipe: &'p Pipe<'b>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Receiver<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let pipe = self.pipe;
        while self.pos == self.cur.len() {
            let next = {
                let mut s = pipe.lock();
                match s.chunks.pop_front() {
                    Some(next) => {
                        let spent = std::mem::take(&mut self.cur);
                        if spent.capacity() > 0 {
                            s.spare.push(spent);
                        }
                        Some(next)
                    }
                    None if s.closed => return Ok(0),
                    None => None,
                }
            };
            match next {
                Some(next) => {
                    pipe.blob.notify();
                    self.pos = 0;
                    self.cur = next?;
                }
                None => pipe.blob.wait_while(|| {
                    let s = pipe.lock();
                    s.chunks.is_empty() && !s.closed
                }),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Receiver<'_, '_> {
    fn drop(&mut self) {
        self.pipe.lock().gone = true;
        self.pipe.blob.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn chunks_arrive_in_order_and_errors_once() {
        let blob = BlobProgress::default();
        let pipe = Pipe::new(&blob);
        let got = std::thread::scope(|s| {
            let tx = pipe.sender();
            s.spawn(move || {
                for i in 0..20u8 {
                    let mut b = tx.buffer();
                    b.truncate(1000);
                    b.fill(i);
                    assert!(matches!(tx.send(Ok(b), || false, || Ok(false)), Ok(Ok(()))));
                }
                let e = io::Error::new(io::ErrorKind::InvalidData, "bad");
                assert!(tx.send(Err(e), || false, || Ok(false)).is_ok());
            });
            let mut rx = pipe.receiver();
            let mut got = Vec::new();
            let mut buf = [0u8; 333];
            let err = loop {
                match rx.read(&mut buf) {
                    Ok(0) => panic!("EOF before the error"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break e,
                }
            };
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(rx.read(&mut buf).unwrap(), 0, "then EOF");
            got
        });
        let want: Vec<u8> = (0..20u8).flat_map(|i| [i; 1000]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_full_pipe_reads_ahead_when_wanted_and_stops_when_the_importer_is_gone() {
        let blob = BlobProgress::default();
        let pipe = Pipe::new(&blob);
        let rx = pipe.receiver();
        let tx = pipe.sender();
        for _ in 0..PIPE_CHUNKS {
            assert!(tx.send(Ok(vec![1]), || false, || Ok(false)).is_ok());
        }
        std::thread::scope(|s| {
            let blob = &blob;
            s.spawn(move || {
                // The importer wants 3 bytes: the full pipe reads ahead.
                blob.want(3);
                blob.wait_while(|| blob.read.load(Ordering::SeqCst) < 3);
                drop(rx);
            });
            let r = tx.send(
                Ok(vec![2]),
                || blob.read.load(Ordering::SeqCst) < blob.wanted.load(Ordering::SeqCst),
                || {
                    let n = blob.read.load(Ordering::SeqCst);
                    if n >= blob.wanted.load(Ordering::SeqCst) {
                        return Ok(false);
                    }
                    blob.set_read(n + 1);
                    Ok(true)
                },
            );
            assert!(r.is_err(), "the importer is gone");
        });
        assert_eq!(blob.read.load(Ordering::SeqCst), 3);
    }
}
