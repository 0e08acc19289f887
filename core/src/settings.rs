//! How a binary reads its environment: once, at its start, into one settings
//! struct that it passes down. Nothing else in the library reads the
//! environment (the test below checks it; `failpoint.rs`, a test-only
//! feature, is the one exception).
//!
//! zincati's order, with the environment as the fragments:
//!
//! 1. **fragments**: [`Fragments::read`] takes the raw value of every variable
//!    of the binary's [`Var`] table, and of no other;
//! 2. **inputs**: the binary merges them with its command line (a flag wins
//!    over its variable);
//! 3. **settings**: each value parsed by the module that owns its grammar
//!    ([`crate::paths::Root::from_var`], [`crate::logging::LogConfig::parse`],
//!    ...), defaults applied, into the binary's `Settings`.
//!
//! The same table gives `--help` its `Environment:` list, so that the help
//! names every variable the binary reads.

use std::ffi::{OsStr, OsString};

/// An environment variable a binary reads, and what it means, in one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    pub meaning: &'static str,
}

/// The raw values of a binary's variables, read once.
#[derive(Debug, Clone)]
pub struct Fragments {
    table: &'static [Var],
    values: Vec<Option<OsString>>,
}

impl Fragments {
    /// The value of each variable of `table`, through `lookup` (the binary
    /// passes `std::env::var_os`). An empty value counts as unset.
    pub fn read(table: &'static [Var], mut lookup: impl FnMut(&str) -> Option<OsString>) -> Self {
        let values = table
            .iter()
            .map(|v| lookup(v.name).filter(|s| !s.is_empty()))
            .collect();
        Fragments { table, values }
    }

    /// The value of `name`, which must be in the table: a binary reads no
    /// variable that its `--help` does not name.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        let i = self
            .table
            .iter()
            .position(|v| v.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the table of variables this binary reads"));
        self.values[i].as_deref()
    }

    /// The value of `name` when it is valid UTF-8, as `std::env::var(..).ok()`.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(OsStr::to_str)
    }

    /// `NAME='value'` for every variable that is set, for a debug message.
    pub fn describe(&self) -> String {
        let set: Vec<String> = self
            .table
            .iter()
            .zip(&self.values)
            .filter_map(|(v, val)| {
                val.as_ref()
                    .map(|val| format!("{}='{}'", v.name, val.to_string_lossy()))
            })
            .collect();
        if set.is_empty() {
            "none of its variables is set".to_string()
        } else {
            set.join(" ")
        }
    }
}

/// Lines of `--help` are wrapped at this many columns.
const HELP_COLUMNS: usize = 100;

/// The `Environment:` section of `--help`: `  NAME  meaning`, the meanings
/// aligned, a long one wrapped onto lines indented to its column.
pub fn help(table: &[Var]) -> String {
    let width = table.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let indent = 2 + width + 2;
    let mut s = String::from("Environment:");
    for v in table {
        let mut line = format!("  {:<width$}  ", v.name);
        let mut empty = true;
        for word in v.meaning.split_whitespace() {
            if !empty && line.len() + 1 + word.len() > HELP_COLUMNS {
                s.push('\n');
                s.push_str(line.trim_end());
                line = " ".repeat(indent);
                empty = true;
            }
            if !empty {
                line.push(' ');
            }
            line.push_str(word);
            empty = false;
        }
        s.push('\n');
        s.push_str(line.trim_end());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const TABLE: &[Var] = &[
        Var {
            name: "A_ROOT",
            meaning: "the root",
        },
        Var {
            name: "A_LONGER_NAME",
            meaning: "something else",
        },
    ];

    #[test]
    fn fragments_read_the_table_only() {
        let mut asked = Vec::new();
        let f = Fragments::read(TABLE, |k| {
            asked.push(k.to_string());
            match k {
                "A_ROOT" => Some("/tmp/r".into()),
                _ => Some("".into()),
            }
        });
        assert_eq!(asked, ["A_ROOT", "A_LONGER_NAME"]);
        assert_eq!(f.str("A_ROOT"), Some("/tmp/r"));
        // Empty is unset.
        assert_eq!(f.get("A_LONGER_NAME"), None);
        assert_eq!(f.describe(), "A_ROOT='/tmp/r'");
    }

    #[test]
    #[should_panic(expected = "B_OTHER is not in the table")]
    fn a_variable_outside_the_table_cannot_be_read() {
        Fragments::read(TABLE, |_| None).get("B_OTHER");
    }

    #[test]
    fn help_aligns_the_meanings() {
        assert_eq!(
            help(TABLE),
            "Environment:\n  A_ROOT         the root\n  A_LONGER_NAME  something else"
        );
    }

    #[test]
    fn help_wraps_a_long_meaning() {
        const LONG: &[Var] = &[Var {
            name: "A_VAR",
            meaning: "word word word word word word word word word word word word word \
                      word word word word word word word word word word word end",
        }];
        let h = help(LONG);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines.len(), 3, "{h}");
        assert!(lines[1].starts_with("  A_VAR  word"), "{h}");
        assert!(lines[1].len() <= 100 && lines[1].len() > 90, "{h}");
        assert!(
            lines[2].starts_with("         word") && lines[2].ends_with(" end"),
            "{h}"
        );
    }

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Lines of the sources under `dir` (relative to the workspace) that
    /// read the environment (`std::env::var`, `var_os`, `vars`), except in
    /// the files `allowed` (relative to dir).
    fn env_reads(dir: &str, allowed: &[&str]) -> Vec<String> {
        // Spelt in two pieces so that this file does not match itself.
        let needle = concat!("env::", "var");
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let base = ws.join(dir);
        let mut files = Vec::new();
        sources(&base, &mut files);
        assert!(!files.is_empty(), "no sources under {}", base.display());
        let mut found = Vec::new();
        for f in files {
            let rel = f.strip_prefix(&base).unwrap().to_string_lossy().to_string();
            if allowed.contains(&rel.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                // Comments may name the calls.
                if line.contains(needle) && !line.trim_start().starts_with("//") {
                    found.push(format!("{dir}/{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        found
    }

    #[test]
    fn the_library_reads_no_environment() {
        let found = env_reads("core/src", &["failpoint.rs"]);
        assert!(
            found.is_empty(),
            "the library reads the environment; read it in the binary's settings and pass it down:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn each_binary_reads_its_environment_in_its_settings_only() {
        for dir in ["cli/src", "generator/src", "exec-helper/src"] {
            let found = env_reads(dir, &["settings.rs"]);
            assert!(
                found.is_empty(),
                "{dir} reads the environment outside settings.rs:\n{}",
                found.join("\n")
            );
        }
    }

    #[test]
    fn the_check_finds_a_read() {
        // The check itself can fail: failpoint.rs does read the environment.
        let found = env_reads("core/src", &[]);
        assert!(
            found
                .iter()
                .any(|l| l.starts_with("core/src/failpoint.rs:")),
            "{found:?}"
        );
    }
}
