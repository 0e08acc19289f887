//! One layer's tar stream -> an OSTree tree, straight from the stream.
//!
//! Nothing is extracted to a temporary directory. Each regular file of up to
//! [`BUFFER_MAX`] bytes is read into memory behind its OSTree file header and
//! its object checksum is computed here (sha256 of header and content, with
//! the CPU's SHA instructions), then handed to libostree as a trusted content
//! stream: glib's portable sha256, which libostree otherwise runs over every
//! byte, was a quarter of a pull's CPU time. The header format is checked
//! against libostree once per process ([`writer::trusted_checksums`]); if it ever
//! disagrees, and for larger files, each file is streamed into a libostree
//! `ContentWriter` sized from its tar header instead. The tree is built in a
//! `MutableTree`. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are kept as ordinary
//! files, so that `checkout_at(process_whiteouts)` applies them later. Device
//! nodes and FIFOs are dropped and counted. GNU sparse files, in all four
//! formats, are stored expanded at their real path, or refused by name
//! (see `sparse`).
//!
//! The parts: `guard` (the tar header guard below the parser), `path` (entry
//! names), `entry` (one entry by type), `writer` (the OSTree objects and the
//! tree), `budget` (size, sparse and free-space limits).
//!
//! Hostile input fails with an error naming the entry, and nothing outside
//! the repo is touched (the importer never writes to the filesystem itself).

use std::io::{self, Read};

use gio::prelude::*;
use thiserror::Error;

use super::sparse::{SparseFormat, SparseReason};

mod budget;
mod entry;
mod guard;
mod path;
mod pool;
mod writer;
pub use budget::{BlobProgress, ContentSizes, RECHECK_BYTES};
pub use path::normalize;
use path::show;
pub use pool::{ObjectPool, WriterQueue, MAX_QUEUED};
pub(crate) use writer::DirMetas;

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
    /// (see `paths`) applied when set to a number. `var` gives a variable's
    /// value as the binary read it.
    pub fn from_vars<'a>(var: impl Fn(&str) -> Option<&'a str>) -> Self {
        let mut l = ImportLimits::default();
        let num = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
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
    /// Writers for the layer's content objects (see [`ObjectPool`]), which
    /// commit their own transactions; `None`: the objects are written on
    /// this thread, into `repo`'s transaction.
    pub pool: Option<&'a ObjectPool>,
}

/// [`import_layer_with`], knowing more about the layer.
pub fn import_layer_from<'r, R: Read>(
    repo: &'r ostree::Repo,
    r: R,
    limits: &ImportLimits,
    info: &LayerInfo<'r>,
) -> Result<Imported, ImportError> {
    let space = budget::Space::new(budget::repo_dir(repo), limits, info.blob, info.pool)?;
    let mut sparse = budget::SparseCap::new(limits, info.compressed_size, info.blob);
    let pool = info.pool.map(ObjectPool::handle).transpose()?;
    let mut imp = writer::Importer::new(repo, space, pool)?;
    let guard = guard::HeaderGuard::new(r, limits.max_header_bytes);
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
            let stored = e
                .header()
                .entry_size()
                .map_err(entry::header_err(&last, "size"))?;
            last_end = e.raw_file_position() + stored.div_ceil(512) * 512;
            if kind.is_pax_global_extensions() {
                continue;
            }
            // A PAX sparse file is stored under a placeholder name; its real
            // name is in GNU.sparse.name (0.1, 1.0).
            let pax_sparse = entry::pax_sparse(&mut e, &raw)?;
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
            let t = entry::Target {
                comps: &comps,
                path,
                name: &last,
                end: last_end,
            };
            match kind {
                tar::EntryType::Directory => imp.dir(&mut e, &t)?,
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    let gnu = gnu_sizes.get().filter(|g| g.0 == e.raw_header_position());
                    imp.regular(
                        &mut e,
                        &t,
                        pax_sparse,
                        gnu.map(|g| g.1),
                        limits,
                        &mut sparse,
                    )?
                }
                tar::EntryType::Symlink => imp.symlink(&mut e, &t)?,
                tar::EntryType::Link => imp.hardlink(&e, &t)?,
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
    counter.inner.stop();
    io::copy(&mut counter, &mut io::sink()).map_err(|source| ImportError::Read {
        last: last.clone(),
        source,
    })?;
    imp.stats.tar_bytes = counter.n;
    if let Some(p) = &mut imp.pool {
        p.wait()?;
    }
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
