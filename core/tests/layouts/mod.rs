//! Layers and images written at test time for the expansion-bomb tests
//! (`core/tests/import_bombs.rs`, `cli/tests/bombs.rs`): sparse files packed
//! by GNU tar, OCI layouts and docker-archives, and the bytes a thread or a
//! process has written.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A file for [`gnu_sparse_tar`]: name, size, and its data at offsets (the
/// rest is holes).
pub type SparseFile<'a> = (&'a str, u64, &'a [(u64, &'a [u8])]);

/// A tar of `files`, packed by GNU tar `--sparse` (GNU format, numeric root
/// owner): each file with holes is a GNU sparse entry.
pub fn gnu_sparse_tar(dir: &Path, files: &[SparseFile]) -> Vec<u8> {
    let src = dir.join("sparse-src");
    fs::create_dir_all(&src).unwrap();
    for (name, size, data) in files {
        let f = File::create(src.join(name)).unwrap();
        f.set_len(*size).unwrap();
        for (off, bytes) in *data {
            f.write_all_at(bytes, *off).unwrap();
        }
    }
    let out = Command::new("tar")
        .args([
            "--sparse",
            "--format=gnu",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mtime=@1",
            "-cf",
            "-",
            "-C",
        ])
        .arg(&src)
        .args(files.iter().map(|f| f.0))
        .output()
        .expect("GNU tar is installed");
    assert!(
        out.status.success(),
        "tar --sparse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_dir_all(&src).unwrap();
    assert_eq!(out.stdout[156], b'S', "GNU tar wrote a GNU sparse entry");
    out.stdout
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// One layer of a test image.
pub struct Layer {
    /// Of the uncompressed tar.
    pub diff_id: String,
    /// The blob as stored.
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    /// The size the manifest declares, when it lies.
    pub declared_size: Option<u64>,
}

impl Layer {
    pub fn gzip(tar: &[u8]) -> Self {
        Layer {
            diff_id: sha(tar),
            blob: gzip(tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            declared_size: None,
        }
    }

    pub fn plain(tar: &[u8]) -> Self {
        Layer {
            diff_id: sha(tar),
            blob: tar.to_vec(),
            media_type: "application/vnd.oci.image.layer.v1.tar",
            declared_size: None,
        }
    }

    /// A gzip layer of one dense file of `size` bytes of `byte` (zeros are
    /// how docker and buildah write a sparse file), hashed and compressed by
    /// `sha256sum` and `gzip` (the test build's own are slow).
    pub fn repeated(dir: &Path, name: &str, size: u64, byte: u8) -> Self {
        let tar = dir.join(format!("{name}.layer.tar"));
        let mut b = tar::Builder::new(File::create(&tar).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        b.append_data(&mut h, name, std::io::repeat(byte).take(size))
            .unwrap();
        b.into_inner().unwrap();
        let tool = |cmd: &str, arg: &str| {
            let o = Command::new(cmd).args([arg]).arg(&tar).output().unwrap();
            assert!(o.status.success(), "{cmd}");
            o.stdout
        };
        let sum = String::from_utf8(tool("sha256sum", "-b")).unwrap();
        let blob = tool("gzip", "-c");
        fs::remove_file(&tar).unwrap();
        Layer {
            diff_id: format!("sha256:{}", &sum[..64]),
            blob,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            declared_size: None,
        }
    }
}

fn config(layers: &[Layer]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// Write an OCI image layout at `dir` with one image, ref `tag`.
pub fn oci_layout(dir: &Path, tag: &str, layers: &[Layer]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let cfg = config(layers);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(&cfg), "size": cfg.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": put(&l.blob),
            "size": l.declared_size.unwrap_or(l.blob.len() as u64),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": put(&manifest), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Write a docker-archive (what `docker save` writes) at `path`, tagged
/// `repo_tag`; layers are stored as their blobs.
pub fn docker_archive(path: &Path, repo_tag: &str, layers: &[Layer]) {
    let mut b = tar::Builder::new(File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        b.append_data(&mut h, name, data).unwrap();
    };
    let cfg = config(layers);
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    for (n, l) in names.iter().zip(layers) {
        add(n, &l.blob);
    }
    add("cfg.json", &cfg);
    let m = serde_json::json!([{"Config": "cfg.json", "RepoTags": [repo_tag], "Layers": names}]);
    add("manifest.json", m.to_string().as_bytes());
    b.into_inner().unwrap().sync_all().unwrap();
}

/// `wchar` of a `/proc/.../io` file: bytes passed to write(2) and friends.
pub fn wchar(io_file: &str) -> u64 {
    let s = fs::read_to_string(io_file).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no wchar in {io_file}: {s}"))
}

/// Bytes this thread has written so far.
pub fn thread_wchar() -> u64 {
    wchar("/proc/thread-self/io")
}

/// Mount a tmpfs of `size` (e.g. "64M") at `dir`; unmounted on drop.
pub struct Tmpfs(pub std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("mount(8)");
        assert!(
            st.success(),
            "mounting a tmpfs at {} (needs root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        s.lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
