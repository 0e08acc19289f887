//! Checkout listings shared by the store integration tests.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Everything a checkout is made of, for comparing two checkouts of the same
/// repo: per path its type, mode, owner, xattrs (directories too), symlink
/// target, and for files the content hash and the inode (both checkouts
/// hardlink the same repo objects, so inodes must match too). Symlinks are
/// compared without their inode: ours creates them, libostree hardlinks them.
pub fn full_listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mut l = format!("{rel} {:o} {}:{}", m.mode(), m.uid(), m.gid());
            if m.is_dir() {
                stack.push(p.clone());
            } else if m.file_type().is_symlink() {
                l.push_str(&format!(" -> {}", fs::read_link(&p).unwrap().display()));
            } else {
                l.push_str(&format!(
                    " {} ino:{} nlink>1:{}",
                    sha(&fs::read(&p).unwrap()),
                    m.ino(),
                    m.nlink() > 1
                ));
            }
            let mut xs: Vec<_> = xattr::list(&p).unwrap().collect();
            xs.sort();
            for x in xs {
                let v = xattr::get(&p, &x).unwrap().unwrap_or_default();
                l.push_str(&format!(
                    " xattr:{}={}",
                    x.to_string_lossy(),
                    hex::encode(v)
                ));
            }
            out.push(l);
        }
    }
    out.sort();
    out
}
