//! `syscontainer auto-update` against a real registry (Debian's
//! docker-registry through tests/fixtures/registry.sh, plain HTTP), on a
//! temp root without systemd (the health gate is the system test's:
//! tests/system/test-auto-update.sh). The registry's access log counts the
//! requests: a run that finds nothing new makes one manifest request per
//! opted-in container and fetches no blob.
//!
//! Needs root, the fixture images (tests/fixtures/make-images.sh), and the
//! registry's Debian packages (registry.sh deps).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    std::env::var_os("SYSCONTAINER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp/syscontainer-fixtures".into())
}

struct Registry {
    dir: PathBuf,
    host: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(repo_dir().join("tests/fixtures/registry.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let out = Command::new(repo_dir().join("tests/fixtures/registry.sh"))
            .args(["start"])
            .arg(dir)
            .arg("plain")
            .output()
            .expect("tests/fixtures/registry.sh");
        assert!(
            out.status.success(),
            "the registry did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout);
        let host = env
            .lines()
            .find_map(|l| l.strip_prefix("REGISTRY="))
            .expect("REGISTRY= line")
            .to_string();
        Registry {
            dir: dir.to_path_buf(),
            host,
        }
    }

    /// Push the fixture `image` as `sctest/hello:latest`.
    fn push(&self, image: &str) {
        let tar = fixtures().join(format!("{image}.tar"));
        assert!(
            tar.is_file(),
            "{} missing: run tests/fixtures/make-images.sh",
            tar.display()
        );
        let st = Command::new(repo_dir().join("tests/fixtures/registry.sh"))
            .arg("push")
            .arg(&self.dir)
            .arg(&tar)
            .arg("sctest/hello:latest")
            .status()
            .unwrap();
        assert!(st.success(), "push {image}");
    }

    /// Requests so far whose request line contains `what`.
    fn count(&self, what: &str) -> usize {
        std::fs::read_to_string(self.dir.join("registry.log"))
            .unwrap()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    }

    fn manifest_gets(&self) -> usize {
        self.count("\"GET /v2/sctest/hello/manifests/")
    }

    fn blob_gets(&self) -> usize {
        self.count("\"GET /v2/sctest/hello/blobs/")
    }

    /// The digest of the manifest the tag names, from the registry itself
    /// (skopeo), not from the code under test.
    fn digest(&self) -> String {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{}/sctest/hello:latest", self.host))
            .output()
            .unwrap();
        assert!(out.status.success());
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&out.stdout)))
    }
}

fn sc(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syscontainer"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SYSCONTAINER_ROOT")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .env_remove("ATOMIC_OSTREE_REPO")
        .env("HOME", root.join("home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `auto-update --json`: the rows, and the exit code.
fn auto_update(root: &Path, extra: &[&str]) -> (Vec<serde_json::Value>, Option<i32>, String) {
    let mut args = vec!["auto-update", "--tls-verify=false", "--json"];
    args.extend(extra);
    let o = sc(root, &args);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (
        rows.as_array().unwrap().clone(),
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The deployed record: in syscontainer's state.
fn record(root: &Path, name: &str) -> serde_json::Value {
    let p = root.join(format!("etc/syscontainer/state/{name}.json"));
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    st["record"].clone()
}

fn state(root: &Path) -> Option<serde_json::Value> {
    let p = root.join("var/lib/syscontainer/auto-update.json");
    std::fs::read(p)
        .ok()
        .map(|t| serde_json::from_slice(&t).unwrap())
}

#[test]
fn auto_update_checks_pends_skips_failed_digests_and_updates() {
    let d = tempfile::tempdir().unwrap();
    let reg = Registry::start(&d.path().join("reg"));
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    reg.push("hello");
    let v1 = reg.digest();
    let image = format!("{}/sctest/hello:latest", reg.host);
    let pull = format!("http:{image}");
    ok(&sc(
        &root,
        &[
            "install",
            "--auto-update",
            "registry",
            "--name",
            "web",
            &pull,
        ],
    ));
    // Not opted in: never asked about.
    ok(&sc(&root, &["install", "--name", "manual", &image]));
    assert_eq!(record(&root, "web")["auto_update"], "registry");
    assert!(record(&root, "manual").get("auto_update").is_none());
    let id1 = record(&root, "web")["image_id"].clone();

    // 1. Nothing new: unchanged, one manifest request, no blob.
    let (m0, b0) = (reg.manifest_gets(), reg.blob_gets());
    let (rows, code, err) = auto_update(&root, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["unit"], "web.service");
    assert_eq!(rows[0]["image"], image.as_str());
    assert_eq!(rows[0]["result"], "unchanged");
    assert_eq!(rows[0]["old_digest"], v1.as_str());
    assert_eq!(rows[0]["new_digest"], v1.as_str());
    assert_eq!(reg.manifest_gets() - m0, 1, "one manifest request");
    assert_eq!(reg.blob_gets(), b0, "no blob fetched");
    // Installed from an `http:` reference: asked over plain HTTP again, with
    // no flag (as the timer's service runs it), and the intent file keeps
    // the prefix.
    assert_eq!(record(&root, "web")["plain_http"], true);
    assert!(record(&root, "manual").get("plain_http").is_none());
    let intent: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("etc/syscontainer/containers/web.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(intent["image"], pull.as_str());
    let o = sc(&root, &["auto-update", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows[0]["result"], "unchanged", "{rows}");
    // The plain-text form: one line, unit, image, result, short digests.
    let text = ok(&sc(&root, &["auto-update", "--tls-verify=false"]));
    let short1 = &v1["sha256:".len()..][..12];
    assert_eq!(text.lines().count(), 1, "{text}");
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "web.service",
            image.as_str(),
            "unchanged",
            short1,
            "->",
            short1
        ],
        "{text}"
    );

    // 2. The tag moves to an image whose template cannot render without
    // RECEIVER: --dry-run says pending and changes nothing.
    reg.push("hello-noreceiver");
    let bad = reg.digest();
    assert_ne!(bad, v1);
    let (m0, b0) = (reg.manifest_gets(), reg.blob_gets());
    let (rows, code, err) = auto_update(&root, &["--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows[0]["result"], "pending");
    assert_eq!(rows[0]["old_digest"], v1.as_str());
    assert_eq!(rows[0]["new_digest"], bad.as_str());
    assert_eq!(reg.manifest_gets() - m0, 1);
    assert_eq!(reg.blob_gets(), b0, "--dry-run pulls nothing");
    assert_eq!(record(&root, "web")["image_id"], id1);
    assert_eq!(state(&root), None, "--dry-run writes no state");

    // 3. The real run: the update fails (exit 1), the digest is marked.
    let (rows, code, _) = auto_update(&root, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(rows[0]["result"], "failed");
    assert!(
        rows[0]["error"].as_str().unwrap().contains("RECEIVER"),
        "{rows:?}"
    );
    assert_eq!(record(&root, "web")["image_id"], id1, "still on version 1");
    let st = state(&root).expect("state written");
    assert_eq!(st["containers"]["web"]["failed"]["digest"], bad.as_str());

    // 4. The next run does not retry it: one manifest request, no pull.
    let (m0, b0) = (reg.manifest_gets(), reg.blob_gets());
    let (rows, code, err) = auto_update(&root, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows[0]["result"], "skipped");
    assert_eq!(rows[0]["new_digest"], bad.as_str());
    assert_eq!(reg.manifest_gets() - m0, 1);
    assert_eq!(reg.blob_gets(), b0);

    // 5. The tag moves on: updated into the other slot, opt-in kept.
    reg.push("hello-v2");
    let v2 = reg.digest();
    let (rows, code, err) = auto_update(&root, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows[0]["result"], "updated", "{rows:?}");
    assert_eq!(rows[0]["old_digest"], v1.as_str());
    assert_eq!(rows[0]["new_digest"], v2.as_str());
    let rec = record(&root, "web");
    assert_ne!(rec["image_id"], id1);
    assert!(
        rec["deployment"].as_str().unwrap().ends_with("/web.1"),
        "{rec}"
    );
    assert_eq!(rec["auto_update"], "registry", "kept by the update");
    let st = state(&root).unwrap();
    assert!(st["containers"]["web"].get("failed").is_none(), "{st}");
    assert_eq!(st["containers"]["web"]["deployed"]["digest"], v2.as_str());

    // 6. And then nothing new again.
    let m0 = reg.manifest_gets();
    let (rows, code, err) = auto_update(&root, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows[0]["result"], "unchanged");
    assert_eq!(rows[0]["old_digest"], v2.as_str());
    assert_eq!(reg.manifest_gets() - m0, 1);
}

#[test]
fn an_unknown_policy_names_the_record() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let dir = root.join("etc/syscontainer/containers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("web.json"),
        r#"{"version":1,"name":"web","image":"example.com/x:1","image_id":"sha256:00","deployment":"/d","auto_update":"always"}"#,
    )
    .unwrap();
    let o = sc(root, &["containers", "update", "web"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("/etc/syscontainer/containers/web.json")
            && err.contains("auto_update 'always'"),
        "{err}"
    );
    // auto-update warns about it and goes on with nothing to do.
    let o = sc(root, &["auto-update"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("auto_update 'always'"), "{err}");
}
