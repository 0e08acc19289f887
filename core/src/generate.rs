//! Records to units: a pure conversion ([`convert`]) and a small writer
//! ([`write_outputs`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::paths::{self, Root};
use crate::record::{self, Found, FoundState};
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

/// Turn discovered records into units and symlinks. Pure: touches no disk.
pub fn convert(found: &[Found]) -> Generated {
    let mut g = Generated::default();
    for f in found {
        convert_one(f, &mut g);
    }
    g.outputs.sort_by(|a, b| out_path(a).cmp(out_path(b)));
    g
}

/// Turn one record into its unit and symlinks, appending to `g`.
pub fn convert_one(f: &Found, g: &mut Generated) {
    let unit_name = format!("{}.service", f.name);
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
        FoundState::Ok { record, warnings } => {
            g.messages
                .extend(warnings.iter().cloned().map(Message::Warn));
            if record.no_container_service {
                return; // the image only installs host files
            }
            match unit::render(record, &f.path) {
                Err(e) => broken(g, e.to_string()),
                Ok(text) => {
                    g.outputs.push(Output::Unit {
                        path: PathBuf::from(&unit_name),
                        text,
                    });
                    if record.enabled {
                        let mut targets = vec![record.target.as_str()];
                        if record.target != paths::CONTAINERS_TARGET {
                            targets.push(paths::CONTAINERS_TARGET);
                        }
                        for t in targets {
                            g.outputs.push(Output::Symlink {
                                path: Path::new(&format!("{t}.wants")).join(&unit_name),
                                target: Path::new("..").join(&unit_name),
                            });
                        }
                    }
                }
            }
        }
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
    for c in &cands {
        let mut g = Generated::default();
        convert_one(&c.load(), &mut g);
        failed += g.failed;
        sink(g);
    }
    failed
}

/// Writes outputs into a directory (the generator's normal directory, which
/// systemd empties before each run), creating each subdirectory once.
#[derive(Default)]
pub struct Writer {
    dirs: std::collections::HashSet<PathBuf>,
}

impl Writer {
    pub fn write(&mut self, dir: &Path, outputs: &[Output]) -> io::Result<()> {
        for o in outputs {
            let p = dir.join(out_path(o));
            if let Some(parent) = out_path(o).parent().filter(|p| !p.as_os_str().is_empty()) {
                if !self.dirs.contains(parent) {
                    fs::create_dir_all(dir.join(parent))?;
                    self.dirs.insert(parent.to_path_buf());
                }
            }
            match o {
                Output::Unit { text, .. } => fs::write(&p, text)?,
                Output::Symlink { target, .. } => match std::os::unix::fs::symlink(target, &p) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        fs::remove_file(&p)?;
                        std::os::unix::fs::symlink(target, &p)?;
                    }
                    r => r?,
                },
            }
        }
        Ok(())
    }
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
    use crate::record::Record;

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

    #[test]
    fn masked_produces_nothing() {
        let g = convert(&[found("m", FoundState::Masked)]);
        assert!(g.outputs.is_empty() && g.messages.is_empty() && g.failed == 0);
    }
}
