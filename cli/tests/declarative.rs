//! Declarative records (issue 12, section 1) through the real binary on a
//! temp root (no systemd runs there): `syscontainer apply` deploys a
//! declared container, applies an edit into the other slot on trial, rolls
//! back an edit whose start is not confirmed and records it as refused;
//! CLI commands refuse to rewrite an admin's file; `reconcile` removes a
//! container whose file is gone; `install` writes a pure intent file and
//! the state.
//!
//! Needs root (bare OSTree repos store ownership) and runc (install checks
//! that the runtime exists).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{sha, tar_header};

/// A docker-archive of one image `tag` with a one-file layer, at `path`.
fn archive(path: &Path, tag: &str) -> String {
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut tar_header(12, 0o755), "bin/sh", &b"#!/bin/true\n"[..])
        .unwrap();
    let layer = b.into_inner().unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha(&layer)
    );
    let manifest =
        format!(r#"[{{"Config":"config.json","RepoTags":["{tag}"],"Layers":["layer.tar"]}}]"#);
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (p, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", config.as_bytes()),
        ("layer.tar", &layer[..]),
    ] {
        b.append_data(&mut tar_header(data.len(), 0o644), p, data)
            .unwrap();
    }
    b.finish().unwrap();
    format!("dockertar:{}", path.display())
}

fn cli_env(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syscontainer"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SYSCONTAINER_ROOT")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .env_remove("MAINPID")
        .env_remove("NOTIFY_SOCKET")
        .env("HOME", root.join("home"))
        .env("ATOMIC_OSTREE_REPO", "/repo")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn cli(root: &Path, args: &[&str]) -> Output {
    cli_env(root, &[], args)
}

/// Exit status `code`; returns stdout and stderr.
#[track_caller]
fn expect(o: &Output, code: i32) -> (String, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "stdout: {out}\nstderr: {err}");
    (out, err)
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// `containers list --all --json`: name -> declared.
fn declared(root: &Path) -> serde_json::Value {
    let (out, _) = expect(&cli(root, &["containers", "list", "--all", "--json"]), 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["declared"].clone(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn apply_deploys_applies_edits_rolls_back_and_reconciles() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let image = archive(&root.join("web.tar"), "example.com/web:1");
    let recs = root.join("etc/syscontainer/containers");
    let states = root.join("etc/syscontainer/state");
    let intent = recs.join("web.json");
    let state = states.join("web.json");
    let co = root.join("var/lib/containers/atomic");
    fs::create_dir_all(&recs).unwrap();
    let write_intent = |a: &str| {
        let text = format!(r#"{{ "version": 1, "image": "{image}", "values": {{ "A": "{a}" }} }}"#);
        fs::write(&intent, &text).unwrap();
        text
    };
    let text = write_intent("1");
    assert_eq!(declared(root), serde_json::json!({"web": "pending"}));

    // Not deployed: pulled, installed into slot 0, the state written; the
    // admin's file is left as it is.
    let (out, _) = expect(&cli(root, &["apply", "web"]), 0);
    assert!(out.contains("Deployed example.com/web:1 as web"), "{out}");
    assert_eq!(fs::read_to_string(&intent).unwrap(), text);
    let st = json(&state);
    assert_eq!(st["intentOwner"], "admin");
    assert_eq!(st["applied"]["values"]["A"], "1");
    assert!(
        st["record"]["deployment"]
            .as_str()
            .unwrap()
            .ends_with("/web.0"),
        "{st}"
    );
    assert_eq!(fs::read_link(co.join("web")).unwrap(), Path::new("web.0"));
    assert_eq!(declared(root), serde_json::json!({"web": "deployed"}));

    // The generator's cache: written with the state; `reconcile
    // --cache-only` writes it again (as the package does after an upgrade).
    let cache = states.join("generator.cache");
    assert!(cache.is_file());
    fs::remove_file(&cache).unwrap();
    expect(&cli(root, &["reconcile", "--cache-only"]), 0);
    assert!(cache.is_file());

    // Unchanged: nothing to do, no pull, the state untouched.
    let before = fs::read(&state).unwrap();
    let (out, err) = expect(&cli(root, &["apply", "web"]), 0);
    assert!(out.is_empty() && !err.contains("Pull"), "{out}{err}");
    assert_eq!(fs::read(&state).unwrap(), before);

    // The admin's file: CLI commands that would rewrite it refuse.
    for args in [
        &["containers", "update", "--set", "A=2", "web"][..],
        &["disable", "web"],
        &["uninstall", "web"],
    ] {
        let (_, err) = expect(&cli(root, args), 1);
        assert!(
            err.contains(&format!(
                "{}",
                Path::new("/etc/syscontainer/containers/web.json").display()
            )) && err.contains("which syscontainer did not write")
                && err.contains("systemctl daemon-reload")
                && err.contains("systemctl restart web"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(fs::read_to_string(&intent).unwrap(), text);
    // With no intent change (same image, same values): allowed.
    let (out, _) = expect(&cli(root, &["containers", "update", "web"]), 0);
    assert!(out.contains("Latest version already installed"), "{out}");

    // Edited: applied into the other slot, on trial.
    write_intent("2");
    assert_eq!(declared(root), serde_json::json!({"web": "edited"}));
    let (out, _) = expect(&cli(root, &["apply", "web"]), 0);
    assert!(out.contains("on trial"), "{out}");
    let st = json(&state);
    assert!(
        st["record"]["deployment"]
            .as_str()
            .unwrap()
            .ends_with("/web.1"),
        "{st}"
    );
    assert_eq!(st["record"]["values"]["A"], "2");
    assert_eq!(st["trial"]["previousApplied"]["values"]["A"], "1");
    assert_eq!(st["trial"]["settle"], 10);
    assert_eq!(fs::read_link(co.join("web")).unwrap(), Path::new("web.1"));

    // The confirmation: the unit's main process is gone (a pid that cannot
    // exist), so the edit is rolled back and refused.
    let (_, err) = expect(
        &cli_env(
            root,
            &[("MAINPID", "2147483646")],
            &["apply", "--confirm", "web"],
        ),
        1,
    );
    assert!(
        err.contains("rolled back") && err.contains("main process 2147483646 gone"),
        "{err}"
    );
    let st = json(&state);
    assert!(st["trial"].is_null(), "{st}");
    assert!(
        st["record"]["deployment"]
            .as_str()
            .unwrap()
            .ends_with("/web.0"),
        "{st}"
    );
    assert_eq!(st["applied"]["values"]["A"], "1");
    assert_eq!(st["refused"]["intent"]["values"]["A"], "2");
    assert_eq!(st["refused"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(fs::read_link(co.join("web")).unwrap(), Path::new("web.0"));
    assert_eq!(declared(root), serde_json::json!({"web": "refused"}));
    // Not applied again until the file changes.
    let (_, err) = expect(&cli(root, &["apply", "web"]), 0);
    assert!(
        err.contains("edit of /etc/syscontainer/containers/web.json refused: main process"),
        "{err}"
    );
    assert!(json(&state)["trial"].is_null());

    // Invalid JSON: refused, the deployment stays.
    fs::write(&intent, "{ \"version\": 1, ").unwrap();
    let (_, err) = expect(&cli(root, &["apply", "web"]), 0);
    assert!(
        err.contains("refused") && err.contains("not valid JSON"),
        "{err}"
    );
    assert_eq!(declared(root), serde_json::json!({"web": "refused"}));

    // A confirmed edit: a live process as the main pid, settle 1 s.
    let text =
        format!(r#"{{ "version": 1, "image": "{image}", "values": {{ "A": "3" }}, "settle": 1 }}"#);
    fs::write(&intent, text).unwrap();
    expect(&cli(root, &["apply", "web"]), 0);
    assert_eq!(json(&state)["trial"]["settle"], 1);
    let me = std::process::id().to_string();
    expect(
        &cli_env(root, &[("MAINPID", &me)], &["apply", "--confirm", "web"]),
        0,
    );
    let st = json(&state);
    assert!(st["trial"].is_null() && st["refused"].is_null(), "{st}");
    assert_eq!(st["record"]["values"]["A"], "3");
    assert_eq!(declared(root), serde_json::json!({"web": "deployed"}));

    // A rollback of the admin's edit: allowed, and the edit is recorded as
    // refused, so that the next start does not apply it again.
    let (out, _) = expect(&cli(root, &["containers", "rollback", "web"]), 0);
    assert!(out.contains("Rolled back web"), "{out}");
    let st = json(&state);
    assert_eq!(st["record"]["values"]["A"], "1");
    assert_eq!(st["applied"]["values"]["A"], "1");
    assert_eq!(st["refused"]["intent"]["values"]["A"], "3");
    assert!(
        st["refused"]["reason"]
            .as_str()
            .unwrap()
            .contains("containers rollback"),
        "{st}"
    );
    assert_eq!(declared(root), serde_json::json!({"web": "refused"}));
    let (_, err) = expect(&cli(root, &["apply", "web"]), 0);
    assert!(
        err.contains("refused: rolled back by syscontainer containers rollback"),
        "{err}"
    );

    // The intent file deleted: `reconcile --cache-only` removes nothing.
    fs::remove_file(&intent).unwrap();
    expect(&cli(root, &["reconcile", "--cache-only"]), 0);
    assert!(state.exists() && co.join("web.0").exists());

    // Deleted: removing, and reconcile removes it.
    assert_eq!(declared(root), serde_json::json!({"web": "removing"}));
    let (out, _) = expect(&cli(root, &["reconcile"]), 0);
    assert!(out.contains("Removed web"), "{out}");
    assert!(!state.exists() && !co.join("web.0").exists() && !co.join("web.1").exists());
    assert_eq!(declared(root), serde_json::json!({}));
}

#[test]
fn install_writes_a_pure_intent_file_and_the_state() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let image = archive(&root.join("a.tar"), "example.com/a:1");
    let intent = root.join("etc/syscontainer/containers/a.json");
    let state = root.join("etc/syscontainer/state/a.json");
    expect(
        &cli(root, &["install", "--name", "a", "--set", "K=1", &image]),
        0,
    );
    let i = json(&intent);
    assert_eq!(
        i,
        serde_json::json!({"version": 1, "image": "example.com/a:1", "values": {"K": "1"}, "enabled": true})
    );
    let st = json(&state);
    assert_eq!(st["intentOwner"], "syscontainer");
    assert!(st["record"]["image_id"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(declared(root), serde_json::json!({"a": "deployed"}));
    // Ours, unchanged: the CLI keeps it in step.
    expect(
        &cli(root, &["containers", "update", "--set", "K=2", "a"]),
        0,
    );
    assert_eq!(json(&intent)["values"]["K"], "2");
    expect(&cli(root, &["disable", "a"]), 0);
    assert_eq!(json(&intent)["enabled"], false);
    assert_eq!(declared(root), serde_json::json!({"a": "deployed"}));
    expect(&cli(root, &["containers", "rollback", "a"]), 0);
    assert_eq!(json(&intent)["values"]["K"], "1");
    assert_eq!(declared(root), serde_json::json!({"a": "deployed"}));
    // Edited by hand: no longer ours.
    let mut t = fs::read_to_string(&intent).unwrap();
    t.push('\n');
    fs::write(&intent, t).unwrap();
    let (_, err) = expect(&cli(root, &["enable", "a"]), 1);
    assert!(err.contains("which syscontainer did not write"), "{err}");
    // A deleted file: uninstall is allowed (nothing to rewrite).
    fs::remove_file(&intent).unwrap();
    expect(&cli(root, &["uninstall", "a"]), 0);
    assert!(!state.exists());
    // A second install under a declared (pending) name is refused.
    fs::write(&intent, format!(r#"{{"version":1,"image":"{image}"}}"#)).unwrap();
    let (_, err) = expect(&cli(root, &["install", "--name", "a", &image]), 1);
    assert!(err.contains("already present"), "{err}");
}
