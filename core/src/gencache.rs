//! The generator's cache: the units of every deployed container, as the
//! generator last rendered them, in one file
//! (`/etc/syscontainer/state/generator.cache`, 0600).
//!
//! Without it, the generator reads, parses and renders every container's
//! state at each boot and `daemon-reload`. With it, a container whose
//! intent file and state are both unchanged costs two `statat`s and the
//! writes of its units: its entry holds the identities ([`FileId`]) of the
//! intent file and of the state it was rendered from, and is used only
//! while both files still have them. Anything else (a container edited,
//! added, pending, broken, an entry from another build of syscontainer, a
//! damaged or missing cache) takes the full path, so the cache can make
//! the generator faster but never makes it write anything else: the units
//! are those that the same records give without it.
//!
//! syscontainer rewrites the cache after every change of a state
//! ([`refresh`], called by [`crate::record::State::write`] and
//! [`crate::record::State::remove`]) and in `syscontainer reconcile`. The
//! generator only reads it (at boot `/etc` may be read-only).
//!
//! Only containers whose units depend on nothing but their own state are
//! cached: none with `Alias=` (taken in name order, so it depends on the
//! other containers), none whose conversion gave a warning or an error. A
//! health check's timer depends on no container being named `NAME-health`:
//! the entry names that unit, and is used only while no such container
//! exists.
//!
//! Format (integers little-endian): the magic `SCGENC01`, a `u64` key (a
//! hash of this build's sources and compiled-in paths), then the entries
//! sorted by name, each a `u32` length followed by that many bytes: name,
//! intent file identity, state identity, health unit name, outputs. A
//! `u32` `u32::MAX` and the `u64` number of entries end the file. The
//! generator reads it in pieces through a small buffer (its memory does
//! not grow with the number of containers).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::generate::{self, Generated, Names, Output};
use crate::paths::{self, Root};
use crate::record::state::FileId;
use crate::record::{self, Candidate};

/// Logical path of the cache.
pub const CACHE_FILE: &str = "/etc/syscontainer/state/generator.cache";

const MAGIC: &[u8; 8] = b"SCGENC01";
const END: u32 = u32::MAX;
/// An entry larger than this is not written (and a length above it, or
/// beyond the end of the file, means a damaged file: the reader never
/// allocates for more than the file holds).
const ENTRY_MAX: usize = 1 << 20;
/// How much the generator reads at a time.
const CHUNK: usize = 64 << 10;

const KIND_UNIT: u8 = 0;
const KIND_SYMLINK: u8 = 1;
const KIND_WANT: u8 = 2;

/// The key of this build: units cached by another build (another version,
/// other sources, other compiled-in paths) are not used.
fn key() -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in [
        env!("SYSCONTAINER_SOURCE_HASH"),
        env!("CARGO_PKG_VERSION"),
        paths::EXEC_HELPER,
        paths::CLI,
        paths::DEFAULT_RUNTIME,
    ] {
        for &b in part.as_bytes().iter().chain(&[0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// One entry, borrowed from the reader's buffer.
pub struct Entry<'a> {
    pub name: &'a str,
    pub intent: FileId,
    pub state: FileId,
    /// The health check's unit name (`NAME-health`), or empty.
    pub health: &'a str,
    outputs: &'a [u8],
    /// The whole entry as stored, its length included.
    raw: &'a [u8],
}

impl Entry<'_> {
    /// The entry may stand for `c`: its files are those it was made from,
    /// and no container took the name of its health unit.
    fn fits(&self, c: &Candidate, names: &Names) -> bool {
        c.ids() == Some((self.intent, self.state))
            && (self.health.is_empty() || !names.is_record(self.health))
    }

    /// The outputs, decoded.
    fn generated(&self) -> Option<Generated> {
        let mut g = Generated::default();
        let mut p = Parser(self.outputs);
        let n = p.u16()?;
        for _ in 0..n {
            let kind = p.u8()?;
            let path = PathBuf::from(p.str16()?);
            let data = p.str32()?.to_string();
            g.outputs.push(match kind {
                KIND_UNIT => Output::Unit { path, text: data },
                KIND_SYMLINK => Output::Symlink {
                    path,
                    target: PathBuf::from(data),
                },
                KIND_WANT => Output::Want {
                    target: path.into_os_string().into_string().ok()?,
                    unit: data,
                },
                _ => return None,
            });
        }
        p.0.is_empty().then_some(g)
    }
}

/// Bounds-checked reads from a byte slice.
struct Parser<'a>(&'a [u8]);

impl<'a> Parser<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str16(&mut self) -> Option<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn str32(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn id(&mut self) -> Option<FileId> {
        Some(FileId {
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            ctime: self.u64()? as i64,
            ctime_nsec: self.u64()? as i64,
        })
    }
}

fn parse_entry(raw: &[u8]) -> Option<Entry<'_>> {
    let mut p = Parser(&raw[4..]);
    let name = p.str16()?;
    let intent = p.id()?;
    let state = p.id()?;
    let health = p.str16()?;
    (!name.is_empty()).then_some(Entry {
        name,
        intent,
        state,
        health,
        outputs: p.0,
        raw,
    })
}

/// Reads the cache from start to end, one entry at a time, in name order.
pub struct Reader {
    file: File,
    /// The file's length, and the offset in it of `buf[0]`.
    len: u64,
    base: u64,
    buf: Vec<u8>,
    /// The unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// The current entry, `buf[pos..pos + cur]`, when one is loaded.
    cur: Option<usize>,
    /// The end was reached, or the file is damaged: no more entries.
    done: bool,
}

impl Reader {
    /// The cache under `root`, when there is one that this build wrote.
    pub fn open(root: &Root) -> Option<Reader> {
        let file = File::open(root.join(CACHE_FILE)).ok()?;
        let len = file.metadata().ok()?.len();
        let mut r = Reader {
            file,
            len,
            base: 0,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            cur: None,
            done: false,
        };
        r.fill(16)?;
        let head = &r.buf[..16];
        if &head[..8] != MAGIC || head[8..16] != key().to_le_bytes() {
            return None;
        }
        r.pos = 16;
        Some(r)
    }

    /// Make at least `n` unread bytes available; `None` at the end of the
    /// file first.
    fn fill(&mut self, n: usize) -> Option<()> {
        if self.end - self.pos >= n {
            return Some(());
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.base += self.pos as u64;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n.max(CHUNK), 0);
        }
        while self.end < n {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => return None,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(())
    }

    /// Load the next entry into `cur`; false at the end or on damage.
    fn advance(&mut self) -> bool {
        if self.done {
            return false;
        }
        if let Some(len) = self.cur.take() {
            self.pos += len;
        }
        let len = self
            .fill(4)
            .map(|()| u32::from_le_bytes(self.buf[self.pos..self.pos + 4].try_into().unwrap()));
        let left = self.len.saturating_sub(self.base + self.pos as u64);
        let whole = len
            .filter(|&n| n != END && n as usize <= ENTRY_MAX)
            .map(|n| 4 + n as usize)
            .filter(|&w| w as u64 <= left);
        match whole {
            Some(w) if self.fill(w).is_some() => {
                self.cur = Some(w);
                true
            }
            _ => {
                self.done = true;
                false
            }
        }
    }

    /// The entry of `name`, if the cache has one. Names must be asked for
    /// in increasing order (entries before `name` are passed over).
    pub fn find(&mut self, name: &str) -> Option<Entry<'_>> {
        loop {
            if self.cur.is_none() && !self.advance() {
                return None;
            }
            let len = self.cur?;
            let order = match parse_entry(&self.buf[self.pos..self.pos + len]) {
                Some(e) => e.name.cmp(name),
                None => {
                    self.done = true;
                    self.cur = None;
                    return None;
                }
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.pos += len;
                    self.cur = None;
                }
                std::cmp::Ordering::Greater => return None,
                std::cmp::Ordering::Equal => {
                    return parse_entry(&self.buf[self.pos..self.pos + len]);
                }
            }
        }
    }

    /// The cached outputs of `c`, when its entry may stand for it.
    pub fn lookup(&mut self, c: &Candidate, names: &Names) -> Option<Generated> {
        let e = self.find(&c.name)?;
        if !e.fits(c, names) {
            return None;
        }
        e.generated()
    }
}

/// Append `s` with a `u16` length.
fn put16(out: &mut Vec<u8>, s: &[u8]) -> Option<()> {
    out.extend(u16::try_from(s.len()).ok()?.to_le_bytes());
    out.extend(s);
    Some(())
}

fn put_id(out: &mut Vec<u8>, id: FileId) {
    for v in [
        id.dev,
        id.ino,
        id.size,
        id.ctime as u64,
        id.ctime_nsec as u64,
    ] {
        out.extend(v.to_le_bytes());
    }
}

/// One entry, or `None` when it cannot be stored.
fn encode(
    name: &str,
    intent: FileId,
    state: FileId,
    health: &str,
    g: &Generated,
) -> Option<Vec<u8>> {
    let mut e = vec![0; 4];
    put16(&mut e, name.as_bytes())?;
    put_id(&mut e, intent);
    put_id(&mut e, state);
    put16(&mut e, health.as_bytes())?;
    e.extend(u16::try_from(g.outputs.len()).ok()?.to_le_bytes());
    for o in &g.outputs {
        let (kind, path, data) = match o {
            Output::Unit { path, text } => (KIND_UNIT, path.to_str()?, text.as_bytes()),
            Output::Symlink { path, target } => {
                (KIND_SYMLINK, path.to_str()?, target.to_str()?.as_bytes())
            }
            Output::Want { target, unit } => (KIND_WANT, target.as_str(), unit.as_bytes()),
        };
        e.push(kind);
        put16(&mut e, path.as_bytes())?;
        e.extend(u32::try_from(data.len()).ok()?.to_le_bytes());
        e.extend(data);
    }
    let len = e.len() - 4;
    if len > ENTRY_MAX {
        return None;
    }
    e[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Some(e)
}

/// The entry of one container, rendered now, if it can be cached.
fn render(c: &Candidate, names: &mut Names, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let (found, intent, state) = c.load_applied(buf)?;
    let record::FoundState::Ok { record, .. } = &found.state else {
        return None;
    };
    let health = match record.health_check() {
        Some(_) => crate::health_unit::unit_stem(&c.name),
        None => String::new(),
    };
    let mut g = Generated::default();
    generate::convert_one(&found, names, &mut g);
    if g.failed > 0 || !g.messages.is_empty() || g.uses_names {
        return None;
    }
    encode(&c.name, intent, state, &health, &g)
}

/// Rewrite the cache under `root` for the containers there now: entries
/// that still fit are kept, the others rendered again. Atomic and durable
/// (a temp file, renamed); a failure leaves the previous cache, which the
/// generator checks entry by entry anyway.
pub fn refresh(root: &Root) -> io::Result<()> {
    let (cands, _) = record::scan(root);
    let mut names = Names::new(cands.iter().map(|c| c.name.as_str()));
    let mut old = Reader::open(root);
    let mut out = Vec::with_capacity(4096);
    out.extend(MAGIC);
    out.extend(key().to_le_bytes());
    let mut buf = Vec::new();
    let mut n = 0u64;
    for c in &cands {
        let kept = old
            .as_mut()
            .and_then(|r| r.find(&c.name))
            .filter(|e| e.fits(c, &names))
            .map(|e| e.raw.to_vec());
        if let Some(e) = kept.or_else(|| render(c, &mut names, &mut buf)) {
            out.extend(e);
            n += 1;
        }
    }
    out.extend(END.to_le_bytes());
    out.extend(n.to_le_bytes());
    let path = root.join(CACHE_FILE);
    if n == 0 {
        // Nothing to cache (the last container went): no file left behind.
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if !path.parent().is_some_and(Path::is_dir) {
        return Ok(()); // no state directory: nothing deployed
    }
    crate::fsutil::write_atomic(&path, &out, 0o600)
}

/// [`refresh`], logging a failure (the cache only saves time).
pub fn refresh_or_log(root: &Root) {
    if let Err(e) = refresh(root) {
        log::debug!("cannot refresh the generator's cache {CACHE_FILE}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Intent, Owner, Record, State};
    use std::fs;

    /// Deploy `name` as install does (its intent file and its state; the
    /// state's write refreshes the cache).
    fn deploy(root: &Root, name: &str, enabled: bool, tpl: Option<&str>, health: bool) {
        let mut rec = Record::new(
            name,
            "registry.example/img:1",
            "sha256:ab",
            &format!("/var/lib/containers/atomic/{name}.0"),
        );
        rec.enabled = enabled;
        rec.service_template = tpl.map(str::to_string);
        if health {
            rec.health = Some(
                serde_json::from_value(serde_json::json!({"command": ["/bin/true"]})).unwrap(),
            );
        }
        let intent = Intent::of_record(&rec);
        let mut st = State::new(rec, intent.clone(), Owner::Syscontainer);
        st.write_own_intent(root, &intent).unwrap();
        st.write(root).unwrap();
    }

    /// The generator's whole output (as `--dry-run` prints it) and failures.
    fn run(root: &Root) -> (String, usize) {
        let mut s = String::new();
        let failed = generate::generate(root, |g| s.push_str(&generate::dry_run(&g.outputs)));
        (s, failed)
    }

    /// The output without the cache.
    fn uncached(root: &Root) -> (String, usize) {
        let p = root.join(CACHE_FILE);
        let aside = p.with_extension("aside");
        fs::rename(&p, &aside).unwrap();
        let r = run(root);
        fs::rename(&aside, &p).unwrap();
        r
    }

    fn names_in_cache(root: &Root) -> Vec<String> {
        let mut r = Reader::open(root).expect("a cache of this build");
        let mut names = Vec::new();
        while r.advance() {
            let len = r.cur.unwrap();
            names.push(
                parse_entry(&r.buf[r.pos..r.pos + len])
                    .unwrap()
                    .name
                    .to_string(),
            );
        }
        names
    }

    /// Change `from` into `to` (same length) in the cache file, as if it
    /// had rendered something else: what the generator prints then shows
    /// whether it used the cache.
    fn forge(root: &Root, from: &str, to: &str) {
        assert_eq!(from.len(), to.len());
        let p = root.join(CACHE_FILE);
        let text = fs::read(&p).unwrap();
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            if text[i..].starts_with(from.as_bytes()) {
                out.extend(to.as_bytes());
                i += from.len();
            } else {
                out.push(text[i]);
                i += 1;
            }
        }
        assert_ne!(out, text, "{from} is not in the cache");
        fs::write(&p, out).unwrap();
    }

    fn root() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        (d, root)
    }

    const ALIAS: &str = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=web-alias.service\n";
    const REQUIRED: &str = "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=docker.service\n";

    #[test]
    fn cached_units_are_the_units_and_what_is_cached() {
        let (_d, root) = root();
        deploy(&root, "a", true, None, false);
        deploy(&root, "b", false, None, false);
        deploy(&root, "c", true, Some(REQUIRED), true);
        deploy(&root, "d", true, Some(ALIAS), false);
        // declared, not deployed: never cached
        fs::create_dir_all(root.join("/run/syscontainer/containers")).unwrap();
        fs::write(
            root.join("/run/syscontainer/containers/p.json"),
            b"{\"version\": 1, \"image\": \"r/p:1\"}",
        )
        .unwrap();
        refresh(&root).unwrap();
        // the alias depends on the other records, the pending one has no state
        assert_eq!(names_in_cache(&root), ["a", "b", "c"]);
        let (cached, f1) = run(&root);
        let (plain, f2) = uncached(&root);
        assert_eq!(cached, plain);
        assert_eq!((f1, f2), (0, 0));
        for want in [
            "# ===== a.service =====",
            "# ===== c-health.timer =====",
            "# ===== docker.service.requires/c.service -> ../c.service =====",
            "# ===== web-alias.service -> d.service =====",
            "Wants=a.service\nWants=c.service\nWants=d.service\n",
            "# ===== p.service =====",
        ] {
            assert!(cached.contains(want), "{want} not in\n{cached}");
        }
    }

    #[test]
    fn the_cache_is_used_while_both_files_are_unchanged() {
        let (_d, root) = root();
        deploy(&root, "a", true, None, false);
        deploy(&root, "b", true, None, false);
        let (plain, _) = run(&root);
        forge(&root, "ExecStart=", "ExecStarT=");
        let (forged, _) = run(&root);
        assert_eq!(forged.matches("ExecStarT=").count(), 2, "{forged}");

        // a's intent file rewritten in place, same bytes (its change time
        // moves): a is read again; b still comes from the cache
        let intent = root.join("/etc/syscontainer/containers/a.json");
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&intent, fs::read(&intent).unwrap()).unwrap();
        let (out, _) = run(&root);
        let a = out.split("# ===== b.service").next().unwrap();
        assert!(
            !a.contains("ExecStarT=") && a.contains("ExecStart="),
            "{out}"
        );
        assert_eq!(out.matches("ExecStarT=").count(), 1, "{out}");

        // b's state rewritten in place by hand: b is read again
        let state = root.join("/etc/syscontainer/state/b.json");
        fs::write(&state, fs::read(&state).unwrap()).unwrap();
        assert_eq!(run(&root).0, plain);
    }

    #[test]
    fn a_damaged_or_foreign_cache_changes_nothing() {
        let (_d, root) = root();
        for n in ["a", "b", "c"] {
            deploy(&root, n, true, None, false);
        }
        let (plain, _) = uncached(&root);
        let p = root.join(CACHE_FILE);
        let good = fs::read(&p).unwrap();
        assert_eq!(run(&root).0, plain);
        // truncated in the middle of an entry, zeroed, garbage, other key
        let mut other_key = good.clone();
        other_key[8] ^= 1;
        let mut zeroed = good.clone();
        zeroed[20..200].fill(0);
        let mut big = good.clone();
        big[16..20].copy_from_slice(&u32::MAX.wrapping_sub(1).to_le_bytes());
        // a length within ENTRY_MAX but past the end of the file: refused
        // before anything is allocated for it
        let mut past_end = good.clone();
        past_end[16..20].copy_from_slice(&500_000u32.to_le_bytes());
        fs::write(&p, &past_end).unwrap();
        let mut r = Reader::open(&root).unwrap();
        assert!(!r.advance());
        assert!(r.buf.len() <= CHUNK, "{}", r.buf.len());
        for bad in [
            past_end,
            good[..good.len() / 2].to_vec(),
            zeroed,
            big,
            b"garbage".to_vec(),
            Vec::new(),
            other_key,
        ] {
            fs::write(&p, &bad).unwrap();
            assert_eq!(run(&root).0, plain);
        }
        // a refresh over a damaged cache writes a good one
        refresh(&root).unwrap();
        assert_eq!(names_in_cache(&root), ["a", "b", "c"]);
    }

    #[test]
    fn a_container_named_like_a_health_unit_is_seen() {
        let (_d, root) = root();
        deploy(&root, "web", true, None, true);
        assert!(run(&root).0.contains("web-health.timer"));
        // a container takes the name of web's health unit: web's cached
        // entry (with the timer) no longer stands
        fs::create_dir_all(root.join("/run/syscontainer/containers")).unwrap();
        fs::write(
            root.join("/run/syscontainer/containers/web-health.json"),
            b"{\"version\": 1, \"image\": \"r/p:1\"}",
        )
        .unwrap();
        let (out, _) = run(&root);
        assert_eq!(out, uncached(&root).0);
        assert!(!out.contains("web-health.timer"), "{out}");
    }

    #[test]
    fn removing_a_state_drops_its_entry() {
        let (_d, root) = root();
        deploy(&root, "a", true, None, false);
        deploy(&root, "b", true, None, false);
        assert_eq!(names_in_cache(&root), ["a", "b"]);
        State::remove(&root, "a").unwrap();
        assert_eq!(names_in_cache(&root), ["b"]);
        // the last one: no cache file is left behind
        State::remove(&root, "b").unwrap();
        assert!(!root.join(CACHE_FILE).exists());
    }
}
