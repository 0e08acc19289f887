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
//! nodes and FIFOs are dropped and counted. GNU sparse files, in all four
//! formats, are stored expanded at their real path, or refused by name
//! (see `sparse`).
//!
//! Hostile input fails with an error naming the entry, and nothing outside
//! the repo is touched (the importer never writes to the filesystem itself).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::OnceLock;

use gio::prelude::*;
use glib::prelude::ToVariant;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::sparse::{
    Content, GnuMapCheck, OpenError, PaxSparse, SparseFormat, SparseReader, SparseReason,
    SparseSizes,
};

mod budget;
pub use budget::{BlobProgress, ContentSizes, RECHECK_BYTES};

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
/// Default cap on the entries in one layer.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Default cap on the bytes of file content in one layer (sparse files count
/// at their full size): 64 GiB.
pub const MAX_CONTENT_BYTES: u64 = 64 << 30;
/// Default cap on the number of components in a path.
pub const MAX_DEPTH: usize = 256;
/// Default cap on one tar extension header (GNU long name/link, PAX).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Sparse files (entries with holes) may declare this many bytes per layer
/// whatever the layer's size: 256 MiB.
pub const SPARSE_FLOOR: u64 = 256 << 20;
/// Beyond [`SPARSE_FLOOR`], a layer's sparse files may declare at most this
/// many times the layer's compressed size: about what gzip reaches on a file
/// of zeros, so a hole expands no further than stored zeros could.
pub const MAX_SPARSE_RATIO: u64 = 1000;
/// Share of the repo's filesystem that an import leaves free, in percent.
pub const MIN_FREE_PERCENT: u64 = 5;

/// What one layer may hold. Hostile layers are refused before they cost
/// unbounded memory, disk or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Tar entries (files, directories, links, ...).
    pub max_entries: u64,
    /// Bytes of regular-file content, summed over the layer.
    pub max_content_bytes: u64,
    /// Components in a path (`a/b/c` is 3).
    pub max_depth: usize,
    /// Bytes in one GNU long-name/long-link or PAX extension header body,
    /// which the tar reader holds in memory.
    pub max_header_bytes: u64,
    /// Declared bytes of sparse files that any layer may hold.
    pub sparse_floor: u64,
    /// Beyond `sparse_floor`: declared bytes of sparse files per compressed
    /// byte of the layer.
    pub max_sparse_ratio: u64,
    /// Percent of the repo's filesystem that must stay free.
    pub min_free_percent: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_entries: MAX_ENTRIES,
            max_content_bytes: MAX_CONTENT_BYTES,
            max_depth: MAX_DEPTH,
            max_header_bytes: MAX_HEADER_BYTES,
            sparse_floor: SPARSE_FLOOR,
            max_sparse_ratio: MAX_SPARSE_RATIO,
            min_free_percent: MIN_FREE_PERCENT,
        }
    }
}

impl ImportLimits {
    /// The defaults, with `SYSCONTAINER_MAX_LAYER_ENTRIES`,
    /// `SYSCONTAINER_MAX_LAYER_BYTES` and `SYSCONTAINER_MAX_SPARSE_RATIO`
    /// (see `paths`) applied when set to a number.
    pub fn from_env() -> Self {
        let mut l = ImportLimits::default();
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(n) = num(crate::paths::ENV_MAX_LAYER_ENTRIES) {
            l.max_entries = n;
        }
        if let Some(n) = num(crate::paths::ENV_MAX_LAYER_BYTES) {
            l.max_content_bytes = n;
        }
        if let Some(n) = num(crate::paths::ENV_MAX_SPARSE_RATIO) {
            l.max_sparse_ratio = n;
        }
        l
    }
}

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
    #[error("layer entry '{path}': the {what} contains a NUL byte")]
    Nul { path: String, what: &'static str },
    #[error("layer entry '{path}': the {what} is not valid UTF-8, which OSTree cannot store")]
    NotUtf8 { path: String, what: &'static str },
    #[error("layer entry '{path}' is a hardlink to '{target}', which is not a file earlier in the same layer")]
    HardlinkTarget { path: String, target: String },
    #[error("layer entry '{path}': its parent '{parent}' is not a directory in this layer")]
    ParentNotDir { path: String, parent: String },
    #[error(
        "layer entry '{path}' collides with an earlier entry '{normalized}' in the same layer"
    )]
    Collision { path: String, normalized: String },
    #[error("the layer has more than {limit} entries (entry '{path}' is one too many)")]
    TooManyEntries { path: String, limit: u64 },
    #[error("layer entry '{path}' is {depth} directories deep, more than the limit of {limit}")]
    TooDeep {
        path: String,
        depth: usize,
        limit: usize,
    },
    #[error(
        "layer entry '{path}' brings the layer's file content over the limit of {limit} bytes"
    )]
    TooLarge { path: String, limit: u64 },
    #[error(
        "layer entry '{path}' is a sparse file of {declared} bytes with {stored} bytes of data: \
         with it the layer's sparse files declare {total} bytes, over the limit of {limit} \
         (the larger of {floor} bytes and {ratio} times the layer's {compressed} compressed bytes)"
    )]
    TooSparse {
        path: String,
        declared: u64,
        stored: u64,
        total: u64,
        limit: u64,
        floor: u64,
        ratio: u64,
        compressed: u64,
    },
    #[error(
        "layer entry '{path}' is {declared} bytes{}, but the repo's filesystem ({}) has {free} \
         bytes free and {reserve} of them must stay free ({percent}% of its size)",
        budget::still(.declared, .remaining), .dir.display()
    )]
    NoSpace {
        path: String,
        declared: u64,
        remaining: u64,
        free: u64,
        reserve: u64,
        percent: u64,
        dir: std::path::PathBuf,
    },
    #[error("looking up the free space of the repo's filesystem ({})", .dir.display())]
    FreeSpace {
        dir: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer entry '{path}': the import was stopped (the layer's blob failed verification)")]
    Stopped { path: String },
    #[error("a tar {what} header of {size} bytes after entry '{last}' is over the limit of {limit} bytes")]
    HeaderTooLarge {
        last: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("layer entry '{path}' is a sparse file ({format}) that cannot be imported: {reason}")]
    Sparse {
        path: String,
        format: SparseFormat,
        reason: Box<SparseReason>,
    },
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

impl ImportError {
    /// The documented exit code: 3 for a layer refused for its content, 1
    /// when the repo cannot be written or the stream cannot be read (unless
    /// what broke the stream is a digest mismatch).
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{self, FAILURE, INVALID};
        use ImportError::*;
        match self {
            Read { source, .. } => exit::of_io(source),
            // The host's disk, not the layer: the same layer fits elsewhere.
            Write { .. } | NoSpace { .. } | FreeSpace { .. } => FAILURE,
            // The reader stopped the import: its own error is reported.
            Stopped { .. } => FAILURE,
            Absolute { .. }
            | DotDot { .. }
            | PathTooLong { .. }
            | NameTooLong { .. }
            | Nul { .. }
            | NotUtf8 { .. }
            | HardlinkTarget { .. }
            | ParentNotDir { .. }
            | Collision { .. }
            | TooManyEntries { .. }
            | TooDeep { .. }
            | TooLarge { .. }
            | HeaderTooLarge { .. }
            | EntryType { .. }
            | Header { .. }
            | Truncated { .. }
            | NoEndMarker { .. }
            | TooSparse { .. }
            | Sparse { .. } => INVALID,
        }
    }
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

/// Why [`HeaderGuard`] stopped the stream.
#[derive(Debug, Clone, Copy)]
struct Refused {
    what: &'static str,
    size: u64,
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
struct HeaderGuard<R> {
    inner: R,
    limit: u64,
    pos: u64,
    block: Vec<u8>,
    pax: Vec<u8>,
    pending_pax_size: Option<u64>,
    state: GuardState,
    refused: Rc<Cell<Option<Refused>>>,
    entry_header: Rc<Cell<u64>>,
    /// The pending GNU long name and PAX `path`, for the next entry.
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    /// The map of the old GNU sparse entry being read, and its name.
    gnu_map: Option<(GnuMapCheck, Vec<u8>)>,
    /// An old GNU sparse entry refused: its name and why.
    sparse_refused: Rc<RefCell<Option<(String, SparseReason)>>>,
    /// The last old GNU sparse entry checked: its header position and sizes.
    gnu_sizes: Rc<Cell<Option<(u64, SparseSizes)>>>,
}

impl<R: Read> HeaderGuard<R> {
    fn new(inner: R, limit: u64) -> Self {
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
    // A GNU long name or a PAX path may carry a NUL inside; libostree's C
    // API would see a shorter name (and glib's bindings panic on it).
    if raw.contains(&0) {
        return Err(ImportError::Nul {
            path: show(raw).replace('\0', "\\0"),
            what: "path",
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
    /// Free space of the repo's filesystem.
    space: budget::Space<'r>,
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

    /// Put a non-directory at `comps`. Anything already there came from an
    /// earlier entry of this layer (`raw` is this entry's name as written):
    /// a collision, since tar readers disagree on which one wins.
    fn put_file(
        &mut self,
        comps: &[&str],
        path: &str,
        raw: &str,
        csum: &str,
    ) -> Result<(), ImportError> {
        let parent = self.parent(comps, path)?;
        let name = comps[comps.len() - 1];
        let (file, dir) = Self::wr(path, lookup(&parent, name))?;
        if file.is_some() || dir.is_some() {
            return Err(ImportError::Collision {
                path: raw.to_string(),
                normalized: path.to_string(),
            });
        }
        Self::wr(path, parent.replace_file(name, csum))
    }

    /// Put a directory at `comps`. Repeating a directory is allowed (the last
    /// metadata wins); replacing a non-directory of this layer is not.
    fn put_dir(
        &mut self,
        comps: &[&str],
        path: &str,
        raw: &str,
        meta: &Meta,
    ) -> Result<(), ImportError> {
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
            return Err(ImportError::Collision {
                path: raw.to_string(),
                normalized: path.to_string(),
            });
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
        let mut checked = 0u64;
        loop {
            let want = BUF_SIZE.min((size - got) as usize);
            if want == 0 {
                break;
            }
            if got - checked >= RECHECK_BYTES {
                self.space.recheck(path, size, got)?;
                checked = got;
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

/// The `GNU.sparse.*` records of entry `e` (named `raw` in the archive), if
/// any; they are refused unless they describe a regular file completely.
fn pax_sparse<R: Read>(
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
/// [`HeaderGuard`]), any other as it is.
fn content<'e, 'a, R: Read>(
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
/// a transaction, with the default [`ImportLimits`]. The stream is read to
/// EOF, so that a verifying reader underneath sees the end and checks its
/// digest.
pub fn import_layer<R: Read>(repo: &ostree::Repo, r: R) -> Result<Imported, ImportError> {
    import_layer_with(repo, r, &ImportLimits::default())
}

/// [`import_layer`] with explicit limits.
pub fn import_layer_with<R: Read>(
    repo: &ostree::Repo,
    r: R,
    limits: &ImportLimits,
) -> Result<Imported, ImportError> {
    import_layer_from(repo, r, limits, &LayerInfo::default())
}

/// What the importer knows about a layer besides its tar stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerInfo<'a> {
    /// The compressed layer's size (the manifest's `size`), which bounds
    /// what its sparse files may declare. `None`: the tar stream's own
    /// length up to each sparse entry stands in.
    pub compressed_size: Option<u64>,
    /// The caller's progress in reading the blob (in another thread): the
    /// compressed bytes that allow a sparse entry must have been read before
    /// it is written, and a failed blob stops the import at its next
    /// free-space lookup.
    pub blob: Option<&'a BlobProgress>,
}

/// [`import_layer_with`], knowing more about the layer.
pub fn import_layer_from<'r, R: Read>(
    repo: &'r ostree::Repo,
    r: R,
    limits: &ImportLimits,
    info: &LayerInfo<'r>,
) -> Result<Imported, ImportError> {
    let space = budget::Space::new(budget::repo_dir(repo), limits, info.blob)?;
    let mut sparse = budget::SparseCap::new(limits, info.compressed_size, info.blob);
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
        space,
        stats: ImportStats::default(),
    };
    let guard = HeaderGuard::new(r, limits.max_header_bytes);
    let refused = guard.refused.clone();
    let entry_header = guard.entry_header.clone();
    let sparse_refused = guard.sparse_refused.clone();
    let gnu_sizes = guard.gnu_sizes.clone();
    let mut counter = CountingReader { inner: guard, n: 0 };
    let mut last = String::from("(none)");
    let mut last_end = 0u64;
    {
        let mut ar = tar::Archive::new(&mut counter);
        let read_err = |last: &str, source| match (refused.get(), sparse_refused.take()) {
            (Some(r), _) => ImportError::HeaderTooLarge {
                last: last.to_string(),
                what: r.what,
                size: r.size,
                limit: limits.max_header_bytes,
            },
            (None, Some((path, reason))) => ImportError::Sparse {
                path,
                format: SparseFormat::OldGnu,
                reason: Box::new(reason),
            },
            (None, None) => ImportError::Read {
                last: last.to_string(),
                source,
            },
        };
        let entries = ar.entries().map_err(|e| read_err(&last, e))?;
        let mut count = 0u64;
        for e in entries {
            let mut e = e.map_err(|e| read_err(&last, e))?;
            let raw = e.path_bytes().into_owned();
            last = show(&raw);
            if e.raw_header_position() != entry_header.get() {
                return Err(ImportError::Read {
                    last,
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the tar stream's extension headers are inconsistent",
                    ),
                });
            }
            count += 1;
            if count > limits.max_entries {
                return Err(ImportError::TooManyEntries {
                    path: last,
                    limit: limits.max_entries,
                });
            }
            let kind = e.header().entry_type();
            let stored = e.header().entry_size().map_err(header_err(&last, "size"))?;
            last_end = e.raw_file_position() + stored.div_ceil(512) * 512;
            if kind.is_pax_global_extensions() {
                continue;
            }
            // A PAX sparse file is stored under a placeholder name; its real
            // name is in GNU.sparse.name (0.1, 1.0).
            let pax_sparse = pax_sparse(&mut e, &raw)?;
            let raw = match pax_sparse.as_ref().and_then(|s| s.name.clone()) {
                Some(name) => {
                    last = show(&name);
                    name
                }
                None => raw,
            };
            let comps = normalize(&raw)?;
            if comps.len() > limits.max_depth {
                return Err(ImportError::TooDeep {
                    path: last,
                    depth: comps.len(),
                    limit: limits.max_depth,
                });
            }
            // A v7 archive has no directory type: a file whose name ends in
            // '/' is a directory (as GNU tar and bsdtar read it).
            let kind = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous
                    if raw.ends_with(b"/") && pax_sparse.is_none() =>
                {
                    tar::EntryType::Directory
                }
                k => k,
            };
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
                    imp.put_dir(&comps, path, &last, &meta)?;
                    imp.stats.dirs += 1;
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let meta = entry_meta(&mut e, path)?;
                    let gnu = gnu_sizes.get().filter(|g| g.0 == e.raw_header_position());
                    let (mut e, sizes) =
                        content(&mut e, pax_sparse, gnu.map(|g| g.1), path, limits)?;
                    let sizes = ContentSizes::from(sizes);
                    let size = sizes.declared;
                    if imp.stats.content_bytes.saturating_add(size) > limits.max_content_bytes {
                        return Err(ImportError::TooLarge {
                            path: last,
                            limit: limits.max_content_bytes,
                        });
                    }
                    sparse.add(&last, sizes, last_end)?;
                    imp.space.claim(&last, size)?;
                    let csum = imp.write_regfile(&mut e, path, size, &meta)?;
                    imp.put_file(&comps, path, &last, &csum)?;
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
                    if target.contains(&0) {
                        return Err(ImportError::Nul {
                            path: path.into(),
                            what: "symlink target",
                        });
                    }
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
                    imp.put_file(&comps, path, &last, &c)?;
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
                    imp.put_file(&comps, path, &last, &c)?;
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
    // What follows the end marker is not parsed.
    counter.inner.state = GuardState::Off;
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
        // Found by fuzzing: a GNU long name with a NUL inside panicked in
        // glib (fuzz/regressions/import/crash-interior-nul-gnu-longname).
        let e = normalize(b"a\0b/c").unwrap_err();
        assert!(matches!(e, ImportError::Nul { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "layer entry 'a\\0b/c': the path contains a NUL byte"
        );
        // "..." and "..x" are ordinary names.
        assert_eq!(normalize(b"...").unwrap(), vec!["..."]);
    }
}
