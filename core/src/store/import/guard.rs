//! The tar header guard: a reader below the tar parser that refuses an
//! oversized extension header before the parser reads it into memory, and
//! checks an old GNU sparse map before the parser expands it.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;

use super::path::show;
use crate::store::sparse::{GnuMapCheck, SparseReason, SparseSizes};

/// Why [`HeaderGuard`] stopped the stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refused {
    pub(super) what: &'static str,
    pub(super) size: u64,
}

#[derive(Debug)]
enum GuardState {
    /// Collecting a 512-byte header block.
    Header,
    /// Collecting a GNU sparse extension block; then data up to `data_end`.
    SparseExt { data_end: u64 },
    /// Collecting a PAX extension body up to `end`, then skipping to `next`.
    Pax { end: u64, next: u64 },
    /// Collecting a GNU long name up to `end`, then skipping to `next`.
    LongName { end: u64, next: u64 },
    /// Passing bytes through up to `next`, the next header.
    Skip { next: u64 },
    /// Lost track (a header the tar reader will reject anyway): pass through.
    Off,
}

/// A reader below the tar parser that follows the archive's block structure
/// on its own and refuses a GNU long-name/long-link or PAX extension header
/// over the limit *before* the tar parser reads its body into memory (the
/// `tar` crate reads those bodies whole, with no cap). It mirrors the crate's
/// rules: PAX `size` overrides the next real entry's size, GNU sparse headers
/// may be followed by extension blocks. It also records the position of the
/// last real entry's header, which the importer checks against the parser's,
/// so a disagreement is an error rather than a blind spot. It checks the map
/// of an old GNU sparse entry ([`GnuMapCheck`]) before the tar crate reads
/// it, and keeps the entry's name (GNU long name, PAX `path` or header) for
/// that refusal.
pub(super) struct HeaderGuard<R> {
    inner: R,
    limit: u64,
    pos: u64,
    block: Vec<u8>,
    pax: Vec<u8>,
    pending_pax_size: Option<u64>,
    state: GuardState,
    pub(super) refused: Rc<Cell<Option<Refused>>>,
    pub(super) entry_header: Rc<Cell<u64>>,
    /// The pending GNU long name and PAX `path`, for the next entry.
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    /// The map of the old GNU sparse entry being read, and its name.
    gnu_map: Option<(GnuMapCheck, Vec<u8>)>,
    /// An old GNU sparse entry refused: its name and why.
    pub(super) sparse_refused: Rc<RefCell<Option<(String, SparseReason)>>>,
    /// The last old GNU sparse entry checked: its header position and sizes.
    pub(super) gnu_sizes: Rc<Cell<Option<(u64, SparseSizes)>>>,
}

impl<R: Read> HeaderGuard<R> {
    pub(super) fn new(inner: R, limit: u64) -> Self {
        HeaderGuard {
            inner,
            limit,
            pos: 0,
            block: Vec::with_capacity(512),
            pax: Vec::new(),
            pending_pax_size: None,
            state: GuardState::Header,
            refused: Rc::new(Cell::new(None)),
            entry_header: Rc::new(Cell::new(0)),
            long_name: None,
            pax_path: None,
            gnu_map: None,
            sparse_refused: Rc::new(RefCell::new(None)),
            gnu_sizes: Rc::new(Cell::new(None)),
        }
    }

    /// Stop following the archive's structure: what is left passes through.
    pub(super) fn stop(&mut self) {
        self.state = GuardState::Off;
    }

    /// Feed one block of an old GNU sparse map (`slots`, then the
    /// `isextended` byte); `start` is the entry's header position. Returns
    /// whether extension blocks follow.
    fn gnu_block(&mut self, start: u64, slots: &[u8], ext: u8) -> io::Result<bool> {
        let Some((check, name)) = self.gnu_map.as_mut() else {
            return Ok(false);
        };
        // The tar crate reads on only for 1, GNU tar for any non-zero value.
        let r = if ext > 1 {
            Err(SparseReason::Extended { value: ext })
        } else {
            check.feed(slots, ext == 1)
        };
        let r = match r {
            Ok(()) if ext == 1 => return Ok(true),
            Ok(()) => check.finish(),
            Err(e) => Err(e),
        };
        let name = std::mem::take(name);
        self.gnu_map = None;
        match r {
            Ok(sizes) => {
                self.gnu_sizes.set(Some((start, sizes)));
                Ok(false)
            }
            Err(reason) => {
                *self.sparse_refused.borrow_mut() = Some((show(&name), reason));
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "invalid GNU sparse map",
                ))
            }
        }
    }

    fn refuse(&self, what: &'static str, size: u64) -> io::Error {
        self.refused.set(Some(Refused { what, size }));
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tar {what} header of {size} bytes is over the limit"),
        )
    }

    fn padded(pos: u64, size: u64) -> u64 {
        pos.saturating_add(size.div_ceil(512).saturating_mul(512))
    }

    /// A complete header block at `self.pos - 512`.
    fn header(&mut self) -> io::Result<()> {
        let start = self.pos - 512;
        if self.block.iter().all(|b| *b == 0) {
            self.state = GuardState::Header;
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(&self.block);
        let Ok(size) = h.entry_size() else {
            self.state = GuardState::Off;
            return Ok(());
        };
        let ty = h.entry_type();
        // The tar crate reads the body of a GNU long name/link or PAX header
        // into memory, and attaches it to the next entry, only when the
        // header has a GNU or ustar magic. Anything else (a PAX global
        // header, an unrecognised 'L') it yields as an entry of its own and
        // skips the body of.
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        let what = if ty.is_gnu_longname() {
            Some("GNU long name")
        } else if ty.is_gnu_longlink() {
            Some("GNU long link")
        } else if ty.is_pax_local_extensions() {
            Some("PAX extension")
        } else {
            None
        };
        if let Some(what) = what.filter(|_| recognized) {
            if size > self.limit {
                return Err(self.refuse(what, size));
            }
            let next = Self::padded(self.pos, size);
            if ty.is_pax_local_extensions() {
                self.pax.clear();
                self.state = GuardState::Pax {
                    end: self.pos + size,
                    next,
                };
            } else if ty.is_gnu_longname() {
                self.long_name = Some(Vec::new());
                self.state = GuardState::LongName {
                    end: self.pos + size,
                    next,
                };
            } else {
                self.state = GuardState::Skip { next };
            }
            return Ok(());
        }
        // An entry the tar crate yields. A pending PAX size applies to it
        // unless it has an extension type itself (then it is dropped).
        self.entry_header.set(start);
        let pax_size = self.pending_pax_size.take();
        let ext_type = what.is_some() || ty.is_pax_global_extensions();
        let size = if ext_type {
            size
        } else {
            pax_size.unwrap_or(size)
        };
        let (long_name, pax_path) = (self.long_name.take(), self.pax_path.take());
        let name = || {
            long_name
                .map(|mut n| {
                    // As the tar crate reads it: up to the first NUL.
                    if let Some(i) = n.iter().position(|b| *b == 0) {
                        n.truncate(i);
                    }
                    n
                })
                .or(pax_path)
                .unwrap_or_else(|| h.path_bytes().into_owned())
        };
        let mut sparse_ext = false;
        if ty.is_gnu_sparse() && h.as_gnu().is_none() {
            *self.sparse_refused.borrow_mut() = Some((show(&name()), SparseReason::NotGnuHeader));
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "GNU sparse entry without a GNU header",
            ));
        }
        if let Some(g) = h.as_gnu().filter(|_| ty.is_gnu_sparse()) {
            let real_size = g.real_size().unwrap_or(u64::MAX);
            self.gnu_map = Some((GnuMapCheck::new(real_size, size), name()));
            let block = self.block.clone();
            sparse_ext = self.gnu_block(start, &block[386..482], block[482])?;
        }
        self.state = if sparse_ext {
            GuardState::SparseExt {
                data_end: Self::padded(self.pos, size),
            }
        } else {
            GuardState::Skip {
                next: Self::padded(self.pos, size),
            }
        };
        Ok(())
    }

    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                GuardState::Off => return Ok(()),
                GuardState::Header | GuardState::SparseExt { .. } => {
                    let k = (512 - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..k]);
                    bytes = &bytes[k..];
                    self.pos += k as u64;
                    if self.block.len() == 512 {
                        if let GuardState::SparseExt { data_end } = self.state {
                            // The data follows the extension blocks.
                            let data_end = data_end + 512;
                            let block = std::mem::take(&mut self.block);
                            let start = self.entry_header.get();
                            let more = self.gnu_block(start, &block[..504], block[504]);
                            self.block = block;
                            self.state = if more? {
                                GuardState::SparseExt { data_end }
                            } else {
                                GuardState::Skip { next: data_end }
                            };
                        } else {
                            self.header()?;
                        }
                        self.block.clear();
                    }
                }
                GuardState::Pax { end, next } => {
                    let k = ((end - self.pos) as usize).min(bytes.len());
                    self.pax.extend_from_slice(&bytes[..k]);
                    bytes = &bytes[k..];
                    self.pos += k as u64;
                    if self.pos == end {
                        self.pending_pax_size = pax_size(&self.pax);
                        self.pax_path = pax_path(&self.pax);
                        self.state = GuardState::Skip { next };
                    }
                }
                GuardState::LongName { end, next } => {
                    let k = ((end - self.pos) as usize).min(bytes.len());
                    if let Some(n) = self.long_name.as_mut() {
                        n.extend_from_slice(&bytes[..k]);
                    }
                    bytes = &bytes[k..];
                    self.pos += k as u64;
                    if self.pos == end {
                        self.state = GuardState::Skip { next };
                    }
                }
                GuardState::Skip { next } => {
                    let k = (next.saturating_sub(self.pos)).min(bytes.len() as u64) as usize;
                    bytes = &bytes[k..];
                    self.pos += k as u64;
                    if self.pos >= next {
                        self.state = GuardState::Header;
                    }
                }
            }
        }
        Ok(())
    }
}

/// PAX `size`, as the `tar` crate reads it: the first `size` record, if the
/// records up to it parse.
fn pax_size(body: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(body) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse().ok();
    }
    None
}

/// PAX `path`, as the `tar` crate reads it: the first `path` record.
fn pax_path(body: &[u8]) -> Option<Vec<u8>> {
    tar::PaxExtensions::new(body)
        .filter_map(Result::ok)
        .find(|e| e.key_bytes() == b"path")
        .map(|e| e.value_bytes().to_vec())
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(r) = self.refused.get() {
            return Err(self.refuse(r.what, r.size));
        }
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}
