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
                c.args(["--sort=name", "-cf"]).arg(out).arg("-C").arg(src).arg(".");
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
        // What the tool said it could not store, for the table.
        let tool_note = if made {
            String::new()
        } else {
            // "tar: NAME: file name is too long (max 256); not dumped"
            let mut why: Vec<&str> = tool_err
                .lines()
                .filter_map(|l| l.rsplit(": ").next())
                .filter(|l| !l.starts_with("Exiting with failure"))
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
        let mut need = vec!["sparse", "allhole", "reg", "odd", "suid", "tmp", "dir/empty"];
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
