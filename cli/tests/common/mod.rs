//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

pub const BIN: &str = env!("CARGO_BIN_EXE_syscontainer");

/// `syscontainer-exec` and `syscontainer-generator` belong to other packages,
/// so cargo gives these tests no `CARGO_BIN_EXE_` for them. Build them (only
/// them: the `syscontainer` under test stays as it is) into the same target
/// directory, as they are packaged (without libostree and TLS), and take
/// them from beside `syscontainer`. Fresh, so never a stale copy.
pub fn sibling(name: &str) -> PathBuf {
    static BUILT: Once = Once::new();
    let dir = Path::new(BIN).parent().unwrap();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "--quiet", "--bins"]);
        c.args(["-p", "syscontainer-exec", "-p", "syscontainer-generator"]);
        if dir.ends_with("release") {
            c.arg("--release");
        }
        let st = c.current_dir(env!("CARGO_MANIFEST_DIR")).status().unwrap();
        assert!(st.success(), "cargo build of the other binaries failed");
    });
    let p = dir.join(name);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// `sha256:HEX` of `b`: an OCI digest.
pub fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// A ustar header for a file of `size` bytes and `mode`, owned by root,
/// mtime 1: the tar entries of the tests' images.
pub fn tar_header(size: usize, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h
}
