//! Golden tests: `tests/golden/CASE/input/` is a root with records; the
//! generator's whole output tree must equal `expected/` (symlinks included),
//! and its log and exit status must equal `expected.log`. `BLESS=1` rewrites
//! the expected files; review the diff.
//!
//! Each case also has an `asserts` file stating what matters, so that a bad
//! blessing cannot hide a regression:
//!   key UNIT SECTION KEY VALUE   the unit has `KEY=VALUE` in `[SECTION]`
//!   nokey UNIT SECTION KEY       the unit exists and has no such key
//!   link PATH TARGET             PATH is a symlink to TARGET
//!   absent PATH                  PATH does not exist
//!   wants TARGET UNIT            TARGET's drop-in syscontainer.conf has Wants=UNIT
//!   nowants TARGET UNIT          neither that line nor a TARGET.wants/UNIT link
//!   log TEXT                     the log contains TEXT
//!   exit N                       the exit status is N

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

/// Read a tree into path -> ("file", content) | ("link", target).
fn read_tree(dir: &Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    (
                        "link".into(),
                        fs::read_link(&p).unwrap().display().to_string(),
                    ),
                );
            } else if ft.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, ("file".into(), fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).unwrap();
    for (rel, (kind, content)) in read_tree(from) {
        let p = to.join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if kind == "link" {
            std::os::unix::fs::symlink(content, &p).unwrap();
        } else {
            fs::write(&p, content).unwrap();
        }
    }
}

/// The units that `target`'s drop-in `syscontainer.conf` wants.
fn wanted(out: &Path, target: &str) -> Vec<String> {
    let t =
        fs::read_to_string(out.join(format!("{target}.d/syscontainer.conf"))).unwrap_or_default();
    t.lines()
        .filter_map(|l| l.strip_prefix("Wants="))
        .map(str::to_string)
        .collect()
}

/// The value of `key` in `[section]` of a unit text (last assignment wins).
fn unit_key(text: &str, section: &str, key: &str) -> Option<String> {
    let mut cur = String::new();
    let mut val = None;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            cur = t.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if cur == section {
            if let Some((k, v)) = t.split_once('=') {
                if k.trim() == key {
                    val = Some(v.to_string());
                }
            }
        }
    }
    val
}

fn check_asserts(case: &Path, out: &Path, log: &str, code: i32) -> Vec<String> {
    let mut errs = Vec::new();
    let text = fs::read_to_string(case.join("asserts"))
        .unwrap_or_else(|_| panic!("{} has no asserts file", case.display()));
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        n += 1;
        let w: Vec<&str> = line.splitn(5, ' ').collect();
        let ok = match w.as_slice() {
            ["key", unit, sec, key, val] => {
                let t = fs::read_to_string(out.join(unit)).unwrap_or_default();
                unit_key(&t, sec, key).as_deref() == Some(*val)
            }
            ["nokey", unit, sec, key] => {
                let t = fs::read_to_string(out.join(unit)).unwrap_or_default();
                out.join(unit).exists() && unit_key(&t, sec, key).is_none()
            }
            ["link", p, target] => fs::read_link(out.join(p))
                .map(|t| t == Path::new(target))
                .unwrap_or(false),
            ["absent", p] => fs::symlink_metadata(out.join(p)).is_err(),
            ["wants", target, unit] => wanted(out, target).iter().any(|u| u == unit),
            ["nowants", target, unit] => {
                !wanted(out, target).iter().any(|u| u == unit)
                    && fs::symlink_metadata(out.join(format!("{target}.wants/{unit}"))).is_err()
            }
            ["exit", c] => c.parse::<i32>().unwrap() == code,
            ["log", ..] => log.contains(line.strip_prefix("log ").unwrap()),
            _ => panic!("{}: bad assert line '{line}'", case.display()),
        };
        if !ok {
            errs.push(format!("{}: assertion failed: {line}", case.display()));
        }
    }
    assert!(n > 0, "{}: asserts file is empty", case.display());
    errs
}

fn run_generator(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_syscontainer-generator"))
        .args(args)
        .env("SYSCONTAINER_ROOT", root)
        .env("SYSCONTAINER_LOG", "stderr")
        .output()
        .unwrap()
}

#[test]
fn golden_trees() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let mut cases: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "expected at least 15 golden cases, found {}",
        cases.len()
    );
    for case in &cases {
        let out = tempfile::tempdir().unwrap();
        let res = run_generator(&case.join("input"), &[out.path().to_str().unwrap()]);
        let code = res.status.code().unwrap_or(-1);
        let log = format!("{}exit: {code}\n", String::from_utf8_lossy(&res.stderr));
        if bless {
            copy_tree(out.path(), &case.join("expected"));
            fs::write(case.join("expected.log"), &log).unwrap();
        }
        let got = read_tree(out.path());
        let want = read_tree(&case.join("expected"));
        if got != want {
            let keys: std::collections::BTreeSet<_> = got.keys().chain(want.keys()).collect();
            for k in keys {
                if got.get(k) != want.get(k) {
                    failures.push(format!(
                        "{}: {k} differs\n--- expected\n{:?}\n--- actual\n{:?}",
                        case.display(),
                        want.get(k),
                        got.get(k)
                    ));
                }
            }
        }
        let want_log = fs::read_to_string(case.join("expected.log")).unwrap_or_default();
        if log != want_log {
            failures.push(format!(
                "{}: log differs\n--- expected\n{want_log}--- actual\n{log}",
                case.display()
            ));
        }
        failures.extend(check_asserts(case, out.path(), &log, code));
    }
    assert!(
        failures.is_empty(),
        "{} golden failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn dry_run_prints_and_writes_nothing() {
    let case = golden_dir().join("enabled-disabled/input");
    let out = tempfile::tempdir().unwrap();
    let res = run_generator(&case, &["--dry-run", out.path().to_str().unwrap()]);
    assert!(res.status.success());
    let s = String::from_utf8(res.stdout).unwrap();
    assert!(
        s.contains("# ===== on.service =====") && s.contains("# ===== off.service ====="),
        "{s}"
    );
    assert!(s.contains("# ===== multi-user.target.d/syscontainer.conf =====\n# Automatically generated by syscontainer-generator: the enabled system containers\n[Unit]\nWants=on.service\n"), "{s}");
    assert!(!s.contains("off.service\n"), "{s}");
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["a", "b"][..], &["--bogus", "x"][..]] {
        let res = Command::new(env!("CARGO_BIN_EXE_syscontainer-generator"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&res.stderr).contains("Usage:"));
    }
}

#[test]
fn output_is_deterministic_and_root_free() {
    let case = golden_dir().join("corpus-etcd/input");
    let a = run_generator(&case, &["--dry-run"]).stdout;
    let b = run_generator(&case, &["--dry-run"]).stdout;
    assert_eq!(a, b);
    let s = String::from_utf8(a).unwrap();
    assert!(
        !s.contains("golden"),
        "test paths leaked into the unit:\n{s}"
    );
}

#[test]
fn three_directory_form_writes_to_the_first() {
    let case = golden_dir().join("minimal/input");
    let (n, e, l) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let res = run_generator(
        &case,
        &[
            n.path().to_str().unwrap(),
            e.path().to_str().unwrap(),
            l.path().to_str().unwrap(),
        ],
    );
    assert!(res.status.success());
    assert!(n.path().join("hello.service").exists());
    assert_eq!(fs::read_dir(e.path()).unwrap().count(), 0);
    assert_eq!(fs::read_dir(l.path()).unwrap().count(), 0);
}

/// Exit 1 also when the units cannot be written, naming the directory; the
/// records themselves were fine.
#[test]
fn unwritable_output_exits_1() {
    let case = golden_dir().join("minimal/input");
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let res = run_generator(&case, &[file.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot write units to {}", file.display())),
        "{log}"
    );
}

/// A root with `n` first-wave records `recNNNN` (every third disabled).
fn many_records(n: usize) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("etc/syscontainer/containers");
    fs::create_dir_all(&d).unwrap();
    let text = fs::read_to_string(
        golden_dir().join("minimal/input/etc/syscontainer/containers/hello.json"),
    )
    .unwrap();
    for i in 0..n {
        let name = format!("rec{i:04}");
        let t = text
            .replace("\"hello\"", &format!("\"{name}\""))
            .replace("hello.0", &format!("{name}.0"))
            .replace("\"enabled\": true", &format!("\"enabled\": {}", i % 3 != 0));
        fs::write(d.join(format!("{name}.json")), t).unwrap();
    }
    root
}

/// The sections of a `--dry-run` output: (path, text) of each unit.
fn dry_run_units(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in s.split("# ===== ").skip(1) {
        let (head, body) = part.split_once(" =====\n").unwrap();
        if !head.contains(" -> ") {
            // the writer adds nothing: dry_run ends each unit with an empty line
            out.push((
                head.to_string(),
                body.strip_suffix('\n').unwrap().to_string(),
            ));
        }
    }
    out
}

/// Enough records that the units go through the generator's writing thread
/// (and this thread, when the writer is behind): the tree is what
/// `--dry-run` prints, file for file, and nothing else.
#[test]
fn many_records_are_written_as_dry_run_prints_them() {
    let root = many_records(300);
    let out = tempfile::tempdir().unwrap();
    let res = run_generator(root.path(), &[out.path().to_str().unwrap()]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let dry = run_generator(root.path(), &["--dry-run"]);
    let units = dry_run_units(&String::from_utf8(dry.stdout).unwrap());
    assert_eq!(units.len(), 302, "300 units and two drop-ins");
    for (path, text) in &units {
        assert_eq!(
            &fs::read_to_string(out.path().join(path)).unwrap(),
            text,
            "{path}"
        );
    }
    let tree = read_tree(out.path());
    assert_eq!(tree.len(), 302, "{:?}", tree.keys().collect::<Vec<_>>());
    let wants = wanted(out.path(), "multi-user.target");
    assert_eq!(wants.len(), 200);
    assert!(
        wants.contains(&"rec0001.service".to_string())
            && !wants.contains(&"rec0000.service".to_string())
    );
}

/// A unit that cannot be written (a directory is in its place) among many:
/// exit 1 naming the directory, and every other unit is written.
#[test]
fn a_failed_write_among_many_exits_1_and_writes_the_rest() {
    let root = many_records(300);
    let out = tempfile::tempdir().unwrap();
    fs::create_dir(out.path().join("rec0150.service")).unwrap();
    let res = run_generator(root.path(), &[out.path().to_str().unwrap()]);
    let log = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot write units to {}", out.path().display())),
        "{log}"
    );
    for i in (0..300).filter(|&i| i != 150) {
        assert!(
            out.path().join(format!("rec{i:04}.service")).is_file(),
            "rec{i:04}"
        );
    }
    assert!(out
        .path()
        .join("multi-user.target.d/syscontainer.conf")
        .is_file());
}
