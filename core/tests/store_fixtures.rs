//! Store tests against the real fixture images built by
//! `tests/fixtures/make-images.sh` (OCI layout in
//! `${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures}/oci`), read by
//! a minimal test-only OCI-layout source (the real `oci:` source lives in
//! `source/`).
//!
//! The fixtures must exist: these tests fail, loudly, when they do not.
//! `medium_pull_figures` is `#[ignore]`d (160 MB): run it with
//! `cargo test -p syscontainer-core --features store --release --test store_fixtures -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use syscontainer::paths::Root;
use syscontainer::source::{Descriptor, ImageSource, ResolvedImage, SourceError};
use syscontainer::store::{pull, Location, NoProgress, Store};

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

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

struct OciDir {
    dir: PathBuf,
    tag: String,
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

impl ImageSource for OciDir {
    fn describe(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    fn resolve(&mut self) -> Result<ResolvedImage, SourceError> {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        let m = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == self.tag.as_str())
            .unwrap_or_else(|| panic!("tag {} not in the fixture layout", self.tag));
        let digest = m["digest"].as_str().unwrap().to_string();
        let manifest_raw = fs::read(blob_path(&self.dir, &digest)).unwrap();
        let man: serde_json::Value = serde_json::from_slice(&manifest_raw).unwrap();
        let desc = |v: &serde_json::Value| Descriptor {
            media_type: v["mediaType"].as_str().unwrap().into(),
            digest: v["digest"].as_str().unwrap().into(),
            size: v["size"].as_u64().unwrap(),
        };
        let config = desc(&man["config"]);
        let config_raw = fs::read(blob_path(&self.dir, &config.digest)).unwrap();
        assert_eq!(sha(&config_raw), config.digest);
        let cfg: serde_json::Value = serde_json::from_slice(&config_raw).unwrap();
        Ok(ResolvedImage {
            name: format!("localhost/sctest/{}:latest", self.tag),
            manifest_digest: digest,
            manifest_raw,
            config_raw,
            config,
            layers: man["layers"].as_array().unwrap().iter().map(desc).collect(),
            diff_ids: cfg["rootfs"]["diff_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect(),
        })
    }

    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        Ok(Box::new(
            fs::File::open(blob_path(&self.dir, &d.digest)).unwrap(),
        ))
    }
}

fn oci(tag: &str) -> OciDir {
    OciDir {
        dir: fixtures().join("oci"),
        tag: tag.into(),
    }
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
    let r = pull(&s, &mut oci("layered"), &mut NoProgress).unwrap();
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
        let err = pull(&s, &mut oci(tag), &mut NoProgress).expect_err(tag);
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
    pull(&s, &mut oci("hello"), &mut NoProgress).unwrap();
    let img = s.image("localhost/sctest/hello").unwrap();
    assert!(s
        .read_file(&img, "/exports/manifest.json")
        .unwrap()
        .is_some());
    let v = s.info(&img).unwrap();
    assert!(!v.templates.is_empty(), "{v:?}");
    // hello-v2 shares layer 1 with hello: only layer 2 is fetched.
    let r = pull(&s, &mut oci("hello-v2"), &mut NoProgress).unwrap();
    assert_eq!((r.layers_fetched, r.layers_skipped), (1, 1));
}

fn vm_hwm_kb() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "160 MB fixture; run for the figures"]
fn medium_pull_figures() {
    let (_t, s) = store();
    let hwm0 = vm_hwm_kb();
    let t = Instant::now();
    let r = pull(&s, &mut oci("medium"), &mut NoProgress).unwrap();
    let pull_time = t.elapsed();
    let hwm1 = vm_hwm_kb();
    let t = Instant::now();
    let r2 = pull(&s, &mut oci("medium"), &mut NoProgress).unwrap();
    let repull = t.elapsed();
    assert!(r2.up_to_date);
    let img = s.image("localhost/sctest/medium").unwrap();
    let t = Instant::now();
    s.checkout(&img, &s.checkout_root().join("m.0")).unwrap();
    let checkout = t.elapsed();
    eprintln!(
        "medium: pull {pull_time:?} ({} layers, {} bytes), re-pull {repull:?}, checkout {checkout:?}, VmHWM {hwm0} kB -> {hwm1} kB",
        r.layers_fetched, r.bytes_fetched
    );
    assert!(hwm1 < 64 * 1024, "peak RSS {hwm1} kB");
}
