//! Image sources against real servers: Debian's `docker-registry` (plain
//! HTTP, TLS with a CA made here, TLS + htpasswd), docker-archive and OCI
//! layout files written by skopeo/umoci, and podman's Docker-compatible API.
//!
//! Nothing is mocked and nothing is skipped: a missing tool or a server that
//! does not start fails the test with a message.
//!
//! Run: `cargo test -p syscontainer-core --features store --test source_registry`
#![cfg(feature = "store")]

use std::fs;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use syscontainer::paths::Root;
use syscontainer::source::engine::EngineSource;
use syscontainer::source::manifest::host_platform;
use syscontainer::source::{
    self, decompress, Descriptor, DigestReader, ImageSource, ResolvedImage, SourceError,
    SourceOptions, VerifyError,
};

const USER: &str = "tester";
const PASS: &str = "hunter2-secret";

// ---------------------------------------------------------------- helpers

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// The test image, built once per machine and cached:
/// `oci/` (an OCI layout with refs `busybox` (2 gzip layers) and `multi` (an
/// index with the host platform and one other)), and `busybox.tar` (a
/// docker-archive named `test/busybox:latest`, uncompressed layers).
fn fixture() -> &'static Path {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = PathBuf::from("/var/tmp/syscontainer-source-tests/fixture-v2");
        if dir.join("done").exists() {
            return dir;
        }
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let oci = tmp.join("oci");
        let img = format!("{}:busybox", oci.display());
        let bundle = tmp.join("bundle");
        run(Command::new("umoci").args(["init", "--layout"]).arg(&oci));
        run(Command::new("umoci").args(["new", "--image", &img]));
        // Layer 1: busybox-static and its applet links.
        run(Command::new("umoci")
            .args(["unpack", "--image", &img])
            .arg(&bundle));
        let r = bundle.join("rootfs");
        for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", r.join("bin/busybox"))
            .expect("copying /bin/busybox (apt-get install busybox-static)");
        for applet in ["sh", "ls", "cat", "echo", "sleep"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
        fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        run(Command::new("umoci")
            .args(["repack", "--image", &img])
            .arg(&bundle));
        fs::remove_dir_all(&bundle).unwrap();
        // Layer 2: a file of its own.
        run(Command::new("umoci")
            .args(["unpack", "--image", &img])
            .arg(&bundle));
        fs::write(bundle.join("rootfs/etc/hello"), "hello from layer 2\n").unwrap();
        run(Command::new("umoci")
            .args(["repack", "--image", &img])
            .arg(&bundle));
        fs::remove_dir_all(&bundle).unwrap();
        run(Command::new("umoci").args(["config", "--image", &img, "--config.cmd", "/bin/sh"]));
        add_multi_arch_index(&oci);
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q"])
            .arg(format!("oci:{img}"))
            .arg(format!(
                "docker-archive:{}:test/busybox:latest",
                tmp.join("busybox.tar").display()
            )));
        fs::write(tmp.join("done"), "").unwrap();
        // Another test process may have won the race: then use its copy.
        if fs::rename(&tmp, &dir).is_err() {
            assert!(
                dir.join("done").exists(),
                "cannot install {}",
                dir.display()
            );
            let _ = fs::remove_dir_all(&tmp);
        }
        dir
    })
}

fn sha256_hex(b: &[u8]) -> String {
    source::sha256_digest(b)["sha256:".len()..].to_string()
}

/// Add ref `multi`: an OCI index with the busybox manifest under the host
/// platform and again under another one.
fn add_multi_arch_index(oci: &Path) {
    let index_path = oci.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "busybox")
        .unwrap()
        .clone();
    let host = host_platform();
    let other = if host.architecture == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    };
    let mk = |arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": entry["digest"], "size": entry["size"],
            "platform": {"os": "linux", "architecture": arch}
        })
    };
    let sub = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [mk(other), mk(&host.architecture)]
    });
    let raw = serde_json::to_vec(&sub).unwrap();
    fs::write(oci.join("blobs/sha256").join(sha256_hex(&raw)), &raw).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&raw)), "size": raw.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }));
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Tls,
    TlsAuth,
}

/// A real `docker-registry serve`, killed on drop.
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    mode: Mode,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_tls(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"])
        .args(["-subj", "/CN=syscontainer test CA"]));
    fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]));
}

impl Registry {
    fn start(mode: Mode) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            d.display()
        );
        if mode != Mode::Plain {
            make_tls(d);
            cfg += &format!(
                "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\n",
                d.display()
            );
        }
        if mode == Mode::TlsAuth {
            let line = run(Command::new("htpasswd").args(["-Bbn", USER, PASS]));
            fs::write(d.join("htpasswd"), line).unwrap();
            cfg += &format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}/htpasswd\n",
                d.display()
            );
        }
        fs::write(d.join("config.yml"), cfg).unwrap();
        let log = fs::File::create(d.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (apt-get install docker-registry)");
        let mut reg = Registry {
            child,
            dir,
            port,
            mode,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = reg.child.try_wait().unwrap() {
                panic!(
                    "docker-registry exited ({st}) at start:\n{}",
                    fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on 127.0.0.1:{port} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy` from the fixture layout into `repo:tag`.
    fn push(&self, oci_ref: &str, dest: &str, extra: &[&str]) {
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]);
        if self.mode == Mode::TlsAuth {
            c.arg(format!("--dest-creds={USER}:{PASS}"));
        }
        c.args(extra)
            .arg(format!("oci:{}:{oci_ref}", fixture().join("oci").display()))
            .arg(format!("docker://{}/{dest}", self.host()));
        run(&mut c);
    }

    /// A root whose certs.d trusts this registry's CA.
    fn trusting_root(&self) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let certs = root.path().join("etc/containers/certs.d").join(self.host());
        fs::create_dir_all(&certs).unwrap();
        fs::copy(self.dir.path().join("ca.crt"), certs.join("ca.crt")).unwrap();
        root
    }

    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = &digest["sha256:".len()..];
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

fn opts(root: &Path) -> SourceOptions {
    let mut o = SourceOptions::new(Root::new(root));
    o.quiet = true;
    // Never pick up the developer's own auth files.
    o.authfile = Some(root.join("no-auth.json"));
    o
}

fn resolve(
    spec: &str,
    o: &SourceOptions,
) -> Result<(Box<dyn ImageSource>, ResolvedImage), SourceError> {
    let mut s = source::open(spec, o)?;
    let r = s.resolve()?;
    Ok((s, r))
}

/// Stream every blob: raw bytes against the digest, decompressed bytes
/// against the diff ID. Returns the total uncompressed size.
fn stream_all(s: &mut dyn ImageSource, r: &ResolvedImage) -> u64 {
    assert_eq!(r.layers.len(), r.diff_ids.len());
    let mut total = 0;
    for (l, diff_id) in r.layers.iter().zip(&r.diff_ids) {
        let raw = s.open_blob(l).unwrap();
        let verified = DigestReader::new(raw, &l.digest, Some(l.size));
        let plain = decompress(l, Box::new(verified)).unwrap();
        let mut check = DigestReader::new(plain, diff_id, None);
        total += io::copy(&mut check, &mut io::sink())
            .unwrap_or_else(|e| panic!("layer {}: {e}", l.digest));
        assert!(check.is_verified());
    }
    let mut cfg = Vec::new();
    DigestReader::new(
        s.open_blob(&r.config).unwrap(),
        &r.config.digest,
        Some(r.config.size),
    )
    .read_to_end(&mut cfg)
    .unwrap();
    assert_eq!(cfg, r.config_raw);
    total
}

/// The fixture's busybox manifest, as umoci wrote it.
fn fixture_manifest() -> (String, serde_json::Value) {
    let oci = fixture().join("oci");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
    let e = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "busybox")
        .unwrap();
    let digest = e["digest"].as_str().unwrap().to_string();
    let raw = fs::read(oci.join("blobs/sha256").join(&digest[7..])).unwrap();
    (digest, serde_json::from_slice(&raw).unwrap())
}

fn fixture_diff_ids() -> Vec<String> {
    let (_, m) = fixture_manifest();
    let c = m["config"]["digest"].as_str().unwrap();
    let raw = fs::read(fixture().join("oci/blobs/sha256").join(&c[7..])).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn plain_http_registry() {
    let reg = Registry::start(Mode::Plain);
    reg.push("busybox", "busybox:latest", &[]);
    reg.push("multi", "multi:1", &["--all"]);
    let root = tempfile::tempdir().unwrap();
    let o = opts(root.path());
    let host = reg.host();

    let (mut s, r) = resolve(&format!("http:{host}/busybox"), &o).unwrap();
    assert_eq!(r.name, format!("{host}/busybox:latest"));
    assert_eq!(r.layers.len(), 2);
    assert_eq!(r.diff_ids, fixture_diff_ids());
    assert_eq!(r.manifest_digest, source::sha256_digest(&r.manifest_raw));
    assert!(s.describe().contains("busybox"));
    assert!(
        stream_all(s.as_mut(), &r) > 1_000_000,
        "busybox is in there"
    );

    // tls_verify=false: HTTPS fails, plain HTTP is used.
    let mut insecure = o.clone();
    insecure.tls_verify = false;
    let (_, r2) = resolve(&format!("{host}/busybox:latest"), &insecure).unwrap();
    assert_eq!(r2.manifest_digest, r.manifest_digest);

    // By digest: same manifest, stored as REPO@DIGEST.
    let by_digest = format!("http:{host}/busybox@{}", r.manifest_digest);
    let (_, r3) = resolve(&by_digest, &o).unwrap();
    assert_eq!(r3.name, format!("{host}/busybox@{}", r.manifest_digest));
    assert_eq!(r3.layers, r.layers);

    // An index resolves to the host platform.
    let (mut s, rm) = resolve(&format!("http:{host}/multi:1"), &o).unwrap();
    assert_eq!(rm.diff_ids, r.diff_ids);
    stream_all(s.as_mut(), &rm);

    // Unknown repository and unknown tag: clear errors naming the image.
    let e = resolve(&format!("http:{host}/nosuch:latest"), &o)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(matches!(e, SourceError::NotFound { .. }), "{msg}");
    assert!(msg.contains("nosuch") && msg.contains("not found"), "{msg}");
    let e = resolve(&format!("http:{host}/busybox:nosuchtag"), &o)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(matches!(e, SourceError::NotFound { .. }), "{msg}");
    assert!(
        msg.contains("busybox:nosuchtag") && msg.contains("MANIFEST_UNKNOWN"),
        "{msg}"
    );

    // Verified TLS against a plain-HTTP server fails, and says where.
    let e = resolve(&format!("{host}/busybox"), &o).err().unwrap();
    assert!(matches!(e, SourceError::Http { .. }), "{e}");
    assert!(e.to_string().contains(&host), "{e}");
}

/// zstd layers under an OCI manifest without `mediaType` (skopeo writes it
/// so). A registry of its own: skopeo would reuse the gzip blobs otherwise.
#[test]
fn zstd_layers() {
    let reg = Registry::start(Mode::Plain);
    reg.push(
        "busybox",
        "zstd:1",
        &[
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            "--format",
            "oci",
        ],
    );
    let root = tempfile::tempdir().unwrap();
    let (mut s, r) = resolve(&format!("http:{}/zstd:1", reg.host()), &opts(root.path())).unwrap();
    assert!(
        r.layers.iter().all(|l| l.media_type.ends_with("+zstd")),
        "{:?}",
        r.layers
    );
    assert_eq!(r.diff_ids, fixture_diff_ids());
    stream_all(s.as_mut(), &r);
}

#[test]
fn tampered_blob_fails_verification() {
    let reg = Registry::start(Mode::Plain);
    reg.push("busybox", "busybox:latest", &[]);
    let root = tempfile::tempdir().unwrap();
    let (mut s, r) = resolve(&format!("http:{}/busybox", reg.host()), &opts(root.path())).unwrap();
    // Flip one byte in the middle of the big layer, keeping the size.
    let layer = r.layers.iter().max_by_key(|l| l.size).unwrap().clone();
    let f = reg.blob_file(&layer.digest);
    let mut data = fs::read(&f).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&f, &data).unwrap();

    let mut rd = DigestReader::new(
        s.open_blob(&layer).unwrap(),
        &layer.digest,
        Some(layer.size),
    );
    let e = io::copy(&mut rd, &mut io::sink()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(matches!(
        VerifyError::from_io(&e),
        Some(VerifyError::Mismatch { .. })
    ));
    assert!(e.to_string().contains(&layer.digest), "{e}");
}

#[test]
fn tls_registry_with_generated_ca() {
    let reg = Registry::start(Mode::Tls);
    reg.push("busybox", "app/busybox:v1", &[]);
    let host = reg.host();
    let spec = format!("docker://{host}/app/busybox:v1");

    let root = reg.trusting_root();
    let (mut s, r) = resolve(&spec, &opts(root.path())).unwrap();
    assert_eq!(r.name, format!("{host}/app/busybox:v1"));
    stream_all(s.as_mut(), &r);

    // Without the CA: refused, naming the registry.
    let bare = tempfile::tempdir().unwrap();
    let e = resolve(&spec, &opts(bare.path())).err().unwrap();
    let msg = format!("{:#}", anyhow_like(&e));
    assert!(msg.contains(&host), "{msg}");
    assert!(
        msg.to_lowercase().contains("certificate") || msg.contains("UnknownIssuer"),
        "{msg}"
    );

    // Unverified TLS works without the CA.
    let mut o = opts(bare.path());
    o.tls_verify = false;
    let (_, r2) = resolve(&spec, &o).unwrap();
    assert_eq!(r2.manifest_digest, r.manifest_digest);
}

/// The error and its sources, one per line.
fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

#[test]
fn tls_registry_with_htpasswd_auth() {
    let reg = Registry::start(Mode::TlsAuth);
    reg.push("busybox", "private:latest", &[]);
    let host = reg.host();
    let spec = format!("{host}/private");
    let root = reg.trusting_root();

    // --creds
    let mut o = opts(root.path());
    o.creds = Some(format!("{USER}:{PASS}"));
    let (mut s, r) = resolve(&spec, &o).unwrap();
    stream_all(s.as_mut(), &r);

    // An auth file, keyed by host/repo.
    let authfile = root.path().join("auth.json");
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    fs::write(
        &authfile,
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}},"{host}/private":{{"auth":"{}"}}}}}}"#,
            b64("nobody:wrong"),
            b64(&format!("{USER}:{PASS}"))
        ),
    )
    .unwrap();
    let mut o = opts(root.path());
    o.authfile = Some(authfile);
    let (_, r2) = resolve(&spec, &o).unwrap();
    assert_eq!(r2.manifest_digest, r.manifest_digest);

    // Wrong password: a clear error that does not leak it.
    let mut o = opts(root.path());
    o.creds = Some(format!("{USER}:wrong-{PASS}"));
    let e = resolve(&spec, &o).err().unwrap();
    let msg = anyhow_like(&e);
    assert!(matches!(e, SourceError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains("rejected the credentials") && msg.contains(&host),
        "{msg}"
    );
    assert!(!msg.contains(PASS), "{msg}");

    // No credentials at all.
    let e = resolve(&spec, &opts(root.path())).err().unwrap();
    let msg = e.to_string();
    assert!(msg.contains("authentication required"), "{msg}");
}

#[test]
fn docker_archive_and_oci_layout_sources() {
    let root = tempfile::tempdir().unwrap();
    let o = opts(root.path());
    let tar = fixture().join("busybox.tar");
    let (mut s, r) = resolve(&format!("dockertar:{}", tar.display()), &o).unwrap();
    assert_eq!(r.name, "docker.io/test/busybox:latest");
    assert_eq!(r.diff_ids, fixture_diff_ids());
    // skopeo writes uncompressed layers: digest == diff ID.
    for (l, d) in r.layers.iter().zip(&r.diff_ids) {
        assert_eq!(&l.digest, d);
    }
    stream_all(s.as_mut(), &r);

    let oci = fixture().join("oci");
    let (mut s, r) = resolve(&format!("oci:{}:busybox", oci.display()), &o).unwrap();
    let (digest, m) = fixture_manifest();
    assert_eq!(r.manifest_digest, digest);
    assert_eq!(r.name, "oci:busybox");
    assert_eq!(r.layers.len(), m["layers"].as_array().unwrap().len());
    stream_all(s.as_mut(), &r);

    // An index in the layout resolves to the host platform.
    let (_, rm) = resolve(&format!("oci:{}:multi", oci.display()), &o).unwrap();
    assert_eq!(rm.manifest_digest, digest);

    // Unknown ref: the error lists what there is.
    let e = resolve(&format!("oci:{}:nope", oci.display()), &o)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("nope") && msg.contains("busybox") && msg.contains("multi"),
        "{msg}"
    );

    // Missing file: named.
    let e = resolve("dockertar:/nonexistent/x.tar", &o).err().unwrap();
    assert!(e.to_string().contains("/nonexistent/x.tar"), "{e}");
}

/// `podman system service` with its own storage, killed on drop.
struct Podman {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Podman {
    fn cmd(dir: &Path) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.join("storage"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        c
    }

    fn start() -> (Podman, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("podman.sock");
        let log = fs::File::create(dir.path().join("podman.log")).unwrap();
        let child = Self::cmd(dir.path())
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting podman system service (apt-get install podman)");
        let mut p = Podman { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!(
                    "podman system service exited ({st}):\n{}",
                    fs::read_to_string(p.dir.path().join("podman.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "podman did not create {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (p, sock)
    }
}

#[test]
fn docker_engine_source_via_podman() {
    let (podman, sock) = Podman::start();
    run(Podman::cmd(podman.dir.path())
        .args(["load", "-q", "-i"])
        .arg(fixture().join("busybox.tar")));
    let root = tempfile::tempdir().unwrap();
    let o = opts(root.path());

    let mut s = EngineSource::new("test/busybox:latest", &o)
        .unwrap()
        .with_socket(&sock);
    assert!(s.describe().contains(&sock.display().to_string()));
    let r = s.resolve().unwrap();
    assert_eq!(r.name, "docker.io/test/busybox:latest");
    assert_eq!(r.diff_ids, fixture_diff_ids());
    stream_all(&mut s, &r);

    let mut s = EngineSource::new("test/nosuch:latest", &o)
        .unwrap()
        .with_socket(&sock);
    let e = s.resolve().err().unwrap();
    let msg = e.to_string();
    assert!(matches!(e, SourceError::Engine { .. }), "{msg}");
    assert!(msg.contains("test/nosuch") && msg.contains("404"), "{msg}");

    // No engine at all.
    let mut s = EngineSource::new("x", &o)
        .unwrap()
        .with_socket(root.path().join("none.sock"));
    let e = s.resolve().err().unwrap();
    assert!(e.to_string().contains("none.sock"), "{e}");
    drop(podman);
}

/// Descriptors come from the manifest's wire form (`mediaType`, `digest`,
/// `size`), with the OCI defaults where `mediaType` is left out: a Docker
/// schema 2 manifest written here byte for byte, and the manifest umoci
/// wrote for the fixture, whose every descriptor the OCI-layout source hands
/// out unchanged.
#[test]
fn descriptors_come_from_the_manifest_wire_form() {
    use syscontainer::source::manifest::{parse, ImageManifest, Parsed};
    let d = |media_type: &str, c: char, size: u64| Descriptor {
        media_type: media_type.into(),
        digest: format!("sha256:{}", c.to_string().repeat(64)),
        size,
    };
    let docker = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2811478,"digest":"sha256:{}"}},{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":7,"digest":"sha256:{}"}}]}}"#,
        "a".repeat(64),
        "b".repeat(64),
        "c".repeat(64)
    );
    assert_eq!(
        parse(docker.as_bytes(), None, "docker").unwrap(),
        Parsed::Manifest(ImageManifest {
            media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
            config: d("application/vnd.docker.container.image.v1+json", 'a', 1469),
            layers: vec![
                d(
                    "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    'b',
                    2811478
                ),
                d("application/vnd.docker.image.rootfs.diff.tar", 'c', 7),
            ],
        })
    );
    // No mediaType anywhere: an OCI manifest, config and gzip layer. The
    // Rust field name `media_type` is not a wire name, so it is ignored.
    let bare = format!(
        r#"{{"config":{{"digest":"sha256:{}","size":2}},"layers":[{{"media_type":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:{}","size":3}}]}}"#,
        "d".repeat(64),
        "e".repeat(64)
    );
    assert_eq!(
        parse(bare.as_bytes(), None, "bare").unwrap(),
        Parsed::Manifest(ImageManifest {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config: d("application/vnd.oci.image.config.v1+json", 'd', 2),
            layers: vec![d("application/vnd.oci.image.layer.v1.tar+gzip", 'e', 3)],
        })
    );

    // What umoci wrote, read here as plain JSON, against what the source
    // resolves from the same layout.
    let (_, m) = fixture_manifest();
    let wire = |v: &serde_json::Value| Descriptor {
        media_type: v["mediaType"].as_str().unwrap().into(),
        digest: v["digest"].as_str().unwrap().into(),
        size: v["size"].as_u64().unwrap(),
    };
    let layers: Vec<Descriptor> = m["layers"].as_array().unwrap().iter().map(wire).collect();
    assert_eq!(layers.len(), 2);
    assert!(layers
        .iter()
        .all(|l| l.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"));
    let root = tempfile::tempdir().unwrap();
    let oci = fixture().join("oci");
    let (_, r) = resolve(
        &format!("oci:{}:busybox", oci.display()),
        &opts(root.path()),
    )
    .unwrap();
    assert_eq!(r.config, wire(&m["config"]));
    assert_eq!(
        r.config.media_type,
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(r.config.size, r.config_raw.len() as u64);
    assert_eq!(r.layers, layers);
}
