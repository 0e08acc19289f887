//! Expansion bombs (issue 9, section 3): a layer of a few kB that declares
//! a 60 GB sparse file, layers that do not fit on the repo's filesystem, and
//! the real cases that must still import (a sparse file within the cap, a
//! large file of zeros). Sparse layers are packed by GNU tar `--sparse` at
//! test time; small filesystems are tmpfs mounts.
//!
//! Run: `cargo test -p syscontainer-core --features store --test import_bombs`.
//! Needs root (bare repos, tmpfs mounts), GNU tar and the `ostree` CLI.

mod layouts;

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gio::prelude::*;
use layouts::{gnu_sparse_tar, gzip, oci_layout, thread_wchar, Layer, Tmpfs};
use syscontainer::paths::Root;
use syscontainer::source::oci::OciLayoutSource;
use syscontainer::store::import::{
    import_layer_from, ImportError, ImportLimits, Imported, LayerInfo, RECHECK_BYTES,
};
use syscontainer::store::{pull, Location, NoProgress, Store, StoreError};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn repo_at(dir: &Path) -> ostree::Repo {
    let repo = ostree::Repo::new_for_path(dir);
    repo.create(ostree::RepoMode::Bare, gio::Cancellable::NONE)
        .unwrap();
    repo
}

fn ostree(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args)
        .output()
        .expect("the ostree CLI is installed");
    assert!(
        out.status.success(),
        "ostree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Import a gzip blob as `pull` does (decompressed on the fly, with the
/// blob's size known), in a transaction that is then aborted. Also gives
/// the bytes this thread wrote and the time it took.
fn import_gz(
    repo: &ostree::Repo,
    blob: &[u8],
    limits: &ImportLimits,
) -> (Result<Imported, ImportError>, u64, Duration) {
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let (w0, t0) = (thread_wchar(), Instant::now());
    let r = import_layer_from(
        repo,
        flate2::read::GzDecoder::new(blob),
        limits,
        &LayerInfo {
            compressed_size: Some(blob.len() as u64),
            ..Default::default()
        },
    );
    let (written, took) = (thread_wchar() - w0, t0.elapsed());
    if r.is_ok() {
        repo.commit_transaction(gio::Cancellable::NONE).unwrap();
    } else {
        repo.abort_transaction(gio::Cancellable::NONE).unwrap();
    }
    (r, written, took)
}

/// The object file behind `path` in an imported tree (a bare repo).
fn object(repo_dir: &Path, i: &Imported, path: &str) -> PathBuf {
    let f = i.root.resolve_relative_path(path);
    let f = f.downcast_ref::<ostree::RepoFile>().unwrap();
    f.ensure_resolved().unwrap();
    let c = f.checksum().to_string();
    repo_dir.join(format!("objects/{}/{}.file", &c[..2], &c[2..]))
}

#[test]
fn a_sparse_bomb_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    // One 60 GiB file whose only data is its last byte: 10 kB of tar, 145
    // bytes of gzip.
    let size = 60 * GIB;
    let tar = gnu_sparse_tar(tmp.path(), &[("f", size, &[(size - 1, b"x")])]);
    let blob = gzip(&tar);
    assert!(tar.len() <= 10240 && blob.len() < 1000, "{}", blob.len());
    let repo = repo_at(&tmp.path().join("repo"));
    let (r, written, took) = import_gz(&repo, &blob, &ImportLimits::default());
    let e = r.err().expect("the bomb is refused");
    assert!(
        matches!(e, ImportError::TooSparse { declared, stored: 4096, .. } if declared == size),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(
        m.starts_with(
            "layer entry 'f' is a sparse file of 64424509440 bytes with 4096 bytes of data"
        ),
        "{m}"
    );
    assert!(
        m.contains(&format!("over the limit of {}", 256 * MIB)),
        "{m}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(written < 10_000_000, "wrote {written} bytes");

    // Uncompressed, with no size given: the tar's own length is the measure.
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let e = syscontainer::store::import::import_layer(&repo, &tar[..])
        .err()
        .unwrap();
    assert!(matches!(e, ImportError::TooSparse { .. }), "{e}");
    repo.abort_transaction(gio::Cancellable::NONE).unwrap();
    ostree(&tmp.path().join("repo"), &["fsck"]);

    // Files under the floor share it: the second is refused (a floor of
    // 1 MiB, to keep the test small).
    let limits = ImportLimits {
        sparse_floor: MIB,
        ..Default::default()
    };
    let tar = gnu_sparse_tar(
        tmp.path(),
        &[
            ("a", 800 << 10, &[(0, b"a")]),
            ("b", 800 << 10, &[(0, b"b")]),
        ],
    );
    let (r, written, _) = import_gz(&repo, &gzip(&tar), &limits);
    let e = r.err().unwrap();
    assert!(
        matches!(&e, ImportError::TooSparse { path, total, .. }
        if path == "b" && *total == 1600 << 10),
        "{e}"
    );
    assert!(written < 2 * MIB, "wrote {written} bytes");
}

/// What real images hold: a large file of zeros (how docker and buildah
/// store a sparse file: gzip takes it down about 1000:1) and a sparse file
/// over the floor in a layer that also carries real data. Both import, with
/// their content. The floor is 8 MiB here, to keep the files small.
#[test]
fn real_sparse_and_zero_files_still_import() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let repo = repo_at(&dir);
    let limits = ImportLimits {
        sparse_floor: 8 * MIB,
        ..Default::default()
    };

    // Were it counted as sparse, 64 MiB of zeros would be over the floor
    // and over 1000 times its blob.
    let zeros = Layer::repeated(tmp.path(), "zeros", 64 * MIB, 0);
    let ratio = (64 * MIB) / zeros.blob.len() as u64;
    assert!(ratio > 1000, "gzip of zeros: {ratio}:1");
    let (r, _, _) = import_gz(&repo, &zeros.blob, &limits);
    let i = r.unwrap();
    assert_eq!(i.stats.content_bytes, 64 * MIB);
    assert_eq!(
        std::fs::metadata(object(&dir, &i, "zeros")).unwrap().len(),
        64 * MIB
    );

    // 64 MiB declared, 256 KiB of incompressible data in the middle, a byte
    // at the end: 256 KiB of layer allows 250 MiB of sparse files.
    let mut noise = vec![0u8; 256 << 10];
    File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut noise)
        .unwrap();
    let size = 64 * MIB;
    let tar = gnu_sparse_tar(
        tmp.path(),
        &[("s", size, &[(16 * MIB, &noise[..]), (size - 1, b"z")])],
    );
    let blob = gzip(&tar);
    assert!(blob.len() > 256 << 10);
    let (r, _, _) = import_gz(&repo, &blob, &limits);
    let i = r.unwrap();
    let f = File::open(object(&dir, &i, "s")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), size);
    let at = |off: u64, n: usize| {
        let mut b = vec![1u8; n];
        f.read_exact_at(&mut b, off).unwrap();
        b
    };
    assert_eq!(at(16 * MIB, 256 << 10), noise);
    assert_eq!(at(size - 1, 1), b"z");
    assert!(at(0, 4096).iter().all(|b| *b == 0));
    assert!(at(32 * MIB, 4096).iter().all(|b| *b == 0));
    // The same layer is refused with a floor of 1 MiB and a ratio of 100.
    let strict = ImportLimits {
        sparse_floor: MIB,
        max_sparse_ratio: 100,
        ..Default::default()
    };
    let (r, _, _) = import_gz(&repo, &blob, &strict);
    assert!(matches!(r, Err(ImportError::TooSparse { .. })));
    ostree(&dir, &["fsck"]);
}

/// A 16 MiB filesystem and a 20 MB file: refused on the header, naming the
/// entry, its size and the free space; nothing of it is written.
#[test]
fn a_file_that_does_not_fit_is_refused_before_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("fs"), "16M");
    let dir = fs.0.join("repo");
    let repo = repo_at(&dir);
    let blob = Layer::repeated(tmp.path(), "big", 20_000_000, 7).blob;
    let used = fs.used();
    let (r, written, took) = import_gz(&repo, &blob, &ImportLimits::default());
    let e = r.err().expect("refused");
    let ImportError::NoSpace {
        path,
        declared,
        remaining,
        free,
        reserve,
        percent,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (path.as_str(), *declared, *remaining),
        ("big", 20_000_000, 20_000_000)
    );
    assert!(*free < 16 * MIB && *free > 14 * MIB, "{free}");
    assert_eq!((*reserve, *percent), (16 * MIB / 100 * 5, 5));
    assert_eq!(
        e.to_string(),
        format!(
            "layer entry 'big' is 20000000 bytes, but the repo's filesystem ({}) has {free} \
             bytes free and {reserve} of them must stay free (5% of its size)",
            dir.display()
        )
    );
    assert!(written < 1_000_000, "wrote {written} bytes");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(fs.used() < used + MIB, "{} -> {}", used, fs.used());
    ostree(&dir, &["fsck"]);
    assert_eq!(ostree(&dir, &["refs"]), "");
}

/// Free space is looked up again as a file is written: when something else
/// fills the filesystem meanwhile, the import stops at the next lookup.
#[test]
fn free_space_is_checked_again_while_writing() {
    struct Filler<'a> {
        inner: &'a [u8],
        pos: usize,
        at: usize,
        fill: Option<PathBuf>,
    }
    impl Read for Filler<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.inner.len() - self.pos);
            buf[..n].copy_from_slice(&self.inner[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos >= self.at {
                if let Some(p) = self.fill.take() {
                    let st = Command::new("fallocate")
                        .args(["-l", "150M"])
                        .arg(&p)
                        .status()
                        .unwrap();
                    assert!(st.success());
                }
            }
            Ok(n)
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&tmp.path().join("fs"), "256M");
    let dir = fs.0.join("repo");
    let repo = repo_at(&dir);
    let size = 150_000_000u64;
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    b.append_data(&mut h, "big", io::repeat(7).take(size))
        .unwrap();
    let tar = b.into_inner().unwrap();
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let w0 = thread_wchar();
    let r = import_layer_from(
        &repo,
        Filler {
            inner: &tar,
            pos: 0,
            at: 20 << 20,
            fill: Some(fs.0.join("filler")),
        },
        &ImportLimits::default(),
        &LayerInfo::default(),
    );
    let written = thread_wchar() - w0;
    let e = r.err().expect("refused while writing");
    assert!(
        matches!(&e, ImportError::NoSpace { path, declared, remaining, .. }
            if path == "big" && *declared == size
                && *remaining <= size - RECHECK_BYTES && *remaining > size - RECHECK_BYTES - MIB),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("is 150000000 bytes (")
            && e.to_string().contains(" of them still to write), but"),
        "{e}"
    );
    assert!(written < RECHECK_BYTES + 2 * MIB, "wrote {written} bytes");
    repo.abort_transaction(gio::Cancellable::NONE).unwrap();
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    ostree(&dir, &["fsck"]);
}

/// The cap trusts the manifest's layer size, which a hostile manifest can
/// inflate. The blob's size is checked too, and when it fails the importer
/// is stopped at its next free-space lookup, even while it writes holes.
#[test]
fn a_lying_layer_size_stops_the_import_soon() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 4 * GIB;
    // 4 MiB of zeros after the sparse file fill the pipe to the importer
    // (and gzip to 4 kB).
    let zeros = vec![0u8; 4 << 20];
    let tar = gnu_sparse_tar(
        tmp.path(),
        &[
            ("f", size, &[(size - 1, b"x")]),
            ("g", 4 << 20, &[(0, &zeros)]),
        ],
    );
    let mut layer = Layer::gzip(&tar);
    assert!(layer.blob.len() < 20_000, "{}", layer.blob.len());
    // 1000 times this would allow 1000 GiB.
    layer.declared_size = Some(GIB);
    let oci = tmp.path().join("oci");
    oci_layout(&oci, "bomb", &[layer]);
    let root = Root::new(tmp.path().join("root"));
    let store = Store::open_with(&root, &Location::default()).unwrap();
    let mut src = OciLayoutSource::open(&format!("{}:bomb", oci.display())).unwrap();
    let (w0, t0) = (thread_wchar(), Instant::now());
    let e = pull(&store, &mut src, &mut NoProgress).err().unwrap();
    let (written, took) = (thread_wchar() - w0, t0.elapsed());
    assert!(matches!(e, StoreError::LayerVerify { .. }), "{e:?}");
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(
        chain.contains("verifying its compressed content"),
        "{chain}"
    );
    assert!(written < 4 * RECHECK_BYTES, "wrote {written} bytes");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let repo = store.repo_path();
    ostree(&repo, &["fsck"]);
    assert_eq!(ostree(&repo, &["refs"]), "");
}

/// The honest counterpart, through `pull`: a sparse file over the floor
/// first, the layer's data after it. The importer may have to wait for the
/// reader to read ahead (the pipe is full behind the sparse file's header);
/// the layer imports whole.
#[test]
fn pull_waits_for_the_bytes_that_back_a_sparse_file() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 300 * MIB;
    let mut noise = vec![0u8; 2 << 20];
    File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut noise)
        .unwrap();
    let tar = gnu_sparse_tar(
        tmp.path(),
        &[
            ("f", size, &[(size - 1, b"x")]),
            ("g", 2 << 20, &[(0, &noise)]),
        ],
    );
    let layer = Layer::gzip(&tar);
    // 2 MiB of layer allow 2000 MiB; 300 MiB needs 315 kB of it read.
    assert!(layer.blob.len() > 2 << 20);
    let digest = layouts::sha(&layer.blob);
    let oci = tmp.path().join("oci");
    oci_layout(&oci, "ok", &[layer]);
    let root = Root::new(tmp.path().join("root"));
    let store = Store::open_with(&root, &Location::default()).unwrap();
    let mut src = OciLayoutSource::open(&format!("{}:ok", oci.display())).unwrap();
    let r = pull(&store, &mut src, &mut NoProgress).unwrap();
    assert_eq!(r.layers_fetched, 1);
    let repo = store.repo_path();
    ostree(&repo, &["fsck"]);
    let commit = store
        .layer_commit(&digest)
        .unwrap()
        .expect("layer committed");
    let ls = ostree(&repo, &["ls", &commit, "/f", "/g"]);
    assert!(
        ls.contains(" 314572800 /f") && ls.contains(" 2097152 /g"),
        "{ls}"
    );
}
