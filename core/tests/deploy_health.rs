//! Health checks through install, update and rollback: the image's manifest
//! `health` lands in the record's `image_health`, the admin's `health` is kept
//! across updates and wins field by field, an invalid manifest `health`
//! fails the install naming the file and the field.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{exports_dir, test_image, FixtureSource};
use syscontainer::deploy::{self, InstallOptions, UpdateOptions, UpdateOutcome};
use syscontainer::health::{HealthSpec, OnFailure};
use syscontainer::paths::Root;
use syscontainer::record::Record;

/// atomic's system-container-files image, with `manifest` as its manifest.
fn exports(tmp: &Path, dir: &str, manifest: &str) -> PathBuf {
    let src = test_image("system-container-files");
    let rd = |f: &str| fs::read_to_string(src.join(f)).unwrap();
    exports_dir(
        &tmp.join(dir),
        &[
            ("config.json.template", &rd("config.json.template")),
            ("service.template", &rd("service.template")),
            ("manifest.json", manifest),
        ],
    )
}

const V1: &str = r#"{"version": "1.0", "defaultValues": {"RECEIVER": "x", "PORT": "1"},
  "health": {"command": ["/bin/check", "v1"], "interval": "20s", "retries": 4}}"#;
const V2: &str = r#"{"version": "1.0", "defaultValues": {"RECEIVER": "x", "PORT": "1"},
  "health": {"command": ["/bin/check", "v2"], "startPeriod": "1min"}}"#;

#[test]
fn manifest_health_and_record_health_across_updates() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path().join("root"));
    fs::create_dir(root.path()).unwrap();
    let src = FixtureSource::new();
    src.add("hc:1", 1, Some(&exports(d.path(), "v1", V1)));
    let user = HealthSpec {
        interval: Some(Duration::from_secs(5)),
        on_failure: Some(OnFailure::Kill),
        ..Default::default()
    };
    let o = InstallOptions {
        name: Some("hc".into()),
        health: Some(user.clone()),
        ..Default::default()
    };
    let rec = deploy::install(&root, &src, "hc:1", &o).unwrap();
    assert_eq!(rec.health.as_ref(), Some(&user));
    let img = rec.image_health.clone().unwrap();
    assert_eq!(img.command.as_deref().unwrap(), ["/bin/check", "v1"]);
    let c = rec.health_check().unwrap();
    assert_eq!(c.command, ["/bin/check", "v1"]);
    assert_eq!(c.interval, Duration::from_secs(5)); // the record wins
    assert_eq!((c.retries, c.on_failure), (4, OnFailure::Kill)); // the image's, the record's
    let (back, _) = Record::load(&root, "hc").unwrap();
    assert_eq!(back, rec);

    // A new image: its check, the admin's health kept.
    src.add("hc:2", 2, Some(&exports(d.path(), "v2", V2)));
    let u = UpdateOptions {
        rebase: Some("hc:2".into()),
        ..Default::default()
    };
    assert!(matches!(
        deploy::update(&root, &src, "hc", &u).unwrap(),
        UpdateOutcome::Updated(_)
    ));
    let (r2, _) = Record::load(&root, "hc").unwrap();
    assert_eq!(r2.health.as_ref(), Some(&user));
    let c = r2.health_check().unwrap();
    assert_eq!(c.command, ["/bin/check", "v2"]);
    assert_eq!(c.start_period, Duration::from_secs(60));
    assert_eq!((c.interval, c.retries), (Duration::from_secs(5), 3));

    // --health-* alone is an update (it is merged over the record's).
    let u = UpdateOptions {
        health: Some(HealthSpec {
            on_failure: Some(OnFailure::None),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        deploy::update(&root, &src, "hc", &u).unwrap(),
        UpdateOutcome::Updated(_)
    ));
    let (r3, _) = Record::load(&root, "hc").unwrap();
    let h = r3.health.clone().unwrap();
    assert_eq!(h.on_failure, Some(OnFailure::None));
    assert_eq!(h.interval, Some(Duration::from_secs(5)));
    // the same again: nothing to do
    assert_eq!(
        deploy::update(&root, &src, "hc", &u).unwrap(),
        UpdateOutcome::UpToDate
    );

    // Rollback: the previous deployment's image check comes back.
    deploy::rollback(&root, "hc").unwrap();
    let (r4, _) = Record::load(&root, "hc").unwrap();
    let img = r4.image_health.unwrap();
    assert_eq!(img.command.as_deref().unwrap(), ["/bin/check", "v2"]);
}

#[test]
fn invalid_manifest_health_names_file_and_field() {
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path().join("root"));
    fs::create_dir(root.path()).unwrap();
    let src = FixtureSource::new();
    let bad = r#"{"version": "1.0", "defaultValues": {"RECEIVER": "x", "PORT": "1"},
      "health": {"command": ["/bin/check"], "interval": "often"}}"#;
    src.add("bad", 1, Some(&exports(d.path(), "bad", bad)));
    let o = InstallOptions {
        name: Some("bad".into()),
        ..Default::default()
    };
    let e = deploy::install(&root, &src, "bad", &o).unwrap_err();
    assert_eq!(e.exit_code(), syscontainer::exit::INVALID);
    let msg = anyhow_like(&e);
    assert!(
        msg.contains("manifest.json") && msg.contains("health.interval") && msg.contains("'often'"),
        "{msg}"
    );
    assert!(Record::load(&root, "bad").is_err());
    let unknown = r#"{"health": {"command": ["/bin/check"], "every": "1s"}}"#;
    src.add("unk", 2, Some(&exports(d.path(), "unk", unknown)));
    let o = InstallOptions {
        name: Some("unk".into()),
        ..Default::default()
    };
    let e = deploy::install(&root, &src, "unk", &o).unwrap_err();
    let msg = anyhow_like(&e);
    assert!(msg.contains("unknown field `every`"), "{msg}");
}

/// The error and its sources, as the CLI prints them.
fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
