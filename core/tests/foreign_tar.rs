//! Layers written by other tools (issue 9, item 2): GNU tar in each
//! `--format`, with and without `--sparse` (and each PAX sparse version),
//! bsdtar in each of its write formats, with and without sparse detection,
//! and Python's tarfile in USTAR, GNU and PAX formats. Each archive is made
//! here, by the real tool, from one input tree; GNU tar extracts it, the
//! importer imports it into a real bare repo, libostree checks it out, and
//! the two trees must be equal (type, mode, owner, content, symlink target,
//! xattrs, hardlink groups). What a format cannot hold, the tool leaves out
//! or refuses, and both sides then lack it.
//!
//! Sparse maps that readers disagree on are refused with the entry's name
//! and the reason (the tests at the end, on archives built here).
//!
//! Run: `cargo test -p syscontainer-core --features store --test foreign_tar`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use syscontainer::store::import::{import_layer, ImportError};

const LONG_DIR: &str = "long/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

fn long_file() -> String {
    format!("{LONG_DIR}/{}", "f".repeat(200))
}

/// A capability set (cap_net_raw=ep), as `setcap` writes it (VFS_CAP v2).
const CAP: [u8; 20] = [
    0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// The sparse file: a leading hole, 6 data extents (more than the 4 slots
/// of an old GNU header), a trailing hole.
const SPARSE_SIZE: u64 = 14 * 65536;

fn write_sparse(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    for i in 0..6u64 {
        f.seek(SeekFrom::Start(65536 * (2 * i + 1))).unwrap();
        f.write_all(&vec![b'a' + i as u8; 3000]).unwrap();
    }
    f.set_len(SPARSE_SIZE).unwrap();
}

/// The input tree every tool archives.
fn make_tree(root: &Path) {
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    fs::create_dir_all(root.join("dir/empty")).unwrap();
    mode(&root.join("dir/empty"), 0o750);
    fs::create_dir(root.join("tmp")).unwrap();
    mode(&root.join("tmp"), 0o1777);
    fs::write(root.join("reg"), "hello\n").unwrap();
    fs::hard_link(root.join("reg"), root.join("hard")).unwrap();
    write_sparse(&root.join("sparse"));
    // 30 extents (two old GNU extension blocks), the last one ending at an
    // odd size.
    let mut f = fs::File::create(root.join("sparse2")).unwrap();
    for i in 0..30u64 {
        f.seek(SeekFrom::Start(16384 * i + 8192)).unwrap();
        f.write_all(format!("extent {i}\n").as_bytes()).unwrap();
    }
    f.seek(SeekFrom::Start(16384 * 30 + 8192)).unwrap();
    f.write_all(&[b'z'; 333]).unwrap();
    drop(f);
    let f = fs::File::create(root.join("allhole")).unwrap();
    f.set_len(1 << 20).unwrap();
    fs::create_dir_all(root.join(LONG_DIR)).unwrap();
    fs::write(root.join(long_file()), "long\n").unwrap();
    fs::write(root.join("long").join("n".repeat(120)), "over 100\n").unwrap();
    std::os::unix::fs::symlink("t".repeat(300), root.join("longlink")).unwrap();
    std::os::unix::fs::symlink("reg", root.join("sl")).unwrap();
    fs::write(root.join("suid"), "s").unwrap();
    mode(&root.join("suid"), 0o4751);
    fs::write(root.join("odd"), "o").unwrap();
    mode(&root.join("odd"), 0o2641);
    std::os::unix::fs::chown(root.join("odd"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(root.join("sl"), Some(1234), Some(5678)).unwrap();
    fs::write(root.join("x"), "xattrs").unwrap();
    xattr::set(root.join("x"), "user.foo", b"bar").unwrap();
    xattr::set(root.join("x"), "security.capability", &CAP).unwrap();
    fs::write(root.join("ünïcødé-☃"), "unicode\n").unwrap();
}

/// Per path: type and mode, owner, content hash or symlink target, xattrs;
/// and the hardlink groups (paths of one inode, more than one).
struct Listing {
    lines: BTreeMap<String, String>,
    groups: Vec<Vec<String>>,
}

fn listing(root: &Path) -> Listing {
    let mut lines = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = p.symlink_metadata().unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let mut l = format!("{:o} {}:{}", m.mode(), m.uid(), m.gid());
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if m.file_type().is_symlink() {
            l.push_str(&format!(" -> {}", fs::read_link(&p).unwrap().display()));
        } else {
            let data = fs::read(&p).unwrap();
            l.push_str(&format!(
                " {} bytes sha256:{}",
                data.len(),
                hex::encode(Sha256::digest(&data))
            ));
            inodes.entry(m.ino()).or_default().push(rel.clone());
        }
        if !m.file_type().is_symlink() {
            let mut xs: Vec<_> = xattr::list(&p).unwrap().collect();
            xs.sort();
            for x in xs {
                let v = xattr::get(&p, &x).unwrap().unwrap_or_default();
                l.push_str(&format!(" {}={}", x.to_string_lossy(), hex::encode(v)));
            }
        }
        lines.insert(rel, l);
    }
    let groups = inodes.into_values().filter(|g| g.len() > 1).collect();
    Listing { lines, groups }
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

/// One archive: which tool, how, and the command that writes it to `out`
/// from the tree at `src`.
struct Case {
    tool: &'static str,
    format: &'static str,
    sparse: &'static str,
    /// The format holds long names, long link targets and xattrs, so the
    /// extraction must have them.
    full: bool,
    xattrs: bool,
}

const PY: &str = r#"
import os, sys, tarfile
fmt = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[sys.argv[1]]
src, out = sys.argv[2], sys.argv[3]
with tarfile.open(out, "w", format=fmt) as t:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for p in [root] + sorted(os.path.join(root, n) for n in dirs + files):
            rel = os.path.relpath(p, src)
            try:
                t.add(p, arcname=rel, recursive=False)
            except ValueError as e:
                print(f"{rel[:40]}: {e}", file=sys.stderr)
"#;

impl Case {
    fn command(&self, src: &Path, out: &Path) -> Command {
        let mut c;
        match self.tool {
            "GNU tar" => {
                c = Command::new("tar");
                c.arg(format!("--format={}", self.format));
                match self.sparse {
                    "-" => {}
                    "yes" => {
                        c.arg("--sparse");
                    }
                    v => {
                        c.arg("--sparse").arg(format!("--sparse-version={v}"));
                    }
                }
                if self.format == "posix" {
                    c.args(["--xattrs", "--xattrs-include=*"]);
                }
                c.args(["--sort=name", "-cf"])
                    .arg(out)
                    .arg("-C")
                    .arg(src)
                    .arg(".");
            }
            "bsdtar" => {
                c = Command::new("bsdtar");
                c.arg(format!("--format={}", self.format));
                c.arg(if self.sparse == "-" {
                    "--no-read-sparse"
                } else {
                    "--read-sparse"
                });
                c.arg("-cf").arg(out).arg("-C").arg(src).arg(".");
            }
            _ => {
                c = Command::new("python3");
                c.args(["-c", PY, self.format]).arg(src).arg(out);
            }
        }
        c
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let case = |tool, format, sparse, full, xattrs| Case {
        tool,
        format,
        sparse,
        full,
        xattrs,
    };
    for f in ["gnu", "oldgnu", "posix", "ustar", "v7"] {
        let full = matches!(f, "gnu" | "oldgnu" | "posix");
        v.push(case("GNU tar", f, "-", full, f == "posix"));
        if f == "posix" {
            for s in ["0.0", "0.1", "1.0"] {
                v.push(case("GNU tar", f, s, full, true));
            }
        } else {
            v.push(case("GNU tar", f, "yes", full, false));
        }
    }
    for f in ["ustar", "pax", "gnutar", "v7", "paxr"] {
        let full = matches!(f, "pax" | "paxr" | "gnutar");
        let xattrs = matches!(f, "pax" | "paxr");
        v.push(case("bsdtar", f, "-", full, xattrs));
        v.push(case("bsdtar", f, "yes", full, xattrs));
    }
    for f in ["ustar", "gnu", "pax"] {
        v.push(case("python tarfile", f, "-", f != "ustar", false));
    }
    v
}

/// Import `tar` as one layer into a new bare repo under `work`, commit it,
/// and check it out with libostree at `dest`.
fn import_and_checkout(tar: &Path, work: &Path, dest: &Path) -> Result<(), ImportError> {
    let repo_dir = work.join("repo");
    let repo = ostree::Repo::new_for_path(&repo_dir);
    repo.create(ostree::RepoMode::Bare, gio::Cancellable::NONE)
        .unwrap();
    repo.set_disable_fsync(true);
    repo.prepare_transaction(gio::Cancellable::NONE).unwrap();
    let f = std::io::BufReader::new(fs::File::open(tar).unwrap());
    let imported = match import_layer(&repo, f) {
        Ok(i) => i,
        Err(e) => {
            repo.abort_transaction(gio::Cancellable::NONE).unwrap();
            return Err(e);
        }
    };
    let commit = repo
        .write_commit(
            None,
            Some("layer"),
            None,
            None,
            &imported.root,
            gio::Cancellable::NONE,
        )
        .unwrap();
    repo.commit_transaction(gio::Cancellable::NONE).unwrap();
    let opts = ostree::RepoCheckoutAtOptions {
        mode: ostree::RepoCheckoutMode::None,
        no_copy_fallback: true,
        ..Default::default()
    };
    repo.checkout_at(
        Some(&opts),
        libc::AT_FDCWD,
        dest,
        &commit,
        gio::Cancellable::NONE,
    )
    .unwrap();
    Ok(())
}

/// Compare a checkout with GNU tar's extraction; `Err` says how they differ.
fn compare(ours: &Listing, gnu: &Listing) -> Result<(), String> {
    let mut diffs = Vec::new();
    for (p, l) in &gnu.lines {
        match ours.lines.get(p) {
            Some(o) if o == l => {}
            Some(o) => diffs.push(format!("{p}: GNU tar {l}, ours {o}")),
            None => diffs.push(format!("{p}: only in GNU tar's extraction")),
        }
    }
    for p in ours.lines.keys().filter(|p| !gnu.lines.contains_key(*p)) {
        diffs.push(format!("{p}: only in our checkout"));
    }
    // The checkout hardlinks each file to its object, so identical files
    // share an inode: every group of GNU tar's must be within one of ours.
    let ino: BTreeMap<&String, usize> = ours
        .groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.iter().map(move |p| (p, i)))
        .collect();
    for g in &gnu.groups {
        let first = ino.get(&g[0]);
        if first.is_none() || g.iter().any(|p| ino.get(p) != first) {
            diffs.push(format!("hardlink group {g:?} is not one inode in ours"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

#[test]
fn layers_from_gnu_tar_bsdtar_and_python_match_gnu_tar_extraction() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    make_tree(&src);
    let src_listing = listing(&src);
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let work = base.path().join(format!("c{i}"));
        fs::create_dir(&work).unwrap();
        let tar = work.join("layer.tar");
        let (made, tool_err) = run(&mut case.command(&src, &tar));
        let row = format!(
            "| {} | {} | {} |",
            case.tool,
            case.format,
            match case.sparse {
                "-" => "no",
                "yes" => "yes",
                v => v,
            }
        );
        // GNU tar refuses --sparse with ustar and v7 ("GNU features wanted
        // on incompatible archive format"), and writes nothing.
        let refuses = case.tool == "GNU tar" && case.sparse == "yes";
        if !tar.is_file() || fs::metadata(&tar).unwrap().len() == 0 {
            let first = tool_err.lines().next().unwrap_or("");
            assert!(refuses, "{row} the tool wrote nothing: {tool_err}");
            table.push(format!("{row} the tool refuses: {first} |"));
            continue;
        }
        if !made && case.full {
            failures.push(format!("{row} the tool failed: {tool_err}"));
        }
        // What the tool said it could not store, for the table (bsdtar and
        // the Python script skip such entries and exit 0, GNU tar exits 2).
        let tool_note = if tool_err.trim().is_empty() {
            String::new()
        } else {
            // "tar: NAME: file name is too long (max 256); not dumped"
            let mut why: Vec<&str> = tool_err
                .split(['\n', '\r'])
                .filter_map(|l| l.rsplit(": ").next())
                .filter(|l| !l.is_empty() && !l.starts_with("Exiting with failure"))
                .collect();
            why.sort();
            why.dedup();
            format!("; the tool left out: {}", why.join(", "))
        };
        let gnu = work.join("gnu");
        fs::create_dir(&gnu).unwrap();
        let (extracted, gnu_err) = run(Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&tar)
            .arg("-C")
            .arg(&gnu));
        let ours = work.join("ours");
        let result = import_and_checkout(&tar, &work, &ours);
        if !extracted {
            failures.push(format!("{row}: GNU tar cannot extract it: {gnu_err}"));
            continue;
        }
        let gnu_listing = listing(&gnu);
        match result {
            Ok(()) => {
                table.push(format!("{row} imported{tool_note} |"));
                if let Err(d) = compare(&listing(&ours), &gnu_listing) {
                    failures.push(format!("{row}: checkout differs from GNU tar's:\n{d}"));
                }
            }
            Err(e) => {
                table.push(format!("{row} refused: {e} |"));
                failures.push(format!("{row}: refused: {e}"));
            }
        }
        // The comparison is only as good as what the archive holds: the
        // sparse file, hardlinks and owners are in every format; long names,
        // long link targets and xattrs where the format has them.
        let has = |p: &str| gnu_listing.lines.get(p) == src_listing.lines.get(p);
        let mut need = vec![
            "sparse",
            "sparse2",
            "allhole",
            "reg",
            "odd",
            "suid",
            "tmp",
            "dir/empty",
        ];
        let lf = long_file();
        if case.full {
            need.extend([lf.as_str(), "longlink"]);
        }
        if case.xattrs {
            need.push("x");
        }
        for p in need {
            if !has(p) {
                failures.push(format!(
                    "{row}: GNU tar's extraction lacks {p} as it is in the tree: {:?} vs {:?}",
                    gnu_listing.lines.get(p),
                    src_listing.lines.get(p)
                ));
            }
        }
        if !gnu_listing.groups.iter().any(|g| g.len() == 2) {
            failures.push(format!("{row}: GNU tar's extraction has no hardlink"));
        }
    }
    eprintln!("| tool | format | sparse | result |\n|---|---|---|---|");
    for r in &table {
        eprintln!("{r}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// Sparse maps that readers disagree on, or that are incomplete: refused,
// naming the entry and the reason. Built here byte by byte. A refusal of
// the GNU.sparse records names the entry as the archive lists it; one of the
// map in the data names the real path.

fn octal(n: u64, width: usize) -> Vec<u8> {
    let mut v = format!("{n:0w$o}", w = width - 1).into_bytes();
    v.push(0);
    v
}

fn checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// An old GNU sparse entry named `name` (a GNU long name first when it is
/// over 99 bytes) with `regions` and their data stored back to back.
fn old_gnu_sparse(name: &str, regions: &[(u64, u64)], real_size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let header = |name: &[u8], kind: u8, size: u64| {
        let mut h = vec![0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        h[100..108].copy_from_slice(&octal(0o644, 8));
        h[108..116].copy_from_slice(&octal(0, 8));
        h[116..124].copy_from_slice(&octal(0, 8));
        h[124..136].copy_from_slice(&octal(size, 12));
        h[136..148].copy_from_slice(&octal(0, 12));
        h[156] = kind;
        h[257..265].copy_from_slice(b"ustar  \0");
        h
    };
    if name.len() > 99 {
        let mut h = header(b"././@LongLink", b'L', name.len() as u64 + 1);
        checksum(&mut h);
        out.extend(h);
        let mut body = name.as_bytes().to_vec();
        body.push(0);
        body.resize(body.len().next_multiple_of(512), 0);
        out.extend(body);
    }
    let stored: u64 = regions.iter().map(|r| r.1).sum();
    let mut h = header(&name.as_bytes()[..name.len().min(99)], b'S', stored);
    let slot = |o: u64, l: u64| [octal(o, 12), octal(l, 12)].concat();
    for (i, (o, l)) in regions.iter().take(4).enumerate() {
        h[386 + 24 * i..410 + 24 * i].copy_from_slice(&slot(*o, *l));
    }
    h[482] = (regions.len() > 4) as u8;
    h[483..495].copy_from_slice(&octal(real_size, 12));
    checksum(&mut h);
    out.extend(h);
    let mut rest = regions.get(4..).unwrap_or_default();
    while !rest.is_empty() {
        let mut e = vec![0u8; 512];
        for (i, (o, l)) in rest.iter().take(21).enumerate() {
            e[24 * i..24 * i + 24].copy_from_slice(&slot(*o, *l));
        }
        rest = &rest[rest.len().min(21)..];
        e[504] = !rest.is_empty() as u8;
        out.extend(e);
    }
    let mut data: Vec<u8> = regions
        .iter()
        .enumerate()
        .flat_map(|(i, r)| vec![b'A' + i as u8; r.1 as usize])
        .collect();
    data.resize(data.len().next_multiple_of(512), 0);
    out.extend(data);
    out.extend([0u8; 1024]);
    out
}

fn pax_record(k: &str, v: &str) -> String {
    let body = format!(" {k}={v}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    format!("{n}{body}")
}

/// A PAX entry named `name` with `records` and `data`.
fn pax_entry(name: &str, records: &[(&str, &str)], data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let body: String = records.iter().map(|(k, v)| pax_record(k, v)).collect();
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/x").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, body.as_bytes()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

fn refusal(tar: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("layer.tar");
    fs::write(&p, tar).unwrap();
    let e = import_and_checkout(&p, d.path(), &d.path().join("ours")).unwrap_err();
    assert!(matches!(e, ImportError::Sparse { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn old_gnu_sparse_map_with_unaligned_regions_is_refused_by_name() {
    // Six 10-byte regions stored back to back, as Go's and Python's readers
    // read them; GNU tar reads each from a new 512-byte block (and fails
    // here with "Unexpected EOF"). The name is a GNU long name.
    let name = format!("dir/{}", "s".repeat(120));
    let regions: Vec<_> = (0..6).map(|i| (1000 * i + 100, 10)).collect();
    let tar = old_gnu_sparse(&name, &regions, 6000);
    assert_eq!(
        refusal(&tar),
        format!(
            "layer entry '{name}' is a sparse file (old GNU) that cannot be imported: region 1 \
             (offset 1100) follows a region whose length is not a multiple of 512: GNU tar and \
             other readers disagree on where its data is"
        )
    );
    // Aligned regions (what GNU tar writes) across two extension blocks,
    // closed by an empty region at the real size: imported.
    let real = 2048 * 30 + 4096;
    let mut regions: Vec<_> = (0..30).map(|i| (2048 * i + 1024, 512)).collect();
    regions.push((real, 0));
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("layer.tar");
    fs::write(&p, old_gnu_sparse(&name, &regions, real)).unwrap();
    let ours = d.path().join("ours");
    import_and_checkout(&p, d.path(), &ours).unwrap();
    let got = fs::read(ours.join(&name)).unwrap();
    let mut want = vec![0u8; real as usize];
    for (i, (o, l)) in regions.iter().enumerate() {
        want[*o as usize..(*o + *l) as usize].fill(b'A' + i as u8);
    }
    assert!(got == want, "content of {name}");
    // Without the closing region the map ends short of the real size.
    regions.pop();
    assert_eq!(
        refusal(&old_gnu_sparse("short", &regions, real)),
        "layer entry 'short' is a sparse file (old GNU) that cannot be imported: the map ends \
         at 60928, but the header gives a size of 65536 bytes"
    );
}

#[test]
fn pax_sparse_entries_that_do_not_add_up_are_refused_by_name() {
    /// PAX records, the entry's data, the refusal.
    type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a [u8], &'a str);
    let cases: [Refusal; 6] = [
        (
            &[
                ("GNU.sparse.major", "2"),
                ("GNU.sparse.minor", "0"),
                ("GNU.sparse.name", "real"),
                ("GNU.sparse.realsize", "4096"),
            ],
            b"",
            "layer entry 'GNUSparseFile.0/real' is a sparse file (PAX) that cannot be imported: \
             GNU sparse format version 2.0 is not supported (only 0.0, 0.1 and 1.0)",
        ),
        (
            &[
                ("GNU.sparse.major", "1"),
                ("GNU.sparse.minor", "0"),
                ("GNU.sparse.realsize", "4096"),
            ],
            b"",
            "layer entry 'GNUSparseFile.0/real' is a sparse file (PAX 1.0) that cannot be \
             imported: GNU.sparse.name is missing",
        ),
        (
            &[
                ("GNU.sparse.major", "1"),
                ("GNU.sparse.minor", "0"),
                ("GNU.sparse.name", "real"),
                ("GNU.sparse.realsize", "8192"),
            ],
            // The map lists 1024 bytes of data, the entry holds 512.
            &[
                b"2\n0\n1024\n8192\n0\n".as_slice(),
                &[0u8; 496],
                &[7u8; 512],
            ]
            .concat(),
            "layer entry 'real' is a sparse file (PAX 1.0) that cannot be imported: the map \
             lists 1024 bytes of data, but the entry holds 512",
        ),
        (
            &[
                ("GNU.sparse.size", "100"),
                ("GNU.sparse.numblocks", "1"),
                ("GNU.sparse.name", "real"),
                ("GNU.sparse.map", "0,200"),
            ],
            &[1u8; 200],
            "layer entry 'real' is a sparse file (PAX 0.1) that cannot be imported: region 0 \
             (offset 0, 200 bytes) ends beyond the file's size of 100 bytes",
        ),
        (
            &[
                ("GNU.sparse.size", "2048"),
                ("GNU.sparse.numblocks", "2"),
                ("GNU.sparse.offset", "1024"),
                ("GNU.sparse.numbytes", "100"),
                ("GNU.sparse.offset", "0"),
                ("GNU.sparse.numbytes", "100"),
            ],
            &[1u8; 200],
            "layer entry 'GNUSparseFile.0/real' is a sparse file (PAX 0.0) that cannot be \
             imported: region 1 (offset 0) starts before the previous region ends (1124)",
        ),
        (
            &[
                ("GNU.sparse.size", "2048"),
                ("GNU.sparse.numblocks", "3"),
                ("GNU.sparse.name", "real"),
                ("GNU.sparse.map", "0,100,1024,100"),
            ],
            &[1u8; 200],
            "layer entry 'GNUSparseFile.0/real' is a sparse file (PAX 0.1) that cannot be \
             imported: GNU.sparse.numblocks is 3, but the map has 2 regions",
        ),
    ];
    for (records, data, want) in cases {
        assert_eq!(
            refusal(&pax_entry("GNUSparseFile.0/real", records, data)),
            want,
            "{records:?}"
        );
    }
}
