//! The settings of the three binaries (issue 10, "Settings"): each one's
//! `--help` names exactly the variables it reads, and `SYSCONTAINER_LOG` means
//! the same in all three: `stderr,debug` logs debug messages to stderr, and an
//! unknown token is ignored with one warning on stderr, the same words in
//! every binary, while the rest of the value still applies.
//!
//! Every run has a cleared environment, on a temp root holding a broken
//! record: each binary then has something to log at warn or error level.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;

const BIN: &str = env!("CARGO_BIN_EXE_syscontainer");

/// `syscontainer-exec` and `syscontainer-generator` belong to other packages
/// (see atomic_env.rs): build them into the same target directory and take
/// them from beside `syscontainer`.
fn sibling(name: &str) -> PathBuf {
    static BUILT: Once = Once::new();
    let dir = Path::new(BIN).parent().unwrap();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "--quiet", "--bins"]);
        c.args(["-p", "syscontainer-exec", "-p", "syscontainer-generator"]);
        if dir.ends_with("release") {
            c.arg("--release");
        }
        let st = c.current_dir(env!("CARGO_MANIFEST_DIR")).status().unwrap();
        assert!(st.success(), "cargo build of the other binaries failed");
    });
    let p = dir.join(name);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// A binary, the arguments of a run that logs something, and how a line of
/// its stderr starts at each level.
struct Binary {
    path: PathBuf,
    args: &'static [&'static str],
    warn_prefix: &'static str,
    debug_prefix: &'static str,
}

fn binaries() -> Vec<Binary> {
    vec![
        Binary {
            path: PathBuf::from(BIN),
            // Warns about the broken record.
            args: &["containers", "list", "--all"],
            warn_prefix: "syscontainer: ",
            debug_prefix: "",
        },
        Binary {
            path: sibling("syscontainer-generator"),
            // Logs an error for the broken record, exits 1.
            args: &["--dry-run"],
            warn_prefix: "syscontainer-generator: ",
            debug_prefix: "syscontainer-generator: ",
        },
        Binary {
            path: sibling("syscontainer-exec"),
            // Logs an error for the name, exits 3.
            args: &["cleanup", "../x"],
            warn_prefix: "<4>syscontainer-exec: ",
            debug_prefix: "<7>syscontainer-exec: ",
        },
    ]
}

fn root_with_a_broken_record() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("etc/syscontainer/containers");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("broken.json"), "{").unwrap();
    root
}

/// A run with only `SYSCONTAINER_ROOT` and, if given, `SYSCONTAINER_LOG`.
fn run(b: &Binary, root: &Path, log: Option<&str>) -> Output {
    let mut c = Command::new(&b.path);
    c.args(b.args)
        .env_clear()
        .env("SYSCONTAINER_ROOT", root)
        .stdin(Stdio::null());
    if let Some(v) = log {
        c.env("SYSCONTAINER_LOG", v);
    }
    c.output().unwrap()
}

fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(String::from)
        .collect()
}

/// The variables of the `Environment:` section of `--help`: the first word
/// of each line indented by two (deeper lines continue a meaning).
fn help_vars(bin: &Path) -> Vec<String> {
    let o = Command::new(bin).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", bin.display());
    let help = String::from_utf8(o.stdout).unwrap();
    let start = help
        .find("\nEnvironment:\n")
        .unwrap_or_else(|| panic!("{} --help has no Environment:\n{help}", bin.display()));
    let mut vars = Vec::new();
    for line in help[start + "\nEnvironment:\n".len()..].lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with("  ") && !line.starts_with("   ") {
            let (name, meaning) = line[2..].split_once("  ").unwrap_or((line, ""));
            assert!(
                !meaning.trim().is_empty(),
                "{name} has no meaning in {} --help",
                bin.display()
            );
            vars.push(name.to_string());
        }
    }
    vars
}

#[test]
fn help_names_every_variable_each_binary_reads() {
    assert_eq!(
        help_vars(Path::new(BIN)),
        [
            "SYSCONTAINER_ROOT",
            "SYSCONTAINER_LOG",
            "ATOMIC_OSTREE_REPO",
            "ATOMIC_OSTREE_CHECKOUT_PATH",
            "SYSCONTAINER_CHECKOUT",
            "SYSCONTAINER_MAX_LAYER_ENTRIES",
            "SYSCONTAINER_MAX_LAYER_BYTES",
            "SYSCONTAINER_MAX_SPARSE_RATIO",
            "SYSCONTAINER_SPEED_LIMIT",
            "SYSCONTAINER_SPEED_TIME",
            "DOCKER_HOST",
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "HOME",
        ]
    );
    assert_eq!(
        help_vars(&sibling("syscontainer-generator")),
        ["SYSCONTAINER_ROOT", "SYSCONTAINER_LOG"]
    );
    assert_eq!(
        help_vars(&sibling("syscontainer-exec")),
        [
            "SYSCONTAINER_ROOT",
            "SYSCONTAINER_LOG",
            "SYSCONTAINER_STOP_TIMEOUT",
            "MAINPID"
        ]
    );
}

#[test]
fn stderr_debug_means_the_same_in_every_binary() {
    let root = root_with_a_broken_record();
    for b in binaries() {
        let name = b.path.display();
        // `stderr`: the generator's form for tests, and every binary's
        // default level: no debug message.
        let base = run(&b, root.path(), Some("stderr"));
        let base_lines = stderr_lines(&base);
        assert!(
            base_lines
                .iter()
                .any(|l| l.contains("broken.json") || l.contains("../x")),
            "{name}: {base_lines:?}"
        );
        assert!(
            !base_lines.iter().any(|l| l.contains("environment:")),
            "{name}: {base_lines:?}"
        );
        // `stderr,debug`: the same run, with the debug message naming the
        // variables that are set, in the binary's style.
        let o = run(&b, root.path(), Some("stderr,debug"));
        assert_eq!(o.status.code(), base.status.code(), "{name}");
        let lines = stderr_lines(&o);
        let want = format!(
            "{}environment: SYSCONTAINER_ROOT='{}' SYSCONTAINER_LOG='stderr,debug'",
            b.debug_prefix,
            root.path().display()
        );
        assert_eq!(
            lines.iter().filter(|l| **l == want).count(),
            1,
            "{name}: {lines:?}"
        );
        for l in &base_lines {
            assert!(lines.contains(l), "{name}: {l} missing from {lines:?}");
        }
    }
    // The exec helper's `debug` (its form before the one grammar) still works.
    let exec = &binaries()[2];
    let lines = stderr_lines(&run(exec, root.path(), Some("debug")));
    assert!(
        lines[0].starts_with("<7>syscontainer-exec: environment: "),
        "{lines:?}"
    );
}

#[test]
fn an_unknown_token_warns_once_alike_and_the_rest_applies() {
    let root = root_with_a_broken_record();
    let want = "SYSCONTAINER_LOG='stderr,loud': ignoring 'loud' \
                (the tokens are error, warn, info, debug, trace, stderr or kmsg)";
    for b in binaries() {
        let name = b.path.display();
        let base = run(&b, root.path(), Some("stderr"));
        let o = run(&b, root.path(), Some("stderr,loud"));
        // It runs as it would have without the token: same status, same
        // messages on stderr (`stderr` applied: the generator's would
        // otherwise go to /dev/kmsg), after one warning.
        assert_eq!(o.status.code(), base.status.code(), "{name}");
        assert_eq!(o.stdout, base.stdout, "{name}");
        let mut lines = stderr_lines(&o);
        assert_eq!(
            lines.first().map(String::as_str),
            Some(format!("{}{want}", b.warn_prefix).as_str()),
            "{name}: {lines:?}"
        );
        lines.remove(0);
        assert_eq!(lines, stderr_lines(&base), "{name}");
        assert!(
            !lines.iter().any(|l| l.contains("SYSCONTAINER_LOG")),
            "{name} warned more than once: {lines:?}"
        );
    }
}
