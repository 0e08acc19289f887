//! Expansion bombs through the real `syscontainer pull` (issue 9, section
//! 3): an OCI layout whose 150-byte layer declares a 60 GiB sparse file, and
//! a docker-archive whose 20 MB layer does not fit on a 16 MiB tmpfs. Both are
//! refused at once, and leave nothing in the repo.
//!
//! Needs root (bare repos, tmpfs), GNU tar and the `ostree` CLI.

#[path = "../../core/tests/layouts/mod.rs"]
mod layouts;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use layouts::{docker_archive, gnu_sparse_tar, oci_layout, wchar, Layer, Tmpfs};

const BIN: &str = env!("CARGO_BIN_EXE_syscontainer");

/// `syscontainer ARGS` on `root`, through `sh`, which prints its own
/// `/proc/PID/io` after the command: that includes the reaped command's
/// writes. Returns the output and the bytes written.
fn pull(root: &Path, spec: &str) -> (Output, u64) {
    let io = root.join("io");
    let o = Command::new("sh")
        .args([
            "-c",
            r#""$@"; s=$?; cat /proc/$$/io > "$IO"; exit $s"#,
            "sh",
        ])
        .args([BIN, "pull", spec])
        .env("IO", &io)
        .env("SYSCONTAINER_ROOT", root)
        .env_remove("ATOMIC_OSTREE_REPO")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    (o, wchar(io.to_str().unwrap()))
}

fn run(root: &Path, args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(args)
        .env("SYSCONTAINER_ROOT", root)
        .env_remove("ATOMIC_OSTREE_REPO")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
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

/// Nothing of a refused pull remains: no ref, no image, fsck clean.
fn nothing_left(root: &Path) {
    let repo = root.join("var/lib/containers/atomic/.storage/ostree");
    assert_eq!(ostree(&repo, &["refs"]), "");
    ostree(&repo, &["fsck"]);
    assert_eq!(run(root, &["images", "list", "--json"]).trim(), "[]");
}

#[test]
fn pull_refuses_a_sparse_bomb_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 60u64 << 30;
    let tar = gnu_sparse_tar(tmp.path(), &[("f", size, &[(size - 1, b"x")])]);
    let layer = Layer::gzip(&tar);
    assert!(layer.blob.len() < 1000, "{}", layer.blob.len());
    let oci = tmp.path().join("oci");
    oci_layout(&oci, "bomb", &[layer]);
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let t0 = Instant::now();
    let (o, written) = pull(&root, &format!("oci:{}:bomb", oci.display()));
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    // 3: invalid input, a hostile layer (README, "Exit codes").
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(
            "layer entry 'f' is a sparse file of 64424509440 bytes with 4096 bytes of data"
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(written < 10_000_000, "wrote {written} bytes");
    nothing_left(&root);
}

#[test]
fn pull_refuses_a_layer_that_does_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let fs = Tmpfs::mount(&root.join("var/lib/containers/atomic"), "16M");
    let archive = tmp.path().join("big.tar");
    docker_archive(
        &archive,
        "localhost/big:1",
        &[Layer::repeated(tmp.path(), "big", 20_000_000, 7)],
    );
    let (o, written) = pull(&root, &format!("dockertar:{}", archive.display()));
    let err = String::from_utf8_lossy(&o.stderr);
    // 1, not 3: the disk being full is not the input's fault.
    assert_eq!(o.status.code(), Some(1), "{err}");
    let repo = root.join("var/lib/containers/atomic/.storage/ostree");
    let want = format!(
        "layer entry 'big' is 20000000 bytes, but the repo's filesystem ({}) has ",
        repo.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        err.contains("bytes free and 838860 of them must stay free (5% of its size)"),
        "{err}"
    );
    assert!(written < 10_000_000, "wrote {written} bytes");
    assert!(fs.used() < 4 << 20, "{} bytes used", fs.used());
    nothing_left(&root);
    // The same filesystem still takes an image that fits.
    let small = tmp.path().join("small.tar");
    docker_archive(
        &small,
        "localhost/small:1",
        &[Layer::repeated(tmp.path(), "small", 5_000_000, 7)],
    );
    let (o, _) = pull(&root, &format!("dockertar:{}", small.display()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ostree(&repo, &["fsck"]);
}
