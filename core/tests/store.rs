//! Store tests on real libostree repos in temporary directories, with layers
//! built in memory with the `tar` crate and served by an in-memory source.
//!
//! Run: `cargo test -p syscontainer-core --features store --test store`.
//! Needs root (bare repos store ownership) and the `ostree` CLI.

mod listing;
use listing::{full_listing, sha};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use syscontainer::paths::Root;
use syscontainer::source::{Descriptor, ImageSource, ResolvedImage, SourceError};
use syscontainer::store::{
    pull, CheckoutMethod, Location, LockMode, NoProgress, PullReport, Store, StoreError,
};

fn hexof(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap()
}

/// The error and its sources, like anyhow's `{:#}`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

// ---------------------------------------------------------------- layers

struct Layer {
    b: tar::Builder<Vec<u8>>,
    mtime: u64,
}

fn hdr(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

impl Layer {
    fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
            mtime: 1_700_000_000,
        }
    }

    fn mtime(mut self, t: u64) -> Self {
        self.mtime = t;
        self
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = hdr(tar::EntryType::Directory, mode, 0, 0, self.mtime);
        self.b.append_data(&mut h, path, io::empty()).unwrap();
        self
    }

    fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = hdr(tar::EntryType::Regular, mode, uid, gid, self.mtime);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = hdr(tar::EntryType::Symlink, 0o777, 0, 0, self.mtime);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = hdr(tar::EntryType::Link, 0o644, 0, 0, self.mtime);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    fn special(mut self, path: &str, kind: tar::EntryType) -> Self {
        let mut h = hdr(kind, 0o600, 0, 0, self.mtime);
        self.b.append_data(&mut h, path, io::empty()).unwrap();
        self
    }

    /// A PAX extended header applying to the next entry.
    fn pax(mut self, recs: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in recs {
            let rest = 1 + k.len() + 1 + v.len() + 1;
            let mut len = rest + rest.to_string().len();
            if len.to_string().len() != rest.to_string().len() {
                len = rest + len.to_string().len();
            }
            write!(data, "{len} {k}=").unwrap();
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = hdr(tar::EntryType::XHeader, 0o644, 0, 0, 0);
        h.set_size(data.len() as u64);
        self.b
            .append_data(&mut h, "PaxHeaders/entry", &data[..])
            .unwrap();
        self
    }

    /// An entry with a raw, unvalidated name (and link name).
    fn raw(mut self, name: &[u8], kind: tar::EntryType, link: Option<&[u8]>, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn tar(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Deterministic, incompressible-ish content.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------- images

#[derive(Clone)]
struct TestImage {
    name: String,
    blobs: Vec<(Descriptor, Vec<u8>)>,
    diff_ids: Vec<String>,
    config_raw: Vec<u8>,
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

impl TestImage {
    fn new(name: &str, tars: Vec<Vec<u8>>) -> Self {
        let mut blobs = Vec::new();
        let mut diff_ids = Vec::new();
        for t in tars {
            diff_ids.push(sha(&t));
            let z = gzip(&t);
            blobs.push((
                Descriptor {
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    digest: sha(&z),
                    size: z.len() as u64,
                },
                z,
            ));
        }
        let mut img = TestImage {
            name: name.into(),
            blobs,
            diff_ids,
            config_raw: Vec::new(),
        };
        img.refresh_config();
        img
    }

    fn refresh_config(&mut self) {
        let cfg = serde_json::json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
        });
        self.config_raw = serde_json::to_vec(&cfg).unwrap();
    }

    fn config_desc(&self) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: sha(&self.config_raw),
            size: self.config_raw.len() as u64,
        }
    }

    fn manifest_raw(&self) -> Vec<u8> {
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": self.config_desc(),
            "layers": self.blobs.iter().map(|(d, _)| serde_json::json!({
                "mediaType": d.media_type, "digest": d.digest, "size": d.size
            })).collect::<Vec<_>>(),
        });
        serde_json::to_vec(&m).unwrap()
    }

    fn layer_digests(&self) -> Vec<String> {
        self.blobs.iter().map(|(d, _)| d.digest.clone()).collect()
    }
}

/// Serves a test image from memory. It forks (so that a pull fetches a few
/// layers at once) unless `forks` is false.
#[derive(Clone)]
struct MemSource {
    img: TestImage,
    opens: Arc<AtomicUsize>,
    forks: bool,
    /// Blob reads so far, over all forks; a read fails when it reaches
    /// `fail_at`.
    reads: Arc<AtomicUsize>,
    fail_at: Option<usize>,
    /// Blobs being read at once (now, at most), and the condvar of `meet`.
    open: Arc<(std::sync::Mutex<(usize, usize)>, std::sync::Condvar)>,
    /// A blob's first read waits (up to 10 s) until this many were open at
    /// once.
    meet: Option<usize>,
}

impl MemSource {
    fn new(img: &TestImage) -> Self {
        MemSource {
            img: img.clone(),
            opens: Arc::new(AtomicUsize::new(0)),
            forks: true,
            reads: Arc::new(AtomicUsize::new(0)),
            fail_at: None,
            open: Arc::default(),
            meet: None,
        }
    }

    /// The most blobs that were open at once.
    fn most_open(&self) -> usize {
        self.open.0.lock().unwrap().1
    }
}

/// A blob body that fails at its source's `fail_at`-th read (a registry
/// dropping the connection mid-pull).
struct Flaky {
    inner: Cursor<Vec<u8>>,
    reads: Arc<AtomicUsize>,
    fail_at: Option<usize>,
    open: Arc<(std::sync::Mutex<(usize, usize)>, std::sync::Condvar)>,
    meet: Option<usize>,
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.open.0.lock().unwrap().0 -= 1;
    }
}

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = self.meet.take() {
            let (m, cv) = &*self.open;
            let g = m.lock().unwrap();
            let (_g, _) = cv
                .wait_timeout_while(g, Duration::from_secs(10), |o| o.1 < n)
                .unwrap();
        }
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        if Some(n) == self.fail_at {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the registry went away",
            ));
        }
        // Small reads, so that the layers of a pull overlap.
        let k = buf.len().min(16 * 1024);
        self.inner.read(&mut buf[..k])
    }
}

impl ImageSource for MemSource {
    fn describe(&self) -> String {
        format!("mem:{}", self.img.name)
    }

    fn resolve(&mut self) -> Result<ResolvedImage, SourceError> {
        let manifest_raw = self.img.manifest_raw();
        Ok(ResolvedImage {
            name: self.img.name.clone(),
            manifest_digest: sha(&manifest_raw),
            manifest_raw,
            config_raw: self.img.config_raw.clone(),
            config: self.img.config_desc(),
            layers: self.img.blobs.iter().map(|(d, _)| d.clone()).collect(),
            diff_ids: self.img.diff_ids.clone(),
        })
    }

    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let (_, b) = self
            .img
            .blobs
            .iter()
            .find(|(x, _)| x.digest == d.digest)
            .expect("blob in test image");
        {
            let (m, cv) = &*self.open;
            let mut o = m.lock().unwrap();
            o.0 += 1;
            o.1 = o.1.max(o.0);
            cv.notify_all();
        }
        Ok(Box::new(Flaky {
            inner: Cursor::new(b.clone()),
            reads: self.reads.clone(),
            fail_at: self.fail_at,
            open: self.open.clone(),
            meet: self.meet,
        }))
    }

    fn fork(&self) -> Option<Box<dyn ImageSource>> {
        self.forks
            .then(|| Box::new(self.clone()) as Box<dyn ImageSource>)
    }
}

// ---------------------------------------------------------------- helpers

struct Env {
    _tmp: tempfile::TempDir,
    root: Root,
    store: Store,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = Root::new(tmp.path());
    let store = Store::open_with(&root, &Location::default()).unwrap();
    Env {
        _tmp: tmp,
        root,
        store,
    }
}

fn do_pull(store: &Store, img: &TestImage) -> Result<(PullReport, usize), StoreError> {
    let mut src = MemSource::new(img);
    let opens = src.opens.clone();
    let r = pull(store, &mut src, &mut NoProgress)?;
    Ok((r, opens.load(Ordering::SeqCst)))
}

fn ostree(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args)
        .output()
        .expect("the ostree CLI is installed");
    assert!(
        out.status.success(),
        "ostree {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refs(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = ostree(&store.repo_path(), &["refs"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The repo object holding `path` in `rev`.
fn object_path(store: &Store, rev: &str, path: &str) -> PathBuf {
    let out = ostree(&store.repo_path(), &["ls", "-C", rev, path]);
    let csum = out
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no checksum in {out:?}"))
        .to_string();
    store
        .repo_path()
        .join("objects")
        .join(&csum[..2])
        .join(format!("{}.file", &csum[2..]))
}

fn du_kb(p: &Path) -> u64 {
    let out = Command::new("du").arg("-sk").arg(p).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------- fixtures

const TEMPLATE: &str = r#"{"process": {"args": ["$EXEC", "--port=${PORT}", "$NAME"], "env": ["X=$RUN_DIRECTORY", "Y=$$HOME"]}}"#;

fn base_layer() -> Vec<u8> {
    Layer::new()
        .dir("./", 0o755)
        .dir("etc", 0o755)
        .file("etc/old.conf", b"old\n", 0o644)
        .file("etc/keep.conf", b"keep\n", 0o600)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .file("usr/bin/su", b"setuid binary", 0o4755)
        .symlink("usr/bin/link", "tool")
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .file_owned("home/user/file", b"owned", 0o640, 1000, 1001)
        .pax(&[("SCHILY.xattr.user.test", b"hello")])
        .file("usr/bin/xattr", b"has an xattr", 0o644)
        .dir("opaque", 0o755)
        .file("opaque/a", b"a", 0o644)
        .file("opaque/b", b"b", 0o644)
        .special("dev/null", tar::EntryType::Char)
        .special("run/fifo", tar::EntryType::Fifo)
        .file("big/blob", &noise(7, 300_000), 0o644)
        .dir("exports", 0o755)
        .file(
            "exports/service.template",
            b"[Service]\nExecStart=$EXEC_START\nUser=$OLD_VAR\n",
            0o644,
        )
        .tar()
}

fn second_layer() -> Vec<u8> {
    Layer::new()
        .file("etc/.wh.old.conf", b"", 0o644)
        .file("opaque/.wh..wh..opq", b"", 0o644)
        .file("opaque/c", b"c", 0o644)
        .file("etc/new.conf", b"new\n", 0o644)
        .file("exports/.wh.service.template", b"", 0o644)
        .tar()
}

fn third_layer() -> Vec<u8> {
    Layer::new()
        .file("exports/config.json.template", TEMPLATE.as_bytes(), 0o644)
        .file(
            "exports/manifest.json",
            br#"{"defaultValues": {"PORT": "8080", "RUN_DIRECTORY": "/srv/run"}}"#,
            0o644,
        )
        .file("etc/keep.conf", b"replaced\n", 0o644)
        .tar()
}

fn layered() -> TestImage {
    TestImage::new(
        "localhost:5000/test/layered:1.0",
        vec![base_layer(), second_layer(), third_layer()],
    )
}

// ---------------------------------------------------------------- tests

#[test]
fn pull_then_union_checkout() {
    let e = env();
    let img = layered();
    let (r, opens) = do_pull(&e.store, &img).unwrap();
    assert_eq!(opens, 3);
    assert_eq!(r.layers_fetched, 3);
    assert_eq!(r.dropped_special, 2, "a char device and a FIFO are dropped");
    assert_eq!(r.image_id, img.config_desc().digest);

    // Refs and metadata, from the outside.
    let mut want: Vec<String> = img
        .layer_digests()
        .iter()
        .map(|d| format!("ociimage/{}", hexof(d)))
        .collect();
    want.push("ociimage/localhost_3A5000_2Ftest_2Flayered_3A1.0".into());
    want.sort();
    assert_eq!(refs(&e.store), want);
    let l0 = format!("ociimage/{}", hexof(&img.layer_digests()[0]));
    let repo = e.store.repo_path();
    let diff = ostree(
        &repo,
        &[
            "show",
            "--print-metadata-key=syscontainer.layer.diff-id",
            &l0,
        ],
    );
    assert!(diff.contains(&img.diff_ids[0]), "{diff}");
    let man = ostree(
        &repo,
        &[
            "show",
            "--print-metadata-key=docker.manifest",
            "ociimage/localhost_3A5000_2Ftest_2Flayered_3A1.0",
        ],
    );
    assert!(man.contains(hexof(&img.config_desc().digest)), "{man}");
    assert_eq!(
        ostree(&repo, &["cat", &l0, "/usr/bin/tool"]),
        "#!/bin/sh\necho tool\n"
    );
    let ls = ostree(&repo, &["ls", &l0, "/usr/bin/su"]);
    assert!(ls.starts_with("-04755 0 0"), "{ls}");
    let ls = ostree(&repo, &["ls", &l0, "/home/user/file"]);
    assert!(ls.starts_with("-00640 1000 1001"), "{ls}");
    let ls = ostree(&repo, &["ls", "-X", &l0, "/usr/bin/xattr"]);
    assert!(ls.contains("user.test"), "{ls}");
    // Whiteouts stay in the layer commit.
    let l1 = format!("ociimage/{}", hexof(&img.layer_digests()[1]));
    let ls = ostree(&repo, &["ls", &l1, "/etc"]);
    assert!(ls.contains(".wh.old.conf"), "{ls}");
    let ls = ostree(&repo, &["ls", "-R", &l0]);
    assert!(!ls.contains("/dev/null") && !ls.contains("fifo"), "{ls}");

    // Read back offline.
    let info = e.store.image("localhost:5000/test/layered:1.0").unwrap();
    assert_eq!(info.layers, img.layer_digests());
    assert_eq!(info.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(info.config["config"]["Cmd"][0], "/bin/sh");
    assert!(info.size > 300_000);
    let by_id = e.store.image(&info.image_id[7..19]).unwrap();
    assert_eq!(by_id.name, info.name);

    // Union checkout.
    let dest = e.store.checkout_root().join("layered.0");
    e.store.checkout(&info, &dest).unwrap();
    let rd = |p: &str| std::fs::read(dest.join(p)).ok();
    assert_eq!(rd("usr/bin/tool").unwrap(), b"#!/bin/sh\necho tool\n");
    assert_eq!(rd("etc/keep.conf").unwrap(), b"replaced\n");
    assert_eq!(rd("etc/new.conf").unwrap(), b"new\n");
    assert!(rd("etc/old.conf").is_none(), "whited out");
    assert!(!dest.join("etc/.wh.old.conf").exists());
    assert!(
        rd("opaque/a").is_none() && rd("opaque/b").is_none(),
        "opaque dir"
    );
    assert_eq!(rd("opaque/c").unwrap(), b"c");
    assert!(!dest.join("opaque/.wh..wh..opq").exists());
    assert!(!dest.join("exports/service.template").exists());
    assert_eq!(mode(&dest.join("usr/bin/su")), 0o4755);
    assert_eq!(mode(&dest.join("usr/bin/tool")), 0o755);
    assert_eq!(mode(&dest.join("etc/keep.conf")), 0o644);
    let m = std::fs::metadata(dest.join("home/user/file")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
    assert_eq!(
        std::fs::read_link(dest.join("usr/bin/link")).unwrap(),
        PathBuf::from("tool")
    );
    assert_eq!(
        xattr::get(dest.join("usr/bin/xattr"), "user.test").unwrap(),
        Some(b"hello".to_vec())
    );
    assert!(!dest.join("dev/null").exists() && !dest.join("run/fifo").exists());
    // Hardlinks: the layer's hardlink and the file share the repo object.
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let obj = object_path(&e.store, &l0, "/usr/bin/tool");
    assert_eq!(ino(&dest.join("usr/bin/tool")), ino(&obj));
    assert_eq!(ino(&dest.join("usr/bin/tool2")), ino(&obj));
    assert_eq!(
        ino(&dest.join("big/blob")),
        ino(&object_path(&e.store, &l0, "/big/blob"))
    );
    assert_eq!(
        std::fs::read(dest.join("big/blob")).unwrap(),
        noise(7, 300_000)
    );

    // An existing destination is refused.
    assert!(matches!(
        e.store.checkout(&info, &dest),
        Err(StoreError::DestExists { .. })
    ));

    // read_file: union, whiteouts, symlinks.
    let rf = |p: &str| e.store.read_file(&info, p).unwrap();
    assert_eq!(rf("/etc/new.conf").unwrap(), b"new\n");
    assert_eq!(rf("/etc/keep.conf").unwrap(), b"replaced\n");
    assert_eq!(rf("/etc/old.conf"), None);
    assert_eq!(rf("/opaque/a"), None);
    assert_eq!(rf("/opaque/c").unwrap(), b"c");
    assert_eq!(rf("/usr/bin/link").unwrap(), b"#!/bin/sh\necho tool\n");
    assert_eq!(rf("/exports/service.template"), None);
    assert_eq!(rf("/nonexistent"), None);
    assert_eq!(rf("/usr/bin"), None);

    // info: templates across layers, whiteouts honoured.
    let vars = syscontainer::deploy::variables(&e.store, &info).unwrap();
    assert_eq!(vars.templates, vec!["/exports/config.json.template"]);
    assert_eq!(
        vars.with_default.get("PORT").map(String::as_str),
        Some("8080")
    );
    assert_eq!(
        vars.with_default.get("RUN_DIRECTORY").map(String::as_str),
        Some("/srv/run")
    );
    assert!(vars.required.contains("EXEC"), "{vars:?}");
    assert!(
        !vars.required.contains("OLD_VAR"),
        "whited-out template: {vars:?}"
    );
    assert!(vars.builtin.contains("NAME"));
    assert!(!vars.required.contains("HOME"), "$$ is a literal");

    let report = e.store.verify(&info).unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.layers.iter().all(|l| l.objects > 0));
}

#[test]
fn pull_twice_transfers_nothing() {
    let e = env();
    let img = layered();
    let (r1, o1) = do_pull(&e.store, &img).unwrap();
    assert_eq!((o1, r1.up_to_date), (3, false));
    let before = refs(&e.store);
    let t = Instant::now();
    let (r2, o2) = do_pull(&e.store, &img).unwrap();
    let took = t.elapsed();
    assert_eq!(o2, 0, "second pull opened blobs");
    assert!(r2.up_to_date);
    assert_eq!(r2.commit, r1.commit);
    assert_eq!(refs(&e.store), before);
    eprintln!("re-pull took {took:?}");

    // The image ref gone but layers present: still no layer transfer.
    e.store.delete(&r1.name, &[], false).unwrap();
    let (r3, o3) = do_pull(&e.store, &img).unwrap();
    assert_eq!((o3, r3.layers_skipped, r3.up_to_date), (0, 3, false));
    assert_eq!(r3.commit, r1.commit, "commits are deterministic");
}

#[test]
fn shared_layers_and_files_are_stored_once() {
    let e = env();
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("usr/share/f{i}"), noise(i, 16 * 1024)))
        .collect();
    let mut base = Layer::new();
    for (p, d) in &files {
        base = base.file(p, d, 0o644);
    }
    let base = base.tar();
    let a = TestImage::new(
        "example.com/a",
        vec![base.clone(), Layer::new().file("a", b"a", 0o644).tar()],
    );
    let b = TestImage::new(
        "example.com/b",
        vec![base.clone(), Layer::new().file("b", b"b", 0o644).tar()],
    );
    let repo = e.store.repo_path();
    let du0 = du_kb(&repo);
    let (_, oa) = do_pull(&e.store, &a).unwrap();
    let du_a = du_kb(&repo);
    let (rb, ob) = do_pull(&e.store, &b).unwrap();
    let du_b = du_kb(&repo);
    assert_eq!((oa, ob), (2, 1), "the shared base layer is fetched once");
    assert_eq!((rb.layers_fetched, rb.layers_skipped), (1, 1));
    let content = du_a - du0;
    assert!(content >= 3000, "the base holds 3.2 MB: {content} kB");
    assert!(
        du_b - du_a < content / 20,
        "second image grew the repo by {} kB",
        du_b - du_a
    );

    // A different layer sharing 90% of its files: only the new files cost.
    let mut other = Layer::new().mtime(1);
    for (p, d) in files.iter().take(180) {
        other = other.file(p, d, 0o644);
    }
    for i in 0..20 {
        other = other.file(
            &format!("usr/share/new{i}"),
            &noise(1000 + i, 16 * 1024),
            0o644,
        );
    }
    let c = TestImage::new("example.com/c", vec![other.tar()]);
    let (rc, oc) = do_pull(&e.store, &c).unwrap();
    assert_eq!((oc, rc.layers_fetched), (1, 1));
    let du_c = du_kb(&repo);
    eprintln!("du: empty {du0} kB, +a {du_a} kB, +b {du_b} kB, +c {du_c} kB");
    assert!(
        du_c - du_b < content / 5,
        "90%-shared image grew the repo by {} kB (base {content} kB)",
        du_c - du_b
    );
}

/// Each case: a good layer then a bad one. The pull fails naming the
/// problem, and leaves no ref at all.
#[test]
fn hostile_layers_are_rejected_without_refs() {
    let good = || Layer::new().file("ok", b"ok", 0o644).tar();
    let big = Layer::new().file("data", &noise(3, 100_000), 0o644).tar();
    let long: String = (0..42).map(|i| format!("{:099}/", i)).collect::<String>() + "f";
    let mut cases: Vec<(&str, TestImage, &str)> = vec![
        (
            "absolute",
            TestImage::new(
                "t/abs",
                vec![
                    good(),
                    Layer::new()
                        .raw(b"/etc/evil", tar::EntryType::Regular, None, b"x")
                        .tar(),
                ],
            ),
            "layer entry '/etc/evil' has an absolute path",
        ),
        (
            "dotdot",
            TestImage::new(
                "t/dotdot",
                vec![
                    good(),
                    Layer::new()
                        .raw(b"a/../../evil", tar::EntryType::Regular, None, b"x")
                        .tar(),
                ],
            ),
            "layer entry 'a/../../evil' has a '..' path component",
        ),
        (
            "hardlink outside",
            TestImage::new(
                "t/link",
                vec![
                    good(),
                    Layer::new()
                        .raw(b"bin/x", tar::EntryType::Link, Some(b"etc/shadow"), b"")
                        .tar(),
                ],
            ),
            "hardlink to 'etc/shadow', which is not a file earlier in the same layer",
        ),
        (
            "hardlink absolute",
            TestImage::new(
                "t/link2",
                vec![
                    good(),
                    Layer::new()
                        .raw(b"bin/x", tar::EntryType::Link, Some(b"/etc/shadow"), b"")
                        .tar(),
                ],
            ),
            "hardlink to '/etc/shadow', which is not a file earlier in the same layer",
        ),
        (
            "path too long",
            TestImage::new(
                "t/long",
                vec![good(), Layer::new().file(&long, b"x", 0o644).tar()],
            ),
            "longer than PATH_MAX",
        ),
        (
            "ends inside an entry",
            TestImage::new("t/trunc", vec![good(), big[..60_000].to_vec()]),
            "the layer ends inside entry 'data'",
        ),
        (
            "no end-of-archive block",
            TestImage::new("t/noend", vec![good(), big[..big.len() - 1024].to_vec()]),
            "without an end-of-archive block",
        ),
        (
            "parent is a file",
            TestImage::new(
                "t/parent",
                vec![
                    good(),
                    Layer::new()
                        .file("a", b"", 0o644)
                        .file("a/b", b"", 0o644)
                        .tar(),
                ],
            ),
            "its parent 'a' is not a directory",
        ),
        (
            "collision after normalisation",
            TestImage::new(
                "t/collide",
                vec![
                    good(),
                    Layer::new()
                        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
                        .raw(b"etc//passwd", tar::EntryType::Regular, None, b"evil")
                        .tar(),
                ],
            ),
            "layer entry 'etc//passwd' collides with an earlier entry 'etc/passwd'",
        ),
    ];
    // A tampered blob: the compressed digest no longer matches.
    let mut tampered = TestImage::new("t/tamper", vec![good(), big.clone()]);
    let last = tampered.blobs[1].1.len() - 20;
    tampered.blobs[1].1[last] ^= 0xff;
    let d1 = tampered.blobs[1].0.digest.clone();
    cases.push(("tampered blob", tampered, "digest"));
    // A diff_id that does not match the uncompressed layer.
    let mut wrong = TestImage::new("t/diffid", vec![good(), big.clone()]);
    wrong.diff_ids[1] = sha(b"something else");
    wrong.refresh_config();
    cases.push(("wrong diff_id", wrong, "digest mismatch"));

    for (what, img, want) in cases {
        let e = env();
        let err = do_pull(&e.store, &img).expect_err(what);
        let msg = chain(&err);
        eprintln!("{what}: {msg}");
        assert!(msg.contains(want), "{what}: {msg}");
        if what == "tampered blob" {
            assert!(msg.contains(hexof(&d1)), "names the digest: {msg}");
        }
        assert!(
            refs(&e.store).is_empty(),
            "{what}: refs left: {:?}",
            refs(&e.store)
        );
        assert!(e.store.images().unwrap().is_empty());
        assert!(!e.root.path().join("evil").exists());
        assert!(!e.root.path().parent().unwrap().join("evil").exists());
        // The repo is still usable, and fsck-clean.
        do_pull(&e.store, &TestImage::new("t/fine", vec![good()])).unwrap();
        ostree(&e.store.repo_path(), &["fsck", "-q"]);
    }
}

#[test]
fn verify_detects_corrupted_objects() {
    let e = env();
    let img = layered();
    do_pull(&e.store, &img).unwrap();
    let info = e.store.image("localhost:5000/test/layered:1.0").unwrap();
    assert!(e.store.verify(&info).unwrap().ok());

    // Modify an object in the repo.
    let l0 = format!("ociimage/{}", hexof(&img.layer_digests()[0]));
    let obj = object_path(&e.store, &l0, "/big/blob");
    let mut f = std::fs::OpenOptions::new().append(true).open(&obj).unwrap();
    f.write_all(b"corrupt").unwrap();
    drop(f);
    let r = e.store.verify(&info).unwrap();
    assert!(!r.ok());
    let bad: Vec<_> = r.layers.iter().filter(|l| !l.errors.is_empty()).collect();
    assert_eq!(bad.len(), 1, "{r:?}");
    assert_eq!(bad[0].digest, img.layer_digests()[0]);
    let csum = obj.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(bad[0].errors[0].contains(&csum), "{:?}", bad[0].errors);

    // An edit through a deployment (hardlinked) is an edit of the repo.
    let e2 = env();
    do_pull(&e2.store, &img).unwrap();
    let info = e2.store.image(&info.image_id).unwrap();
    let dest = e2.store.checkout_root().join("x.0");
    e2.store.checkout(&info, &dest).unwrap();
    std::fs::write(dest.join("etc/new.conf"), b"edited in the deployment\n").unwrap();
    let r = e2.store.verify(&info).unwrap();
    assert!(!r.ok());
    assert_eq!(
        r.layers.iter().filter(|l| !l.errors.is_empty()).count(),
        1,
        "{r:?}"
    );
}

#[test]
fn delete_tag_prune() {
    let e = env();
    let base = Layer::new().file("base", &noise(1, 50_000), 0o644).tar();
    let a = TestImage::new(
        "example.com/app/a",
        vec![
            base.clone(),
            Layer::new().file("a", &noise(2, 50_000), 0o644).tar(),
        ],
    );
    let b = TestImage::new(
        "example.com/app/b:v2",
        vec![
            base.clone(),
            Layer::new().file("b", &noise(3, 50_000), 0o644).tar(),
        ],
    );
    do_pull(&e.store, &a).unwrap();
    do_pull(&e.store, &b).unwrap();
    let ia = e.store.image("example.com/app/a").unwrap();
    assert_eq!(ia.name, "example.com/app/a:latest");

    // tag: same commit, new name; resolvable by either.
    let t = e
        .store
        .tag("example.com/app/a", "example.com/app/a:stable")
        .unwrap();
    assert_eq!(t, "example.com/app/a:stable");
    let it = e.store.image("example.com/app/a:stable").unwrap();
    assert_eq!(it.image_id, ia.image_id);
    let rs = refs(&e.store);
    assert!(
        rs.contains(&"ociimage/example.com_2Fapp_2Fa_3Astable".to_string()),
        "{rs:?}"
    );
    // Short names are qualified.
    e.store.tag("example.com/app/a", "busybox").unwrap();
    assert_eq!(
        e.store.image("busybox").unwrap().name,
        "docker.io/library/busybox:latest"
    );

    // delete: refused when in use unless forced.
    let in_use = vec![ia.image_id.clone()];
    let err = e
        .store
        .delete("example.com/app/a:stable", &in_use, false)
        .unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    let removed = e
        .store
        .delete("example.com/app/a:stable", &in_use, true)
        .unwrap();
    assert_eq!(removed, vec!["example.com/app/a:stable"]);
    // By ID: every name of that image.
    let mut removed = e.store.delete(&ia.image_id[..19], &[], false).unwrap();
    removed.sort();
    assert_eq!(
        removed,
        vec![
            "docker.io/library/busybox:latest",
            "example.com/app/a:latest"
        ]
    );
    assert!(matches!(
        e.store.image("example.com/app/a"),
        Err(StoreError::ImageNotFound { .. })
    ));

    // prune: a's own layer goes, the shared base stays.
    let dangling = e.store.dangling_layers().unwrap();
    assert_eq!(dangling.len(), 1);
    assert_eq!(dangling[0].digest, a.layer_digests()[1]);
    let p = e.store.prune().unwrap();
    assert_eq!(p.layers, vec![a.layer_digests()[1].clone()]);
    assert!(p.objects_pruned > 0 && p.bytes_freed >= 50_000, "{p:?}");
    let ib = e.store.image("example.com/app/b:v2").unwrap();
    assert!(e.store.verify(&ib).unwrap().ok());
    let dest = e.store.checkout_root().join("b.0");
    e.store.checkout(&ib, &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("base")).unwrap(), noise(1, 50_000));
    ostree(&e.store.repo_path(), &["fsck", "-q"]);

    // Nothing left to prune.
    let p = e.store.prune().unwrap();
    assert!(p.layers.is_empty() && p.objects_pruned == 0, "{p:?}");
}

#[test]
fn uncompressed_and_repeated_layers() {
    let e = env();
    let t = Layer::new().file("x", b"x", 0o644).tar();
    let empty = Layer::new().tar();
    let mut img = TestImage::new("example.com/plain", vec![empty.clone(), t.clone(), empty]);
    // Second layer served uncompressed.
    img.blobs[1] = (
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: sha(&t),
            size: t.len() as u64,
        },
        t.clone(),
    );
    let (r, opens) = do_pull(&e.store, &img).unwrap();
    assert_eq!((r.layers_fetched, r.layers_skipped, opens), (2, 1, 2));
    let info = e.store.image("example.com/plain").unwrap();
    assert_eq!(e.store.read_file(&info, "/x").unwrap().unwrap(), b"x");
}

/// Three layers of a few hundred files each, built from `seed`.
fn many_files(seed: u64) -> TestImage {
    let layers = (0..3u64)
        .map(|l| {
            let mut t = Layer::new().dir(&format!("l{l}"), 0o755);
            for i in 0..300u64 {
                let data = noise(seed * 1000 + l * 300 + i, 100 + (i as usize * 37) % 5000);
                t = t.file(&format!("l{l}/f{i}"), &data, 0o644);
                if i % 10 == 0 {
                    t = t.symlink(&format!("l{l}/s{i}"), &format!("f{i}"));
                }
            }
            // The same file in every layer: one object.
            t.file("shared", b"in every layer", 0o644).tar()
        })
        .collect();
    TestImage::new(&format!("example.com/many{seed}"), layers)
}

/// Layers fetched at once give the very commits that layers fetched one
/// after the other give, objects included.
#[test]
fn parallel_and_sequential_pulls_store_the_same_commits() {
    let img = many_files(1);
    let (par, seq) = (env(), env());
    // Two blobs are read at once (a pull runs at least two layer workers).
    let mut two = MemSource::new(&img);
    two.meet = Some(2);
    let r1 = pull(&par.store, &mut two, &mut NoProgress).unwrap();
    assert!(two.most_open() >= 2, "layers fetched at once");
    let mut one = MemSource::new(&img);
    one.forks = false;
    let r2 = pull(&seq.store, &mut one, &mut NoProgress).unwrap();
    assert_eq!(one.most_open(), 1);
    assert_eq!((r1.layers_fetched, r2.layers_fetched), (3, 3));
    assert_eq!(r1.commit, r2.commit);
    assert_eq!(refs(&par.store), refs(&seq.store));
    for d in img.layer_digests() {
        let c = par.store.layer_commit(&d).unwrap().expect("layer ref");
        assert_eq!(Some(c.clone()), seq.store.layer_commit(&d).unwrap());
        let a = ostree(&par.store.repo_path(), &["ls", "-R", "-C", &c]);
        let b = ostree(&seq.store.repo_path(), &["ls", "-R", "-C", &c]);
        assert_eq!(a, b);
        assert_eq!(a.lines().count(), 300 + 30 + 3, "{a}");
    }
    for e in [&par, &seq] {
        ostree(&e.store.repo_path(), &["fsck"]);
        // Nothing left partial, nothing left staged.
        let state = e.store.repo_path().join("state");
        let partial: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
        assert!(partial.is_empty(), "{partial:?}");
        let tmp = e.store.repo_path().join("tmp");
        let staged = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("staging-"))
            .count();
        assert_eq!(staged, 0, "staging directories left in {}", tmp.display());
    }
    let info = par.store.image("example.com/many1").unwrap();
    assert_eq!(
        par.store.read_file(&info, "/shared").unwrap().unwrap(),
        b"in every layer"
    );
}

/// The registry fails in the middle of a pull, with layers in flight: the
/// pull fails naming the failure, no ref is written, the image already
/// stored is intact, and the next pull completes.
#[test]
fn a_source_failing_mid_pull_leaves_the_store_as_it_was() {
    let e = env();
    let old = many_files(2);
    let (r_old, _) = do_pull(&e.store, &old).unwrap();
    let revs = |store: &Store| -> Vec<String> {
        refs(store)
            .iter()
            .map(|r| ostree(&store.repo_path(), &["rev-parse", r]))
            .collect()
    };
    let before = refs(&e.store);
    let before_revs = revs(&e.store);
    let img = many_files(3);
    // Half the blobs' 16 kB reads: layers are under way.
    let reads: usize = img
        .blobs
        .iter()
        .map(|(_, b)| b.len().div_ceil(16 * 1024))
        .sum();
    let mut src = MemSource::new(&img);
    src.fail_at = Some(reads / 2);
    let err = pull(&e.store, &mut src, &mut NoProgress).expect_err("the source failed");
    let msg = chain(&err);
    assert!(msg.contains("the registry went away"), "{msg}");
    assert!(
        src.reads.load(Ordering::SeqCst) < reads,
        "failed before the end"
    );
    assert_eq!(refs(&e.store), before);
    assert_eq!(revs(&e.store), before_revs);
    assert!(before_revs.contains(&format!("{}\n", r_old.commit)));
    assert!(matches!(
        e.store.image("example.com/many3"),
        Err(StoreError::ImageNotFound { .. })
    ));
    ostree(&e.store.repo_path(), &["fsck"]);
    let info = e.store.image("example.com/many2").unwrap();
    assert_eq!(
        e.store.read_file(&info, "/shared").unwrap().unwrap(),
        b"in every layer"
    );
    let (r, _) = do_pull(&e.store, &img).unwrap();
    assert_eq!(r.layers_fetched, 3);
    ostree(&e.store.repo_path(), &["fsck"]);
}

#[test]
fn lock_serializes_and_nests() {
    let e = env();
    let g = e.store.lock(LockMode::Shared).unwrap();
    {
        // Nested upgrade on the same store does not deadlock.
        let _x = e.store.lock(LockMode::Exclusive).unwrap();
    }
    drop(g);
    let held = e.store.lock(LockMode::Exclusive).unwrap();
    let root = e.root.clone();
    let t = std::thread::spawn(move || {
        let s = Store::open_with(&root, &Location::default()).unwrap();
        let start = Instant::now();
        let _l = s.lock(LockMode::Shared).unwrap();
        start.elapsed()
    });
    std::thread::sleep(Duration::from_millis(1300));
    drop(held);
    let waited = t.join().unwrap();
    assert!(waited >= Duration::from_millis(1200), "waited {waited:?}");
}

#[test]
fn repo_location_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Root::new(tmp.path());
    // No /ostree/repo: the fallback under the checkout root.
    let s = Store::open_with(&root, &Location::default()).unwrap();
    assert_eq!(
        s.repo_logical_path(),
        PathBuf::from("/var/lib/containers/atomic/.storage/ostree")
    );
    assert_eq!(
        s.checkout_root(),
        tmp.path().join("var/lib/containers/atomic")
    );
    assert!(s.repo_path().join("config").exists());
    let cfg = std::fs::read_to_string(s.repo_path().join("config")).unwrap();
    assert!(cfg.contains("mode=bare"), "{cfg}");
    drop(s);

    // /ostree/repo on the same filesystem: used.
    let tmp2 = tempfile::tempdir().unwrap();
    let root2 = Root::new(tmp2.path());
    let sys = tmp2.path().join("ostree/repo");
    std::fs::create_dir_all(&sys).unwrap();
    ostree(&sys, &["init", "--mode=bare"]);
    let s = Store::open_with(&root2, &Location::default()).unwrap();
    assert_eq!(s.repo_logical_path(), PathBuf::from("/ostree/repo"));
    drop(s);

    // Overrides.
    let s = Store::open_with(
        &root2,
        &Location {
            repo: Some("/srv/repo".into()),
            checkout: Some("/srv/checkouts".into()),
        },
    )
    .unwrap();
    assert_eq!(s.repo_logical_path(), PathBuf::from("/srv/repo"));
    assert_eq!(s.checkout_root(), tmp2.path().join("srv/checkouts"));
    assert!(tmp2.path().join("srv/repo/config").exists());

    // A repo in another mode is refused.
    let tmp3 = tempfile::tempdir().unwrap();
    let other = tmp3
        .path()
        .join("var/lib/containers/atomic/.storage/ostree");
    std::fs::create_dir_all(&other).unwrap();
    ostree(&other, &["init", "--mode=archive"]);
    let err = Store::open_with(&Root::new(tmp3.path()), &Location::default())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::RepoMode { .. }), "{err}");
}

/// Images pulled one by one, each with a layer of its own, until two image
/// IDs share their first hex digit (at most 17, by pigeonhole). Returns
/// every ID and the index of the two that share it.
fn pull_until_ids_collide(store: &Store) -> (Vec<String>, usize, usize) {
    let mut ids: Vec<String> = Vec::new();
    for n in 0..17 {
        let img = TestImage::new(
            &format!("localhost:5000/test/amb{n}:1"),
            vec![Layer::new()
                .file("etc/n", n.to_string().as_bytes(), 0o644)
                .tar()],
        );
        let (r, _) = do_pull(store, &img).unwrap();
        // The image ID is the config's digest.
        assert_eq!(r.image_id, img.config_desc().digest);
        if let Some(i) = ids
            .iter()
            .position(|id| hexof(id)[..1] == hexof(&r.image_id)[..1])
        {
            ids.push(r.image_id);
            return (ids.clone(), i, ids.len() - 1);
        }
        ids.push(r.image_id);
    }
    unreachable!("17 IDs over 16 hex digits: two share the first");
}

#[test]
fn missing_images_and_ambiguous_ids() {
    let e = env();
    for name in ["nothing/here", "abcdef", "sha256:"] {
        match e.store.image(name) {
            Err(StoreError::ImageNotFound { name: n }) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    match e.store.image("") {
        Err(err @ StoreError::BadName { .. }) => {
            assert_eq!(err.to_string(), "'' is not a valid image name")
        }
        other => panic!("'': {other:?}"),
    }

    // Two real image IDs that share a prefix, and that prefix: ambiguous.
    let (ids, i, j) = pull_until_ids_collide(&e.store);
    let (a, b) = (hexof(&ids[i]), hexof(&ids[j]));
    let shared = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    assert!(shared >= 1, "{a} {b}");
    let prefix = &a[..shared];
    let mut both = [ids[i].clone(), ids[j].clone()];
    both.sort();
    let matches = format!("{}, {}", both[0], both[1]);
    for given in [
        prefix.to_string(),
        format!("sha256:{prefix}"),
        prefix.to_ascii_uppercase(),
    ] {
        match e.store.image(&given) {
            Err(err @ StoreError::AmbiguousId { .. }) => {
                assert_eq!(
                    err.to_string(),
                    format!("image ID prefix '{given}' is ambiguous: {matches}")
                );
                assert_eq!(err.exit_code(), syscontainer::exit::INVALID);
                let StoreError::AmbiguousId {
                    prefix: p,
                    matches: m,
                } = err
                else {
                    unreachable!()
                };
                assert_eq!((p.as_str(), m.as_str()), (given.as_str(), matches.as_str()));
            }
            other => panic!("{given}: {other:?} (ids {ids:?})"),
        }
    }
    // One digit more tells them apart; so does the full ID.
    for (hex, id) in [(a, &ids[i]), (b, &ids[j])] {
        assert_eq!(&e.store.image(&hex[..shared + 1]).unwrap().image_id, id);
        assert_eq!(&e.store.image(id).unwrap().image_id, id);
    }
    // Another name for the same image is not a second match.
    let one = e.store.image(&ids[i]).unwrap();
    e.store
        .tag(&one.name, "localhost:5000/test/other:1")
        .unwrap();
    assert_eq!(&e.store.image(&a[..shared + 1]).unwrap().image_id, &ids[i]);
    // The other images do not start with the prefix (so no third match).
    for (k, id) in ids.iter().enumerate() {
        if k != i && k != j {
            assert!(!hexof(id).starts_with(prefix), "{id}");
        }
    }
}

/// Digests are lowercase hex, in the store as everywhere (`imgref`): a ref
/// `ociimage/<64 uppercase hex>` is neither a layer (not listed, not looked
/// up, not pruned) nor an image, and an uppercase image ID does not name
/// the image its lowercase form names.
#[test]
fn uppercase_hex_is_no_layer_ref_digest_or_id() {
    let e = env();
    let img = layered();
    do_pull(&e.store, &img).unwrap();
    let info = e.store.image("localhost:5000/test/layered:1.0").unwrap();
    let l0 = img.layer_digests()[0].clone();
    let commit = e.store.layer_commit(&l0).unwrap().unwrap();
    let upper_hex = hexof(&l0).to_ascii_uppercase();
    assert_ne!(upper_hex, hexof(&l0), "the test digest has letters");
    let upper_ref = format!("ociimage/{upper_hex}");
    ostree(
        &e.store.repo_path(),
        &["refs", &format!("--create={upper_ref}"), &commit],
    );

    // Not a layer digest.
    let upper = format!("sha256:{upper_hex}");
    assert_eq!(e.store.layer_commit(&upper).unwrap(), None);
    assert_eq!(e.store.layer(&upper).unwrap(), None);
    // Not an image either: listing still works and shows the one image.
    let names: Vec<String> = e
        .store
        .images()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["localhost:5000/test/layered:1.0"]);
    assert!(e.store.dangling_layers().unwrap().is_empty());
    // Prune leaves a ref it does not own.
    let p = e.store.prune().unwrap();
    assert!(p.layers.is_empty(), "{p:?}");
    assert!(refs(&e.store).contains(&upper_ref));

    // Image IDs: the lowercase prefix finds the image, the uppercase one not.
    let id_hex = hexof(&info.image_id);
    assert_eq!(
        e.store.image(&id_hex[..12]).unwrap().image_id,
        info.image_id
    );
    for id in [
        id_hex.to_ascii_uppercase(),
        format!("sha256:{}", id_hex.to_ascii_uppercase()),
    ] {
        assert_ne!(id, id.to_ascii_lowercase(), "the test ID has letters");
        assert!(
            matches!(e.store.image(&id), Err(StoreError::ImageNotFound { .. })),
            "{id} named an image"
        );
    }
}

/// `containers verify` in the store: a clean union checkout (whiteouts,
/// opaque dirs, symlinks, hardlinks, setuid, xattrs, ownership) matches its
/// image; each kind of tampering is reported under the right heading; an
/// in-place edit through the hardlink shows both here and in `verify`.
#[test]
fn verify_checkout_reports_modified_added_and_missing() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let e = env();
    let img = layered();
    do_pull(&e.store, &img).unwrap();
    let info = e.store.image("localhost:5000/test/layered:1.0").unwrap();
    let dest = e.store.checkout_root().join("v.0");
    e.store.checkout(&info, &dest).unwrap();
    let d = e.store.verify_checkout(&info, &dest).unwrap();
    assert!(d.ok(), "a fresh checkout differs from its image: {d:?}");
    assert!(d.checked > 15, "{d:?}");

    // Replaced (new inode: the repo is untouched), edited in place through
    // the hardlink, chmod-ed through the hardlink, symlink retargeted, a file
    // turned into a directory.
    let tmp = dest.join("etc/keep.conf.new");
    std::fs::write(&tmp, b"tampered\n").unwrap();
    std::fs::rename(&tmp, dest.join("etc/keep.conf")).unwrap();
    std::fs::write(dest.join("usr/bin/tool"), b"#!/bin/sh\necho pwned\n").unwrap();
    std::fs::set_permissions(
        dest.join("usr/bin/xattr"),
        std::fs::Permissions::from_mode(0o4777),
    )
    .unwrap();
    std::fs::remove_file(dest.join("usr/bin/link")).unwrap();
    symlink("/bin/evil", dest.join("usr/bin/link")).unwrap();
    std::fs::remove_file(dest.join("opaque/c")).unwrap();
    std::fs::create_dir(dest.join("opaque/c")).unwrap();
    // Added, and missing.
    std::fs::write(dest.join("etc/ld.so.preload"), b"/evil.so\n").unwrap();
    std::fs::write(dest.join("opaque/a"), b"resurrected").unwrap();
    std::fs::remove_file(dest.join("etc/new.conf")).unwrap();

    let d = e.store.verify_checkout(&info, &dest).unwrap();
    assert!(!d.ok());
    assert_eq!(
        d.modified,
        [
            "etc/keep.conf",
            "opaque/c",
            "usr/bin/link",
            "usr/bin/tool",
            "usr/bin/tool2",
            "usr/bin/xattr"
        ],
        "{d:?}"
    );
    assert_eq!(d.added, ["etc/ld.so.preload", "opaque/a"], "{d:?}");
    assert_eq!(d.missing, ["etc/new.conf"], "{d:?}");

    // The in-place edit and the chmod went through the hardlinks into the
    // repo objects: `images verify` sees them too (the replaced file not).
    let r = e.store.verify(&info).unwrap();
    assert!(!r.ok(), "{r:?}");
    let errors: usize = r.layers.iter().map(|l| l.errors.len()).sum();
    assert_eq!(errors, 2, "{r:?}");
}

// ------------------------------------------------ hardlink vs libostree checkout

fn union_edge_layers() -> Vec<Vec<u8>> {
    let l1 = Layer::new()
        .dir("./", 0o755)
        .dir("tmp", 0o1777)
        .pax(&[("SCHILY.xattr.user.dir", b"dirval")])
        .dir("d", 0o750)
        .file("d/f", b"f1", 0o644)
        .dir("gone", 0o755)
        .dir("gone/sub", 0o755)
        .file("gone/sub/x", b"x", 0o644)
        .dir("y", 0o755)
        .file("y/z", b"z", 0o644)
        .file("same", b"same", 0o644)
        .file("s", b"a file, then a symlink", 0o644)
        .dir("ro", 0o555)
        .file("ro/a", b"a", 0o444)
        .dir("op", 0o755)
        .file("op/old", b"old", 0o644)
        .dir("op/sub", 0o700)
        .file("op/sub/old", b"old", 0o644)
        .tar();
    let l2 = Layer::new()
        // tmp/ and ro/ implicit: they keep their layer-1 metadata.
        .file("tmp/new", b"new", 0o600)
        .file("ro/b", b"b", 0o444)
        .file(".wh.gone", b"", 0o644)
        .file("y", b"a file over a directory", 0o644)
        .file("same", b"same", 0o644)
        .symlink("s", "/target")
        .dir("d", 0o700)
        .file("d/f", b"f2", 0o600)
        .dir("op", 0o711)
        .file("op/.wh..wh..opq", b"", 0o644)
        .file("op/new", b"new", 0o644)
        .tar();
    let l3 = Layer::new()
        .dir("gone", 0o700)
        .file("gone/again", b"again", 0o644)
        .file("d/.wh.f", b"", 0o644)
        .tar();
    vec![l1, l2, l3]
}

#[test]
fn hardlink_checkout_matches_libostree_on_union_edge_cases() {
    let e = env();
    let img = TestImage::new("localhost:5000/test/edges:1", union_edge_layers());
    do_pull(&e.store, &img).unwrap();
    let info = e.store.image("localhost:5000/test/edges:1").unwrap();
    let ours = e.store.checkout_root().join("edges.ours");
    let theirs = e.store.checkout_root().join("edges.libostree");
    e.store
        .checkout_with(&info, &ours, CheckoutMethod::Hardlink)
        .unwrap();
    e.store
        .checkout_with(&info, &theirs, CheckoutMethod::Libostree)
        .unwrap();
    let a = full_listing(&ours);
    assert_eq!(a, full_listing(&theirs));
    let has = |p: &str| a.iter().any(|l| l.starts_with(&format!("{p} ")));
    assert!(has("tmp/new") && has("ro/b") && has("op/new") && has("gone/again"));
    assert!(!has("gone/sub") && !has("op/old") && !has("op/sub") && !has("d/f"));
    assert!(!a.iter().any(|l| l.contains(".wh.")), "{a:?}");
    assert_eq!(mode(&ours.join("tmp")), 0o1777);
    assert_eq!(mode(&ours.join("ro")), 0o555);
    assert_eq!(
        mode(&ours.join("d")),
        0o750,
        "an existing dir keeps its metadata"
    );
    assert_eq!(
        mode(&ours.join("op")),
        0o711,
        "an opaque dir is created afresh"
    );
    assert_eq!(mode(&ours.join("gone")), 0o700);
    assert_eq!(
        xattr::get(ours.join("d"), "user.dir").unwrap(),
        Some(b"dirval".to_vec())
    );
    assert_eq!(
        std::fs::read(ours.join("y")).unwrap(),
        b"a file over a directory"
    );
    assert_eq!(
        std::fs::read_link(ours.join("s")).unwrap(),
        PathBuf::from("/target")
    );
}

/// A directory over a non-directory replaces it (libostree fails there).
#[test]
fn hardlink_checkout_dir_over_file() {
    let e = env();
    let l1 = Layer::new()
        .dir("./", 0o755)
        .file("x", b"a file", 0o644)
        .symlink("l", "x")
        .tar();
    let l2 = Layer::new()
        .dir("x", 0o710)
        .file("x/inside", b"in", 0o644)
        .dir("l", 0o755)
        .tar();
    let img = TestImage::new("localhost:5000/test/dof:1", vec![l1, l2]);
    do_pull(&e.store, &img).unwrap();
    let info = e.store.image("localhost:5000/test/dof:1").unwrap();
    let dest = e.store.checkout_root().join("dof.0");
    e.store
        .checkout_with(&info, &dest, CheckoutMethod::Hardlink)
        .unwrap();
    assert_eq!(mode(&dest.join("x")), 0o710);
    assert_eq!(std::fs::read(dest.join("x/inside")).unwrap(), b"in");
    assert!(std::fs::symlink_metadata(dest.join("l")).unwrap().is_dir());
    // libostree's checkout fails, and leaves nothing behind.
    let d2 = e.store.checkout_root().join("dof.1");
    assert!(e
        .store
        .checkout_with(&info, &d2, CheckoutMethod::Libostree)
        .is_err());
    assert!(!d2.exists());
}

/// Hardlink `obj` into `dir` until the filesystem refuses with EMLINK; the
/// number of links made. Fails loudly on a filesystem without a link limit
/// (the test needs one: ext4, whose limit is 65,000).
fn fill_links(obj: &Path, dir: &Path) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..70_000 {
        match std::fs::hard_link(obj, dir.join(i.to_string())) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EMLINK) => return i,
            Err(e) => panic!("linking {}: {e}", obj.display()),
        }
    }
    panic!(
        "{} takes over 70,000 links: this test needs a filesystem with a link limit (ext4)",
        dir.display()
    );
}

/// A regular file whose object has reached the link limit (EMLINK) is copied
/// for that file only, with its content, mode (setuid), owner, xattrs and
/// mtime, in both checkouts (a fresh name, and a union replacement of a lower
/// layer's file), and the report counts the copies. Symlinks are created,
/// never hardlinked: their object keeps its link count. `containers verify`
/// accepts the copies, and flags an edited or chmod-ed one (which the repo
/// object does not share, so `images verify` stays clean).
#[test]
fn objects_at_the_link_limit_are_copied() {
    let e = env();
    const FULL: &[u8] = b"this object has no links left\n";
    let full = |l: Layer, p: &str| {
        l.pax(&[("SCHILY.xattr.user.test", b"kept")])
            .file_owned(p, FULL, 0o4750, 1000, 1001)
    };
    let l1 = Layer::new()
        .dir("./", 0o755)
        .dir("bin", 0o755)
        .file("bin/tool", b"#!/bin/sh\n", 0o755)
        .symlink("bin/a", "tool")
        .symlink("bin/b", "tool")
        .file("etc/over", b"lower\n", 0o644);
    let l1 = full(l1, "bin/full").tar();
    let l2 = full(full(Layer::new(), "etc/over"), "etc/more").tar();
    let l2b = full(Layer::new(), "etc/more").tar();
    let img = TestImage::new("localhost:5000/test/emlink:1", vec![l1.clone(), l2]);
    do_pull(&e.store, &img).unwrap();
    let info = e.store.image("localhost:5000/test/emlink:1").unwrap();
    // libostree (2022.7, and its main branch) cannot replace a lower
    // layer's file with an object at the link limit: its union path links
    // the object to a temp name first and has no copy fallback there
    // (hardlink_add_tmp_name). Its image has no such replacement.
    let imgb = TestImage::new("localhost:5000/test/emlink:2", vec![l1, l2b]);
    do_pull(&e.store, &imgb).unwrap();
    let infob = e.store.image("localhost:5000/test/emlink:2").unwrap();
    let l0 = format!("ociimage/{}", hexof(&img.layer_digests()[0]));
    let obj = object_path(&e.store, &l0, "/bin/full");
    let sym = object_path(&e.store, &l0, "/bin/a");
    let tool = object_path(&e.store, &l0, "/bin/tool");
    assert!(std::fs::symlink_metadata(&sym).unwrap().is_symlink());
    let sym_links = std::fs::symlink_metadata(&sym).unwrap().nlink();
    fill_links(&obj, &e.root.path().join("fill"));
    let objmd = std::fs::metadata(&obj).unwrap();

    for (method, slot, info, copies) in [
        (
            CheckoutMethod::Hardlink,
            "ours",
            &info,
            &["bin/full", "etc/over", "etc/more"][..],
        ),
        (
            CheckoutMethod::Libostree,
            "libostree",
            &infob,
            &["bin/full", "etc/more"][..],
        ),
    ] {
        let dest = e.store.checkout_root().join(slot);
        let r = e.store.checkout_with(info, &dest, method).unwrap();
        assert_eq!(r.copied, copies.len() as u64, "{slot}: {r:?}");
        for p in copies {
            let m = std::fs::symlink_metadata(dest.join(p)).unwrap();
            assert!(m.is_file(), "{slot} {p}");
            assert_eq!(m.nlink(), 1, "{slot} {p}: a copy");
            assert_eq!(
                (m.mode() & 0o7777, m.uid(), m.gid()),
                (0o4750, 1000, 1001),
                "{slot} {p}"
            );
            assert_eq!(std::fs::read(dest.join(p)).unwrap(), FULL, "{slot} {p}");
            assert_eq!(
                xattr::get(dest.join(p), "user.test").unwrap(),
                Some(b"kept".to_vec()),
                "{slot} {p}"
            );
            if method == CheckoutMethod::Hardlink {
                assert_eq!(m.mtime(), objmd.mtime(), "{slot} {p}: the object's mtime");
            }
        }
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&dest.join("bin/tool")), ino(&tool), "{slot}: linked");
        let d = e.store.verify_checkout(info, &dest).unwrap();
        assert!(d.ok(), "{slot}: {d:?}");
        assert!(d.checked >= 7, "{slot}: {d:?}");
    }
    // Ours never links a symlink object; libostree links both.
    let ours = e.store.checkout_root().join("ours");
    for p in ["bin/a", "bin/b"] {
        let m = std::fs::symlink_metadata(ours.join(p)).unwrap();
        assert!(m.is_symlink() && m.nlink() == 1, "{p}: {m:?}");
        assert_eq!(std::fs::read_link(ours.join(p)).unwrap(), Path::new("tool"));
    }
    assert_eq!(
        std::fs::symlink_metadata(&sym).unwrap().nlink(),
        sym_links + 2,
        "only libostree's checkout linked the symlink object"
    );

    // An edited copy and a chmod-ed copy are flagged; the object is intact.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(ours.join("etc/over"))
        .unwrap();
    f.write_all(b"tampered\n").unwrap();
    drop(f);
    std::fs::set_permissions(
        ours.join("bin/full"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let d = e.store.verify_checkout(&info, &ours).unwrap();
    assert_eq!(d.modified, ["bin/full", "etc/over"], "{d:?}");
    assert!(d.added.is_empty() && d.missing.is_empty(), "{d:?}");
    assert!(e.store.verify(&info).unwrap().ok());
    assert_eq!(std::fs::read(&obj).unwrap(), FULL);
}

/// A check that accepts and hands back fixed signatures, or refuses.
struct FixedCheck(Option<syscontainer::trust::Signatures>);
impl syscontainer::store::PullCheck for FixedCheck {
    fn check(
        &self,
        _img: &ResolvedImage,
        _src: &mut dyn ImageSource,
    ) -> Result<Option<syscontainer::trust::Signatures>, syscontainer::trust::TrustError> {
        Ok(self.0.clone())
    }
}

#[test]
fn the_signatures_a_check_read_are_kept_with_the_image_and_pruned_with_it() {
    use syscontainer::store::pull_checked;
    use syscontainer::trust::Signatures;
    let e = env();
    let img = layered();
    let sigs = Signatures {
        simple: vec![b"a simple signature".to_vec()],
        sigstore: vec![syscontainer::source::SigstoreAttachment {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            payload: b"{\"critical\": {}}".to_vec(),
            annotations: [(
                "dev.cosignproject.cosign/signature".to_string(),
                "MEU=".to_string(),
            )]
            .into(),
        }],
        ..Signatures::default()
    };
    let check = FixedCheck(Some(sigs.clone()));
    let r = pull_checked(&e.store, &mut MemSource::new(&img), &mut NoProgress, &check).unwrap();
    let got = e
        .store
        .signatures(&r.name, &r.manifest_digest)
        .unwrap()
        .unwrap();
    assert_eq!((&got.simple, &got.sigstore), (&sigs.simple, &sigs.sigstore));
    assert!(got.from.contains("stored with the image"), "{}", got.from);
    // For another manifest under that name: not these.
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(e.store.signatures(&r.name, &other).unwrap().is_none());
    // A re-pull with the same signatures leaves the file alone.
    let dir = e
        .store
        .repo_path()
        .join("extensions/syscontainer/signatures");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let ino = files[0].metadata().unwrap().ino();
    let r2 = pull_checked(&e.store, &mut MemSource::new(&img), &mut NoProgress, &check).unwrap();
    assert!(r2.up_to_date);
    assert_eq!(std::fs::metadata(files[0].path()).unwrap().ino(), ino);
    // New signatures on a re-pull replace the old ones (atomically: a new file).
    let mut more = sigs.clone();
    more.simple.push(b"another".to_vec());
    pull_checked(
        &e.store,
        &mut MemSource::new(&img),
        &mut NoProgress,
        &FixedCheck(Some(more.clone())),
    )
    .unwrap();
    let got = e
        .store
        .signatures(&r.name, &r.manifest_digest)
        .unwrap()
        .unwrap();
    assert_eq!(got.simple, more.simple);
    assert_ne!(std::fs::metadata(files[0].path()).unwrap().ino(), ino);
    // No signatures read (no policy): what was kept stays.
    pull_checked(
        &e.store,
        &mut MemSource::new(&img),
        &mut NoProgress,
        &FixedCheck(None),
    )
    .unwrap();
    assert!(e
        .store
        .signatures(&r.name, &r.manifest_digest)
        .unwrap()
        .is_some());
    // Deleted and pruned: the file goes with the image.
    e.store.delete(&r.name, &[], false).unwrap();
    e.store.prune().unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}
