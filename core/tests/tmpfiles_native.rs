//! The in-process tmpfiles of `syscontainer-exec run`
//! (`syscontainer::tmpfiles`) against `systemd-tmpfiles --create --root=`
//! itself: the same text applied to two identical trees must leave the same
//! types, modes (set-id and sticky bits included), owners, symlink targets
//! and ages (which pre-existing entries kept their old mtime), and succeed
//! or fail alike. The texts are every `tmpfiles.template` of the corpus,
//! rendered, on a fresh tree and on one where every path already exists with
//! the wrong mode and owner, plus the corner cases of the line types the
//! corpus uses (d, D, Z, r) and z.
//!
//! Needs root (chown) and systemd-tmpfiles; fails loudly without them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use syscontainer::template;
use syscontainer::tmpfiles::{CreateError, Plan};

const OLD: u64 = 1_000_000_000;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus")
}

fn tmpfiles_bin() -> &'static str {
    for p in ["/usr/bin/systemd-tmpfiles", "/bin/systemd-tmpfiles"] {
        if Path::new(p).is_file() {
            return p;
        }
    }
    panic!("systemd-tmpfiles is required (apt-get install systemd)");
}

fn require_root() {
    assert!(
        nix_uid_is_root(),
        "this test must run as root: it compares chown results"
    );
}

fn nix_uid_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap()
}

/// type, mode, uid, gid, link target, mtime kept.
type Entry = (char, u32, u32, u32, Option<PathBuf>, bool);

fn listing(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let st = fs::symlink_metadata(&p).unwrap();
            let ft = st.file_type();
            let t = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                'f'
            } else {
                '?'
            };
            let link = ft.is_symlink().then(|| fs::read_link(&p).unwrap());
            let kept = st.mtime() as u64 == OLD;
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (t, st.mode() & 0o7777, st.uid(), st.gid(), link, kept),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Set every entry's mtime to OLD (symlinks included), so that the listing
/// tells which ones were touched.
fn age(root: &Path) {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(OLD);
    let mut all = vec![];
    fn collect(d: &Path, all: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                collect(&p, all);
            }
            all.push(p);
        }
    }
    collect(root, &mut all);
    for p in all {
        let st = fs::symlink_metadata(&p).unwrap();
        if st.file_type().is_symlink() {
            let status = Command::new("touch")
                .args(["-h", "-d", &format!("@{OLD}")])
                .arg(&p)
                .status()
                .unwrap();
            assert!(status.success());
        } else {
            let f = fs::File::options()
                .read(true)
                .open(&p)
                .or_else(|_| fs::File::open(&p))
                .unwrap();
            f.set_modified(old).unwrap();
        }
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Applied in process, and systemd-tmpfiles succeeded too.
    InProcess,
    /// Left to systemd-tmpfiles (as exec does when the in-process step
    /// fails), which succeeded.
    FellBack,
    /// Both failed.
    Failed,
}

/// Apply `text` to two copies of the tree `setup` makes: one with
/// systemd-tmpfiles, one as `syscontainer-exec run` does (in process, and
/// systemd-tmpfiles when that fails).
fn compare(name: &str, text: &str, setup: &dyn Fn(&Path)) -> Outcome {
    // Plan::create sets the process umask to 0 around its mkdirs (as
    // systemd-tmpfiles does; syscontainer-exec is single-threaded): the
    // tests of this file must not make their trees meanwhile.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for r in [&a, &b] {
        fs::create_dir(r).unwrap();
        setup(r);
        age(r);
    }
    let conf = t.path().join("t.conf");
    fs::write(&conf, text).unwrap();
    let out = Command::new(tmpfiles_bin())
        .arg("--create")
        .arg(format!("--root={}", a.display()))
        .arg(&conf)
        .output()
        .unwrap();
    let theirs = out.status.success();
    let plan = Plan::parse(text).unwrap_or_else(|e| panic!("{name}: {e:?}\n{text}"));
    let native = plan.create(&b);
    let fallback = matches!(native, Err(CreateError::LeftToTmpfiles(_))).then(|| {
        Command::new(tmpfiles_bin())
            .arg("--create")
            .arg(format!("--root={}", b.display()))
            .arg(&conf)
            .status()
            .unwrap()
            .success()
    });
    let outcome = match (theirs, &native, fallback) {
        (true, Ok(()), None) => Outcome::InProcess,
        (true, Err(_), Some(true)) => Outcome::FellBack,
        (false, Err(CreateError::Failed(_)), None) => Outcome::Failed,
        _ => panic!(
            "{name}: systemd-tmpfiles {} ({}), in process {native:?}, then {fallback:?}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    let (la, lb) = (listing(&a), listing(&b));
    if la != lb {
        let mut diff = String::new();
        for k in la
            .keys()
            .chain(lb.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if la.get(k) != lb.get(k) {
                diff += &format!(
                    "  {}: tmpfiles {:?} ours {:?}\n",
                    k.display(),
                    la.get(k),
                    lb.get(k)
                );
            }
        }
        panic!("{name}: the trees differ ({outcome:?})\n{text}\n{diff}");
    }
    outcome
}

fn render(text: &str) -> String {
    template::render_with("t", text, |v| {
        Ok(Some(Cow::Borrowed(match v {
            "RUN_DIRECTORY" => "/run",
            "STATE_DIRECTORY" => "/var/lib",
            "NAME" => "svc",
            "HOST_UID" => "1000",
            "HOST_GID" => "1001",
            _ => return Ok(None),
        })))
    })
    .unwrap()
}

fn corpus_templates() -> Vec<(String, String)> {
    let mut out = vec![];
    for group in ["atomic-system-containers", "atomic-test-images"] {
        for e in fs::read_dir(corpus().join(group)).unwrap() {
            let p = e.unwrap().path().join("tmpfiles.template");
            if let Ok(t) = fs::read_to_string(&p) {
                out.push((p.display().to_string(), render(&t)));
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 12,
        "the corpus has its tmpfiles templates: {out:?}"
    );
    out
}

fn paths_of(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

fn mkdir(p: &Path, mode: u32, uid: u32, gid: u32) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn file(p: &Path, mode: u32, uid: u32, gid: u32) {
    fs::write(p, "x").unwrap();
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn corpus_templates_match_systemd_tmpfiles() {
    require_root();
    let mut types = std::collections::BTreeSet::new();
    for (name, text) in corpus_templates() {
        for l in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            types.insert(l.split_whitespace().next().unwrap().to_string());
        }
        // A fresh host.
        let fresh = compare(&format!("{name} (fresh)"), &text, &|_| {});
        assert_eq!(fresh, Outcome::InProcess, "{name}");
        // Every path already there, with the wrong mode and owner, holding a
        // file, a symlink, a set-id file and a subdirectory; the file `r`
        // names exists.
        let mut paths = paths_of(&text);
        paths.sort();
        paths.dedup();
        let setup = |r: &Path| {
            for p in &paths {
                let d = r.join(p.trim_start_matches('/'));
                if p.ends_with(".conf") {
                    mkdir(d.parent().unwrap(), 0o775, 3, 3);
                    file(&d, 0o666, 4, 4);
                    continue;
                }
                mkdir(&d, 0o777, 5, 6);
                file(&d.join("data"), 0o666, 7, 8);
                file(&d.join("tool"), 0o6755, 0, 0);
                symlink("data", d.join("link")).unwrap();
                std::os::unix::fs::lchown(d.join("link"), Some(9), Some(9)).unwrap();
                mkdir(&d.join("sub"), 0o750, 2, 2);
            }
        };
        let existing = compare(&format!("{name} (existing)"), &text, &setup);
        assert_eq!(existing, Outcome::InProcess, "{name}");
    }
    // The line types the issue names are all covered by the corpus.
    for t in ["d", "D", "Z", "r"] {
        assert!(types.contains(t), "the corpus has no '{t}' line: {types:?}");
    }
}

#[test]
fn corner_cases_match_systemd_tmpfiles() {
    require_root();
    let none = |_: &Path| {};
    // Missing parents, several levels deep; the mode under a setgid parent.
    assert_eq!(
        Outcome::InProcess,
        compare("deep", "d /a/b/c/d 0710 12 13 - -\n", &none)
    );
    assert_eq!(
        Outcome::InProcess,
        compare(
            "setgid parent",
            "d /g/new - - - - -\nd /g/new2 0700 - - - -\n",
            &|r: &Path| {
                mkdir(&r.join("g"), 0o2775, 0, 50);
            }
        )
    );
    // A parent line later in the file is applied first.
    assert_eq!(
        Outcome::InProcess,
        compare("parent later", "d /p/q 0700 1 1\nd /p 0711 2 2\n", &none)
    );
    // A Z on an ancestor, before a d below it.
    // (Owned by a user, /s may not hold a root-owned /s/t: both refuse.)
    assert_eq!(
        Outcome::Failed,
        compare(
            "Z ancestor, unsafe",
            "d /s/t/u 0700 - -\nZ /s 0750 3 3\n",
            &|r: &Path| {
                mkdir(&r.join("s/old"), 0o777, 1, 1);
            }
        )
    );
    assert_eq!(
        Outcome::InProcess,
        compare(
            "Z ancestor",
            "d /s/t/u 0700 - -\nZ /s 0750 0 3\n",
            &|r: &Path| {
                mkdir(&r.join("s/old"), 0o777, 1, 1);
            }
        )
    );
    // A symlink on the way down (a host's /var/run -> ../run) is left to
    // systemd-tmpfiles.
    assert_eq!(
        Outcome::FellBack,
        compare("symlinked parent", "d /var/lock/x 0700\n", &|r: &Path| {
            mkdir(&r.join("run/lock"), 0o755, 0, 0);
            symlink("../run/lock", r.join("var/lock")).unwrap_or_else(|_| {
                fs::create_dir_all(r.join("var")).unwrap();
                symlink("../run/lock", r.join("var/lock")).unwrap();
            });
        })
    );
    // A second d line with other parameters is ignored; the same line twice is not.
    assert_eq!(
        Outcome::InProcess,
        compare(
            "dup",
            "d /x 0700 1 1\nd /x 0755 2 2\nd /x 0700 1 1\n",
            &none
        )
    );
    // D on an existing directory keeps its contents under --create.
    assert_eq!(
        Outcome::InProcess,
        compare("D existing", "D /run/svc 0700 - -\n", &|r: &Path| {
            mkdir(&r.join("run/svc"), 0o755, 0, 0);
            file(&r.join("run/svc/pid"), 0o644, 0, 0);
        })
    );
    // Only the owner set, only the group set, only the mode set.
    for (n, line) in [
        ("uid only", "d /o - 77 -\n"),
        ("gid only", "d /o - - 78\n"),
        ("mode only", "d /o 0701 - -\n"),
        ("Z uid only", "Z /o - 77 -\n"),
        ("Z mode only", "Z /o 0700 - -\n"),
        ("z", "z /o 0711 4 4\n"),
        ("Z nothing", "Z /o - - -\n"),
    ] {
        assert_eq!(
            Outcome::InProcess,
            compare(n, line, &|r: &Path| {
                mkdir(&r.join("o/in"), 0o755, 1, 2);
                file(&r.join("o/in/f"), 0o4755, 1, 2);
                file(&r.join("o/g"), 0o2711, 0, 0);
            })
        );
    }
    // A Z whose path is a symlink: the link itself is chowned, not followed.
    assert_eq!(
        Outcome::InProcess,
        compare("Z symlink", "Z /l 0700 5 5\n", &|r: &Path| {
            mkdir(&r.join("target"), 0o755, 0, 0);
            symlink("target", r.join("l")).unwrap();
        })
    );
    // A d whose path is a symlink to a directory, or a dangling one: left
    // alone, with a message, and not a failure (systemd-tmpfiles 252).
    assert_eq!(
        Outcome::InProcess,
        compare("d symlink", "d /l 0700 5 5\n", &|r: &Path| {
            mkdir(&r.join("target"), 0o755, 0, 0);
            symlink("target", r.join("l")).unwrap();
        })
    );
    // A hardlinked file under Z (fs.protected_hardlinks is on).
    assert_eq!(
        Outcome::InProcess,
        compare("Z hardlink", "Z /h 0700 6 6\n", &|r: &Path| {
            mkdir(&r.join("h"), 0o755, 0, 0);
            file(&r.join("h/a"), 0o644, 0, 0);
            fs::hard_link(r.join("h/a"), r.join("h/b")).unwrap();
        })
    );
    // Z and r on paths that do not exist do nothing.
    assert_eq!(
        Outcome::InProcess,
        compare(
            "absent",
            "Z /nope 0700 1 1\nr /nope2\nR /nope3\nz /nope4 0700\n",
            &none
        )
    );
    // r and R leave existing files alone under --create.
    assert_eq!(
        Outcome::InProcess,
        compare("r existing", "r /f\nR /dir\n", &|r: &Path| {
            file(&r.join("f"), 0o644, 0, 0);
            mkdir(&r.join("dir/x"), 0o755, 0, 0);
        })
    );
    assert_eq!(
        Outcome::InProcess,
        compare("d dangling", "d /l 0700 5 5\n", &|r: &Path| {
            symlink("nowhere", r.join("l")).unwrap();
        })
    );
    // A d on an existing file, and below one: the same (and the next line
    // is still applied).
    assert_eq!(
        Outcome::InProcess,
        compare("d on a file", "d /f 0700\nd /n 0701\n", &|r: &Path| {
            file(&r.join("f"), 0o644, 0, 0)
        })
    );
    assert_eq!(
        Outcome::InProcess,
        compare("d below a file", "d /f/x 0700\n", &|r: &Path| {
            file(&r.join("f"), 0o644, 0, 0)
        })
    );
}

#[test]
fn exec_falls_back_to_systemd_tmpfiles_for_other_lines() {
    // What the module cannot do exactly is refused, so that exec spawns
    // systemd-tmpfiles for the whole text.
    for t in [
        "f /run/x 0644 - - - hello\n",
        "d /run/x 0700 root root\n",
        "d /run/%n\n",
        "d /run/x 0700 - - 1d\n",
        "d- /run/x\n",
    ] {
        assert!(Plan::parse(t).is_err(), "{t}");
    }
}
