//! Deployments on a temporary root: atomic's integration scenarios, the
//! corpus, hostile input, and cleanup after failures. Real files, real
//! templates; the image store is replaced by a busybox rootfs (see common/).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{exports_dir, test_image, uniq, FixtureSource};
use syscontainer::bundle;
use syscontainer::deploy::{self, DeployError, InstallOptions, UpdateOptions, UpdateOutcome};
use syscontainer::paths::{self, Root};
use syscontainer::record::Record;
use syscontainer::template;

fn opts(set: &[&str]) -> InstallOptions {
    InstallOptions {
        set: set.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn named(name: &str, set: &[&str]) -> InstallOptions {
    InstallOptions {
        name: Some(name.into()),
        ..opts(set)
    }
}

fn checkout(root: &Root) -> PathBuf {
    root.join(paths::CHECKOUT_ROOT)
}

/// Everything under the root except directories that existed before.
fn tree(root: &Root) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root.path()).unwrap().display().to_string();
            // Lock files stay (they are under /run, and flock needs a file).
            if rel.starts_with("run/syscontainer/lock/") {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel);
            }
        }
    }
    out
}

/// Render the bundle the exec helper would write, and return its env.
fn rendered_env(root: &Root, name: &str) -> Vec<String> {
    let (rec, _) = Record::load(root, name).unwrap();
    let b = bundle::prepare(root, &rec, None).unwrap();
    b.config["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn env_has(env: &[String], kv: &str) -> bool {
    env.iter().any(|e| e == kv)
}

#[test]
fn install_writes_record_deployment_and_symlink() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add(
        "registry.example/hello:1.0",
        1,
        Some(&test_image("system-container-files")),
    );
    let rec = deploy::install(
        &root,
        &src,
        "registry.example/hello:1.0",
        &opts(&["RECEIVER=Tester"]),
    )
    .unwrap();
    assert_eq!(rec.name, "hello-1.0");
    assert_eq!(rec.deployment, "/var/lib/containers/atomic/hello-1.0.0");
    assert_eq!(rec.values["RECEIVER"], "Tester");
    assert_eq!(rec.default_values["PORT"], "8081");
    assert!(rec.enabled);
    assert_eq!(rec.repo.as_deref(), Some("/ostree/repo"));
    assert!(rec
        .service_template
        .as_deref()
        .unwrap()
        .contains("ExecStart=$EXEC_START"));
    assert_eq!(rec.uuid.len(), 36);
    let (back, _) = Record::load(&root, "hello-1.0").unwrap();
    assert_eq!(back, rec);
    let link = checkout(&root).join("hello-1.0");
    assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("hello-1.0.0"));
    assert!(link.join("rootfs/bin/busybox").is_file());
    let info = bundle::load_info(&checkout(&root).join("hello-1.0.0")).unwrap();
    assert_eq!(info.values["RECEIVER"], "Tester");
    assert_eq!(info.image_id, rec.image_id);

    // --set reaches config.json, and the manifest default applies.
    let env = rendered_env(&root, "hello-1.0");
    assert!(env_has(&env, "RECEIVER=Tester"), "{env:?}");
    assert!(env_has(&env, "PORT=8081"), "{env:?}");
    assert!(env_has(&env, &format!("UUID={}", rec.uuid)), "{env:?}");
    assert!(env_has(&env, "NAME=hello-1.0"), "{env:?}");

    // --no-enable and the default name for :latest.
    src.add(
        "registry.example/other:latest",
        1,
        Some(&test_image("system-container-files")),
    );
    let o = InstallOptions {
        no_enable: true,
        ..Default::default()
    };
    let r2 = deploy::install(&root, &src, "registry.example/other:latest", &o).unwrap();
    assert_eq!(r2.name, "other");
    assert!(!r2.enabled);
    assert_ne!(r2.uuid, rec.uuid);
}

#[test]
fn duplicate_is_already_present() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    deploy::install(&root, &src, "img", &named("dup", &[])).unwrap();
    let before = tree(&root);
    let e = deploy::install(&root, &src, "img", &named("dup", &[])).unwrap_err();
    assert!(e.to_string().contains("already present"), "{e}");
    assert_eq!(tree(&root), before);
    // A leftover deployment without a record also counts.
    fs::create_dir_all(checkout(&root).join("ghost.1")).unwrap();
    let e = deploy::install(&root, &src, "img", &named("ghost", &[])).unwrap_err();
    assert!(e.to_string().contains("already present"), "{e}");
}

#[test]
fn uninstall_removes_everything() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    let before = tree(&root);
    let rec = deploy::install(&root, &src, "img", &named("gone", &[])).unwrap();
    // A bundle, and the tmpfiles directory (D = removed by --remove).
    let (r, _) = Record::load(&root, "gone").unwrap();
    let b = bundle::prepare(&root, &r, None).unwrap();
    syscontainer::exec::tmpfiles(&root, "--create", b.tmpfiles.as_ref().unwrap()).unwrap();
    let rundir = root.join("/run/gone");
    assert!(rundir.is_dir());
    fs::write(rundir.join("state"), "x").unwrap();
    deploy::update(&root, &src, "gone", &upd(&["PORT=1"])).unwrap();
    assert!(checkout(&root).join("gone.1").is_dir());

    let rep = deploy::uninstall(&root, "gone", Path::new(paths::CHECKOUT_ROOT)).unwrap();
    assert!(rep.kept_host_files.is_empty());
    assert!(Record::load(&root, "gone").is_err());
    for p in ["gone", "gone.0", "gone.1"] {
        assert!(
            fs::symlink_metadata(checkout(&root).join(p)).is_err(),
            "{p} remains"
        );
    }
    assert!(!root.join(bundle::bundle_dir("gone")).exists());
    assert!(
        !rundir.join("state").exists(),
        "tmpfiles --remove was not applied"
    );
    assert_eq!(tree(&root), before, "{rec:?}");
    let e = deploy::uninstall(&root, "gone", Path::new(paths::CHECKOUT_ROOT)).unwrap_err();
    assert!(e.to_string().contains("not installed"), "{e}");
}

#[test]
fn missing_variable_then_set() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("upd", 1, Some(&test_image("system-container-update-files")));
    let before = tree(&root);
    let e = deploy::install(&root, &src, "upd", &opts(&[])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("still contains an unreplaced value for: 'VAR_WITH_NO_DEFAULT'"),
        "{msg}"
    );
    assert!(msg.contains("config.json.template"), "{msg}");
    assert_eq!(tree(&root), before, "a failed install left files behind");
    let rec = deploy::install(&root, &src, "upd", &opts(&["VAR_WITH_NO_DEFAULT=v"])).unwrap();
    assert_eq!(rec.values["VAR_WITH_NO_DEFAULT"], "v");
    assert!(env_has(
        &rendered_env(&root, "upd"),
        "VAR_WITH_NO_DEFAULT=v"
    ));
}

fn upd(set: &[&str]) -> UpdateOptions {
    UpdateOptions {
        set: set.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn update_rollback_scenarios() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("upd", 1, Some(&test_image("system-container-update-files")));
    let r0 = deploy::install(&root, &src, "upd", &opts(&["VAR_WITH_NO_DEFAULT=keep"])).unwrap();
    let link = checkout(&root).join("upd");

    // Nothing new: no-op.
    let out = deploy::update(&root, &src, "upd", &upd(&[])).unwrap();
    assert_eq!(out, UpdateOutcome::UpToDate);
    assert!(!checkout(&root).join("upd.1").exists());
    // Rebase to the same image: no-op.
    let o = UpdateOptions {
        rebase: Some("upd".into()),
        ..Default::default()
    };
    assert_eq!(
        deploy::update(&root, &src, "upd", &o).unwrap(),
        UpdateOutcome::UpToDate
    );

    // --set PORT=8082 creates .1, keeps the other values and the UUID.
    let out = deploy::update(&root, &src, "upd", &upd(&["PORT=8082"])).unwrap();
    assert!(
        matches!(out, UpdateOutcome::Updated(ref s) if s.to.ends_with("upd.1") && !s.restarted)
    );
    let (r1, _) = Record::load(&root, "upd").unwrap();
    assert_eq!(r1.deployment, "/var/lib/containers/atomic/upd.1");
    assert_eq!(r1.values["PORT"], "8082");
    assert_eq!(r1.values["VAR_WITH_NO_DEFAULT"], "keep");
    assert_eq!(r1.uuid, r0.uuid);
    assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("upd.1"));
    let env = rendered_env(&root, "upd");
    assert!(env_has(&env, "PORT=8082") && env_has(&env, &format!("UUID={}", r0.uuid)));

    // Rollback restores .0 and its own values; repeated update/rollback toggles.
    let s = deploy::rollback(&root, "upd").unwrap();
    assert!(s.to.ends_with("upd.0"));
    let (r, _) = Record::load(&root, "upd").unwrap();
    assert_eq!(r.deployment, r0.deployment);
    assert!(!r.values.contains_key("PORT"));
    assert!(env_has(&rendered_env(&root, "upd"), "PORT=8081"));
    assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("upd.0"));
    deploy::rollback(&root, "upd").unwrap();
    assert!(env_has(&rendered_env(&root, "upd"), "PORT=8082"));
    deploy::rollback(&root, "upd").unwrap();
    let out = deploy::update(&root, &src, "upd", &upd(&["PORT=9000"])).unwrap();
    assert!(matches!(out, UpdateOutcome::Updated(ref s) if s.to.ends_with("upd.1")));
    assert!(env_has(&rendered_env(&root, "upd"), "PORT=9000"));
    deploy::rollback(&root, "upd").unwrap();
    assert!(env_has(&rendered_env(&root, "upd"), "PORT=8081"));
    assert_eq!(Record::load(&root, "upd").unwrap().0.uuid, r0.uuid);

    // A new image version: update picks it up, into the other slot.
    src.add("upd", 2, Some(&test_image("system-container-update-files")));
    let out = deploy::update(&root, &src, "upd", &upd(&[])).unwrap();
    assert!(matches!(out, UpdateOutcome::Updated(_)));
    let (r, _) = Record::load(&root, "upd").unwrap();
    assert_ne!(r.image_id, r0.image_id);
    assert_eq!(
        deploy::update(&root, &src, "upd", &upd(&[])).unwrap(),
        UpdateOutcome::UpToDate
    );
}

#[test]
fn rebase_missing_variable_leaves_symlink() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("files", 1, Some(&test_image("system-container-files")));
    src.add("upd", 1, Some(&test_image("system-container-update-files")));
    deploy::install(&root, &src, "files", &named("rb", &[])).unwrap();
    let (before, _) = Record::load(&root, "rb").unwrap();
    let o = UpdateOptions {
        rebase: Some("upd".into()),
        ..Default::default()
    };
    let e = deploy::update(&root, &src, "rb", &o).unwrap_err();
    assert!(
        e.to_string()
            .contains("unreplaced value for: 'VAR_WITH_NO_DEFAULT'"),
        "{e}"
    );
    assert_eq!(
        fs::read_link(checkout(&root).join("rb")).unwrap(),
        PathBuf::from("rb.0")
    );
    assert_eq!(Record::load(&root, "rb").unwrap().0, before);
    assert!(!checkout(&root).join("rb.1").exists());
    let o = UpdateOptions {
        rebase: Some("upd".into()),
        set: vec!["VAR_WITH_NO_DEFAULT=x".into()],
        ..Default::default()
    };
    deploy::update(&root, &src, "rb", &o).unwrap();
    let (r, _) = Record::load(&root, "rb").unwrap();
    assert_eq!(r.image, "upd");
    assert_eq!(r.uuid, before.uuid);
}

#[test]
fn runtime_must_exist() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    let o = InstallOptions {
        runtime: Some("/nonexistent".into()),
        ..Default::default()
    };
    let before = tree(&root);
    let e = deploy::install(&root, &src, "img", &o).unwrap_err();
    assert!(e.to_string().contains("is not installed"), "{e}");
    assert!(e.to_string().contains("/nonexistent"), "{e}");
    assert_eq!(tree(&root), before);
}

#[test]
fn name_ending_in_dot_zero() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    let before = tree(&root);
    let rec = deploy::install(&root, &src, "img", &named("foo.0", &[])).unwrap();
    assert_eq!(rec.deployment, "/var/lib/containers/atomic/foo.0.0");
    assert!(env_has(&rendered_env(&root, "foo.0"), "NAME=foo.0"));
    // "foo" would need foo.0 as its deployment: refused, not clobbered.
    let e = deploy::install(&root, &src, "img", &named("foo", &[])).unwrap_err();
    assert!(e.to_string().contains("already present"), "{e}");
    deploy::uninstall(&root, "foo.0", Path::new(paths::CHECKOUT_ROOT)).unwrap();
    assert_eq!(tree(&root), before);
}

#[test]
fn hostile_values_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    let e = deploy::install(
        &root,
        &src,
        "img",
        &opts(&["PORT=80\nExecStartPre=/bin/evil"]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("'PORT'"), "{e}");
    let e = deploy::install(&root, &src, "img", &named("a/b", &[])).unwrap_err();
    assert!(
        e.to_string().contains("a/b") && e.to_string().contains("'/'"),
        "{e}"
    );
    let e = deploy::install(&root, &src, "img", &named("../x", &[])).unwrap_err();
    assert!(matches!(e, DeployError::Name(_)), "{e}");
    let e = deploy::install(&root, &src, "img", &opts(&["NAME=evil"])).unwrap_err();
    assert!(e.to_string().contains("'NAME'"), "{e}");
    assert!(tree(&root).is_empty());
}

#[test]
fn failures_remove_everything() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("hostfs", 1, Some(&hostfs_exports(d.path())));
    // Checkout fails.
    *src.fail_materialize.borrow_mut() = true;
    let e = deploy::install(&root, &src, "hostfs", &named("f", &[])).unwrap_err();
    assert!(e.to_string().contains("checkout fails"), "{e}");
    assert!(Record::load(&root, "f").is_err());
    assert!(!checkout(&root).join("f.0").exists());
    *src.fail_materialize.borrow_mut() = false;
    // A host file is in the way: after copying the first ones.
    let blocker = root.join("/usr/local/lib/secret-message");
    fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    fs::write(&blocker, "mine").unwrap();
    let before = tree(&root);
    let e = deploy::install(&root, &src, "hostfs", &named("f", &[])).unwrap_err();
    assert!(
        e.to_string().contains("/usr/local/lib/secret-message"),
        "{e}"
    );
    assert_eq!(tree(&root), before);
    assert_eq!(fs::read_to_string(&blocker).unwrap(), "mine");
}

/// atomic's system-container-files-hostfs image, as its Dockerfile lays it out.
fn hostfs_exports(tmp: &Path) -> PathBuf {
    let src = test_image("system-container-files-hostfs");
    let dst = tmp.join("hostfs-exports");
    let rd = |f: &str| fs::read_to_string(src.join(f)).unwrap();
    exports_dir(
        &dst,
        &[
            ("config.json.template", &rd("config.json.template")),
            ("manifest.json", &rd("manifest.json")),
            ("service.template", &rd("service.template")),
            ("tmpfiles.template", &rd("tmpfiles.template")),
            ("hostfs/usr/local/lib/secret-message", &rd("message")),
            (
                "hostfs/usr/local/lib/secret-message-template",
                &rd("message-template"),
            ),
            ("hostfs/usr/local/lib/placeholder-file", "placeholder\n"),
        ],
    )
}

#[test]
fn hostfs_files_rendered_renamed_and_removed() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path().join("root"));
    fs::create_dir(root.path()).unwrap();
    let src = FixtureSource::new();
    src.add("hostfs", 1, Some(&hostfs_exports(d.path())));
    let rec = deploy::install(&root, &src, "hostfs", &named("hf", &["RECEIVER=Host"])).unwrap();
    let lib = root.join("/usr/local/lib");
    assert_eq!(
        fs::read_to_string(lib.join("secret-message-template")).unwrap(),
        "hello Host\n"
    );
    // Not in installedFilesTemplate: verbatim.
    assert_eq!(
        fs::read_to_string(lib.join("secret-message")).unwrap(),
        "Hello unknown $RECEIVER\n"
    );
    assert!(lib.join("renamed-hf").is_file());
    assert!(!lib.join("placeholder-file").exists());
    let paths: Vec<_> = rec.host_files.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/usr/local/lib/renamed-hf",
            "/usr/local/lib/secret-message",
            "/usr/local/lib/secret-message-template"
        ]
    );
    assert!(rec.host_files.iter().all(|h| h.sha256.len() == 64));

    // An update replaces unchanged host files.
    deploy::update(&root, &src, "hf", &upd(&["RECEIVER=Again"])).unwrap();
    assert_eq!(
        fs::read_to_string(lib.join("secret-message-template")).unwrap(),
        "hello Again\n"
    );

    // Uninstall removes unchanged files, and keeps (and says) modified ones.
    fs::write(lib.join("secret-message"), "edited by the admin").unwrap();
    let rep = deploy::uninstall(&root, "hf", Path::new(paths::CHECKOUT_ROOT)).unwrap();
    assert_eq!(rep.kept_host_files, ["/usr/local/lib/secret-message"]);
    assert!(lib.join("secret-message").exists());
    assert!(!lib.join("secret-message-template").exists());
    assert!(!lib.join("renamed-hf").exists());
}

/// Version 2 of [`hostfs_exports`]: `secret-message` changed,
/// `secret-message-template` the same, `v2-only-file` new, no
/// `placeholder-file` (so no `renamed-NAME`).
fn hostfs_v2_exports(tmp: &Path) -> PathBuf {
    let src = test_image("system-container-files-hostfs");
    let dst = tmp.join("hostfs-v2-exports");
    let rd = |f: &str| fs::read_to_string(src.join(f)).unwrap();
    exports_dir(
        &dst,
        &[
            ("config.json.template", &rd("config.json.template")),
            (
                "manifest.json",
                r#"{"version": "2.0", "defaultValues": {"PORT": "8081", "RECEIVER": "World"},
                    "installedFilesTemplate": ["/usr/local/lib/secret-message-template"]}"#,
            ),
            ("service.template", &rd("service.template")),
            ("tmpfiles.template", &rd("tmpfiles.template")),
            (
                "hostfs/usr/local/lib/secret-message",
                "Hello v2 $RECEIVER\n",
            ),
            (
                "hostfs/usr/local/lib/secret-message-template",
                &rd("message-template"),
            ),
            ("hostfs/usr/local/lib/v2-only-file", "only in v2\n"),
        ],
    )
}

/// The files under a directory, with their content.
fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn rollback_restores_host_files() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path().join("root"));
    fs::create_dir(root.path()).unwrap();
    let src = FixtureSource::new();
    src.add("hostfs", 1, Some(&hostfs_exports(d.path())));
    src.add("hostfs2", 1, Some(&hostfs_v2_exports(d.path())));
    let r0 = deploy::install(&root, &src, "hostfs", &named("rb", &["RECEIVER=One"])).unwrap();
    let lib = root.join("/usr/local/lib");
    let v1 = contents(&lib);
    assert_eq!(
        v1.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["renamed-rb", "secret-message", "secret-message-template"]
    );
    let o = UpdateOptions {
        rebase: Some("hostfs2".into()),
        ..Default::default()
    };
    deploy::update(&root, &src, "rb", &o).unwrap();
    let v2 = contents(&lib);
    assert_eq!(
        v2,
        [
            ("secret-message".into(), "Hello v2 $RECEIVER\n".into()),
            ("secret-message-template".into(), "hello One\n".into()),
            ("v2-only-file".into(), "only in v2\n".into()),
        ]
    );
    let (r1, _) = Record::load(&root, "rb").unwrap();

    // Back to version 1: its files as they were, v2-only-file gone.
    let s = deploy::rollback(&root, "rb").unwrap();
    assert!(s.to.ends_with("rb.0"), "{s:?}");
    assert_eq!(contents(&lib), v1);
    assert!(
        s.not_restored.is_empty() && s.kept_host_files.is_empty(),
        "{s:?}"
    );
    assert_eq!(
        Record::load(&root, "rb").unwrap().0.host_files,
        r0.host_files
    );
    // And forth again.
    deploy::rollback(&root, "rb").unwrap();
    assert_eq!(contents(&lib), v2);
    assert_eq!(
        Record::load(&root, "rb").unwrap().0.host_files,
        r1.host_files
    );

    // The admin edits a file only v2 has, and one whose v1 content differs:
    // the rollback leaves both as they are, and names them.
    fs::write(lib.join("v2-only-file"), "admin's\n").unwrap();
    fs::write(lib.join("secret-message"), "admin's message\n").unwrap();
    let s = deploy::rollback(&root, "rb").unwrap();
    assert_eq!(s.kept_host_files, ["/usr/local/lib/v2-only-file"]);
    assert_eq!(s.not_restored, ["/usr/local/lib/secret-message"]);
    assert_eq!(
        contents(&lib),
        [
            ("renamed-rb".into(), v1[0].1.clone()),
            ("secret-message".into(), "admin's message\n".into()),
            ("secret-message-template".into(), "hello One\n".into()),
            ("v2-only-file".into(), "admin's\n".into()),
        ]
    );
    // The record does not claim the admin's file, so uninstall leaves it too.
    let (r, _) = Record::load(&root, "rb").unwrap();
    let paths: Vec<_> = r.host_files.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/usr/local/lib/renamed-rb",
            "/usr/local/lib/secret-message-template"
        ]
    );
    deploy::uninstall(&root, "rb", Path::new(paths::CHECKOUT_ROOT)).unwrap();
    assert_eq!(
        contents(&lib),
        [
            ("secret-message".into(), "admin's message\n".into()),
            ("v2-only-file".into(), "admin's\n".into()),
        ]
    );
}

#[test]
fn enable_disable_and_list() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    let name = uniq("list");
    deploy::install(&root, &src, "img", &named(&name, &[])).unwrap();
    assert!(deploy::set_enabled(&root, &name, false).unwrap());
    assert!(!Record::load(&root, &name).unwrap().0.enabled);
    assert!(!deploy::set_enabled(&root, &name, false).unwrap());
    assert!(deploy::set_enabled(&root, &name, true).unwrap());
    assert!(Record::load(&root, &name).unwrap().0.enabled);
    assert!(deploy::list(&root, false).is_empty(), "nothing is running");
    let rows = deploy::list(&root, true);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, name);
    assert_eq!(rows[0].deployment, ".0");
    assert_eq!(rows[0].state, "inactive");
    assert_eq!(rows[0].runtime, paths::DEFAULT_RUNTIME);
    deploy::update(&root, &src, &name, &upd(&["PORT=1"])).unwrap();
    assert_eq!(deploy::list(&root, true)[0].deployment, ".1");
    let e = deploy::set_enabled(&root, "nope", true).unwrap_err();
    assert!(e.to_string().contains("'nope' is not installed"), "{e}");
}

#[test]
fn default_config_without_exports() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("plain", 1, None);
    deploy::install(&root, &src, "plain", &opts(&[])).unwrap();
    let (rec, _) = Record::load(&root, "plain").unwrap();
    let b = bundle::prepare(&root, &rec, None).unwrap();
    assert_eq!(b.config["process"]["args"][2], "echo default-config");
    assert_eq!(b.config["root"]["readonly"], true);
    assert!(env_has(&rendered_env(&root, "plain"), "FROM_IMAGE=yes"));
}

#[test]
fn readonly_false_is_refused_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add(
        "runonce",
        1,
        Some(&test_image("system-container-runonce-files")),
    );
    let e = deploy::install(&root, &src, "runonce", &opts(&["RECEIVER=x"])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("config.json.template") && msg.contains("read-only"),
        "{msg}"
    );
    assert!(tree(&root).is_empty() || !checkout(&root).join("runonce.0").exists());
}

/// Every image of the real-world corpus installs on a busybox rootfs with its
/// manifest defaults (plus --set for variables without one) and renders a
/// config that oci-spec parses, with a read-only root.
#[test]
fn corpus_installs_and_renders() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    let dir = common::corpus().join("atomic-system-containers");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 19, "{names:?}");
    let mut failures = Vec::new();
    for n in &names {
        let mut exports = dir.join(n);
        if exports.join("exports").is_dir() {
            exports = exports.join("exports"); // azure keeps them one level down
        }
        // Variables that neither the manifest nor the built-ins provide.
        let manifest: serde_json::Value = fs::read(exports.join("manifest.json"))
            .ok()
            .map(|t| serde_json::from_slice(&t).unwrap())
            .unwrap_or_default();
        let mut set = Vec::new();
        for f in [
            "config.json.template",
            "tmpfiles.template",
            "service.template",
        ] {
            if let Ok(t) = fs::read_to_string(exports.join(f)) {
                for v in template::variables(f, &t).unwrap() {
                    let builtin = syscontainer::vars::FIXED.contains(&v.as_str())
                        || syscontainer::vars::OVERRIDABLE.contains(&v.as_str());
                    let defaulted = manifest["defaultValues"].get(&v).is_some();
                    if !builtin
                        && !defaulted
                        && !set.iter().any(|s: &String| s.starts_with(&format!("{v}=")))
                    {
                        set.push(format!("{v}=test-{v}"));
                    }
                }
            }
        }
        let image = format!("corpus/{n}");
        src.add(&image, 1, Some(&exports));
        let o = InstallOptions {
            name: Some(n.clone()),
            set,
            ..Default::default()
        };
        let res = deploy::install(&root, &src, &image, &o).and_then(|rec| {
            let b = bundle::prepare(&root, &rec, None)?;
            Ok((rec, b))
        });
        match res {
            Ok((rec, b)) => {
                let spec: oci_spec::runtime::Spec =
                    serde_json::from_value(b.config.clone()).expect("oci-spec parses");
                let r = spec.root().as_ref().unwrap();
                assert_eq!(r.readonly(), Some(true), "{n}");
                assert!(r.path().starts_with(root.path()), "{n}");
                assert_eq!(rec.name, *n);
                deploy::uninstall(&root, n, Path::new(paths::CHECKOUT_ROOT)).unwrap();
            }
            Err(e) => failures.push(format!("{n}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn leftovers_of_an_interrupted_install_are_replaced() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let src = FixtureSource::new();
    src.add("img", 1, Some(&test_image("system-container-files")));
    let before = tree(&root);
    deploy::install(&root, &src, "img", &named("half", &[])).unwrap();
    // A crash before the commit point: no record, but the link, the slot
    // (with our info.json), a staging directory and a temp link remain.
    Record::remove(&root, "half").unwrap();
    fs::create_dir_all(checkout(&root).join(".half.1.tmp/rootfs")).unwrap();
    std::os::unix::fs::symlink("half.0", checkout(&root).join(".half.tmp.12345")).unwrap();
    let rec = deploy::install(&root, &src, "img", &named("half", &[])).unwrap();
    assert_eq!(rec.deployment, "/var/lib/containers/atomic/half.0");
    assert!(!checkout(&root).join(".half.1.tmp").exists());
    assert!(fs::symlink_metadata(checkout(&root).join(".half.tmp.12345")).is_err());
    // The same leftovers go with `uninstall` too.
    Record::remove(&root, "half").unwrap();
    deploy::uninstall(&root, "half", Path::new(paths::CHECKOUT_ROOT)).unwrap();
    assert_eq!(tree(&root), before);
}

/// Security review (issue 6): `--set` values may be secrets. The record is
/// 0600 in a 0700 directory (tightened if it already existed looser), the
/// deployment's info.json is 0600, and the runtime bundle (config.json with
/// the rendered values, tmpfiles.conf) is 0600 in a 0700 directory, whatever
/// the umask.
#[test]
fn secret_values_are_only_readable_by_root() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path());
    let etc = root.join(paths::RECORDS_ETC);
    fs::create_dir_all(&etc).unwrap();
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755)).unwrap();
    let src = FixtureSource::new();
    src.add(
        "registry.example/hello:1.0",
        1,
        Some(&test_image("system-container-files")),
    );
    let rec = deploy::install(
        &root,
        &src,
        "registry.example/hello:1.0",
        &named("sec", &["RECEIVER=s3cr3t-value"]),
    )
    .unwrap();
    let record = root.join(paths::record_path("sec"));
    assert!(fs::read_to_string(&record)
        .unwrap()
        .contains("s3cr3t-value"));
    assert_eq!(mode(&record), 0o600);
    assert_eq!(
        mode(&etc),
        0o700,
        "the existing 0755 directory is tightened"
    );
    let info = root.join(&rec.deployment).join("info.json");
    assert!(fs::read_to_string(&info).unwrap().contains("s3cr3t-value"));
    assert_eq!(mode(&info), 0o600);

    let b = bundle::prepare(&root, &rec, None).unwrap();
    let config = b.dir.join("config.json");
    assert!(fs::read_to_string(&config)
        .unwrap()
        .contains("s3cr3t-value"));
    assert_eq!(mode(&config), 0o600, "{}", config.display());
    assert_eq!(mode(&b.dir), 0o700, "{}", b.dir.display());
    if let Some(t) = &b.tmpfiles {
        assert_eq!(mode(t), 0o600);
    }
    // Re-rendering over an older, looser bundle tightens it.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&b.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let b = bundle::prepare(&root, &rec, None).unwrap();
    assert_eq!(mode(&b.dir.join("config.json")), 0o600);
    assert_eq!(mode(&b.dir), 0o700);
}
