//! `syscontainer-exec` with real runc on the host (no systemd): install a
//! busybox container, run it, stop it, clean up. Fails loudly when runc or
//! busybox is missing, or when not root.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{exports_dir, test_image, uniq, FixtureSource};
use syscontainer::deploy::{self, InstallOptions};
use syscontainer::paths::{self, Root};
use syscontainer::record::Record;

const HELPER: &str = env!("CARGO_BIN_EXE_syscontainer-exec");

fn require_runc() {
    assert!(
        Path::new(paths::DEFAULT_RUNTIME).is_file(),
        "runc is required at {} (apt-get install runc)",
        paths::DEFAULT_RUNTIME
    );
    assert!(nix_is_root(), "these tests run runc and must run as root");
}

fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn helper(root: &Root, args: &[&str]) -> Output {
    Command::new(HELPER)
        .args(args)
        .env("SYSCONTAINER_ROOT", root.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn runc_state(name: &str) -> Option<String> {
    let out = Command::new(paths::DEFAULT_RUNTIME)
        .args(["state", name])
        .output()
        .unwrap();
    out.status.success().then(|| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"].as_str().unwrap().to_string()
    })
}

fn runc_pid(name: &str) -> Option<u64> {
    let out = Command::new(paths::DEFAULT_RUNTIME)
        .args(["state", name])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["pid"].as_u64().filter(|p| *p > 0)
}

fn install(root: &Root, src: &FixtureSource, image: &str, name: &str, set: &[&str]) -> Record {
    let o = InstallOptions {
        name: Some(name.into()),
        set: set.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    deploy::install(root, src, image, &o).unwrap()
}

#[test]
fn run_renders_env_args_and_tmpfiles() {
    require_runc();
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("hello", 1, Some(&test_image("system-container-files")));
    let name = uniq("run");
    let rec = install(&root, &src, "hello", &name, &["RECEIVER=Tester"]);

    let out = helper(&root, &["run", &name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!(
            "ran: PORT=8081 RECEIVER=Tester NAME={name} UUID={}",
            rec.uuid
        )),
        "{stdout}\n{stderr}"
    );
    // tmpfiles.template (D ${RUN_DIRECTORY}/${NAME} 0700) was applied, and the
    // container wrote through its bind mount.
    let rundir = root.join(format!("/run/{name}"));
    let meta = fs::metadata(&rundir).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o700
    );
    assert_eq!(
        fs::read_to_string(rundir.join("ran")).unwrap(),
        "8081 Tester\n"
    );
    // The bundle: absolute read-only root, no cgroup outside a unit.
    let bundle = root.join(format!("/run/syscontainer/bundle/{name}"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["root"]["path"],
        root.join(&rec.deployment)
            .join("rootfs")
            .display()
            .to_string()
    );
    assert_eq!(cfg["root"]["readonly"], true);
    assert!(cfg["linux"].get("cgroupsPath").is_none());

    let out = helper(&root, &["cleanup", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bundle.exists());
    assert_eq!(runc_state(&name), None);
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stop_cleanup_and_stale_state() {
    require_runc();
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    let tmpl =
        fs::read_to_string(test_image("system-container-files").join("config.json.template"))
            .unwrap()
            .replace("\"TERM=xterm\"", "\"TERM=xterm\", \"SLEEP=$SLEEP\"");
    let exports = exports_dir(
        &d.path().join("exports"),
        &[
            ("config.json.template", &tmpl),
            (
                "manifest.json",
                r#"{"version":"1.0","defaultValues":{"PORT":"1","RECEIVER":"r","SLEEP":"0"}}"#,
            ),
        ],
    );
    src.add("sleeper", 1, Some(&exports));
    let name = uniq("stop");
    install(&root, &src, "sleeper", &name, &["SLEEP=forever"]);

    // run in the background; stop sends TERM and waits.
    let child = Command::new(HELPER)
        .args(["run", &name])
        .env("SYSCONTAINER_ROOT", root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the container to run", || {
        runc_state(&name).as_deref() == Some("running")
    });
    let out = helper(&root, &["stop", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("got TERM"), "{stdout}");
    assert!(out.status.success());

    // A crashed runc leaves state behind; run clears it, cleanup deletes it.
    let mut child = Command::new(HELPER)
        .args(["run", &name])
        .env("SYSCONTAINER_ROOT", root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the container to run", || {
        runc_state(&name).as_deref() == Some("running")
    });
    child.kill().unwrap(); // SIGKILL to runc: the container and its state remain
    child.wait().unwrap();
    assert_eq!(runc_state(&name).as_deref(), Some("running"));
    let old_pid = runc_pid(&name).unwrap();
    let child = Command::new(HELPER)
        .args(["run", &name])
        .env("SYSCONTAINER_ROOT", root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the new container to run", || {
        runc_state(&name).as_deref() == Some("running")
            && runc_pid(&name).is_some_and(|p| p != old_pid)
    });
    let out = helper(&root, &["cleanup", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(runc_state(&name), None);
    assert!(!Path::new(paths::RUNC_STATE).join(&name).exists());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("removing stale runtime state"), "{stderr}");
    assert!(
        !Path::new(&format!("/proc/{old_pid}")).exists() || {
            // The pid may be reused; it must not be the old container's init.
            fs::read_to_string(format!("/proc/{old_pid}/cmdline"))
                .map_or(true, |c| !c.contains("sleep"))
        }
    );
    // stop and cleanup of a container that is not running are no-ops.
    assert!(helper(&root, &["stop", &name]).status.success());
    assert!(helper(&root, &["cleanup", &name]).status.success());
}

#[test]
fn documented_exit_codes() {
    require_runc();
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("hello", 1, Some(&test_image("system-container-files")));
    let name = uniq("codes");
    let rec = install(&root, &src, "hello", &name, &[]);

    // Deployment missing on disk: 4, with a message naming it.
    fs::remove_dir_all(root.join(&rec.deployment)).unwrap();
    let out = helper(&root, &["run", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.starts_with("<3>"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the deployment {} of container '{name}' is missing",
            rec.deployment
        )),
        "{stderr}"
    );
    // No record: 4.
    let out = helper(&root, &["run", "not-installed"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'not-installed' is not installed"));
    // Invalid record: 3.
    let p = root.join(paths::record_path("broken"));
    fs::write(&p, "{not json").unwrap();
    let out = helper(&root, &["run", "broken"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.json"));
    // Invalid config (read-only root required): 3, naming the file.
    let mut r2 = rec.clone();
    r2.name = "rw".into();
    r2.deployment = "/var/lib/containers/atomic/rw.0".into();
    r2.write(&root).unwrap();
    let rootfs = root.join(&r2.deployment).join("rootfs");
    fs::create_dir_all(rootfs.parent().unwrap()).unwrap();
    common::busybox_rootfs(&rootfs, Some(&test_image("system-container-runonce-files")));
    let out = helper(&root, &["run", "rw"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("config.json.template") && stderr.contains("read-only"),
        "{stderr}"
    );
    // Runtime missing: 4.
    let mut r3 = r2.clone();
    r3.name = "nort".into();
    r3.runtime = "/nonexistent/runc".into();
    r3.write(&root).unwrap();
    let out = helper(&root, &["run", "nort"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not installed"));
    // The runtime fails (`cleanup` deletes its state): 5, with its stderr.
    let failing = root.join("/usr/local/bin/failing-runtime");
    fs::create_dir_all(failing.parent().unwrap()).unwrap();
    fs::write(
        &failing,
        "#!/bin/sh\necho \"runtime says no to $1\" >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(
        &failing,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut r4 = rec.clone();
    r4.name = "rtfail".into();
    r4.runtime = failing.display().to_string();
    r4.write(&root).unwrap();
    let out = helper(&root, &["cleanup", "rtfail"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("failing-runtime delete -f rtfail failed")
            && stderr.contains("runtime says no to delete"),
        "{stderr}"
    );
    // Usage: 2; --help documents the codes.
    for args in [&["run"][..], &["frob", "x"][..]] {
        let out = helper(&root, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: syscontainer-exec"));
    }
    let out = helper(&root, &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for code in [
        "2  usage",
        "3  invalid",
        "4  record, deployment",
        "5  runtime",
    ] {
        assert!(help.contains(code), "{help}");
    }
    // A hostile name never reaches a path.
    let out = helper(&root, &["cleanup", "../x"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid container name '../x'"));
}
