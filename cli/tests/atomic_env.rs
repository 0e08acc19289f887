//! atomic's environment contract (issue 9, item 4), end to end through the
//! real binaries on a temp root: with `ATOMIC_OSTREE_CHECKOUT_PATH` set,
//! pull, install, `containers list --json`, `containers verify`, the
//! generator, `syscontainer-exec run` (real runc), update, rollback and
//! uninstall all work in that directory, and nothing is created under the
//! default checkout root or the default repo. Commands that do not need the
//! store (rollback, list, uninstall) follow the record even when run without
//! the variable.
//!
//! Needs root and runc (as exec-helper/tests/run.rs), and the cheap test
//! images (`tests/fixtures/make-images.sh`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use syscontainer::paths::{self, Root};
use syscontainer::record::Record;

mod common;
use common::{sibling, BIN};
/// The checkout root the test installs into (a logical path, under the root).
const CO: &str = "/srv/sc-checkouts";

fn fixture(name: &str) -> String {
    let f = PathBuf::from(
        std::env::var("SYSCONTAINER_FIXTURES")
            .unwrap_or_else(|_| "/var/tmp/syscontainer-fixtures".into()),
    );
    let t = f.join(format!("{name}.tar"));
    assert!(
        t.is_file(),
        "{} is missing: run tests/fixtures/make-images.sh",
        t.display()
    );
    format!("dockertar:{}", t.display())
}

fn require_root_and_runc() {
    assert!(
        Path::new(paths::DEFAULT_RUNTIME).is_file(),
        "runc is required at {} (apt-get install runc)",
        paths::DEFAULT_RUNTIME
    );
    let uid = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().map(str::to_string))
        })
        .flatten();
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "this test runs runc and must run as root"
    );
}

/// A command on the temp root; `checkout` sets ATOMIC_OSTREE_CHECKOUT_PATH.
fn cmd(bin: &Path, root: &Root, checkout: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(bin);
    c.args(args)
        .env(paths::ROOT_ENV, root.path())
        .env("SYSCONTAINER_LOG", "stderr")
        .env_remove(paths::ENV_OSTREE_REPO)
        .env_remove(paths::ENV_CHECKOUT_PATH)
        .env_remove(syscontainer::failpoint::ENV)
        .stdin(Stdio::null());
    if let Some(co) = checkout {
        c.env(paths::ENV_CHECKOUT_PATH, co);
    }
    c.output().unwrap()
}

fn ok(bin: &Path, root: &Root, checkout: Option<&str>, args: &[&str]) -> String {
    let o = cmd(bin, root, checkout, args);
    assert!(
        o.status.success(),
        "{} {args:?} failed ({}):\n{}\n{}",
        bin.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn sc(root: &Root, args: &[&str]) -> String {
    ok(Path::new(BIN), root, Some(CO), args)
}

/// The generator's unit for `name`, from the records under `root`.
fn generated_unit(root: &Root, name: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    ok(
        &sibling("syscontainer-generator"),
        root,
        None,
        &[out.path().to_str().unwrap()],
    );
    fs::read_to_string(out.path().join(format!("{name}.service"))).unwrap()
}

fn unit_line<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// `syscontainer-exec run NAME` (HELLO_MODE=once: the container prints and
/// exits), then `cleanup`. Returns the container's output.
fn exec_run(root: &Root, name: &str) -> String {
    let helper = sibling("syscontainer-exec");
    let out = ok(&helper, root, None, &["run", name]);
    let bundle: serde_json::Value = serde_json::from_slice(
        &fs::read(root.join(format!("/run/syscontainer/bundle/{name}/config.json"))).unwrap(),
    )
    .unwrap();
    let (rec, _) = Record::load(root, name).unwrap();
    assert_eq!(
        bundle["root"]["path"],
        root.join(&rec.deployment)
            .join("rootfs")
            .display()
            .to_string()
    );
    ok(&helper, root, None, &["cleanup", name]);
    out
}

fn assert_no_default_paths(root: &Root) {
    for p in [
        paths::CHECKOUT_ROOT,
        paths::OSTREE_REPO,
        "/var/lib/containers",
    ] {
        assert!(
            fs::symlink_metadata(root.join(p)).is_err(),
            "{p} was created although {} is {CO}",
            paths::ENV_CHECKOUT_PATH
        );
    }
}

#[test]
fn the_whole_lifecycle_honours_the_checkout_path() {
    require_root_and_runc();
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let co = root.join(CO);
    let repo = format!("{CO}/.storage/ostree");
    let name = format!("envtest{}", std::process::id());

    // pull: the repo is CHECKOUT/.storage/ostree.
    sc(&root, &["pull", "-q", &fixture("hello")]);
    assert!(root.join(&repo).join("config").is_file());

    // install: the deployment, the link and the record are in CHECKOUT.
    let out = sc(
        &root,
        &[
            "install",
            "--name",
            &name,
            "--set",
            "HELLO_MODE=once",
            "localhost/sctest/hello:latest",
        ],
    );
    let slot0 = format!("{CO}/{name}.0");
    assert!(out.contains(&slot0), "{out}");
    let (rec, _) = Record::load(&root, &name).unwrap();
    assert_eq!(rec.deployment, slot0);
    assert_eq!(rec.repo.as_deref(), Some(repo.as_str()));
    assert!(co.join(&name).join("rootfs/usr/bin/run.sh").is_file());
    assert_eq!(
        fs::read_link(co.join(&name)).unwrap(),
        PathBuf::from(format!("{name}.0"))
    );

    // containers list --json and containers verify.
    let rows: serde_json::Value =
        serde_json::from_str(&sc(&root, &["containers", "list", "--all", "--json"])).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {rows}"));
    assert_eq!(row["deployment"], ".0");
    let v: serde_json::Value =
        serde_json::from_str(&sc(&root, &["containers", "verify", "--json", &name])).unwrap();
    assert_eq!(v["deployment"], slot0.as_str());
    assert!(v["checked"].as_u64().unwrap() > 100, "{v}");
    assert_eq!(v["modified"], serde_json::json!([]));

    // The generator (no environment): RequiresMountsFor= from the record.
    let unit = generated_unit(&root, &name);
    assert_eq!(
        unit_line(&unit, "RequiresMountsFor"),
        Some(format!("{slot0} {repo}").as_str()),
        "{unit}"
    );
    assert_eq!(unit_line(&unit, "WorkingDirectory"), Some(slot0.as_str()));

    // The exec helper (no environment) runs the deployment in CHECKOUT.
    let out = exec_run(&root, &name);
    assert!(
        out.contains(&format!("Hello World from {name} (version 1)")),
        "{out}"
    );

    // update --rebase: the other slot, beside the first.
    sc(
        &root,
        &[
            "containers",
            "update",
            "--rebase",
            &fixture("hello-v2"),
            &name,
        ],
    );
    let slot1 = format!("{CO}/{name}.1");
    assert_eq!(Record::load(&root, &name).unwrap().0.deployment, slot1);
    assert_eq!(
        fs::read_link(co.join(&name)).unwrap(),
        PathBuf::from(format!("{name}.1"))
    );
    let unit = generated_unit(&root, &name);
    assert_eq!(
        unit_line(&unit, "RequiresMountsFor"),
        Some(format!("{slot1} {repo}").as_str()),
        "{unit}"
    );
    let out = exec_run(&root, &name);
    assert!(out.contains("(version 2)"), "{out}");

    // rollback, and list, without the variable: they follow the record.
    let out = ok(
        Path::new(BIN),
        &root,
        None,
        &["containers", "rollback", &name],
    );
    assert!(out.contains(&slot0), "{out}");
    assert_eq!(Record::load(&root, &name).unwrap().0.deployment, slot0);
    assert_eq!(
        fs::read_link(co.join(&name)).unwrap(),
        PathBuf::from(format!("{name}.0"))
    );
    let out = ok(
        Path::new(BIN),
        &root,
        None,
        &["containers", "list", "--all"],
    );
    assert!(out.contains(&name), "{out}");
    assert!(exec_run(&root, &name).contains("(version 1)"));
    assert_no_default_paths(&root);

    // uninstall (without the variable): both slots and the link go.
    ok(Path::new(BIN), &root, None, &["uninstall", &name]);
    assert!(Record::load(&root, &name).is_err());
    let left: Vec<_> = fs::read_dir(&co)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".storage")
        .collect();
    assert!(left.is_empty(), "left in {CO}: {left:?}");
    // The image stays, in CHECKOUT's repo.
    assert!(sc(&root, &["images", "list"]).contains("localhost/sctest/hello-v2"));
    assert_no_default_paths(&root);
}

#[test]
fn an_interrupted_install_is_cleaned_up_in_the_checkout_path() {
    // Without a record, uninstall has only the setting to go by.
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let co = root.join(CO);
    fs::create_dir_all(co.join("ghost.0/rootfs")).unwrap();
    fs::write(co.join("ghost.0/info.json"), "{}").unwrap();
    std::os::unix::fs::symlink("ghost.0", co.join("ghost")).unwrap();
    sc(&root, &["uninstall", "ghost"]);
    assert!(fs::symlink_metadata(co.join("ghost")).is_err());
    assert!(fs::symlink_metadata(co.join("ghost.0")).is_err());
    assert_no_default_paths(&root);
}

#[test]
fn a_checkout_path_that_cannot_go_into_a_unit_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let o = cmd(
        Path::new(BIN),
        &root,
        Some("/srv/my containers"),
        &["containers", "list"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ATOMIC_OSTREE_CHECKOUT_PATH") && err.contains("/srv/my containers"),
        "{err}"
    );
}
