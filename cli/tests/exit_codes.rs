//! The documented exit codes of `syscontainer` (issue 9, item 7), through the
//! real binary on a temp root: 0 success, 1 any other failure, 2 usage,
//! 3 invalid input (a hostile layer, a bad template or value), 4 image or
//! deployment missing. Each case checks the code and what the message says.
//!
//! Images are docker-archives built here with the `tar` crate. Needs root
//! (bare OSTree repos store ownership) and runc (install checks that the
//! runtime exists).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{sha, tar_header};

/// A layer with `/bin/sh` plus `extra` files; `raw_name` adds an entry
/// whose name is written into the header as is (the `tar` crate refuses
/// `..` through its API).
fn layer(extra: &[(&str, &[u8])], raw_name: Option<&[u8]>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let files = [("bin/sh", &b"#!/bin/true\n"[..])];
    for (p, data) in files.iter().chain(extra) {
        b.append_data(&mut tar_header(data.len(), 0o755), p, *data)
            .unwrap();
    }
    if let Some(name) = raw_name {
        let mut h = tar_header(4, 0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The image config of an image of one `layer`; its digest is the image ID.
fn config(layer: &[u8]) -> String {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha(layer)
    )
}

/// A docker-archive of one image `tag` with `layer`, at `path`.
fn archive(path: &Path, tag: &str, layer: &[u8]) -> String {
    let config = config(layer);
    let manifest =
        format!(r#"[{{"Config":"config.json","RepoTags":["{tag}"],"Layers":["layer.tar"]}}]"#);
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (p, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", config.as_bytes()),
        ("layer.tar", layer),
    ] {
        b.append_data(&mut tar_header(data.len(), 0o644), p, data)
            .unwrap();
    }
    b.finish().unwrap();
    format!("dockertar:{}", path.display())
}

/// `repo` is resolved under `root`, as every path is.
fn cli_env(root: &Path, repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syscontainer"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SYSCONTAINER_ROOT")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .env("HOME", root.join("home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env("ATOMIC_OSTREE_REPO", repo)
        .output()
        .unwrap()
}

fn cli(root: &Path, args: &[&str]) -> Output {
    cli_env(root, Path::new("/repo"), args)
}

/// Assert the exit code, and that stderr says `what`.
#[track_caller]
fn expect(o: &Output, code: i32, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code} ({what}); stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(what), "stderr does not say '{what}': {err}");
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    good: String,
}

/// A temp root with the image `example.com/good:1` pulled.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let good = archive(
        &root.join("good.tar"),
        "example.com/good:1",
        &layer(&[], None),
    );
    let o = cli(&root, &["pull", "-q", &good]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    Fixture {
        _dir: dir,
        root,
        good: "example.com/good:1".into(),
    }
}

/// A registry on 127.0.0.1 that knows no image: `/v2/` answers, every
/// manifest is 404 (MANIFEST_UNKNOWN), as a real registry answers.
fn empty_registry() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let (status, body): (&str, &[u8]) = if line.starts_with("GET /v2/ ") {
                ("200 OK", b"{}")
            } else {
                (
                    "404 Not Found",
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                )
            };
            let mut w = conn;
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = w.write_all(body);
        }
    });
    port
}

#[test]
fn usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    expect(
        &cli(d.path(), &["frobnicate"]),
        2,
        "unrecognized subcommand",
    );
    expect(&cli(d.path(), &["install"]), 2, "<IMAGE>");
    expect(
        &cli(
            d.path(),
            &["containers", "update", "--all", "--rebase", "x"],
        ),
        2,
        "cannot be used with",
    );
    expect(
        &cli(d.path(), &["pull", "--speed-limit", "fast", "x"]),
        2,
        "invalid value 'fast' for '--speed-limit <BYTES>'",
    );
    // The low-speed limit is settable wherever a pull happens.
    for sub in [&["pull"][..], &["install"], &["containers", "update"]] {
        let o = cli(d.path(), &[sub, &["--help"]].concat());
        let help = String::from_utf8_lossy(&o.stdout);
        for want in [
            "--speed-limit <BYTES>",
            "SYSCONTAINER_SPEED_LIMIT",
            "--speed-time <SECS>",
            "SYSCONTAINER_SPEED_TIME",
        ] {
            assert!(help.contains(want), "{sub:?} --help lacks {want}: {help}");
        }
    }
    // --help documents every code.
    let o = cli(d.path(), &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for c in [
        "0  success",
        "1  any other",
        "2  usage",
        "3  invalid",
        "4  image",
    ] {
        assert!(help.contains(c), "--help lacks '{c}': {help}");
    }
}

#[test]
fn invalid_input_exits_3() {
    let f = fixture();
    let root = &f.root;
    // A hostile layer: refused at pull, naming the entry.
    let hostile = archive(
        &root.join("hostile.tar"),
        "example.com/hostile:1",
        &layer(&[], Some(b"../escape")),
    );
    expect(
        &cli(root, &["pull", "-q", &hostile]),
        3,
        "layer entry '../escape' has a '..' path component",
    );
    // A template with a variable that has no value.
    let bad = archive(
        &root.join("badtemplate.tar"),
        "example.com/badtemplate:1",
        &layer(
            &[(
                "exports/config.json.template",
                br#"{"ociVersion":"1.0.0","process":{"args":["$NOSUCHVAR"]},"root":{"path":"rootfs","readonly":true}}"#,
            )],
            None,
        ),
    );
    expect(
        &cli(root, &["install", "--name", "bad", &bad]),
        3,
        "still contains an unreplaced value for: 'NOSUCHVAR'",
    );
    // A --set value with a newline; a --set of a fixed variable; a bad name.
    expect(
        &cli(
            root,
            &[
                "install",
                "--set",
                "PORT=80\nExecStartPre=/bin/evil",
                &f.good,
            ],
        ),
        3,
        "the value of 'PORT' contains a control character",
    );
    expect(
        &cli(root, &["install", "--set", "NAME=x", &f.good]),
        3,
        "'NAME' is set by syscontainer",
    );
    expect(
        &cli(root, &["install", "--name", "../x", &f.good]),
        3,
        "invalid container name '../x'",
    );
    // A malformed image reference.
    expect(
        &cli(root, &["pull", "-q", "http:127.0.0.1:1/UPPER//case"]),
        3,
        "invalid image reference",
    );
    // Nothing of the refused installs is left.
    assert!(!root.join("etc/syscontainer/containers/bad.json").exists());
}

/// An image ID prefix that two images share is refused, naming the prefix
/// and both IDs, and deletes nothing. The images are pulled one by one until
/// two IDs (config digests) share their first hex digit.
#[test]
fn ambiguous_image_id_exits_3() {
    let f = fixture();
    let root = &f.root;
    let mut ids = vec![sha(config(&layer(&[], None)).as_bytes())];
    let (a, b) = 'found: {
        for n in 0..16 {
            let l = layer(&[("etc/n", n.to_string().as_bytes())], None);
            let spec = archive(
                &root.join(format!("amb{n}.tar")),
                &format!("example.com/amb{n}:1"),
                &l,
            );
            let o = cli(root, &["pull", "-q", &spec]);
            assert_eq!(o.status.code(), Some(0), "{o:?}");
            let id = sha(config(&l).as_bytes());
            if let Some(other) = ids.iter().find(|i| i[7..8] == id[7..8]) {
                break 'found (other.clone(), id);
            }
            ids.push(id);
        }
        unreachable!("17 IDs over 16 hex digits: two share the first");
    };
    let shared = a[7..]
        .bytes()
        .zip(b[7..].bytes())
        .take_while(|(x, y)| x == y)
        .count();
    let prefix = &a[7..7 + shared];
    let matches = if a < b {
        format!("{a}, {b}")
    } else {
        format!("{b}, {a}")
    };
    for args in [
        &["images", "info", prefix][..],
        &["images", "delete", prefix],
        // Not pulled as docker.io/library/PREFIX (no network here: that
        // would fail differently, exit 1).
        &["install", "--name", "amb", prefix],
    ] {
        expect(
            &cli(root, args),
            3,
            &format!("image ID prefix '{prefix}' is ambiguous: {matches}"),
        );
    }
    assert!(
        !root.join("etc/syscontainer/containers/amb.json").exists(),
        "no record for the refused install"
    );
    // Both are still there, and each is found by one digit more.
    for id in [&a, &b] {
        let o = cli(root, &["images", "info", &id[7..8 + shared]]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(&format!("({id})")), "{out}");
    }
}

#[test]
fn missing_image_or_deployment_exits_4() {
    let f = fixture();
    let root = &f.root;
    for (args, what) in [
        (
            &["uninstall", "nosuch"][..],
            "container 'nosuch' is not installed",
        ),
        (
            &["containers", "update", "nosuch"][..],
            "container 'nosuch' is not installed",
        ),
        (
            &["containers", "rollback", "nosuch"][..],
            "container 'nosuch' is not installed",
        ),
        (
            &["containers", "verify", "nosuch"][..],
            "'nosuch' is not installed",
        ),
        (&["enable", "nosuch"][..], "'nosuch' is not installed"),
        (
            &["images", "delete", "example.com/nosuch:1"][..],
            "image 'example.com/nosuch:1' not found in the store",
        ),
        (
            &["images", "info", "nosuch"][..],
            "image 'nosuch' not found",
        ),
        (
            &["install", "--name", "x", "dockertar:/nonexistent/x.tar"][..],
            "/nonexistent/x.tar",
        ),
        (
            &[
                "install",
                "--runtime",
                "/nonexistent/runc",
                "example.com/good:1",
            ][..],
            "the runtime '/nonexistent/runc' is not installed",
        ),
    ] {
        expect(&cli(root, args), 4, what);
    }
    // An image the registry does not have: install pulls it first.
    let port = empty_registry();
    let spec = format!("http:127.0.0.1:{port}/nosuch:1");
    expect(&cli(root, &["install", &spec]), 4, "MANIFEST_UNKNOWN");
    expect(&cli(root, &["pull", "-q", &spec]), 4, "not found");
    // Installed, but with no other deployment to roll back to.
    let o = cli(root, &["install", "--name", "one", &f.good]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    expect(
        &cli(root, &["containers", "rollback", "one"]),
        4,
        "container 'one' has no other deployment",
    );
}

#[test]
fn other_failures_exit_1() {
    let f = fixture();
    let root = &f.root;
    // Already installed.
    let o = cli(root, &["install", "--name", "twice", &f.good]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    expect(
        &cli(root, &["install", "--name", "twice", &f.good]),
        1,
        "container 'twice' is already present",
    );
    // The repo cannot be created (its parent is a regular file).
    std::fs::write(root.join("plainfile"), b"").unwrap();
    let o = cli_env(root, Path::new("/plainfile/repo"), &["images", "list"]);
    expect(&o, 1, "cannot create directory");
    // Nothing listens on the registry's port: a network failure.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    expect(
        &cli(
            root,
            &["pull", "-q", &format!("http:127.0.0.1:{port}/img:1")],
        ),
        1,
        "request failed",
    );
}
