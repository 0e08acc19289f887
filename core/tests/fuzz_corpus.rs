//! The fuzz targets on stable, as part of the normal suite: every file of the
//! saved corpus (`fuzz/corpus/TARGET/`) and of the crash regressions
//! (`fuzz/regressions/TARGET/`) goes through the same function the cargo-fuzz
//! binary calls (`fuzz/targets.rs`), then a short deterministic mutation pass
//! (bit flips, byte edits, splices between corpus files) runs over it.
//! Real coverage-guided fuzzing is `fuzz/run.sh SECONDS` (nightly).
//!
//! Run: `cargo test -p syscontainer-core --features store --test fuzz_corpus`.
//! `FUZZ_MUTATIONS=N` sets the number of mutants per corpus file (default: a
//! fixed budget per target spread over its corpus).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/targets.rs"]
mod targets;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let d = std::fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    out.sort();
    out
}

/// xorshift: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"$",
    b"${",
    b"}",
    b"$$",
    b"/",
    b"./",
    b"../",
    b"//",
    b"\0",
    b"\"",
    b"\\",
    b":",
    b"@",
    b"sha256:",
    b"_",
    b"_3A",
    b"{",
    b"[",
    b"null",
    b"-1",
    b"99999999999999999999",
    b"\xff",
    b"\xc3\xa9",
];

fn mutate(rng: &mut Rng, data: &[u8], others: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            2 if !d.is_empty() => {
                let i = rng.below(d.len());
                let n = rng.below(16).min(d.len() - i);
                d.drain(i..i + n);
            }
            3 => {
                let i = rng.below(d.len() + 1);
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                d.splice(i..i, tok.iter().copied());
            }
            4 if !others.is_empty() => {
                let o = &others[rng.below(others.len())].1;
                if !o.is_empty() {
                    let i = rng.below(d.len() + 1);
                    let s = rng.below(o.len());
                    let n = rng.below(64).min(o.len() - s);
                    d.splice(i..i, o[s..s + n].iter().copied());
                }
            }
            5 if d.len() > 1 => {
                // Truncate.
                d.truncate(rng.below(d.len()));
            }
            _ => {
                // Duplicate a chunk (repeated entries, nested brackets).
                if !d.is_empty() {
                    let s = rng.below(d.len());
                    let n = rng.below(512).min(d.len() - s);
                    let chunk = d[s..s + n].to_vec();
                    let i = rng.below(d.len() + 1);
                    d.splice(i..i, chunk);
                }
            }
        }
    }
    d
}

fn run_one(target: &str, f: fn(&[u8]), what: &str, data: &[u8]) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(data))) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let keep = std::env::temp_dir().join(format!("fuzz-crash-{target}"));
        std::fs::write(&keep, data).unwrap();
        panic!(
            "fuzz target '{target}' failed on {what}: {msg}\n(input saved to {})",
            keep.display()
        );
    }
}

fn quick_pass(target: &str) {
    let (_, f) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .expect("a known target");
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus for '{target}' in {}",
        fuzz_dir().display()
    );
    for (p, d) in corpus.iter().chain(&regressions) {
        run_one(target, *f, &p.display().to_string(), d);
    }
    // A fixed budget per target by default, spread over the corpus, so the
    // quick pass stays quick as the corpus grows.
    // The store targets cost milliseconds per input (dockertar: a fresh
    // store, two pulls and two checkouts), the parsers microseconds.
    let budget = match target {
        "import" => 400,
        "dockertar" => 60,
        _ => 6000,
    };
    let per_file: usize = std::env::var("FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((budget / corpus.len()).max(1));
    let mut rng = Rng(0x5eed_0000 ^ (target.len() as u64 * 0x9e37_79b9));
    for (p, d) in &corpus {
        for i in 0..per_file {
            let m = mutate(&mut rng, d, &corpus);
            run_one(target, *f, &format!("mutant {i} of {}", p.display()), &m);
        }
    }
}

#[test]
fn fuzz_corpus_template() {
    quick_pass("template");
}

#[test]
fn fuzz_corpus_record() {
    quick_pass("record");
}

#[test]
fn fuzz_corpus_imgref() {
    quick_pass("imgref");
}

#[test]
fn fuzz_corpus_manifest() {
    quick_pass("manifest");
}

#[test]
fn fuzz_corpus_import() {
    quick_pass("import");
}

/// With the default import limits: `dockertar_init` sets environment
/// variables, which is not safe while other tests run in parallel threads,
/// and the fixed mutants of the corpus hold no bombs.
#[test]
fn fuzz_corpus_dockertar() {
    quick_pass("dockertar");
}

/// The dockertar seeds are whole images that pull, so the target gets past
/// the source to the importer, the commit and the checkouts; a layer edited
/// after the fact fails its digest check, and the target's fixed-up copy
/// (new diff IDs, `blobs/sha256/` names) pulls again.
#[test]
fn dockertar_seeds_pull() {
    let seeds: Vec<_> = files(&fuzz_dir().join("corpus/dockertar"))
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .collect();
    assert!(
        seeds.len() >= 5,
        "the seeds of fuzz/make-dockertar-seeds.py"
    );
    for (p, d) in &seeds {
        assert!(targets::dockertar_pull(d), "{} does not pull", p.display());
        assert!(targets::fix_docker_archive(d).is_none(), "{}", p.display());
        // A file's content in an uncompressed layer, changed in place.
        let Some(i) = d.windows(12).position(|w| w == b"echo busybox") else {
            continue;
        };
        let mut bad = d.clone();
        bad[i + 11] = b'y';
        assert!(!targets::dockertar_pull(&bad), "{} edited", p.display());
        let fixed = targets::fix_docker_archive(&bad).expect("digests to fix");
        assert!(targets::dockertar_pull(&fixed), "{} fixed", p.display());
    }
}
