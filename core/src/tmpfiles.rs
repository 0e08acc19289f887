//! `systemd-tmpfiles --create` of a container's rendered tmpfiles, done in
//! process for the lines a start needs, so that `syscontainer-exec run` does
//! not spawn a process on every start (about 5 ms of the ~6 ms a start
//! spent outside runc).
//!
//! This is not a second implementation of tmpfiles.d(5). It carries out,
//! step by step, what systemd-tmpfiles 252 does for a small, strict subset,
//! and hands everything else to the real tool:
//!
//! - line types `d`, `D`, `z`, `Z` (and `r`, `R`, which `--create` leaves
//!   alone), without modifiers (`!`, `-`, `=`, `~`, `^`, `+`);
//! - an absolute, simplified path without specifiers (`%`), quotes,
//!   escapes or glob characters;
//! - a mode of octal digits or `-`; a numeric user and group or `-`; an age
//!   and an argument of `-` (or absent);
//! - no SELinux or SMACK on the host (tmpfiles would relabel).
//!
//! A text with any other line is applied by `systemd-tmpfiles` as before,
//! and so is one whose in-process application fails at any step: the real
//! tool then gives the authoritative result and error message (every step
//! here is idempotent, so what was done first changes nothing).
//!
//! What systemd-tmpfiles does, and so what this does, for `--create`:
//! - A path below `/var/run/` is read as the same path below `/run/`.
//! - Items live in two ordered maps keyed by path: creating items (`d`,
//!   `D`) and "glob" items (`z`, `Z`, `r`, `R`). A second creating line for
//!   a path with other parameters is ignored ("Duplicate line"). Within a
//!   path, items are ordered: those that take ownership first, then by
//!   type character.
//! - Creating items are processed first, then glob items, each in file
//!   order; before an item, the item of its nearest ancestor path (in
//!   either map) is processed.
//! - `d`/`D`: the parents are made 0755; the way down to the parent must
//!   not pass from a directory owned by a user other than root to an entry
//!   owned by someone else (chase_symlinks()'s CHASE_SAFE; a symlink on the
//!   way is left to systemd-tmpfiles); the directory is made with its mode
//!   (0755 for `-`) under umask 0. An existing non-directory (a symlink
//!   included) or a file on the way is left alone with a message, and is
//!   not a failure. Then the permissions are fixed (below).
//! - `z`/`Z`: if the path exists, fix the permissions of it (`Z`: and of
//!   everything under it, never following symlinks).
//! - Fixing permissions: nothing unless a mode, user or group is set; a
//!   non-directory with several links is refused when
//!   `fs.protected_hardlinks` is 0; on a chown, the mode is first reduced
//!   to the bits common to the old and new one; then chown what differs;
//!   then chmod to the set mode (or back to the old one after a chown,
//!   which may clear set-id bits) unless it already matches. Symlinks are
//!   chowned, never chmodded.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Why a text is left to `systemd-tmpfiles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// 1-based line number.
    pub line: usize,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir(char),
    Perms { recursive: bool, ty: char },
    Remove(char),
}

impl Kind {
    fn ty(self) -> char {
        match self {
            Kind::Dir(c) | Kind::Remove(c) | Kind::Perms { ty: c, .. } => c,
        }
    }
    fn takes_ownership(self) -> bool {
        matches!(self, Kind::Dir(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    kind: Kind,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// The items of one path in one map.
#[derive(Debug)]
struct Array {
    path: String,
    items: Vec<Item>,
}

/// A parsed text that can be applied in process.
#[derive(Debug)]
pub struct Plan {
    /// Creating arrays first, then glob arrays, each in file order.
    arrays: Vec<Array>,
    /// For each array, the index of its parent array.
    parent: Vec<Option<usize>>,
}

fn parse_id(s: &str) -> Option<Option<u32>> {
    if s == "-" {
        return Some(None);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // systemd's parse_uid(): 65535 and 2^32-1 are not valid ids.
    match s.parse::<u32>() {
        Ok(v) if v != 65535 && v != u32::MAX => Some(Some(v)),
        _ => None,
    }
}

fn parse_mode(s: &str) -> Option<Option<u32>> {
    if s == "-" {
        return Some(None);
    }
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .map(Some)
}

fn simple_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && !p.contains("//")
        && !p.contains(['%', '*', '?', '[', ']', '{', '}'])
        && p.split('/').skip(1).all(|c| c != "." && c != "..")
}

impl Plan {
    /// Parse `text`; `Err` names the first line that must be left to
    /// systemd-tmpfiles.
    pub fn parse(text: &str) -> Result<Plan, Unsupported> {
        let mut items: Vec<Array> = Vec::new();
        let mut globs: Vec<Array> = Vec::new();
        let mut index: HashMap<(bool, String), usize> = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let un = |reason| Unsupported {
                line: n + 1,
                reason,
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.contains(['"', '\'', '\\']) {
                return Err(un("quotes or escapes"));
            }
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            if f.len() < 2 {
                return Err(un("no path"));
            }
            if f.len() > 7 || f.get(6).is_some_and(|a| *a != "-") {
                return Err(un("an argument"));
            }
            let get = |i: usize| f.get(i).copied().unwrap_or("-");
            let kind = match f[0] {
                "d" | "D" => Kind::Dir(f[0].chars().next().unwrap_or('d')),
                "z" => Kind::Perms {
                    recursive: false,
                    ty: 'z',
                },
                "Z" => Kind::Perms {
                    recursive: true,
                    ty: 'Z',
                },
                "r" | "R" => Kind::Remove(f[0].chars().next().unwrap_or('r')),
                _ => return Err(un("a line type other than d, D, z, Z, r, R")),
            };
            if !simple_path(f[1]) {
                return Err(un("a path that is not absolute and simple"));
            }
            // patch_var_run(): below the legacy /var/run/ (not /var/run
            // itself) means below /run/.
            let patched = f[1].strip_prefix("/var/run/").map(|k| format!("/run/{k}"));
            let path = patched.as_deref().unwrap_or(f[1]);
            let mode = parse_mode(get(2)).ok_or_else(|| un("a mode that is not octal"))?;
            let uid = parse_id(get(3)).ok_or_else(|| un("a user that is not a number"))?;
            let gid = parse_id(get(4)).ok_or_else(|| un("a group that is not a number"))?;
            if get(5) != "-" {
                return Err(un("an age"));
            }
            let item = Item {
                kind,
                mode,
                uid,
                gid,
            };
            let glob = !kind.takes_ownership();
            let list = if glob { &mut globs } else { &mut items };
            match index.get(&(glob, path.to_string())) {
                Some(&i) => {
                    let a = &mut list[i];
                    // item_compatible(): two ownership-taking items must be
                    // the same, else the later line is ignored.
                    if kind.takes_ownership()
                        && a.items.iter().any(|o| {
                            o.kind.takes_ownership()
                                && (o.mode, o.uid, o.gid) != (item.mode, item.uid, item.gid)
                        })
                    {
                        log::info!("duplicate tmpfiles line for path \"{path}\", ignoring");
                        continue;
                    }
                    // qsort() is not stable: the order of two items of one
                    // type on one path is not defined.
                    if a.items
                        .iter()
                        .any(|o| o.kind.ty() == kind.ty() && *o != item)
                    {
                        return Err(un("two different lines of one type for one path"));
                    }
                    a.items.push(item);
                    a.items
                        .sort_by_key(|i| (!i.kind.takes_ownership(), i.kind.ty()));
                }
                None => {
                    index.insert((glob, path.to_string()), list.len());
                    list.push(Array {
                        path: path.to_string(),
                        items: vec![item],
                    });
                }
            }
        }
        let n_items = items.len();
        let mut arrays = items;
        arrays.extend(globs);
        let parent = arrays
            .iter()
            .map(|a| {
                let mut p = Path::new(&a.path).parent();
                while let Some(q) = p {
                    let q_s = q.to_string_lossy().into_owned();
                    if let Some(&i) = index.get(&(false, q_s.clone())) {
                        return Some(i);
                    }
                    if let Some(&i) = index.get(&(true, q_s)) {
                        return Some(n_items + i);
                    }
                    p = q.parent();
                }
                None
            })
            .collect();
        Ok(Plan { arrays, parent })
    }

    /// Apply the plan as `systemd-tmpfiles --create [--root=ROOT]` would:
    /// an item that fails does not stop the others. The process umask is 0
    /// around each mkdir, as in systemd-tmpfiles: call this where no other
    /// thread creates files meanwhile (syscontainer-exec is one thread).
    pub fn create(&self, root: &Path) -> Result<(), CreateError> {
        // Decided before anything is changed: the real tool follows
        // symlinks on the way down with checks of its own.
        for a in &self.arrays {
            if a.items.iter().any(|i| matches!(i.kind, Kind::Dir(_))) {
                let path = root.join(a.path.trim_start_matches('/'));
                if let Some(link) = symlink_on_the_way(&path) {
                    return Err(CreateError::LeftToTmpfiles(format!(
                        "{} is a symlink on the way to {}",
                        link.display(),
                        path.display()
                    )));
                }
            }
        }
        let mut done = vec![false; self.arrays.len()];
        let mut errors = Vec::new();
        for i in 0..self.arrays.len() {
            self.process(i, root, &mut done, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CreateError::Failed(errors))
        }
    }

    fn process(&self, i: usize, root: &Path, done: &mut [bool], errors: &mut Vec<String>) {
        if done[i] {
            return;
        }
        done[i] = true;
        if let Some(p) = self.parent[i] {
            self.process(p, root, done, errors);
        }
        let a = &self.arrays[i];
        let path = root.join(a.path.trim_start_matches('/'));
        for item in &a.items {
            let r = match item.kind {
                Kind::Dir(_) => create_dir(item, &path),
                Kind::Perms { recursive, .. } => match fs::symlink_metadata(&path) {
                    Ok(st) => fix_tree(item, &path, &st, recursive),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                },
                Kind::Remove(_) => Ok(()),
            };
            if let Err(e) = r {
                errors.push(format!("{} {}: {e}", item.kind.ty(), a.path));
            }
        }
    }
}

/// Why a plan was not (fully) applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// Nothing was changed: this is for systemd-tmpfiles to do.
    LeftToTmpfiles(String),
    /// Applied as far as systemd-tmpfiles would have, which fails too:
    /// each failed item, with the reason.
    Failed(Vec<String>),
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateError::LeftToTmpfiles(why) => write!(f, "left to systemd-tmpfiles: {why}"),
            CreateError::Failed(e) => write!(f, "{}", e.join("; ")),
        }
    }
}

impl std::error::Error for CreateError {}

/// The first existing component from `/` down to `path`'s parent that is a
/// symlink.
fn symlink_on_the_way(path: &Path) -> Option<std::path::PathBuf> {
    let mut cur = std::path::PathBuf::from("/");
    let parent = path.parent()?;
    for c in parent.components().skip(1) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(st) if st.file_type().is_symlink() => return Some(cur),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Run `f` under umask 0, as tmpfiles does around mkdir.
fn with_umask0<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::empty());
    let r = f();
    umask(old);
    r
}

fn create_dir(item: &Item, path: &Path) -> io::Result<()> {
    // mkdir_parents_label(path, 0755): errors ignored, what follows tells.
    if let Some(parent) = path.parent() {
        let _ = with_umask0(|| {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
        });
        safe_way_down(parent)?;
    }
    let made = with_umask0(|| {
        fs::DirBuilder::new()
            .mode(item.mode.unwrap_or(0o755))
            .create(path)
    });
    let not_a_dir = || {
        log::warn!(
            "\"{}\" already exists and is not a directory.",
            path.display()
        );
        Ok(())
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        // Below a file: what systemd-tmpfiles 252 says, and it goes on.
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => return not_a_dir(),
        Err(e) => return Err(e),
    }
    // A file, or a symlink (even to a directory): left alone, with a
    // message, and not a failure (systemd-tmpfiles 252 exits 0).
    let st = fs::symlink_metadata(path)?;
    if !st.is_dir() {
        return not_a_dir();
    }
    set_perms(item, path, &st)
}

/// path_open_parent_safe(): no unsafe ownership transition from `/` down to
/// `dir`. (A symlink on the way was left to systemd-tmpfiles up front; one
/// that appeared since is an error.)
fn safe_way_down(dir: &Path) -> io::Result<()> {
    let mut cur = std::path::PathBuf::from("/");
    let mut prev = fs::symlink_metadata(&cur)?;
    for c in dir.components().skip(1) {
        cur.push(c);
        let st = fs::symlink_metadata(&cur)?;
        if st.file_type().is_symlink() {
            return Err(io::Error::other(format!(
                "{} is a symlink on the way to {}",
                cur.display(),
                dir.display()
            )));
        }
        if prev.uid() != 0 && prev.uid() != st.uid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("unsafe path transition to {}", cur.display()),
            ));
        }
        prev = st;
    }
    Ok(())
}

/// item_do(): fix `path`, then everything under it when `recursive`,
/// without following symlinks; an error does not stop the walk, the first
/// one is returned.
fn fix_tree(item: &Item, path: &Path, st: &fs::Metadata, recursive: bool) -> io::Result<()> {
    let mut first = set_perms(item, path, st).err();
    if recursive && st.is_dir() {
        let mut walk = || -> io::Result<()> {
            for e in fs::read_dir(path)? {
                let p = e?.path();
                let r = fs::symlink_metadata(&p).and_then(|st| fix_tree(item, &p, &st, true));
                if let Err(e) = r {
                    first.get_or_insert(e);
                }
            }
            Ok(())
        };
        if let Err(e) = walk() {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn protected_hardlinks() -> bool {
    fs::read_to_string("/proc/sys/fs/protected_hardlinks").map_or(true, |s| s.trim() != "0")
}

fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// fd_set_perms() of systemd-tmpfiles 252 on `path` itself (never through
/// a symlink), whose lstat is `st`.
fn set_perms(item: &Item, path: &Path, st: &fs::Metadata) -> io::Result<()> {
    if item.mode.is_none() && item.uid.is_none() && item.gid.is_none() {
        return Ok(());
    }
    if !st.is_dir() && st.nlink() > 1 && !protected_hardlinks() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is hardlinked and fs.protected_hardlinks is 0",
                path.display()
            ),
        ));
    }
    let old = st.mode() & 0o7777;
    let is_link = st.file_type().is_symlink();
    let do_chown =
        item.uid.is_some_and(|u| u != st.uid()) || item.gid.is_some_and(|g| g != st.gid());
    let new_mode = item.mode.unwrap_or(old);
    if item.mode.is_some() && do_chown && !is_link {
        let m = new_mode & old;
        if m != old {
            chmod(path, m)?;
        }
    }
    if do_chown {
        std::os::unix::fs::lchown(path, item.uid, item.gid)?;
    }
    if (item.mode.is_some() || do_chown) && !is_link && (do_chown || new_mode != old) {
        chmod(path, new_mode)?;
    }
    Ok(())
}

/// Whether the host labels files (SELinux or SMACK), which tmpfiles would
/// do and this module does not.
pub fn host_labels() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists() || Path::new("/sys/fs/smackfs/load2").exists()
}

/// What [`create_in_process`] did.
#[derive(Debug)]
pub enum InProcess {
    /// Applied: nothing is left to do.
    Done,
    /// Nothing was changed; run systemd-tmpfiles (why, for the debug log).
    Spawn(String),
    /// Applied as far as systemd-tmpfiles would have, and failed as it would.
    Failed(Vec<String>),
}

/// Apply `text` in process under `root` when that gives exactly what
/// `systemd-tmpfiles --create` gives.
pub fn create_in_process(root: &Path, text: &str) -> InProcess {
    if host_labels() {
        return InProcess::Spawn("the host labels files (SELinux or SMACK)".into());
    }
    let plan = match Plan::parse(text) {
        Ok(p) => p,
        Err(u) => return InProcess::Spawn(format!("line {} has {}", u.line, u.reason)),
    };
    match plan.create(root) {
        Ok(()) => InProcess::Done,
        Err(CreateError::LeftToTmpfiles(why)) => InProcess::Spawn(why),
        Err(CreateError::Failed(e)) => InProcess::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_lines_are_supported() {
        let t = "d /run/x 0700 - - - -\nD /run/y - - - - -\nZ /var/lib/etcd/n.etcd 0700 1000 1000 - -\n\
                 r /etc/systemd/system/docker.service.d/n.conf - - - - -\nd /var/log/a - - - -\n# c\n\n";
        let p = Plan::parse(t).unwrap();
        assert_eq!(p.arrays.len(), 5);
        assert_eq!(
            p.arrays[3].items[0].kind,
            Kind::Perms {
                recursive: true,
                ty: 'Z'
            }
        );
    }

    #[test]
    fn everything_else_is_left_to_systemd_tmpfiles() {
        for (t, reason) in [
            ("f /run/x 0644 - - - hi", "an argument"),
            (
                "L /run/x - - - - -",
                "a line type other than d, D, z, Z, r, R",
            ),
            ("d! /run/x", "a line type other than d, D, z, Z, r, R"),
            ("d /run/%n", "a path that is not absolute and simple"),
            ("d run/x", "a path that is not absolute and simple"),
            ("d /run/../x", "a path that is not absolute and simple"),
            ("Z /run/* 0700", "a path that is not absolute and simple"),
            ("d /run/x ~0700", "a mode that is not octal"),
            ("d /run/x 0700 root", "a user that is not a number"),
            ("d /run/x 0700 65535", "a user that is not a number"),
            ("d /run/x 0700 0 wheel", "a group that is not a number"),
            ("d /run/x 0700 0 0 10d", "an age"),
            ("d \"/run/a b\"", "quotes or escapes"),
            ("d", "no path"),
            (
                "z /a 0700\nz /a 0711",
                "two different lines of one type for one path",
            ),
        ] {
            let e = Plan::parse(t).unwrap_err();
            assert_eq!(e.reason, reason, "{t}");
        }
    }

    #[test]
    fn a_differing_second_directory_line_is_ignored() {
        let p = Plan::parse("d /a 0700\nd /a 0755\nd /a 0700\nZ /a 0711").unwrap();
        assert_eq!(p.arrays[0].items.len(), 2);
        assert!(p.arrays[0].items.iter().all(|i| i.mode == Some(0o700)));
        assert_eq!(p.arrays[1].items[0].mode, Some(0o711));
    }

    #[test]
    fn parents_come_from_either_map() {
        let p = Plan::parse("d /a/b/c\nZ /a 0700\nd /a/b").unwrap();
        // arrays: d /a/b/c, d /a/b, Z /a
        assert_eq!(p.parent, vec![Some(1), Some(2), None]);
    }
}
