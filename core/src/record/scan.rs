//! Finding every container: the intent files that win precedence, and the
//! states, read relative to their directories (each opened once).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::intent::Intent;
use super::state::{FileId, State};
use super::{Record, RecordError};
use crate::name;
use crate::paths::{self, Root};

/// One container found by [`discover`].
#[derive(Debug)]
pub struct Found {
    /// The container name, from the file name.
    pub name: String,
    /// Logical path of the intent file that wins (of the state file when
    /// the intent is gone).
    pub path: PathBuf,
    pub state: FoundState,
}

#[derive(Debug)]
pub enum FoundState {
    /// Deployed: `record` is what runs (from the state, or a first-wave
    /// record); `decl` says how the intent file compares.
    Ok {
        record: Box<Record>,
        warnings: Vec<String>,
        decl: Decl,
        /// An applied edit awaits confirmation (`apply --confirm`).
        trial: bool,
    },
    /// Declared, not deployed yet.
    Pending {
        intent: Box<Intent>,
        warnings: Vec<String>,
    },
    Masked,
    /// The file exists but cannot be used, and nothing is deployed. The name
    /// is still a valid unit name.
    Broken(RecordError),
    /// The file name itself is not a valid container name: no unit can be made.
    BadName(RecordError),
}

/// How a deployed container's intent file compares with what was applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Decl {
    /// The intent is what was applied (or a first-wave record).
    Applied,
    /// The intent file changed since: the next start applies it.
    Edited {
        intent: Box<Intent>,
        /// The edit names another image: applying it pulls.
        image_changed: bool,
    },
    /// The intent file cannot be used, or this edit was refused before:
    /// the last good deployment stays.
    Refused { reason: String },
    /// The intent file was deleted or masked: `syscontainer reconcile`
    /// removes the container.
    Removing,
}

impl Decl {
    /// `deployed`, `edited`, `refused`, `removing`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decl::Applied => "deployed",
            Decl::Edited { .. } => "edited",
            Decl::Refused { .. } => "refused",
            Decl::Removing => "removing",
        }
    }
}

/// A container found by [`scan`], not read yet.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    /// Logical path, for messages and `SourcePath=`.
    pub path: PathBuf,
    /// The record directory of the intent file; `None`: state only.
    dir: Option<Arc<Dir>>,
    /// The directory entry is a symlink (possibly a mask).
    symlink: bool,
    /// The state directory, when it exists.
    states: Option<Arc<Dir>>,
}

/// What the intent file said. One lives at a time, on the stack, per
/// record: boxing the large variant would cost the generator an allocation
/// per record.
#[allow(clippy::large_enum_variant)]
enum Read {
    None,
    Masked,
    Bad(RecordError),
    Intent {
        intent: Intent,
        warnings: Vec<String>,
        legacy: Option<Box<Record>>,
    },
}

impl Candidate {
    /// Read and parse the intent and the state.
    pub fn load(&self) -> Found {
        self.load_with(&mut Vec::new())
    }

    /// [`Candidate::load`], reading the files into `buf` (a buffer kept from
    /// one record to the next saves an allocation per record).
    pub fn load_with(&self, buf: &mut Vec<u8>) -> Found {
        let found = |state| Found {
            name: self.name.clone(),
            path: self.path.clone(),
            state,
        };
        if let Err(source) = name::validate(&self.name) {
            return found(FoundState::BadName(RecordError::Name {
                path: self.path.clone(),
                source,
            }));
        }
        let state = self.read_state(buf);
        // The intent file the state says it applied, unchanged: the state
        // alone says all (no read, no parse of the intent file).
        if let (Some(dir), false, Some(Ok(st))) = (&self.dir, self.symlink, &state) {
            if st.intent_file.is_some_and(|id| self.is_file(dir, id)) {
                let Some(Ok(st)) = state else {
                    unreachable!("matched above")
                };
                return self.applied(st);
            }
        }
        let read = match &self.dir {
            None => Read::None,
            Some(_) if self.symlink && self.is_mask() => Read::Masked,
            Some(dir) => match read_at(dir, self.file(), buf) {
                Err(source) => Read::Bad(RecordError::Read {
                    path: self.path.clone(),
                    source,
                }),
                Ok(text) => match Intent::parse(&self.path, text) {
                    Err(e) => Read::Bad(e),
                    Ok((intent, warnings)) if intent.is_legacy() => {
                        match Record::parse(&self.path, text) {
                            Ok((rec, warnings)) => Read::Intent {
                                intent,
                                warnings,
                                legacy: Some(Box::new(rec)),
                            },
                            Err(e) => {
                                drop(warnings);
                                Read::Bad(e)
                            }
                        }
                    }
                    Ok((intent, warnings)) => Read::Intent {
                        intent,
                        warnings,
                        legacy: None,
                    },
                },
            },
        };
        found(combine(read, state))
    }

    /// A deployed container whose intent file is the one its state applied.
    fn applied(&self, st: State) -> Found {
        Found {
            name: self.name.clone(),
            path: self.path.clone(),
            state: FoundState::Ok {
                trial: st.trial.is_some(),
                record: Box::new(st.record),
                warnings: Vec::new(),
                decl: Decl::Applied,
            },
        }
    }

    /// The identities, now, of the winning intent file and of the state
    /// (two `statat`s, nothing read): what an entry of the generator's
    /// cache is checked against. `None` without an intent file, for a
    /// symlink, or without a state directory.
    pub fn ids(&self) -> Option<(FileId, FileId)> {
        let dir = self.dir.as_ref()?.fd().ok()?;
        let states = self.states.as_ref()?.fd().ok()?;
        if self.symlink {
            return None;
        }
        // The state has the intent file's name: NAME.json.
        let stat = |d| rfs::statat(d, self.file(), AtFlags::SYMLINK_NOFOLLOW).ok();
        Some((FileId::of(&stat(dir)?), FileId::of(&stat(states)?)))
    }

    /// For the generator's cache: a container whose intent file is still
    /// the one its state applied (as [`Candidate::load`] finds it without
    /// reading the intent file), with the identities of that intent file
    /// and of the state as read (through the descriptor that was read, so
    /// that the identity is that of the content). `None` for anything else.
    pub fn load_applied(&self, buf: &mut Vec<u8>) -> Option<(Found, FileId, FileId)> {
        name::validate(&self.name).ok()?;
        let dir = self.dir.as_ref()?;
        let states = self.states.as_ref()?.fd().ok()?;
        if self.symlink {
            return None;
        }
        let fd = rfs::openat(
            states,
            self.file(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let sid = FileId::of(&rfs::fstat(&fd).ok()?);
        let text = read_fd(&fd, buf).ok()?;
        let st = State::parse(&super::state::state_path(&self.name), text).ok()?;
        let iid = st.intent_file?;
        self.is_file(dir, iid).then(|| (self.applied(st), iid, sid))
    }

    /// The state, if there is one.
    fn read_state(&self, buf: &mut Vec<u8>) -> Option<Result<State, RecordError>> {
        let dir = self.states.as_ref()?;
        let file = [self.name.as_str(), ".json"].concat();
        let logical = super::state::state_path(&self.name);
        match read_at(dir, OsStr::new(&file), buf) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => Some(Err(RecordError::Read {
                path: logical,
                source,
            })),
            Ok(text) => Some(State::parse(&logical, text)),
        }
    }

    /// The intent file is still the one identified by `id`.
    fn is_file(&self, dir: &Dir, id: FileId) -> bool {
        dir.fd()
            .ok()
            .and_then(|d| rfs::statat(d, self.file(), AtFlags::SYMLINK_NOFOLLOW).ok())
            .is_some_and(|st| FileId::of(&st) == id)
    }

    /// The file's name in its directory.
    fn file(&self) -> &OsStr {
        self.path.file_name().unwrap_or_default()
    }

    /// A symlink to `/dev/null` masks a record.
    fn is_mask(&self) -> bool {
        let Some(Ok(dir)) = self.dir.as_ref().map(|d| d.fd()) else {
            return false;
        };
        rfs::readlinkat(dir, self.file(), Vec::new()).is_ok_and(|t| t.as_bytes() == b"/dev/null")
    }
}

/// The intent and the state of one container, together.
fn combine(read: Read, state: Option<Result<State, RecordError>>) -> FoundState {
    let st = match state {
        None => {
            return match read {
                Read::None | Read::Masked => FoundState::Masked,
                Read::Bad(e) => FoundState::Broken(e),
                Read::Intent {
                    warnings,
                    legacy: Some(rec),
                    ..
                } => FoundState::Ok {
                    record: rec,
                    warnings,
                    decl: Decl::Applied,
                    trial: false,
                },
                Read::Intent {
                    intent, warnings, ..
                } => FoundState::Pending {
                    intent: Box::new(intent),
                    warnings,
                },
            }
        }
        Some(Err(e)) => return FoundState::Broken(e),
        Some(Ok(st)) => st,
    };
    let trial = st.trial.is_some();
    let (decl, warnings) = match read {
        Read::None | Read::Masked => (Decl::Removing, Vec::new()),
        Read::Bad(e) => (
            Decl::Refused {
                reason: e.to_string(),
            },
            Vec::new(),
        ),
        Read::Intent {
            intent, warnings, ..
        } => {
            let decl = if intent.same(&st.applied) {
                Decl::Applied
            } else {
                match &st.refused {
                    Some(r) if r.intent.same(&intent) => Decl::Refused {
                        reason: r.reason.clone(),
                    },
                    _ => Decl::Edited {
                        image_changed: intent.image != st.applied.image,
                        intent: Box::new(intent.normalized()),
                    },
                }
            };
            (decl, warnings)
        }
    };
    FoundState::Ok {
        record: Box::new(st.record),
        warnings,
        decl,
        trial,
    }
}

/// The whole file `file` in `dir`: `openat`, then `read` until end of file
/// into `buf` (no `stat` for a size hint).
fn read_at<'b>(dir: &Dir, file: &OsStr, buf: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
    let fd = rfs::openat(
        dir.fd()?,
        file,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    read_fd(&fd, buf)
}

/// Read `fd` to its end into `buf`.
fn read_fd<'b>(fd: &std::os::fd::OwnedFd, buf: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
    let mut len = 0;
    loop {
        if buf.len() - len < READ_CHUNK {
            buf.resize(len + 2 * READ_CHUNK, 0);
        }
        match rustix::io::read(fd, &mut buf[len..]) {
            Ok(0) => return Ok(&buf[..len]),
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The least free space [`read_at`] offers to one `read`.
const READ_CHUNK: usize = 8192;

/// Open a directory for reading; `None` when it does not exist.
fn open_dir(root: &Root, dir: &str) -> Result<Option<Dir>, RecordError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rfs::open(root.join(dir), flags, Mode::empty()).and_then(Dir::new) {
        Ok(d) => Ok(Some(d)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(RecordError::ReadDir {
            path: PathBuf::from(dir),
            source: e.into(),
        }),
    }
}

/// The `NAME.json` entries of a directory: (stem length, file name, is a
/// symlink).
fn json_entries(list: &mut Dir) -> Vec<(usize, String, bool)> {
    let mut files = Vec::new();
    while let Some(e) = list.read() {
        let Ok(e) = e else {
            continue;
        };
        let Ok(file) = e.file_name().to_str() else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".json") else {
            continue;
        };
        if file.starts_with('.') {
            continue; // a temp file
        }
        let symlink = match e.file_type() {
            FileType::Symlink => true,
            // The file system does not say (d_type): ask.
            FileType::Unknown => list.fd().is_ok_and(|d| {
                rfs::statat(d, file, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_symlink())
            }),
            _ => false,
        };
        files.push((stem.len(), file.to_string(), symlink));
    }
    files
}

/// List the containers under `root`, sorted by name, without reading their
/// files: every intent file that wins precedence, and every state without
/// one. A missing directory is not an error; an unreadable one is.
pub fn scan(root: &Root) -> (Vec<Candidate>, Vec<RecordError>) {
    let mut seen: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut states = match open_dir(root, paths::STATE_DIR) {
        Ok(d) => d,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let state_files = states.as_mut().map(json_entries).unwrap_or_default();
    let states = states.map(Arc::new);
    for dir in paths::RECORD_DIRS {
        let mut list = match open_dir(root, dir) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let files = json_entries(&mut list);
        let list = Arc::new(list);
        for (stem_len, file, symlink) in files {
            let name = &file[..stem_len];
            if seen.contains_key(name) {
                continue; // masked by a higher-precedence file
            }
            seen.insert(
                name.to_string(),
                Candidate {
                    name: name.to_string(),
                    path: Path::new(dir).join(&file),
                    dir: Some(Arc::clone(&list)),
                    symlink,
                    states: states.clone(),
                },
            );
        }
    }
    for (stem_len, file, _) in state_files {
        let name = &file[..stem_len];
        if !seen.contains_key(name) {
            seen.insert(
                name.to_string(),
                Candidate {
                    name: name.to_string(),
                    path: Path::new(paths::STATE_DIR).join(&file),
                    dir: None,
                    symlink: false,
                    states: states.clone(),
                },
            );
        }
    }
    (seen.into_values().collect(), errors)
}

/// Find and read every container under `root`, applying precedence and
/// masking, sorted by name.
pub fn discover(root: &Root) -> (Vec<Found>, Vec<RecordError>) {
    let (cands, errors) = scan(root);
    (cands.iter().map(Candidate::load).collect(), errors)
}
