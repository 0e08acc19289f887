//! Security review (issue 6), end to end through the `syscontainer` binary
//! on a temp root (`--root`), against a registry of our own on 127.0.0.1:
//!
//! - credentials (`--creds`, an auth file) never appear in stdout, stderr
//!   (with `-v`), `--json` output, records or any file under the root, both
//!   when the registry rejects them and when an install succeeds with them;
//! - `http:` and `--tls-verify=false` always warn, even with `-q`;
//! - `containers verify` finds a tampered deployment, and `images verify`
//!   finds an edit made through a deployment's hardlink.
//!
//! Needs root (bare OSTree repos store ownership) and runc (install checks
//! that the runtime exists).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

mod common;
use common::sha;

const USER: &str = "alice";
const PASSWORD: &str = "Pa55-w0rd-NEVER-PRINT";

/// A one-image registry: `img:latest`, a single uncompressed layer with
/// `/bin/sh` and a config whose Cmd runs it. With `password`, only Basic auth
/// with that password gets anything but 401.
struct Registry {
    port: u16,
    auths: Arc<Mutex<Vec<Option<String>>>>,
    /// The first line of every connection that sent one.
    requests: Arc<Mutex<Vec<String>>>,
}

fn image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data, mode) in [
        ("bin/sh", &b"#!/bin/true\n"[..], 0o755),
        ("etc/os-release", &b"ID=test\n"[..], 0o644),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        b.append_data(&mut h, p, data).unwrap();
    }
    let layer = b.into_inner().unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha(&layer)
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        sha(&config),
        config.len(),
        sha(&layer),
        layer.len()
    )
    .into_bytes();
    (manifest, config, layer)
}

impl Registry {
    fn start(password: &'static str) -> Registry {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let auths = Arc::new(Mutex::new(Vec::new()));
        let a2 = auths.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r2 = requests.clone();
        let (manifest, config, layer) = image();
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
        );
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                r2.lock().unwrap().push(line.clone());
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                a2.lock().unwrap().push(auth.clone());
                let (status, body): (&str, &[u8]) = if auth.as_deref() != Some(&want) {
                    ("401 Unauthorized", br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                } else if path == "/v2/" {
                    ("200 OK", b"{}")
                } else if path == "/v2/img/manifests/latest" {
                    ("200 OK", &manifest)
                } else if path.ends_with(&sha(&config)) {
                    ("200 OK", &config)
                } else if path.ends_with(&sha(&layer)) {
                    ("200 OK", &layer)
                } else {
                    ("404 Not Found", b"{}")
                };
                let mut w = conn;
                let _ = write!(
                    w,
                    "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nWWW-Authenticate: Basic realm=\"test\"\r\n\r\n",
                    body.len()
                );
                let _ = w.write_all(body);
            }
        });
        Registry {
            port,
            auths,
            requests,
        }
    }

    fn spec(&self) -> String {
        format!("http:127.0.0.1:{}/img", self.port)
    }
}

fn cli(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syscontainer"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SYSCONTAINER_ROOT")
        .env("HOME", root.join("home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env("ATOMIC_OSTREE_REPO", root.join("repo"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The secret in every form it could leak in: as given, and base64'd in a
/// Basic header.
fn forms(password: &str) -> Vec<String> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    vec![password.to_string(), b64(format!("{USER}:{password}"))]
}

fn assert_no_secret(what: &str, haystack: &[u8], password: &str) {
    let s = String::from_utf8_lossy(haystack);
    for f in forms(password) {
        assert!(!s.contains(&f), "{what} leaks the credentials ({f}):\n{s}");
    }
}

/// Every file under `root` except the repo's objects (layer content).
fn assert_no_secret_on_disk(root: &Path, password: &str) {
    let mut stack = vec![root.to_path_buf()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                if !p.ends_with("objects") {
                    stack.push(p);
                }
            } else if m.is_file() {
                n += 1;
                assert_no_secret(
                    &p.display().to_string(),
                    &std::fs::read(&p).unwrap(),
                    password,
                );
            }
        }
    }
    assert!(n > 0, "nothing on disk under {}", root.display());
}

#[test]
fn rejected_credentials_never_appear_in_any_output() {
    let reg = Registry::start("the-right-one");
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let creds = format!("{USER}:{PASSWORD}");
    for args in [
        vec!["-v", "pull", "--creds", &creds, &reg.spec()],
        vec!["-v", "pull", "--json", "--creds", &creds, &reg.spec()],
        vec![
            "-v",
            "install",
            "--name",
            "c",
            "--creds",
            &creds,
            &reg.spec(),
        ],
    ] {
        let o = cli(root, &args);
        let t = text(&o);
        // 1: an authentication failure is "any other failure".
        assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains("rejected the credentials"),
            "{args:?}: says why: {t}"
        );
        assert_no_secret(&format!("{args:?}"), &o.stdout, PASSWORD);
        assert_no_secret(&format!("{args:?}"), &o.stderr, PASSWORD);
    }
    // The same from an auth file.
    let authfile = root.join("auth.json");
    std::fs::write(
        &authfile,
        format!(
            r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"{}"}}}}}}"#,
            reg.port,
            forms(PASSWORD)[1]
        ),
    )
    .unwrap();
    let o = cli(
        root,
        &[
            "-v",
            "pull",
            "--authfile",
            authfile.to_str().unwrap(),
            &reg.spec(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("rejected the credentials"), "says why: {t}");
    assert_no_secret("pull --authfile", &o.stdout, PASSWORD);
    assert_no_secret("pull --authfile", &o.stderr, PASSWORD);
    std::fs::remove_file(&authfile).unwrap();
    // The registry did get them (so the test exercised the credential path).
    assert!(reg
        .auths
        .lock()
        .unwrap()
        .iter()
        .any(|a| a.as_deref().is_some_and(|a| a.starts_with("Basic "))));
    assert_no_secret_on_disk(root, PASSWORD);
}

#[test]
fn accepted_credentials_stay_out_of_records_json_and_files() {
    let reg = Registry::start(PASSWORD);
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let creds = format!("{USER}:{PASSWORD}");
    let mut outputs = Vec::new();
    let o = cli(
        root,
        &["-v", "pull", "--json", "--creds", &creds, &reg.spec()],
    );
    assert!(o.status.success(), "{}", text(&o));
    outputs.push(o);
    let o = cli(
        root,
        &[
            "-v",
            "install",
            "--name",
            "sec",
            "--creds",
            &creds,
            &reg.spec(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    outputs.push(o);
    for args in [
        &["images", "list", "--json"][..],
        &["images", "info", "127.0.0.1:{}/img"][..],
        &["containers", "list", "--all", "--json"][..],
        &["containers", "verify", "sec", "--json"][..],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{}", &reg.port.to_string()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        outputs.push(cli(root, &args));
    }
    for o in &outputs {
        assert_no_secret("output", &o.stdout, PASSWORD);
        assert_no_secret("output", &o.stderr, PASSWORD);
    }
    assert!(root.join("etc/syscontainer/containers/sec.json").is_file());
    assert_no_secret_on_disk(root, PASSWORD);
}

#[test]
fn insecure_transport_always_warns() {
    let reg = Registry::start(PASSWORD);
    let d = tempfile::tempdir().unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    let o = cli(d.path(), &["pull", "-q", "--creds", &creds, &reg.spec()]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "127.0.0.1:{}: using plain HTTP, without TLS",
            reg.port
        )),
        "-q must not hide it: {err}"
    );
    let o = cli(
        d.path(),
        &[
            "pull",
            "-q",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("127.0.0.1:{}/img", reg.port),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("TLS certificates are not verified"), "{err}");
    // The default: verification on, and no plain-HTTP fallback. The server
    // speaks only plain HTTP, so the TLS handshake fails (exit 1, "any other
    // failure"), the error names the https URL, and the server never sees an
    // HTTP request.
    let before = reg.requests.lock().unwrap().len();
    let o = cli(
        d.path(),
        &[
            "pull",
            "-q",
            "--creds",
            &creds,
            &format!("127.0.0.1:{}/img", reg.port),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "registry 127.0.0.1:{0}: request failed: https://127.0.0.1:{0}/v2/: Connection Failed: tls connection init failed",
            reg.port
        )),
        "{t}"
    );
    assert!(!t.contains("TLS certificates are not verified"), "{t}");
    assert!(!t.contains("plain HTTP"), "{t}");
    let http: Vec<String> = reg.requests.lock().unwrap()[before..]
        .iter()
        .filter(|l| l.starts_with("GET "))
        .cloned()
        .collect();
    assert!(http.is_empty(), "fell back to plain HTTP: {http:?}");
}

/// `containers verify` and `images verify` through the CLI: a clean install
/// verifies; an in-place edit through the hardlink fails both; a replaced
/// file only fails `containers verify`. Exit code 1 on a difference.
#[test]
fn verify_commands_find_tampering() {
    let reg = Registry::start(PASSWORD);
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let creds = format!("{USER}:{PASSWORD}");
    let o = cli(
        root,
        &["install", "--name", "v", "--creds", &creds, &reg.spec()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let image = format!("127.0.0.1:{}/img", reg.port);
    let o = cli(root, &["containers", "verify", "v"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0 modified, 0 added, 0 missing"),
        "{}",
        text(&o)
    );
    assert!(cli(root, &["images", "verify", &image]).status.success());

    let rootfs = root.join("var/lib/containers/atomic/v.0/rootfs");
    // Replace a file (new inode): the repo is intact, the deployment is not.
    std::fs::write(rootfs.join("etc/os-release.tmp"), b"ID=evil\n").unwrap();
    std::fs::rename(
        rootfs.join("etc/os-release.tmp"),
        rootfs.join("etc/os-release"),
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/added"), b"x").unwrap();
    let o = cli(root, &["containers", "verify", "v", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["modified"], serde_json::json!(["etc/os-release"]));
    assert_eq!(v["added"], serde_json::json!(["etc/added"]));
    assert_eq!(v["missing"], serde_json::json!([]));
    assert!(cli(root, &["images", "verify", &image]).status.success());

    // Edit in place, through the hardlink: the repo object changes too.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(rootfs.join("bin/sh"))
        .unwrap();
    f.write_all(b"echo pwned\n").unwrap();
    drop(f);
    let o = cli(root, &["images", "verify", &image]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("CORRUPT"), "{}", text(&o));
    let o = cli(root, &["containers", "verify", "v"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("modified: /bin/sh"), "{}", text(&o));
}
