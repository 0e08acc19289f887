//! Store tests against the real fixture images built by
//! `tests/fixtures/make-images.sh` (docker-archives in
//! `${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures}`), read through
//! the real `dockertar:` source.
//!
//! The fixtures must exist: these tests fail, loudly, when they do not.
//! Pull speed and memory are measured by `bench/pull.sh`.

mod listing;
use listing::{full_listing, sha};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use syscontainer::paths::Root;
use syscontainer::source::{ImageSource, SourceOptions};
use syscontainer::store::{pull, CheckoutMethod, Location, NoProgress, Store};

fn fixtures() -> PathBuf {
    let f = PathBuf::from(
        std::env::var("SYSCONTAINER_FIXTURES")
            .unwrap_or_else(|_| "/var/tmp/syscontainer-fixtures".into()),
    );
    assert!(
        f.join("oci/index.json").exists(),
        "fixture images missing in {}: run tests/fixtures/make-images.sh (and `make-images.sh medium` for the benchmark)",
        f.display()
    );
    f
}

/// The fixture image `tag`, through the real `dockertar:` source (the
/// archives name their images `localhost/sctest/TAG:latest`).
fn fixture(tag: &str) -> Box<dyn ImageSource> {
    let opts = SourceOptions::new(Root::new("/"));
    let spec = format!(
        "dockertar:{}",
        fixtures().join(format!("{tag}.tar")).display()
    );
    syscontainer::source::open(&spec, &opts).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open_with(&Root::new(tmp.path()), &Location::default()).unwrap();
    (tmp, s)
}

/// A listing in the format of `layered.expected`.
fn listing(root: &Path) -> String {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p.clone());
            }
            paths.push(p);
        }
    }
    paths.sort();
    let rel = |p: &Path| p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let mut first_by_ino: BTreeMap<u64, String> = BTreeMap::new();
    let mut count_by_ino: BTreeMap<u64, usize> = BTreeMap::new();
    for p in &paths {
        let m = p.symlink_metadata().unwrap();
        if m.is_file() {
            first_by_ino.entry(m.ino()).or_insert_with(|| rel(p));
            *count_by_ino.entry(m.ino()).or_default() += 1;
        }
    }
    let mut out = String::new();
    for p in &paths {
        let m = p.symlink_metadata().unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let head = |t: &str| format!("{t} {mode:04o} {}:{} {}", m.uid(), m.gid(), rel(p));
        let line = if m.is_dir() {
            head("d")
        } else if m.file_type().is_symlink() {
            format!("{} -> {}", head("l"), fs::read_link(p).unwrap().display())
        } else {
            let mut l = format!("{} {}", head("f"), sha(&fs::read(p).unwrap()));
            if count_by_ino[&m.ino()] > 1 {
                l.push_str(&format!(" link:{}", first_by_ino[&m.ino()]));
            }
            for x in xattr::list(p).unwrap() {
                let v = xattr::get(p, &x).unwrap().unwrap_or_default();
                l.push_str(&format!(
                    " xattr:{}={}",
                    x.to_string_lossy(),
                    String::from_utf8_lossy(&v)
                ));
            }
            l
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn layered_fixture_checks_out_as_expected() {
    let f = fixtures();
    let (_t, s) = store();
    let r = pull(&s, &mut *fixture("layered"), &mut NoProgress).unwrap();
    assert_eq!(r.layers_fetched, 3);
    assert!(r.dropped_special >= 2, "device + fifo dropped: {r:?}");
    let img = s.image("localhost/sctest/layered").unwrap();
    let dest = s.checkout_root().join("layered.0");
    s.checkout(&img, &dest).unwrap();
    let got = listing(&dest);
    let want = fs::read_to_string(f.join("layered.expected")).unwrap();
    assert_eq!(got, want);
    assert!(s.verify(&img).unwrap().ok());
}

/// Our hardlink checkout and libostree's give the same tree.
#[test]
fn hardlink_checkout_matches_libostree() {
    for tag in ["layered", "hello"] {
        let (_t, s) = store();
        pull(&s, &mut *fixture(tag), &mut NoProgress).unwrap();
        let img = s.image(&format!("localhost/sctest/{tag}")).unwrap();
        let ours = s.checkout_root().join(format!("{tag}.ours"));
        let theirs = s.checkout_root().join(format!("{tag}.libostree"));
        s.checkout_with(&img, &ours, CheckoutMethod::Hardlink)
            .unwrap();
        s.checkout_with(&img, &theirs, CheckoutMethod::Libostree)
            .unwrap();
        let (a, b) = (full_listing(&ours), full_listing(&theirs));
        assert!(a.len() > 5, "{tag}: {a:?}");
        assert_eq!(a, b, "{tag}");
        let root = |p: &Path| {
            let m = p.metadata().unwrap();
            (m.mode(), m.uid(), m.gid())
        };
        assert_eq!(root(&ours), root(&theirs), "{tag}: root dir");
        if tag == "layered" {
            let want = fs::read_to_string(fixtures().join("layered.expected")).unwrap();
            assert_eq!(listing(&ours), want);
        }
    }
}

#[test]
fn hostile_fixtures_are_rejected() {
    for tag in [
        "evil-abs",
        "evil-dotdot",
        "evil-hardlink",
        "evil-hardlink-abs",
        "evil-pathmax",
        "evil-truncated",
    ] {
        let (_t, s) = store();
        let err = pull(&s, &mut *fixture(tag), &mut NoProgress).expect_err(tag);
        let mut msg = err.to_string();
        let mut cur = std::error::Error::source(&err);
        while let Some(c) = cur {
            msg.push_str(&format!(": {c}"));
            cur = c.source();
        }
        eprintln!("{tag}: {msg}");
        assert!(
            msg.contains("layer entry") || msg.contains("ends"),
            "{tag}: {msg}"
        );
        assert!(s.images().unwrap().is_empty(), "{tag}");
        let refs = s.repo().list_refs(None, gio::Cancellable::NONE).unwrap();
        assert!(refs.is_empty(), "{tag}: {refs:?}");
    }
}

#[test]
fn hello_exports_and_info() {
    let (_t, s) = store();
    pull(&s, &mut *fixture("hello"), &mut NoProgress).unwrap();
    let img = s.image("localhost/sctest/hello").unwrap();
    assert!(s
        .read_file(&img, "/exports/manifest.json")
        .unwrap()
        .is_some());
    let v = syscontainer::deploy::variables(&s, &img).unwrap();
    assert!(!v.templates.is_empty(), "{v:?}");
    // hello-v2 shares layer 1 with hello: only layer 2 is fetched.
    let r = pull(&s, &mut *fixture("hello-v2"), &mut NoProgress).unwrap();
    assert_eq!((r.layers_fetched, r.layers_skipped), (1, 1));
}
