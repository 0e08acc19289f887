//! The settings of the three binaries (issue 10, "Settings"): each one's
//! `--help` names exactly the variables it reads, and `SYSCONTAINER_LOG` means
//! the same in all three: `stderr,debug` logs debug messages to stderr, and an
//! unknown token is ignored with one warning on stderr, the same words in
//! every binary, while the rest of the value still applies.
//!
//! Every run has a cleared environment, on a temp root holding a broken
//! record: each binary then has something to log at warn or error level.
//!
//! And the CLI's settings reach the library: the import limits, `DOCKER_HOST`,
//! the auth files and the checkout method, which the library used to read
//! for itself.
//! Needs root (bare OSTree repos store ownership).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{sibling, tar_header, BIN};

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
            "MAINPID",
            "NOTIFY_SOCKET",
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

// The CLI's settings reach the library: each variable that the library used
// to read for itself changes what a command does.

/// A docker-archive of `example.com/env:1` at `path`: one layer with
/// `/bin/sh`, `/etc/motd` and a symlink `/bin/link -> sh`.
fn archive(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in [("bin/sh", &b"#!/bin/true\n"[..]), ("etc/motd", b"hi\n")] {
        b.append_data(&mut tar_header(data.len(), 0o755), p, data)
            .unwrap();
    }
    let mut h = tar_header(0, 0o777);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, "bin/link", "sh").unwrap();
    let layer = b.into_inner().unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        hex::encode(Sha256::digest(&layer))
    );
    let manifest =
        r#"[{"Config":"config.json","RepoTags":["example.com/env:1"],"Layers":["layer.tar"]}]"#;
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (p, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", config.as_bytes()),
        ("layer.tar", &layer),
    ] {
        b.append_data(&mut tar_header(data.len(), 0o644), p, data)
            .unwrap();
    }
    b.finish().unwrap();
    format!("dockertar:{}", path.display())
}

/// The CLI on `root` with only `vars` set.
fn cli(root: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("SYSCONTAINER_ROOT", root)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn expect(o: &Output, code: i32, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(err.contains(what), "stderr does not say '{what}': {err}");
}

#[test]
fn import_limits_docker_host_and_auth_files_reach_the_pull() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let src = archive(&r.join("env.tar"));
    expect(
        &cli(
            r,
            &[("SYSCONTAINER_MAX_LAYER_ENTRIES", "2")],
            &["pull", "-q", &src],
        ),
        3,
        "the layer has more than 2 entries",
    );
    expect(
        &cli(
            r,
            &[("SYSCONTAINER_MAX_LAYER_BYTES", "4")],
            &["pull", "-q", &src],
        ),
        3,
        "over the limit of 4 bytes",
    );
    expect(
        &cli(
            r,
            &[("DOCKER_HOST", "tcp://192.0.2.1:2375")],
            &["pull", "docker:x"],
        ),
        3,
        "DOCKER_HOST='tcp://192.0.2.1:2375' is not supported",
    );
    // The auth files come from HOME and XDG_RUNTIME_DIR (a broken one is
    // named before the registry is asked anything).
    for (var, file) in [
        ("HOME", ".docker/config.json"),
        ("XDG_RUNTIME_DIR", "containers/auth.json"),
    ] {
        let dir = r.join(var);
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "{").unwrap();
        expect(
            &cli(
                r,
                &[(var, dir.to_str().unwrap())],
                &["pull", "-q", "http:127.0.0.1:9/x:1"],
            ),
            3,
            &format!("auth file {}: invalid JSON", path.display()),
        );
    }
    // Without them, the same pull works.
    expect(&cli(r, &[], &["pull", "-q", &src]), 0, "");
}

fn nlink(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .nlink()
}

#[test]
fn the_checkout_method_reaches_install() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let src = archive(&r.join("env.tar"));
    expect(&cli(r, &[], &["pull", "-q", &src]), 0, "");
    let link = |name: &str| {
        r.join(format!(
            "var/lib/containers/atomic/{name}.0/rootfs/bin/link"
        ))
    };
    // Ours creates symlinks; libostree's hardlinks them to the repo object.
    let no_start = ["--no-enable"];
    let install = |name: &str, vars: &[(&str, &str)]| {
        let args = [
            &["install", "--name", name][..],
            &no_start,
            &["example.com/env:1"],
        ]
        .concat();
        expect(&cli(r, vars, &args), 0, "");
    };
    install("ours", &[]);
    install("theirs", &[("SYSCONTAINER_CHECKOUT", "libostree")]);
    assert_eq!(nlink(&link("ours")), 1);
    assert!(
        nlink(&link("theirs")) > 1,
        "libostree's checkout was not used"
    );
}
