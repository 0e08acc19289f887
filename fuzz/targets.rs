//! The fuzz targets' bodies, shared by the cargo-fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`) and the stable quick pass over the saved corpus
//! (`core/tests/fuzz_corpus.rs`), which both include this file with `#[path]`.
//!
//! Each function takes arbitrary bytes and must not panic, hang or allocate
//! without bound. Besides "no panic", each checks a property that must hold
//! for every input (round trips, agreement between two entry points).

#![allow(dead_code)]

use std::borrow::Cow;
use std::path::Path;

use syscontainer::imgref;
use syscontainer::record::Record;
use syscontainer::source::manifest::{self, Parsed, Platform};
use syscontainer::template;

/// Template engine: `variables` and `render_with` agree; rendering with every
/// variable set to a fixed value succeeds; text without `$` is unchanged.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = template::variables("fuzz.template", text);
    let rendered = template::render_with("fuzz.template", text, |v| {
        Ok(Some(Cow::Owned(format!("<{v}>"))))
    });
    match (&vars, &rendered) {
        (Ok(vs), Ok(out)) => {
            for v in vs {
                assert!(out.contains(&format!("<{v}>")), "{v} not rendered");
            }
            if !text.contains('$') {
                assert_eq!(out, text);
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!("variables() and render() disagree: {vars:?} vs {rendered:?}"),
    }
    // An unset variable is an error naming it.
    if let Ok(vs) = &vars {
        if let Some(first) = vs.iter().next() {
            let r = template::render_with("fuzz.template", text, |v| {
                Ok((v != first).then_some(Cow::Borrowed("x")))
            });
            assert!(matches!(r, Err(template::TemplateError::Unset { .. })));
        }
    }
}

/// Record parser: a record that parses serializes and parses back equal.
pub fn record(data: &[u8]) {
    // The file stem must equal the record's name: take the name from the
    // document when there is one, so that valid records get through.
    let name = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(String::from))
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains('\0'))
        .unwrap_or_else(|| "fuzz".into());
    let path = format!("/etc/syscontainer/containers/{name}.json");
    let Ok((rec, warnings0)) = Record::parse(Path::new(&path), data) else {
        return;
    };
    let json = rec.to_json();
    let (again, warnings) = Record::parse(Path::new(&path), json.as_bytes())
        .unwrap_or_else(|e| panic!("a parsed record does not parse back: {e}\n{json}"));
    assert_eq!(rec, again, "record round trip");
    // Unknown fields are kept (and warned about) again, not lost.
    assert_eq!(warnings, warnings0);
}

/// Image references: a parsed reference's canonical form parses to the same
/// canonical form; branch escaping round-trips for any string.
pub fn imgref(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = imgref::ImageRef::parse(s) {
        let c = r.canonical();
        let again = imgref::ImageRef::parse(&c)
            .unwrap_or_else(|e| panic!("canonical form {c:?} of {s:?} does not parse: {e}"));
        assert_eq!(again.canonical(), c, "canonical form of {s:?}");
        let _ = r.reference();
        let _ = r.api_host();
        let b = imgref::image_branch(&c);
        match imgref::parse_branch(&b) {
            Ok(imgref::Branch::Image(n)) => assert_eq!(n, c),
            other => panic!("branch {b:?} of {c:?} parsed as {other:?}"),
        }
    }
    let e = imgref::escape(s);
    assert_eq!(imgref::unescape(&e).unwrap(), s, "escape round trip");
    assert!(e
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
    let _ = imgref::unescape(s);
    let _ = imgref::parse_branch(s);
    let _ = imgref::layer_branch(s);
    let _ = imgref::validate_digest(s);
}

/// Manifest, index and config parsing, and platform selection. The first
/// byte picks the Content-Type header the document came with.
pub fn manifest(data: &[u8]) {
    let (ct, raw) = match data.split_first() {
        Some((b, rest)) => (
            match b % 5 {
                0 => None,
                1 => Some("application/vnd.oci.image.manifest.v1+json"),
                2 => Some("application/vnd.oci.image.index.v1+json"),
                3 => Some("application/vnd.docker.distribution.manifest.v2+json"),
                _ => Some("application/json; charset=utf-8"),
            },
            rest,
        ),
        None => (None, data),
    };
    match manifest::parse(raw, ct, "fuzz manifest") {
        Ok(Parsed::Index(entries)) => {
            for want in [
                manifest::host_platform(),
                Platform {
                    architecture: "arm".into(),
                    os: "linux".into(),
                    variant: Some("v7".into()),
                },
            ] {
                if let Ok(e) = manifest::select_platform(&entries, &want, "fuzz index") {
                    assert!(entries.iter().any(|x| std::ptr::eq(x, e)));
                }
            }
        }
        Ok(Parsed::Manifest(_)) | Err(_) => {}
    }
    if let Ok(ids) = manifest::config_diff_ids(raw, "fuzz config") {
        for d in ids {
            assert!(imgref::digest_hex(&d).is_some(), "{d}");
        }
    }
}

thread_local! {
    /// One temp repo per process (per thread), created on first use.
    static REPO: (tempfile::TempDir, ostree::Repo) = {
        let d = tempfile::tempdir().expect("temp dir for the fuzz repo");
        // bare-user works without root; the importer's logic is the same.
        let mode = if is_root() { ostree::RepoMode::Bare } else { ostree::RepoMode::BareUser };
        let repo = ostree::Repo::new_for_path(d.path());
        repo.create(mode, gio::Cancellable::NONE).expect("creating the fuzz repo");
        (d, repo)
    };
}

fn is_root() -> bool {
    // Our uid from /proc: no libc call (the workspace denies unsafe code).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The tar-to-OSTree importer, with small limits so that bombs are cheap.
/// Each input is imported in a transaction that is then aborted, so the repo
/// does not grow.
pub fn import(data: &[u8]) {
    use syscontainer::store::import::{import_layer_with, ImportLimits};
    let limits = ImportLimits {
        max_entries: 4096,
        max_content_bytes: 16 << 20,
        max_depth: 64,
        max_header_bytes: 64 << 10,
        ..ImportLimits::default()
    };
    REPO.with(|(_d, repo)| {
        repo.prepare_transaction(gio::Cancellable::NONE)
            .expect("starting a transaction");
        let r = import_layer_with(repo, data, &limits);
        // The header guard under the tar parser must stay in step with it.
        if let Err(e) = &r {
            let dbg = format!("{e:?}");
            assert!(
                !dbg.contains("extension headers are inconsistent"),
                "the header guard lost step with the tar parser: {e}"
            );
        }
        if let Ok(i) = &r {
            let s = &i.stats;
            // The stream is read to its end (so a digest reader below sees it).
            assert_eq!(s.tar_bytes, data.len() as u64);
            assert!(s.content_bytes <= limits.max_content_bytes);
            assert!(
                s.files + s.dirs + s.symlinks + s.hardlinks + s.whiteouts <= limits.max_entries
            );
        }
        repo.abort_transaction(gio::Cancellable::NONE)
            .expect("aborting the transaction");
    });
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name (the corpus directory names).
pub const TARGETS: &[(&str, Target)] = &[
    ("template", template),
    ("record", record),
    ("imgref", imgref),
    ("manifest", manifest),
    ("import", import),
];
