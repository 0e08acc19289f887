//! A hash of the library's sources, for the generator's cache
//! (`gencache.rs`): units cached by one build are used only by a build of
//! the same sources, so that a change in how units are rendered can never
//! be hidden by a cache that an older build wrote.

use std::fs;
use std::path::Path;

/// FNV-1a, 64 bits: deterministic across builds and Rust versions.
fn fnv(h: &mut u64, data: &[u8]) {
    for &b in data {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    walk(Path::new("src"), &mut files);
    files.sort();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for f in &files {
        fnv(&mut h, f.to_string_lossy().as_bytes());
        fnv(&mut h, &fs::read(f).unwrap_or_default());
    }
    println!("cargo:rustc-env=SYSCONTAINER_SOURCE_HASH={h:016x}");
}
