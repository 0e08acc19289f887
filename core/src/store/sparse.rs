//! GNU sparse files in a layer, in all four of GNU tar's formats (GNU tar
//! manual, appendix "Storing Sparse Files"):
//!
//! - **old GNU** (`--format=gnu|oldgnu`): entry type `S`, the map in the
//!   header (4 slots) and in 512-byte extension blocks (21 slots each). The
//!   `tar` crate expands these entries itself; [`GnuMapCheck`] checks the map
//!   first (in `import::HeaderGuard`, which sees the raw blocks), so that a
//!   map the crate or another reader would read differently is refused with
//!   a reason and the entry's name.
//! - **PAX 0.0**: `GNU.sparse.size`, `GNU.sparse.numblocks` and repeated
//!   `GNU.sparse.offset`/`GNU.sparse.numbytes` records; the real name is the
//!   entry's own.
//! - **PAX 0.1**: `GNU.sparse.map=off,len,off,len,...`, `GNU.sparse.name`.
//! - **PAX 1.0**: `GNU.sparse.major=1`, `GNU.sparse.minor=0`,
//!   `GNU.sparse.name`, `GNU.sparse.realsize`; the map is at the start of the
//!   entry's data (decimal numbers, one a line: the count, then offset and
//!   length pairs), padded with NULs to 512 bytes.
//!
//! The `tar` crate knows none of the PAX formats: it yields the entry under
//! its placeholder name (`GNUSparseFile.PID/NAME`) with the condensed data.
//! [`PaxSparse`] reads the records and [`SparseReader`] expands the data, so
//! the file is stored at its real path with its real content (holes as
//! zeros; OSTree stores whole files).
//!
//! The data of each region starts on a 512-byte boundary in GNU tar's
//! reader, and right after the previous region in Go's, Python's and the
//! `tar` crate's: they agree only when every region but the last has a
//! length that is a multiple of 512, which GNU tar's writer always gives
//! (its regions come from `SEEK_DATA`/`SEEK_HOLE` or 512-byte blocks). Any
//! other map is refused.

use std::io::{self, Read};

use thiserror::Error;

const BLOCK: u64 = 512;

/// Why a GNU sparse entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SparseReason {
    #[error("GNU sparse format version {major}.{minor} is not supported (only 0.0, 0.1 and 1.0)")]
    Version { major: String, minor: String },
    #[error("GNU.sparse.{key} is missing")]
    Missing { key: &'static str },
    #[error("GNU.sparse.{key} '{value}' is not a decimal number")]
    Number { key: &'static str, value: String },
    #[error("GNU.sparse.{key} appears twice")]
    Repeated { key: &'static str },
    #[error("the map is given twice (GNU.sparse.map and GNU.sparse.offset/numbytes)")]
    TwoMaps,
    #[error("GNU.sparse.offset and GNU.sparse.numbytes records do not alternate")]
    Unpaired,
    #[error("GNU.sparse.map has an odd number of values")]
    OddMap,
    #[error("GNU.sparse.numblocks is {declared}, but the map has {found} regions")]
    NumBlocks { declared: u64, found: u64 },
    #[error("the map at the start of the data is malformed ({what})")]
    MapSyntax { what: &'static str },
    #[error("the map is longer than {limit} bytes")]
    MapTooLarge { limit: u64 },
    #[error("map slot {index} has an invalid number")]
    Field { index: u64 },
    #[error("map slot {index} follows the end of the map (an empty slot)")]
    AfterEnd { index: u64 },
    #[error(
        "region {index} (offset {offset}) starts before the previous region ends ({prev_end})"
    )]
    Unordered {
        index: u64,
        offset: u64,
        prev_end: u64,
    },
    #[error("region {index} (offset {offset}, {len} bytes) ends beyond the file's size of {real_size} bytes")]
    Beyond {
        index: u64,
        offset: u64,
        len: u64,
        real_size: u64,
    },
    #[error("region {index} (offset {offset}) follows a region whose length is not a multiple of 512: GNU tar and other readers disagree on where its data is")]
    Unaligned { index: u64, offset: u64 },
    #[error("the map lists {map} bytes of data, but the entry holds {stored}")]
    DataSize { map: u64, stored: u64 },
    #[error("the map ends at {end}, but the header gives a size of {real_size} bytes")]
    RealSize { end: u64, real_size: u64 },
    #[error("its isextended flag is {value}, neither 0 nor 1")]
    Extended { value: u8 },
    #[error("its header has no GNU magic")]
    NotGnuHeader,
    #[error("the GNU.sparse records are on a{kind} entry, not a regular file")]
    NotRegular { kind: &'static str },
}

/// The format of a sparse entry, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseFormat {
    OldGnu,
    Pax00,
    Pax01,
    Pax10,
    /// GNU.sparse records of no known version.
    Pax,
}

impl std::fmt::Display for SparseFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SparseFormat::OldGnu => "old GNU",
            SparseFormat::Pax00 => "PAX 0.0",
            SparseFormat::Pax01 => "PAX 0.1",
            SparseFormat::Pax10 => "PAX 1.0",
            SparseFormat::Pax => "PAX",
        })
    }
}

/// One region of data: `len` bytes at `offset` of the real file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub offset: u64,
    pub len: u64,
}

/// Checks a map region by region, as it is read: ordered, within the real
/// size, and aligned (see the module documentation). A zero-length region
/// holds no data; GNU tar writes one at the real size to close a trailing
/// hole.
#[derive(Debug, Default)]
pub struct MapCheck {
    index: u64,
    /// Where the last region, zero-length ones included, ends.
    end: u64,
    data: u64,
}

impl MapCheck {
    /// Add the next region of a file of `real_size` bytes.
    pub fn push(&mut self, r: Region, real_size: u64) -> Result<(), SparseReason> {
        let index = self.index;
        self.index += 1;
        let beyond = SparseReason::Beyond {
            index,
            offset: r.offset,
            len: r.len,
            real_size,
        };
        match r.offset.checked_add(r.len) {
            Some(end) if end <= real_size => {}
            _ => return Err(beyond),
        }
        if r.offset < self.end {
            return Err(SparseReason::Unordered {
                index,
                offset: r.offset,
                prev_end: self.end,
            });
        }
        if r.len > 0 && !self.data.is_multiple_of(BLOCK) {
            return Err(SparseReason::Unaligned {
                index,
                offset: r.offset,
            });
        }
        self.end = r.offset + r.len;
        self.data += r.len;
        Ok(())
    }

    /// After the last region: the map must list exactly the `stored` bytes
    /// of data, and reach the real size (GNU tar's writer always closes the
    /// map there; the `tar` crate requires it for old GNU entries).
    pub fn finish(&self, real_size: u64, stored: u64) -> Result<SparseSizes, SparseReason> {
        if self.data != stored {
            return Err(SparseReason::DataSize {
                map: self.data,
                stored,
            });
        }
        if self.end != real_size {
            return Err(SparseReason::RealSize {
                end: self.end,
                real_size,
            });
        }
        Ok(SparseSizes {
            real_size,
            data_bytes: self.data,
        })
    }
}

/// The sizes of a checked sparse entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseSizes {
    /// The file's size once expanded, as the entry declares it.
    pub real_size: u64,
    /// The bytes of data the entry holds in the archive.
    pub data_bytes: u64,
}

/// The old GNU map of one `S` entry, fed one raw block at a time (the
/// header's 4 slots, then each extension block's 21). It reads as GNU tar
/// does (a slot whose length field starts with NUL ends the map) and refuses
/// what the `tar` crate would read otherwise: slots or extension blocks
/// after the end, a slot with a length but no offset.
#[derive(Debug)]
pub struct GnuMapCheck {
    check: MapCheck,
    real_size: u64,
    stored: u64,
    ended: bool,
    slot: u64,
}

impl GnuMapCheck {
    /// `real_size` from the header's `realsize` field, `stored` the entry's
    /// data size (header `size`, or PAX `size`).
    pub fn new(real_size: u64, stored: u64) -> Self {
        GnuMapCheck {
            check: MapCheck::default(),
            real_size,
            stored,
            ended: false,
            slot: 0,
        }
    }

    /// Feed the 24-byte slots of one block and the block's `isextended` flag.
    pub fn feed(&mut self, slots: &[u8], extended: bool) -> Result<(), SparseReason> {
        for s in slots.chunks_exact(24) {
            let index = self.slot;
            self.slot += 1;
            let (off, len) = (&s[..12], &s[12..]);
            if len[0] == 0 {
                self.ended = true;
                continue;
            }
            if self.ended {
                return Err(SparseReason::AfterEnd { index });
            }
            let h = tar::GnuSparseHeader {
                offset: off.try_into().expect("12 bytes"),
                numbytes: len.try_into().expect("12 bytes"),
            };
            let (false, Ok(offset), Ok(len)) = (off[0] == 0, h.offset(), h.length()) else {
                return Err(SparseReason::Field { index });
            };
            self.check.push(Region { offset, len }, self.real_size)?;
        }
        if extended && self.ended {
            return Err(SparseReason::AfterEnd { index: self.slot });
        }
        Ok(())
    }

    /// After the last block.
    pub fn finish(&self) -> Result<SparseSizes, SparseReason> {
        self.check.finish(self.real_size, self.stored)
    }
}

/// The `GNU.sparse.*` records of one PAX entry.
#[derive(Debug, Clone)]
pub struct PaxSparse {
    pub format: SparseFormat,
    /// `GNU.sparse.name`: the real path.
    pub name: Option<Vec<u8>>,
    /// `GNU.sparse.realsize` or `GNU.sparse.size`.
    pub real_size: u64,
    /// The map from the records (0.0, 0.1); read from the data for 1.0.
    pub map: Vec<Region>,
}

fn number(key: &'static str, v: &[u8]) -> Result<u64, SparseReason> {
    let bad = || SparseReason::Number {
        key,
        value: String::from_utf8_lossy(v).into_owned(),
    };
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

impl PaxSparse {
    /// Read the `GNU.sparse.*` records among `records` (key, value), in
    /// order. `None` when there are none. The format is chosen as GNU tar
    /// does: `major`/`minor` give it; else a `map` means 0.1 and
    /// `offset`/`numbytes` 0.0.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Option<Result<PaxSparse, (SparseFormat, SparseReason)>> {
        let mut any = false;
        let mut major = None;
        let mut minor = None;
        let mut name = None;
        let mut size = None;
        let mut realsize = None;
        let mut numblocks = None;
        let mut map01: Option<&[u8]> = None;
        let mut map00: Vec<Region> = Vec::new();
        let mut pending_offset: Option<u64> = None;
        let mut err: Option<SparseReason> = None;
        let mut note = |e: SparseReason| {
            if err.is_none() {
                err = Some(e);
            }
        };
        for (k, v) in records {
            let Some(k) = k.strip_prefix(b"GNU.sparse.") else {
                continue;
            };
            any = true;
            let once = |slot: &mut Option<&'a [u8]>, key, note: &mut dyn FnMut(SparseReason)| {
                if slot.is_some() {
                    note(SparseReason::Repeated { key });
                }
                *slot = Some(v);
            };
            match k {
                b"major" => once(&mut major, "major", &mut note),
                b"minor" => once(&mut minor, "minor", &mut note),
                b"name" => once(&mut name, "name", &mut note),
                b"size" => once(&mut size, "size", &mut note),
                b"realsize" => once(&mut realsize, "realsize", &mut note),
                b"numblocks" => once(&mut numblocks, "numblocks", &mut note),
                b"map" => once(&mut map01, "map", &mut note),
                b"offset" => {
                    if pending_offset.is_some() {
                        note(SparseReason::Unpaired);
                    }
                    match number("offset", v) {
                        Ok(n) => pending_offset = Some(n),
                        Err(e) => note(e),
                    }
                }
                b"numbytes" => match (pending_offset.take(), number("numbytes", v)) {
                    (Some(offset), Ok(len)) => map00.push(Region { offset, len }),
                    (None, _) => note(SparseReason::Unpaired),
                    (_, Err(e)) => note(e),
                },
                // Unknown GNU.sparse keys: GNU tar ignores them too.
                _ => {}
            }
        }
        if !any {
            return None;
        }
        let format = match (major, minor) {
            (Some(b"1"), Some(b"0")) => SparseFormat::Pax10,
            (None, None) if map01.is_some() => SparseFormat::Pax01,
            (None, None) if !map00.is_empty() || pending_offset.is_some() => SparseFormat::Pax00,
            (None, None) => SparseFormat::Pax,
            (major, minor) => {
                let s = |v: Option<&[u8]>| String::from_utf8_lossy(v.unwrap_or(b"")).into_owned();
                return Some(Err((
                    SparseFormat::Pax,
                    SparseReason::Version {
                        major: s(major),
                        minor: s(minor),
                    },
                )));
            }
        };
        Some(
            Self::build(
                format,
                err,
                name,
                size,
                realsize,
                numblocks,
                map01,
                map00,
                pending_offset,
            )
            .map_err(|e| (format, e)),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        format: SparseFormat,
        err: Option<SparseReason>,
        name: Option<&[u8]>,
        size: Option<&[u8]>,
        realsize: Option<&[u8]>,
        numblocks: Option<&[u8]>,
        map01: Option<&[u8]>,
        map00: Vec<Region>,
        pending_offset: Option<u64>,
    ) -> Result<PaxSparse, SparseReason> {
        if let Some(e) = err {
            return Err(e);
        }
        if pending_offset.is_some() {
            return Err(SparseReason::Unpaired);
        }
        let real_size = match (realsize, size) {
            (Some(v), _) => number("realsize", v)?,
            (None, Some(v)) => number("size", v)?,
            (None, None) if format == SparseFormat::Pax10 => {
                return Err(SparseReason::Missing { key: "realsize" })
            }
            (None, None) => return Err(SparseReason::Missing { key: "size" }),
        };
        let map = match format {
            SparseFormat::Pax10 => {
                if map01.is_some() || !map00.is_empty() {
                    return Err(SparseReason::TwoMaps);
                }
                if name.is_none() {
                    return Err(SparseReason::Missing { key: "name" });
                }
                Vec::new()
            }
            SparseFormat::Pax01 => {
                if !map00.is_empty() {
                    return Err(SparseReason::TwoMaps);
                }
                // The header holds a placeholder name (GNUSparseFile.PID/NAME).
                if name.is_none() {
                    return Err(SparseReason::Missing { key: "name" });
                }
                let text = map01.unwrap_or_default();
                let nums = if text.is_empty() {
                    Vec::new()
                } else {
                    text.split(|b| *b == b',')
                        .map(|v| number("map", v))
                        .collect::<Result<Vec<_>, _>>()?
                };
                if nums.len() % 2 != 0 {
                    return Err(SparseReason::OddMap);
                }
                nums.chunks_exact(2)
                    .map(|p| Region {
                        offset: p[0],
                        len: p[1],
                    })
                    .collect()
            }
            SparseFormat::Pax00 => map00,
            SparseFormat::Pax | SparseFormat::OldGnu => {
                return Err(SparseReason::Missing { key: "map" })
            }
        };
        if let Some(v) = numblocks {
            let declared = number("numblocks", v)?;
            if format != SparseFormat::Pax10 && declared != map.len() as u64 {
                return Err(SparseReason::NumBlocks {
                    declared,
                    found: map.len() as u64,
                });
            }
        }
        Ok(PaxSparse {
            format,
            name: name.map(<[u8]>::to_vec),
            real_size,
            map,
        })
    }
}

/// A regular entry's content: as stored, or expanded from a PAX sparse map.
pub enum Content<R> {
    Plain(R),
    Sparse(SparseReader<R>),
}

impl<R: Read> Read for Content<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Content::Plain(r) => r.read(buf),
            Content::Sparse(r) => r.read(buf),
        }
    }
}

/// A PAX sparse entry's data, expanded to the real file: zeros for the holes.
/// For 1.0 the map is read from the start of the data first.
pub struct SparseReader<R> {
    inner: R,
    map: Vec<Region>,
    /// Next region.
    next: usize,
    /// Position in the expanded file.
    pos: u64,
    sizes: SparseSizes,
}

/// Opening a [`SparseReader`] failed.
#[derive(Debug)]
pub enum OpenError {
    Reason(SparseReason),
    Read(io::Error),
}

impl From<SparseReason> for OpenError {
    fn from(r: SparseReason) -> Self {
        OpenError::Reason(r)
    }
}

impl<R: Read> SparseReader<R> {
    /// `stored` is the entry's data size; a 1.0 map longer than `max_map`
    /// bytes is refused before it is held in memory.
    pub fn new(
        mut inner: R,
        sparse: PaxSparse,
        stored: u64,
        max_map: u64,
    ) -> Result<Self, OpenError> {
        let (map, map_bytes) = if sparse.format == SparseFormat::Pax10 {
            read_map(&mut inner, stored, max_map)?
        } else {
            (sparse.map, 0)
        };
        let mut check = MapCheck::default();
        for r in &map {
            check.push(*r, sparse.real_size)?;
        }
        let sizes = check.finish(sparse.real_size, stored - map_bytes)?;
        let map = map.into_iter().filter(|r| r.len > 0).collect();
        Ok(SparseReader {
            inner,
            map,
            next: 0,
            pos: 0,
            sizes,
        })
    }

    /// The declared real size and the bytes of data in the archive.
    pub fn sizes(&self) -> SparseSizes {
        self.sizes
    }
}

/// Read a 1.0 map (count, then offset/length pairs, one decimal number a
/// line) and the NUL padding to the next 512-byte boundary. Returns the map
/// and the bytes it took.
fn read_map<R: Read>(
    r: &mut R,
    stored: u64,
    max_map: u64,
) -> Result<(Vec<Region>, u64), OpenError> {
    let mut used = 0u64;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut next_number = |r: &mut R, used: &mut u64| -> Result<u64, OpenError> {
        line.clear();
        loop {
            if *used >= stored {
                return Err(SparseReason::MapSyntax {
                    what: "it runs past the entry's data",
                }
                .into());
            }
            if *used >= max_map {
                return Err(SparseReason::MapTooLarge { limit: max_map }.into());
            }
            if r.read(&mut byte).map_err(OpenError::Read)? == 0 {
                return Err(OpenError::Read(io::ErrorKind::UnexpectedEof.into()));
            }
            *used += 1;
            match byte[0] {
                b'\n' => break,
                b'0'..=b'9' if line.len() < 20 => line.push(byte[0]),
                b'0'..=b'9' => {
                    return Err(SparseReason::MapSyntax {
                        what: "a number is too long",
                    }
                    .into())
                }
                _ => {
                    return Err(SparseReason::MapSyntax {
                        what: "a value is not a decimal number",
                    }
                    .into())
                }
            }
        }
        if line.is_empty() {
            return Err(SparseReason::MapSyntax {
                what: "an empty line",
            }
            .into());
        }
        std::str::from_utf8(&line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                SparseReason::MapSyntax {
                    what: "a number does not fit in 64 bits",
                }
                .into()
            })
    };
    let count = next_number(r, &mut used)?;
    let mut map = Vec::new();
    for _ in 0..count {
        let offset = next_number(r, &mut used)?;
        let len = next_number(r, &mut used)?;
        map.push(Region { offset, len });
    }
    let pad = used.next_multiple_of(BLOCK) - used;
    if used + pad > stored {
        return Err(SparseReason::MapSyntax {
            what: "its padding runs past the entry's data",
        }
        .into());
    }
    let mut padding = vec![0u8; pad as usize];
    r.read_exact(&mut padding).map_err(OpenError::Read)?;
    if padding.iter().any(|b| *b != 0) {
        return Err(SparseReason::MapSyntax {
            what: "it is not padded with NULs",
        }
        .into());
    }
    Ok((map, used + pad))
}

impl<R: Read> Read for SparseReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let real = self.sizes.real_size;
        if buf.is_empty() || self.pos >= real {
            return Ok(0);
        }
        let (hole_end, region_end) = match self.map.get(self.next) {
            Some(r) => (r.offset, r.offset + r.len),
            None => (real, real),
        };
        if self.pos < hole_end {
            let n = (hole_end - self.pos).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let want = (region_end - self.pos).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        // A short stream shows as a short file: the caller reports it.
        self.pos += n as u64;
        if self.pos == region_end {
            self.next += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records<'a>(
        r: &'a [(&'a str, &'a str)],
    ) -> Option<Result<PaxSparse, (SparseFormat, SparseReason)>> {
        PaxSparse::from_records(r.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn pax_records_choose_the_format_as_gnu_tar_does() {
        assert!(records(&[("path", "x"), ("mtime", "1")]).is_none());
        let s = records(&[
            ("GNU.sparse.size", "2048"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "512"),
            ("GNU.sparse.offset", "2048"),
            ("GNU.sparse.numbytes", "0"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.format, SparseFormat::Pax00);
        assert_eq!(s.real_size, 2048);
        assert_eq!(s.map.len(), 2);
        let e = |r| records(r).unwrap().unwrap_err();
        assert_eq!(
            e(&[("GNU.sparse.size", "1"), ("GNU.sparse.offset", "0")]),
            (SparseFormat::Pax00, SparseReason::Unpaired)
        );
        assert_eq!(
            e(&[("GNU.sparse.size", "1"), ("GNU.sparse.numbytes", "0")]),
            (SparseFormat::Pax, SparseReason::Unpaired)
        );
        assert_eq!(
            e(&[("GNU.sparse.size", " 1"), ("GNU.sparse.map", "0,1")]).1,
            SparseReason::Number {
                key: "size",
                value: " 1".into()
            }
        );
        assert_eq!(
            e(&[
                ("GNU.sparse.size", "1"),
                ("GNU.sparse.name", "f"),
                ("GNU.sparse.map", "0,1,2")
            ])
            .1,
            SparseReason::OddMap
        );
        assert_eq!(
            e(&[("GNU.sparse.size", "1"), ("GNU.sparse.map", "0,1")]).1,
            SparseReason::Missing { key: "name" }
        );
        assert_eq!(
            e(&[("GNU.sparse.name", "x")]),
            (SparseFormat::Pax, SparseReason::Missing { key: "size" })
        );
        assert_eq!(
            e(&[("GNU.sparse.major", "1")]).1,
            SparseReason::Version {
                major: "1".into(),
                minor: "".into()
            }
        );
    }

    fn pax10(map: &[u8], data: &[u8], real_size: u64, max: u64) -> Result<Vec<u8>, String> {
        let stored = [map, data].concat();
        let s = PaxSparse {
            format: SparseFormat::Pax10,
            name: Some(b"f".to_vec()),
            real_size,
            map: Vec::new(),
        };
        let mut r =
            SparseReader::new(&stored[..], s, stored.len() as u64, max).map_err(|e| match e {
                OpenError::Reason(r) => r.to_string(),
                OpenError::Read(e) => format!("read: {e}"),
            })?;
        assert_eq!(r.sizes().real_size, real_size);
        assert_eq!(r.sizes().data_bytes, data.len() as u64);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        Ok(out)
    }

    #[test]
    fn pax10_map_is_read_from_the_data_and_expanded() {
        let mut map = b"3\n512\n512\n2048\n3\n4096\n0\n".to_vec();
        map.resize(512, 0);
        let data = [[1u8; 512].as_slice(), b"abc"].concat();
        let out = pax10(&map, &data, 4096, 1 << 20).unwrap();
        let mut want = vec![0u8; 4096];
        want[512..1024].fill(1);
        want[2048..2051].copy_from_slice(b"abc");
        assert_eq!(out, want);
        // A map over the limit is refused before it is all read.
        let long = b"100000\n".repeat(100);
        assert_eq!(
            pax10(&long, b"", 1, 64).unwrap_err(),
            "the map is longer than 64 bytes"
        );
        assert_eq!(
            pax10(b"1\n0\nx\n", b"", 1, 64).unwrap_err(),
            "the map at the start of the data is malformed (a value is not a decimal number)"
        );
        let mut bad_pad = b"1\n0\n0\n".to_vec();
        bad_pad.resize(512, b' ');
        assert_eq!(
            pax10(&bad_pad, b"", 0, 1 << 20).unwrap_err(),
            "the map at the start of the data is malformed (it is not padded with NULs)"
        );
    }
}
