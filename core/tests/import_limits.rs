//! The tar importer's limits (issue 6, "hostile images"): tar bombs with many
//! entries or too much content, deep nesting, oversized GNU/PAX extension
//! headers, and paths that collide after normalisation. Every tar is built
//! in the test; each import goes into a real bare repo in a temp dir.
//!
//! Run: `cargo test -p syscontainer-core --features store --test import_limits`.

use std::io::{self, Read};

use syscontainer::store::import::{import_layer, import_layer_with, ImportError, ImportLimits};

fn repo() -> (tempfile::TempDir, ostree::Repo) {
    let d = tempfile::tempdir().unwrap();
    let repo = ostree::Repo::new_for_path(d.path());
    repo.create(ostree::RepoMode::Bare, gio::Cancellable::NONE)
        .unwrap();
    (d, repo)
}

fn import(data: &[u8], limits: &ImportLimits) -> Result<u64, ImportError> {
    let (_d, repo) = repo();
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let r = import_layer_with(&repo, data, limits).map(|i| i.stats.files);
    repo.abort_transaction(gio::Cancellable::NONE).unwrap();
    r
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_size(size);
    h.set_mtime(1);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// `(name, is_dir, data)`.
type Entry<'a> = (&'a str, bool, &'a [u8]);

/// A tar whose entry names are written exactly as given (no normalisation by
/// the builder).
fn raw_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, dir, data) in entries {
        let kind = if *dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        let mut h = header(kind, data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn msg(e: &ImportError) -> String {
    e.to_string()
}

#[test]
fn tar_bomb_with_many_entries_is_refused() {
    let limits = ImportLimits {
        max_entries: 1000,
        ..Default::default()
    };
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..1001 {
        let mut h = header(tar::EntryType::Regular, 0);
        b.append_data(&mut h, format!("f{i}"), io::empty()).unwrap();
    }
    let data = b.into_inner().unwrap();
    let e = import(&data, &limits).unwrap_err();
    assert!(matches!(e, ImportError::TooManyEntries { .. }), "{e}");
    assert!(msg(&e).contains("more than 1000 entries"), "{e}");
    assert!(msg(&e).contains("'f1000'"), "names the entry: {e}");
    // One fewer is fine.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..1000 {
        let mut h = header(tar::EntryType::Regular, 0);
        b.append_data(&mut h, format!("f{i}"), io::empty()).unwrap();
    }
    assert_eq!(import(&b.into_inner().unwrap(), &limits).unwrap(), 1000);
    assert_eq!(ImportLimits::default().max_entries, 1_000_000);
}

#[test]
fn content_over_the_size_cap_is_refused_before_it_is_written() {
    let limits = ImportLimits {
        max_content_bytes: 1 << 20,
        ..Default::default()
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 600 << 10);
    b.append_data(&mut h, "a", io::repeat(7).take(600 << 10))
        .unwrap();
    let mut h = header(tar::EntryType::Regular, 600 << 10);
    b.append_data(&mut h, "b", io::repeat(7).take(600 << 10))
        .unwrap();
    let data = b.into_inner().unwrap();
    let e = import(&data, &limits).unwrap_err();
    assert!(matches!(e, ImportError::TooLarge { .. }), "{e}");
    assert!(
        msg(&e).contains("'b'") && msg(&e).contains("1048576 bytes"),
        "{e}"
    );
    // A sparse-looking header claiming a huge size is refused on the header
    // alone: no data needs to follow.
    let mut h = header(tar::EntryType::Regular, 1 << 40);
    h.set_path("huge").unwrap();
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend_from_slice(&[0u8; 1024]);
    let e = import(&data, &ImportLimits::default()).unwrap_err();
    assert!(matches!(e, ImportError::TooLarge { .. }), "{e}");
}

#[test]
fn deep_nesting_is_refused() {
    let limits = ImportLimits::default();
    let deep: String = "d/".repeat(limits.max_depth) + "f";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 1);
    b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let e = import(&b.into_inner().unwrap(), &limits).unwrap_err();
    assert!(matches!(e, ImportError::TooDeep { depth: 257, .. }), "{e}");
    assert!(msg(&e).contains("257 directories deep"), "{e}");
    assert!(msg(&e).contains("d/d/d/"), "names the entry: {e}");
    // At the limit: fine.
    let ok: String = "d/".repeat(limits.max_depth - 1) + "f";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 1);
    b.append_data(&mut h, &ok, &b"x"[..]).unwrap();
    assert_eq!(import(&b.into_inner().unwrap(), &limits).unwrap(), 1);
}

/// A GNU long-name ('L') or PAX ('x') header whose body is huge: refused
/// after reading the header block, before any of the body is buffered. The
/// body here is a reader of zeros that would take minutes (and gigabytes of
/// memory in the tar crate) to get through.
#[test]
fn oversized_extension_headers_are_refused_before_buffering() {
    struct Bomb {
        head: Vec<u8>,
        pos: usize,
        served: u64,
    }
    impl Read for Bomb {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos < self.head.len() {
                let n = buf.len().min(self.head.len() - self.pos);
                buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            self.served += buf.len() as u64;
            assert!(self.served < 64 << 20, "the importer kept reading the body");
            buf.fill(b'a');
            Ok(buf.len())
        }
    }
    for (kind, what) in [
        (tar::EntryType::GNULongName, "GNU long name"),
        (tar::EntryType::GNULongLink, "GNU long link"),
        (tar::EntryType::XHeader, "PAX extension"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 2);
        b.append_data(&mut h, "first", &b"ok"[..]).unwrap();
        let mut head = b.into_inner().unwrap();
        head.truncate(1024); // drop the end marker
        let mut h = header(kind, 8 << 30);
        h.set_path("././@LongLink").unwrap();
        h.set_cksum();
        head.extend_from_slice(h.as_bytes());
        let bomb = Bomb {
            head,
            pos: 0,
            served: 0,
        };
        let (_d, repo) = repo();
        repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
        let e = import_layer(&repo, bomb).err().unwrap();
        assert!(
            matches!(e, ImportError::HeaderTooLarge { .. }),
            "{what}: {e}"
        );
        let m = msg(&e);
        assert!(m.contains(what), "{m}");
        assert!(m.contains("after entry 'first'"), "{m}");
        assert!(m.contains(&format!("{} bytes", 8u64 << 30)), "{m}");
    }
}

/// Extension headers within the limit still work: a 300-byte name (GNU
/// long name), PAX path and size records, and a PAX size that overrides the
/// header's, which the guard must follow to stay in step.
#[test]
fn extension_headers_within_the_limit_work() {
    let long = "x".repeat(200) + "/" + &"y".repeat(100);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 3);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    // PAX record "size=5" with a header size of 0.
    let rec = b"10 size=5\n";
    let mut h = header(tar::EntryType::XHeader, rec.len() as u64);
    h.set_path("PaxHeaders/p").unwrap();
    h.set_cksum();
    b.append(&h, &rec[..]).unwrap();
    let mut h = header(tar::EntryType::Regular, 0);
    h.set_path("paxsized").unwrap();
    h.set_cksum();
    let mut body = b"hello".to_vec();
    body.resize(512, 0);
    let mut data = b.into_inner().unwrap();
    data.truncate(data.len() - 1024);
    data.extend_from_slice(h.as_bytes());
    data.extend_from_slice(&body);
    // A following entry, which the guard must find at the right place.
    let mut b2 = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 1);
    b2.append_data(&mut h, "after", &b"z"[..]).unwrap();
    data.extend_from_slice(&b2.into_inner().unwrap());
    let (_d, repo) = repo();
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let i = import_layer(&repo, &data[..]).unwrap();
    assert_eq!(i.stats.files, 3);
    assert_eq!(i.stats.content_bytes, 3 + 5 + 1);
    repo.abort_transaction(gio::Cancellable::NONE).unwrap();
}

/// A PAX global header (as `git archive` writes) and an 'L' header without a
/// GNU/ustar magic are entries of their own to the tar parser, not extension
/// headers: the guard must agree (fuzzing found it did not).
#[test]
fn global_and_unrecognised_extension_headers_keep_the_guard_in_step() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 2);
    b.append_data(&mut h, "before", &b"ok"[..]).unwrap();
    let rec = b"52 comment=0123456789012345678901234567890123456789\n";
    let mut h = header(tar::EntryType::XGlobalHeader, rec.len() as u64);
    h.set_path("pax_global_header").unwrap();
    h.set_cksum();
    b.append(&h, &rec[..]).unwrap();
    let mut h = header(tar::EntryType::Regular, 2);
    b.append_data(&mut h, "a", &b"ok"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let (_d, repo) = repo();
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let i = import_layer(&repo, &data[..]).unwrap();
    assert_eq!(i.stats.files, 2);
    repo.abort_transaction(gio::Cancellable::NONE).unwrap();

    // An old-style (no magic) header of type 'L': the tar crate yields it as
    // an entry, which the importer refuses as an unsupported type.
    let mut h = tar::Header::new_old();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_path("weird").unwrap();
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend_from_slice(&[b'x'; 512]);
    data.extend_from_slice(&[0u8; 1024]);
    let e = import(&data, &ImportLimits::default()).unwrap_err();
    assert!(matches!(e, ImportError::EntryType { .. }), "{e}");
}

#[test]
fn paths_that_collide_after_normalisation_are_refused() {
    // (what, entries, the entry named in the error, its normalised path)
    type Case<'a> = (&'a str, &'a [Entry<'a>], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            "dot component",
            &[
                ("a/", true, b""),
                ("a/b", false, b"1"),
                ("a/./b", false, b"2"),
            ],
            "a/./b",
            "a/b",
        ),
        (
            "double slash",
            &[("a/b", false, b"1"), ("a//b", false, b"2")],
            "a//b",
            "a/b",
        ),
        (
            "leading ./",
            &[("etc/passwd", false, b"1"), ("./etc/passwd", false, b"2")],
            "./etc/passwd",
            "etc/passwd",
        ),
        (
            "trailing slash: a dir over a file",
            &[("a", false, b"1"), ("a/", true, b"")],
            "a/",
            "a",
        ),
        (
            "a file over a dir",
            &[("a/", true, b""), ("a", false, b"1")],
            "a",
            "a",
        ),
        (
            "a file over an implicit dir",
            &[("a/b/c", false, b"1"), ("a/b", false, b"2")],
            "a/b",
            "a/b",
        ),
        (
            "the same file twice",
            &[("f", false, b"1"), ("f", false, b"2")],
            "f",
            "f",
        ),
    ];
    for (what, entries, entry, normalized) in cases {
        let e = import(&raw_tar(entries), &ImportLimits::default()).unwrap_err();
        assert!(matches!(e, ImportError::Collision { .. }), "{what}: {e}");
        assert_eq!(
            msg(&e),
            format!(
                "layer entry '{entry}' collides with an earlier entry '{normalized}' in the same layer"
            ),
            "{what}"
        );
    }
    // A directory may be repeated (tools emit "./" and "." or a dir twice);
    // its last metadata wins.
    let ok = raw_tar(&[
        ("./", true, b""),
        (".", true, b""),
        ("a", true, b""),
        ("a/", true, b""),
        ("a/./", true, b""),
        ("a/f", false, b"1"),
    ]);
    assert_eq!(import(&ok, &ImportLimits::default()).unwrap(), 1);
}

#[test]
fn limits_from_the_environment() {
    // The values as a binary read them: numbers apply, anything else keeps
    // the default.
    let set = [
        ("SYSCONTAINER_MAX_LAYER_ENTRIES", "10"),
        ("SYSCONTAINER_MAX_LAYER_BYTES", " 2048 "),
        ("SYSCONTAINER_MAX_SPARSE_RATIO", "7"),
    ];
    let l = ImportLimits::from_vars(|k| set.iter().find(|(n, _)| *n == k).map(|(_, v)| *v));
    assert_eq!(
        (l.max_entries, l.max_content_bytes, l.max_sparse_ratio),
        (10, 2048, 7)
    );
    assert_eq!(
        ImportLimits {
            max_entries: 10,
            max_content_bytes: 2048,
            max_sparse_ratio: 7,
            ..ImportLimits::default()
        },
        l
    );
    assert_eq!(ImportLimits::from_vars(|_| None), ImportLimits::default());
    assert_eq!(
        ImportLimits::from_vars(|_| Some("lots")),
        ImportLimits::default()
    );
}
