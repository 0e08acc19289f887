//! Records to units: a pure conversion ([`convert`]) and a small writer
//! ([`write_outputs`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::install_section::{self, BadValue, Link};
use crate::paths::{self, Root};
use crate::record::{self, Decl, Found, FoundState, Intent, Record};
use crate::unit;

/// One file the generator produces, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Unit { path: PathBuf, text: String },
    Symlink { path: PathBuf, target: PathBuf },
}

/// A message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Warn(String),
    Error(String),
}

/// The result of a generator run.
#[derive(Debug, Default)]
pub struct Generated {
    pub outputs: Vec<Output>,
    pub messages: Vec<Message>,
    /// Number of records that could not be turned into a working unit.
    pub failed: usize,
}

/// The unit names of one generator run: every record's unit, and the aliases
/// given so far (records are converted in name order, so the first record
/// that asks for an alias gets it).
#[derive(Debug, Default)]
pub struct Names<'a> {
    /// The records' names (their units are `NAME.service`).
    records: HashSet<&'a str>,
    aliases: HashMap<String, String>,
}

impl<'a> Names<'a> {
    /// The names of all the records of the run, masked and broken included.
    pub fn new(records: impl IntoIterator<Item = &'a str>) -> Self {
        Names {
            records: records.into_iter().collect(),
            aliases: HashMap::new(),
        }
    }

    /// `name` is one of the run's records.
    pub fn is_record(&self, name: &str) -> bool {
        self.records.contains(name)
    }

    /// Why `alias` cannot be given, if it cannot.
    fn taken(&self, alias: &str) -> Option<BadValue> {
        if let Some(n) = alias.strip_suffix(".service") {
            if self.records.contains(n) {
                return Some(BadValue::TakenByRecord(n.to_string()));
            }
        }
        self.aliases
            .get(alias)
            .map(|owner| BadValue::TakenByAlias(owner.clone()))
    }
}

/// Turn discovered records into units and symlinks. Pure: touches no disk.
pub fn convert(found: &[Found]) -> Generated {
    let mut g = Generated::default();
    let mut names = Names::new(found.iter().map(|f| f.name.as_str()));
    for f in found {
        convert_one(f, &mut names, &mut g);
    }
    g.outputs.sort_by(|a, b| out_path(a).cmp(out_path(b)));
    g
}

/// Turn one record into its unit and symlinks, appending to `g`. An enabled
/// container is wanted by its record's target and by `syscontainers.target`,
/// and gets the links of its unit's `[Install]` section
/// ([`install_section`]); a disabled one gets no link at all.
pub fn convert_one(f: &Found, names: &mut Names, g: &mut Generated) {
    let unit_name = [f.name.as_str(), ".service"].concat();
    let broken = |g: &mut Generated, reason: String| {
        g.failed += 1;
        g.outputs.push(Output::Unit {
            path: PathBuf::from(&unit_name),
            text: unit::render_broken(&f.name, &f.path, &reason),
        });
        g.messages.push(Message::Error(reason));
    };
    match &f.state {
        FoundState::Masked => {}
        FoundState::BadName(e) => {
            g.failed += 1;
            g.messages
                .push(Message::Error(format!("{e}; no unit written")));
        }
        FoundState::Broken(e) => broken(g, e.to_string()),
        FoundState::Pending { intent, warnings } => {
            g.messages
                .extend(warnings.iter().cloned().map(Message::Warn));
            let rec = pending_record(&f.name, intent);
            let extra = unit::Extra {
                apply: true,
                network: true,
                pending: true,
                ..unit::Extra::default()
            };
            emit(f, &rec, &extra, &unit_name, names, g, broken);
        }
        FoundState::Ok {
            record,
            warnings,
            decl,
            trial,
        } => {
            g.messages
                .extend(warnings.iter().cloned().map(Message::Warn));
            if record.no_container_service {
                return; // the image only installs host files
            }
            // An applied edit on trial: its start is confirmed after it, and
            // a start that follows an unconfirmed one rolls it back first.
            let mut extra = unit::Extra {
                confirm: *trial,
                apply: *trial,
                ..unit::Extra::default()
            };
            let mut refused = None;
            let mut edited;
            let mut rec: &Record = record;
            match decl {
                Decl::Applied => {}
                Decl::Edited {
                    intent,
                    image_changed,
                } => {
                    // Values that cannot render the unit: refused now, the
                    // last good unit stays.
                    edited = (**record).clone();
                    edited.values = intent.values.clone();
                    match unit::render(&edited, &f.path) {
                        Err(e) => refused = Some(e.to_string()),
                        Ok(_) => {
                            edited.values = record.values.clone();
                            edited.enabled = intent.enabled;
                            edited.target = intent.target.clone();
                            rec = &edited;
                            extra.apply = true;
                            extra.network = *image_changed;
                        }
                    }
                }
                Decl::Refused { reason } => refused = Some(reason.clone()),
                Decl::Removing => {
                    // Not wanted by anything: it can still be stopped, and
                    // `syscontainer reconcile` removes it.
                    edited = (**record).clone();
                    edited.enabled = false;
                    rec = &edited;
                    g.messages.push(Message::Warn(format!(
                        "container '{}': its record is gone or masked; run syscontainer reconcile to remove it",
                        f.name
                    )));
                }
            }
            let note = refused.map(|why| {
                let msg = format!("edit of {} refused: {}", intent_path(f), short(&why));
                g.messages.push(Message::Warn(msg.clone()));
                msg
            });
            extra.note = note.as_deref();
            emit(f, rec, &extra, &unit_name, names, g, broken);
        }
    }
}

/// The record of a container that is declared but not deployed: the built-in
/// template, values and settings from the intent.
fn pending_record(name: &str, intent: &Intent) -> Record {
    let deployment = Path::new(paths::CHECKOUT_ROOT).join(format!("{name}.0"));
    let mut r = Record::new(name, &intent.image, "", &deployment.display().to_string());
    r.values = intent.values.clone();
    r.enabled = intent.enabled;
    r.target = intent.target.clone();
    r.runtime = intent.runtime.clone();
    r.health = intent.health.clone();
    r.auto_update = intent.auto_update;
    r
}

/// The intent file of `f`, for messages: its state's path when it is gone.
fn intent_path(f: &Found) -> String {
    f.path.display().to_string()
}

/// At most [`NOTE_MAX`] characters of `s`.
fn short(s: &str) -> String {
    match s.char_indices().nth(NOTE_MAX) {
        Some((i, _)) => [&s[..i], "..."].concat(),
        None => s.to_string(),
    }
}

/// How much of a refusal's reason goes into `Description=`.
const NOTE_MAX: usize = 200;

/// Render `rec`'s unit (with `extra`) and its links.
fn emit(
    f: &Found,
    rec: &Record,
    extra: &unit::Extra,
    unit_name: &str,
    names: &mut Names,
    g: &mut Generated,
    broken: impl Fn(&mut Generated, String),
) {
    match unit::render_with(rec, &f.path, extra) {
        Err(e) => broken(g, e.to_string()),
        Ok(rendered) => {
            g.outputs.push(Output::Unit {
                path: PathBuf::from(unit_name),
                text: rendered.text,
            });
            if rec.enabled {
                install_links(f, rec, &rendered.install, unit_name, names, g);
            }
            crate::health_unit::add(f, rec, names, g);
        }
    }
}

/// The links of an enabled container: its target's and syscontainers.target's
/// `.wants/`, then those of its `[Install]` section.
fn install_links(
    f: &Found,
    record: &Record,
    install: &install_section::Section,
    unit_name: &str,
    names: &mut Names,
    g: &mut Generated,
) {
    let plan = install_section::plan(install, unit_name, &f.path, &|a| names.taken(a));
    let mut links: BTreeSet<Link> = [record.target.as_str(), paths::CONTAINERS_TARGET]
        .into_iter()
        .map(|t| Link::Dependency {
            dir: [t, ".wants"].concat(),
        })
        .collect();
    links.extend(plan.links);
    for l in &links {
        if let Link::Alias { name } = l {
            names.aliases.insert(name.clone(), f.name.clone());
        }
        let (path, target) = l.path_and_target(unit_name);
        g.outputs.push(Output::Symlink { path, target });
    }
    if !plan.also.is_empty() {
        g.messages.push(Message::Warn(format!(
            "record {}: Also={} is not applied: the generator only links its own units; enable those with systemctl enable",
            f.path.display(),
            plan.also.join(" ")
        )));
    }
    if !plan.errors.is_empty() {
        g.failed += 1;
        g.messages
            .extend(plan.errors.iter().map(|e| Message::Error(e.to_string())));
    }
}

fn out_path(o: &Output) -> &Path {
    match o {
        Output::Unit { path, .. } | Output::Symlink { path, .. } => path,
    }
}

/// Discover the records under `root` and convert them, one at a time, handing
/// each record's outputs and messages to `sink` before reading the next (so
/// memory does not grow with the number of records). Returns the number of
/// failed records.
pub fn generate<F>(root: &Root, mut sink: F) -> usize
where
    F: FnMut(Generated),
{
    let (cands, errors) = record::scan(root);
    let mut names = Names::new(cands.iter().map(|c| c.name.as_str()));
    let mut failed = 0;
    if !errors.is_empty() {
        failed += errors.len();
        sink(Generated {
            outputs: Vec::new(),
            messages: errors
                .iter()
                .map(|e| Message::Error(e.to_string()))
                .collect(),
            failed: errors.len(),
        });
    }
    let mut buf = Vec::new();
    for c in &cands {
        let mut g = Generated::default();
        convert_one(&c.load_with(&mut buf), &mut names, &mut g);
        failed += g.failed;
        sink(g);
    }
    failed
}

/// Writes outputs into a directory (the generator's normal directory, which
/// systemd empties before each run).
///
/// The directory is opened once, and each subdirectory (`TARGET.wants/`) is
/// created and opened once; every file is then made relative to its
/// directory's fd (`openat`, `symlinkat`), so the kernel looks up one name per
/// file instead of a whole path.
///
/// Units are written in place, with no temporary file and rename: systemd
/// reads the output directories only after the generator has exited, so no
/// reader sees a unit half-written (systemd-fstab-generator relies on the
/// same). A unit that exists is overwritten (`O_TRUNC`), a symlink that exists
/// is replaced; files get mode 0666 and directories 0777, less the umask.
#[derive(Default)]
pub struct Writer {
    /// The output directory, as last given to [`Writer::write`], and its fd.
    out: Option<(PathBuf, OwnedFd)>,
    /// Subdirectories made so far, relative to the output directory (a few:
    /// one per target and dependency kind).
    dirs: Vec<(OsString, OwnedFd)>,
}

impl Writer {
    pub fn write(&mut self, dir: &Path, outputs: &[Output]) -> io::Result<()> {
        let top = match &mut self.out {
            Some((p, fd)) if p == dir => fd,
            out => {
                self.dirs.clear();
                let fd = rfs::open(dir, DIR_FLAGS, Mode::empty())?;
                &mut out.insert((dir.to_path_buf(), fd)).1
            }
        };
        for o in outputs {
            let (parent, name) = split_parent(out_path(o));
            let at = match parent {
                None => top.as_fd(),
                Some(parent) => match self.dirs.iter().position(|(d, _)| d == parent) {
                    Some(i) => self.dirs[i].1.as_fd(),
                    None => {
                        let fd = make_dirs(top.as_fd(), Path::new(parent))?;
                        self.dirs.push((parent.to_os_string(), fd));
                        self.dirs[self.dirs.len() - 1].1.as_fd()
                    }
                },
            };
            match o {
                Output::Unit { text, .. } => write_file(at, name, text.as_bytes())?,
                Output::Symlink { target, .. } => match rfs::symlinkat(target, at, name) {
                    Err(Errno::EXIST) => {
                        rfs::unlinkat(at, name, AtFlags::empty())?;
                        rfs::symlinkat(target, at, name)?;
                    }
                    r => r?,
                },
            }
        }
        Ok(())
    }
}

/// A relative output path's directory (`None` for a file at the top) and
/// file name, split at the last `/` (outputs are plain relative paths: no
/// trailing `/`, no `.` or `..`).
fn split_parent(p: &Path) -> (Option<&OsStr>, &OsStr) {
    let b = p.as_os_str().as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        None => (None, p.as_os_str()),
        Some(i) => (
            Some(OsStr::from_bytes(&b[..i])),
            OsStr::from_bytes(&b[i + 1..]),
        ),
    }
}

/// How output directories are opened: only as the base of `*at` calls.
const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// Create the relative directory `rel` (not empty) under `top` as
/// `create_dir_all` does (an existing directory, or a symlink to one, is
/// fine), and open it.
fn make_dirs(top: BorrowedFd, rel: &Path) -> io::Result<OwnedFd> {
    let mut fd: Option<OwnedFd> = None;
    for c in rel.components() {
        let at = fd.as_ref().map_or(top, |f| f.as_fd());
        match rfs::mkdirat(at, c.as_os_str(), Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        fd = Some(rfs::openat(at, c.as_os_str(), DIR_FLAGS, Mode::empty())?);
    }
    fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty directory name"))
}

/// Create (or truncate) `name` in `at` and write `data`: one `write` for a
/// unit, more only if the kernel takes less.
fn write_file(at: BorrowedFd, name: &OsStr, data: &[u8]) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let fd = rfs::openat(at, name, flags, Mode::from_raw_mode(0o666))?;
    let mut rest = data;
    while !rest.is_empty() {
        match rustix::io::write(&fd, rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The outputs as text, for `--dry-run`.
pub fn dry_run(outputs: &[Output]) -> String {
    let mut s = String::new();
    for o in outputs {
        match o {
            Output::Unit { path, text } => {
                s.push_str(&format!("# ===== {} =====\n{text}\n", path.display()));
            }
            Output::Symlink { path, target } => {
                s.push_str(&format!(
                    "# ===== {} -> {} =====\n\n",
                    path.display(),
                    target.display()
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str, state: FoundState) -> Found {
        Found {
            name: name.into(),
            path: PathBuf::from(format!("/etc/syscontainer/containers/{name}.json")),
            state,
        }
    }
    fn ok(name: &str, enabled: bool, target: &str) -> Found {
        let mut r = Record::new(
            name,
            "img",
            "sha256:0",
            &format!("/var/lib/containers/atomic/{name}.0"),
        );
        r.enabled = enabled;
        r.target = target.into();
        found(
            name,
            FoundState::Ok {
                record: Box::new(r),
                warnings: vec![],
                decl: Decl::Applied,
                trial: false,
            },
        )
    }

    #[test]
    fn enabled_gets_wants_links_disabled_does_not() {
        let g = convert(&[
            ok("a", true, "multi-user.target"),
            ok("b", false, "multi-user.target"),
            ok("c", true, "graphical.target"),
        ]);
        assert_eq!(g.failed, 0);
        let paths: Vec<_> = g
            .outputs
            .iter()
            .map(|o| out_path(o).display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "a.service",
                "b.service",
                "c.service",
                "graphical.target.wants/c.service",
                "multi-user.target.wants/a.service",
                "syscontainers.target.wants/a.service",
                "syscontainers.target.wants/c.service"
            ]
        );
    }

    #[test]
    fn broken_records_still_get_a_failing_unit() {
        let e = Record::parse(Path::new("/etc/syscontainer/containers/x.json"), b"{").unwrap_err();
        let g = convert(&[
            found("x", FoundState::Broken(e)),
            ok("y", true, "multi-user.target"),
        ]);
        assert_eq!(g.failed, 1);
        assert!(matches!(&g.messages[0], Message::Error(m) if m.contains("x.json")));
        let x = g
            .outputs
            .iter()
            .find(|o| out_path(o) == Path::new("x.service"));
        match x {
            Some(Output::Unit { text, .. }) => {
                assert!(
                    text.contains("exit 6") && text.contains("not valid JSON"),
                    "{text}"
                );
            }
            o => panic!("{o:?}"),
        }
        assert!(g
            .outputs
            .iter()
            .any(|o| out_path(o) == Path::new("y.service")));
    }

    #[test]
    fn no_container_service_produces_nothing() {
        let mut f = ok("files-only", true, "multi-user.target");
        if let FoundState::Ok { record, .. } = &mut f.state {
            record.no_container_service = true;
        }
        let g = convert(&[f]);
        assert!(g.outputs.is_empty() && g.failed == 0, "{g:?}");
    }

    fn with_template(name: &str, enabled: bool, tpl: &str) -> Found {
        let mut f = ok(name, enabled, "multi-user.target");
        if let FoundState::Ok { record, .. } = &mut f.state {
            record.service_template = Some(tpl.to_string());
        }
        f
    }

    fn links(g: &Generated) -> Vec<String> {
        g.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Symlink { path, target } => {
                    Some(format!("{} -> {}", path.display(), target.display()))
                }
                Output::Unit { .. } => None,
            })
            .collect()
    }

    #[test]
    fn install_section_links_and_alias_claims() {
        let tpl = |extra: &str| format!("[Service]\nExecStart=/bin/true\n[Install]\n{extra}\n");
        let g = convert(&[
            with_template("a", true, &tpl("WantedBy=multi-user.target\nRequiredBy=docker.service\nAlias=shared.service b.service")),
            with_template("b", true, &tpl("Alias=shared.service b2.service\nAlso=b.socket")),
            with_template("c", false, &tpl("Alias=c2.service\nWantedBy=x.target")),
            found("m", FoundState::Masked),
            with_template("z", true, &tpl("Alias=m.service")),
        ]);
        assert_eq!(
            links(&g),
            [
                "b2.service -> b.service",
                "docker.service.requires/a.service -> ../a.service",
                "multi-user.target.wants/a.service -> ../a.service",
                "multi-user.target.wants/b.service -> ../b.service",
                "multi-user.target.wants/z.service -> ../z.service",
                "shared.service -> a.service",
                "syscontainers.target.wants/a.service -> ../a.service",
                "syscontainers.target.wants/b.service -> ../b.service",
                "syscontainers.target.wants/z.service -> ../z.service",
            ]
        );
        // a, b and z each lose an alias; the disabled c is not looked at
        assert_eq!(g.failed, 3, "{:#?}", g.messages);
        let msgs: Vec<String> = g.messages.iter().map(|m| format!("{m:?}")).collect();
        assert!(msgs.iter().any(|m| m.contains("a.json: service template line 6: Alias=b.service is ignored: it is the unit of container 'b'")), "{msgs:#?}");
        assert!(msgs.iter().any(|m| m.contains("b.json: service template line 4: Alias=shared.service is ignored: it is already an alias of container 'a'")), "{msgs:#?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("z.json") && m.contains("container 'm'")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter().any(
                |m| m.starts_with("Warn") && m.contains("b.json: Also=b.socket is not applied")
            ),
            "{msgs:#?}"
        );
        assert!(!msgs.iter().any(|m| m.contains("c.json")), "{msgs:#?}");
    }

    #[test]
    fn masked_produces_nothing() {
        let g = convert(&[found("m", FoundState::Masked)]);
        assert!(g.outputs.is_empty() && g.messages.is_empty() && g.failed == 0);
    }
}
