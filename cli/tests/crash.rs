//! Crash consistency and concurrency (issue 6). Needs `--features failpoints`
//! (`cargo test --workspace --all-features`, as tests/run.sh does) and the
//! cheap test images (`tests/fixtures/make-images.sh`).
//!
//! `crash_consistency`: every mutating command runs once with
//! `SYSCONTAINER_FAILPOINT_LOG` to discover the failpoints it passes; then,
//! for each one, a fresh copy of the starting state is killed there
//! (SIGKILL, from inside), the invariants are checked, the command is run
//! again and must succeed, and the invariants are checked again. A few runs
//! per command are also killed from outside after a random delay
//! (`CRASH_RANDOM` runs per command, default 3; `CRASH_SEED` to replay).
//!
//! `concurrency`: 8 and more processes at once (overlapping pulls,
//! installs/uninstalls of different names, prune racing installs and pulls,
//! installs of one name), then the same invariants; and a command that waits
//! for a lock says so.
//!
//! Invariants: `ostree fsck` is clean; every image ref's layers have refs;
//! every record loads and names a complete deployment (info.json for the
//! record's image, and a rootfs identical to a clean checkout of that image);
//! every `NAME` link and every `NAME.N` slot is complete; the generator
//! fails on no record, and its units pass `systemd-analyze verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use syscontainer::paths::{self, Root};

const BIN: &str = env!("CARGO_BIN_EXE_syscontainer");
const HELLO: &str = "localhost/sctest/hello:latest";
const HELLO_V2: &str = "localhost/sctest/hello-v2:latest";
const HOSTFS_V2: &str = "localhost/sctest/hello-hostfs-v2:latest";

fn fixtures() -> PathBuf {
    let f = PathBuf::from(
        std::env::var("SYSCONTAINER_FIXTURES")
            .unwrap_or_else(|_| "/var/tmp/syscontainer-fixtures".into()),
    );
    for t in [
        "hello",
        "hello-v2",
        "hello-hostfs",
        "hello-hostfs-v2",
        "layered",
        "tiny",
    ] {
        assert!(
            f.join(format!("{t}.tar")).is_file(),
            "{}/{t}.tar is missing: run tests/fixtures/make-images.sh",
            f.display()
        );
    }
    f
}

fn tar(name: &str) -> String {
    format!("dockertar:{}/{name}.tar", fixtures().display())
}

fn command(root: &Path, args: &[String]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env(paths::ROOT_ENV, root)
        .env_remove("ATOMIC_OSTREE_REPO")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .env_remove(syscontainer::failpoint::ENV)
        .env_remove(syscontainer::failpoint::ENV_LOG)
        .stdin(Stdio::null());
    c
}

fn run(root: &Path, args: &[String]) -> Output {
    command(root, args).output().expect("spawn syscontainer")
}

fn ok(root: &Path, args: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let o = run(root, &args);
    assert!(
        o.status.success(),
        "syscontainer {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn cp_a(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

fn checkout_root(root: &Path) -> PathBuf {
    Root::new(root).join(paths::CHECKOUT_ROOT)
}

fn repo_dir(root: &Path) -> PathBuf {
    checkout_root(root).join(paths::OSTREE_REPO_FALLBACK)
}

/// A tree as comparable lines: path, type, size or link target, mode.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(d) else {
            out.push(format!("unreadable {}", d.display()));
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                out.push(format!("d {rel} {:o}", m.mode()));
                walk(base, &p, out);
            } else if ft.is_symlink() {
                out.push(format!("l {rel} {:?}", fs::read_link(&p).ok()));
            } else {
                out.push(format!("f {rel} {} {:o}", m.len(), m.mode()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Clean rootfs listings by image ID.
type Reference = BTreeMap<String, Vec<String>>;

fn reference(work: &Path) -> Reference {
    // hello-hostfs-v2 puts host files where hello-hostfs does: its own root.
    let images = [
        ("hello", "r1", "reference"),
        ("hello-v2", "r2", "reference"),
        ("hello-hostfs", "r3", "reference"),
        ("hello-hostfs-v2", "r4", "reference-v2"),
    ];
    let mut r = Reference::new();
    for (t, name, dir) in images {
        let root = work.join(dir);
        fs::create_dir_all(&root).unwrap();
        ok(&root, &["install", "--name", name, &tar(t)]);
        let (rec, _) = syscontainer::record::Record::load(&Root::new(&root), name).unwrap();
        let dir = Root::new(&root).join(&rec.deployment);
        r.insert(rec.image_id.clone(), listing(&dir.join("rootfs")));
    }
    r
}

/// Why the deployment at `dir` (real path) is not complete, if it is not.
fn incomplete(dir: &Path, image_id: Option<&str>, refs: &Reference) -> Option<String> {
    let info = match syscontainer::bundle::load_info(dir) {
        Ok(i) => i,
        Err(e) => return Some(format!("{}: no valid info.json: {e}", dir.display())),
    };
    if let Some(id) = image_id {
        if info.image_id != id {
            return Some(format!(
                "{}: info.json is for {}, the record says {id}",
                dir.display(),
                info.image_id
            ));
        }
    }
    match refs.get(&info.image_id) {
        None => Some(format!(
            "{}: unknown image {}",
            dir.display(),
            info.image_id
        )),
        Some(l) if *l != listing(&dir.join("rootfs")) => Some(format!(
            "{}: rootfs differs from a clean checkout of {}",
            dir.display(),
            info.image_id
        )),
        Some(_) => None,
    }
}

/// What a check found.
#[derive(Default, Debug)]
struct Findings {
    /// Broken invariants.
    corrupt: Vec<String>,
    /// Link and record disagree (the record wins; the next command repairs).
    link_behind: Vec<String>,
    /// Generated units, for systemd-analyze verify.
    units: Vec<(String, String)>,
}

fn check(root: &Path, refs: &Reference) -> Findings {
    let mut f = Findings::default();
    let r = Root::new(root);
    // 1. ostree fsck, and image refs -> layer refs.
    let repo = repo_dir(root);
    if repo.join("config").exists() {
        let o = Command::new("ostree")
            .arg("fsck")
            .arg(format!("--repo={}", repo.display()))
            .output()
            .expect("ostree fsck (apt-get install ostree)");
        if !o.status.success() {
            f.corrupt.push(format!(
                "ostree fsck: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        match syscontainer::store::Store::open(&r).and_then(|s| {
            let mut missing = Vec::new();
            for i in s.images()? {
                for l in &i.layers {
                    if s.layer_commit(l)?.is_none() {
                        missing.push(format!("image {} names missing layer {l}", i.name));
                    }
                }
            }
            Ok(missing)
        }) {
            Ok(m) => f.corrupt.extend(m),
            Err(e) => f.corrupt.push(format!("store: {e:#}")),
        }
    }
    // 2. records.
    let mut recorded = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(r.join(paths::RECORDS_ETC)) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(name) = n.strip_suffix(".json").filter(|_| !n.starts_with('.')) else {
                continue;
            };
            match syscontainer::record::Record::load(&r, name) {
                Err(e) => f.corrupt.push(format!("record {n}: {e}")),
                Ok((rec, _)) => {
                    let dir = r.join(&rec.deployment);
                    if let Some(why) = incomplete(&dir, Some(&rec.image_id), refs) {
                        f.corrupt.push(format!("record {name}: {why}"));
                    }
                    recorded.insert(name.to_string(), rec.deployment.clone());
                }
            }
        }
    }
    // 3. links and slots.
    let co = checkout_root(root);
    let mut linked = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(&co) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                continue;
            }
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                linked.insert(n.clone());
                let t = fs::read_link(&p).unwrap().display().to_string();
                if t != format!("{n}.0") && t != format!("{n}.1") {
                    f.corrupt.push(format!("link {n} -> {t}: not a slot"));
                } else if let Some(why) = incomplete(&co.join(&t), None, refs) {
                    f.corrupt.push(format!("link {n} -> {t}: {why}"));
                }
                if let Some(d) = recorded.get(&n) {
                    if !d.ends_with(&format!("/{t}")) {
                        f.link_behind
                            .push(format!("link {n} -> {t} but the record says {d}"));
                    }
                }
            } else if let Some(why) = incomplete(&p, None, refs) {
                f.corrupt.push(format!("slot {n}: {why}"));
            }
        }
    }
    for n in recorded.keys() {
        if !linked.contains(n) {
            f.corrupt.push(format!("record {n} but no link {n}"));
        }
    }
    // 4. the generator.
    let failed = syscontainer::generate::generate(&r, |g| {
        for m in g.messages {
            f.corrupt.push(format!("generator: {m:?}"));
        }
        for o in g.outputs {
            // Units, not the targets' drop-ins (TARGET.d/syscontainer.conf),
            // which systemd-analyze verify cannot take alone.
            if let syscontainer::generate::Output::Unit { path, text } = o {
                if path.parent() == Some(Path::new("")) {
                    f.units.push((path.display().to_string(), text));
                }
            }
        }
    });
    if failed > 0 {
        f.corrupt
            .push(format!("generator: {failed} records failed"));
    }
    for n in recorded.keys() {
        if !f.units.iter().any(|(p, _)| *p == format!("{n}.service")) {
            f.corrupt.push(format!("generator: no unit for {n}"));
        }
    }
    f
}

/// The host files (all under /usr/local in the test images) against the
/// records, for a command that has completed: each file a record lists is
/// there with its content, and no other is.
fn host_files(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let r = Root::new(root);
    let mut want = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(r.join(paths::RECORDS_ETC)) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(name) = n.strip_suffix(".json").filter(|_| !n.starts_with('.')) else {
                continue;
            };
            if let Ok((rec, _)) = syscontainer::record::Record::load(&r, name) {
                for h in rec.host_files {
                    want.insert(h.path, h.sha256);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![r.join("/usr/local")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
                continue;
            }
            let logical = format!("/{}", p.strip_prefix(root).unwrap().display());
            let sha = if m.file_type().is_symlink() {
                let mut b = b"symlink:".to_vec();
                b.extend_from_slice(fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes());
                hex::encode(Sha256::digest(&b))
            } else {
                hex::encode(Sha256::digest(fs::read(&p).unwrap()))
            };
            match want.remove(&logical) {
                None => out.push(format!("host file {logical} is in no record")),
                Some(w) if w != sha => {
                    out.push(format!("host file {logical} is not what its record says"))
                }
                Some(_) => {}
            }
        }
    }
    out.extend(
        want.keys()
            .map(|p| format!("host file {p} of a record is missing")),
    );
    out
}

/// One mutating command from a known state.
struct Scenario {
    cmd: &'static str,
    state: &'static str,
    args: Vec<String>,
    /// The command's effect is already complete (an "already done" failure
    /// on re-run is then fine).
    done: fn(&Path) -> bool,
}

fn has_record(root: &Path, name: &str) -> bool {
    Root::new(root).join(paths::record_path(name)).exists()
}

fn gone(root: &Path, name: &str) -> bool {
    let co = checkout_root(root);
    !has_record(root, name)
        && [name.to_string(), format!("{name}.0"), format!("{name}.1")]
            .iter()
            .all(|p| fs::symlink_metadata(co.join(p)).is_err())
}

fn scenarios() -> Vec<Scenario> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let never = |_: &Path| false;
    vec![
        Scenario {
            cmd: "pull",
            state: "empty",
            args: s(&["pull", &tar("layered")]),
            done: never,
        },
        Scenario {
            cmd: "pull",
            state: "hello",
            args: s(&["pull", &tar("hello-v2")]),
            done: never,
        },
        Scenario {
            cmd: "install",
            state: "hello+v2",
            args: s(&["install", "--name", "c1", HELLO]),
            // Killed after its commit point, the install is complete.
            done: |r| has_record(r, "c1"),
        },
        Scenario {
            cmd: "install",
            state: "empty",
            args: s(&["install", "--name", "h1", &tar("hello-hostfs")]),
            done: |r| has_record(r, "h1"),
        },
        Scenario {
            cmd: "containers update",
            state: "installed",
            args: s(&["containers", "update", "--rebase", HELLO_V2, "c1"]),
            done: never,
        },
        Scenario {
            cmd: "containers update",
            state: "updated",
            args: s(&["containers", "update", "--set", "FOO=bar", "c1"]),
            done: never,
        },
        Scenario {
            cmd: "containers update",
            state: "hostfs",
            args: s(&["containers", "update", "--set", "FOO=bar", "h1"]),
            done: never,
        },
        Scenario {
            cmd: "containers update",
            state: "hostfs+v2",
            args: s(&["containers", "update", "--rebase", HOSTFS_V2, "h1"]),
            done: never,
        },
        Scenario {
            cmd: "containers rollback",
            state: "updated",
            args: s(&["containers", "rollback", "c1"]),
            done: never,
        },
        Scenario {
            cmd: "containers rollback",
            state: "hostfs-rebased",
            args: s(&["containers", "rollback", "h1"]),
            done: never,
        },
        Scenario {
            cmd: "uninstall",
            state: "updated",
            args: s(&["uninstall", "c1"]),
            done: |r| gone(r, "c1"),
        },
        Scenario {
            cmd: "uninstall",
            state: "hostfs",
            args: s(&["uninstall", "h1"]),
            done: |r| gone(r, "h1"),
        },
        Scenario {
            cmd: "images delete",
            state: "hello+v2",
            args: s(&["images", "delete", HELLO_V2]),
            done: |r| {
                syscontainer::store::Store::open(&Root::new(r))
                    .map(|s| s.image(HELLO_V2).is_err())
                    .unwrap_or(false)
            },
        },
        Scenario {
            cmd: "images prune",
            state: "installed-deleted",
            args: s(&["images", "prune"]),
            done: never,
        },
    ]
}

fn build_state(dir: &Path, state: &str) {
    fs::create_dir_all(dir).unwrap();
    let pull = |t: &str| ok(dir, &["pull", &tar(t)]);
    match state {
        "empty" => {}
        "hello" => pull("hello"),
        "hello+v2" => {
            pull("hello");
            pull("hello-v2");
        }
        "installed" | "updated" | "installed-deleted" => {
            pull("hello");
            pull("hello-v2");
            pull("layered");
            ok(dir, &["install", "--name", "c1", HELLO]);
            if state == "updated" {
                ok(dir, &["containers", "update", "--rebase", HELLO_V2, "c1"]);
            }
            if state == "installed-deleted" {
                // c1's image and an unused one go: prune must keep c1 whole.
                ok(dir, &["images", "delete", "-f", HELLO]);
                ok(dir, &["images", "delete", "localhost/sctest/layered"]);
            }
        }
        "hostfs" => ok(dir, &["install", "--name", "h1", &tar("hello-hostfs")]),
        "hostfs+v2" | "hostfs-rebased" => {
            ok(dir, &["install", "--name", "h1", &tar("hello-hostfs")]);
            pull("hello-hostfs-v2");
            if state == "hostfs-rebased" {
                ok(dir, &["containers", "update", "--rebase", HOSTFS_V2, "h1"]);
            }
        }
        _ => unreachable!("{state}"),
    }
}

/// Kill specs from a failpoint log: `NAME@K` for the first two and the last
/// time each point was passed.
fn specs(log: &str) -> Vec<String> {
    let mut counts: Vec<(String, u32)> = Vec::new();
    for l in log.lines() {
        match counts.iter_mut().find(|(n, _)| n == l) {
            Some((_, c)) => *c += 1,
            None => counts.push((l.to_string(), 1)),
        }
    }
    let mut out = Vec::new();
    for (n, c) in counts {
        let ks: BTreeSet<u32> = [1, 2.min(c), c].into_iter().collect();
        for k in ks {
            out.push(format!("{n}@{k}"));
        }
    }
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Tally {
    points: BTreeSet<String>,
    kills: usize,
    random_kills: usize,
    random_finished: usize,
    corrupt: usize,
    link_behind: usize,
    rerun_failed: usize,
}

fn verify_units(work: &Path, units: &BTreeMap<String, String>) -> Vec<String> {
    let dir = work.join("units");
    for (i, (text, name)) in units.iter().enumerate() {
        let d = dir.join(i.to_string());
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(name), text).unwrap();
    }
    let helper = paths::EXEC_HELPER;
    // A crash between an install's intent file and its state leaves a
    // pending container, whose unit runs the CLI first (`apply`): the CLI's
    // path must exist too. Its directory (/usr/bin) cannot be replaced by an
    // empty tmpfs, so a stand-in goes into an overlay of it, as in
    // tests/verify-units.sh.
    let cli = paths::CLI;
    let script = format!(
        r#"set -u
mount -t tmpfs tmpfs /run
d=$(dirname {helper}); mkdir -p "$d"; mount -t tmpfs tmpfs "$d"; cp /bin/true {helper}
if [ ! -x {cli} ]; then
  d=$(dirname {cli}); mkdir -p {work}/cli-upper {work}/cli-work
  mount -t overlay -o "lowerdir=$d,upperdir={work}/cli-upper,workdir={work}/cli-work" overlay "$d" || exit 1
  cp /bin/true {cli}
fi
rc=0
for u in $(find {dir} -name '*.service' | sort); do
  out=$(systemd-analyze verify --man=no "$u" 2>&1); r=$?
  mine=$(printf '%s\n' "$out" | grep -F "$(basename "$u")")
  if [ $r -ne 0 ] || [ -n "$mine" ]; then echo "FAIL $u: $out"; rc=1; fi
done
exit $rc"#,
        dir = dir.display(),
        work = work.display()
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c", &script])
        .output()
        .expect("unshare");
    if o.status.success() {
        Vec::new()
    } else {
        vec![format!(
            "systemd-analyze verify: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )]
    }
}

/// On tmpfs when there is one (`CRASH_TMPDIR` to choose): the commands
/// fsync and syncfs, which are slow on a shared disk and prove nothing
/// against SIGKILL.
fn workdir(what: &str) -> tempfile::TempDir {
    let base = std::env::var("CRASH_TMPDIR").unwrap_or_else(|_| {
        if Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            "/var/tmp".into()
        }
    });
    tempfile::Builder::new()
        .prefix(&format!("syscontainer-{what}."))
        .tempdir_in(base)
        .unwrap()
}

#[test]
fn crash_consistency() {
    let t0 = Instant::now();
    let work = workdir("crash");
    let work = work.path();
    let refs = reference(work);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let randoms: usize = std::env::var("CRASH_RANDOM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut states: BTreeSet<&str> = BTreeSet::new();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut units: BTreeMap<String, String> = BTreeMap::new();
    let mut n = 0;
    for sc in scenarios() {
        let tmpl = work.join("state").join(sc.state);
        if states.insert(sc.state) {
            build_state(&tmpl, sc.state);
        }
        let tally = tallies.entry(sc.cmd).or_default();
        let fresh = |n: &mut usize| {
            *n += 1;
            let d = work.join("run").join(n.to_string());
            fs::create_dir_all(d.parent().unwrap()).unwrap();
            cp_a(&tmpl, &d);
            d
        };
        // Discovery.
        let d = fresh(&mut n);
        let log = work.join(format!("fp.{n}.log"));
        let t = Instant::now();
        let o = command(&d, &sc.args)
            .env(syscontainer::failpoint::ENV_LOG, &log)
            .output()
            .unwrap();
        let full = t.elapsed();
        assert!(
            o.status.success(),
            "{:?} failed: {}",
            sc.args,
            String::from_utf8_lossy(&o.stderr)
        );
        let log = fs::read_to_string(&log).unwrap_or_default();
        let mut f = check(&d, &refs);
        f.corrupt.extend(host_files(&d));
        assert!(
            f.corrupt.is_empty(),
            "{:?} without a crash: {:?}",
            sc.args,
            f.corrupt
        );
        let _ = fs::remove_dir_all(&d);
        let mut kills: Vec<Option<String>> = specs(&log).into_iter().map(Some).collect();
        kills.extend((0..randoms).map(|_| None));
        for spec in kills {
            let d = fresh(&mut n);
            let what = match &spec {
                Some(s) => {
                    let o = command(&d, &sc.args)
                        .env(syscontainer::failpoint::ENV, s)
                        .output()
                        .unwrap();
                    assert_eq!(
                        o.status.signal(),
                        Some(9),
                        "{:?} at {s} was not killed: {}",
                        sc.args,
                        String::from_utf8_lossy(&o.stderr)
                    );
                    tally
                        .points
                        .insert(s.split('@').next().unwrap().to_string());
                    tally.kills += 1;
                    s.clone()
                }
                None => {
                    let ms = rng.next() % (full.as_millis() as u64 + 1);
                    let mut c = command(&d, &sc.args)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(ms));
                    let _ = c.kill();
                    let st = c.wait().unwrap();
                    if st.signal() == Some(9) {
                        tally.random_kills += 1;
                    } else {
                        tally.random_finished += 1;
                    }
                    format!("random {ms} ms")
                }
            };
            let f = check(&d, &refs);
            let ctx = format!("{} [{}] killed at {what}", sc.args.join(" "), sc.state);
            tally.corrupt += f.corrupt.len();
            tally.link_behind += f.link_behind.len();
            problems.extend(f.corrupt.iter().map(|p| format!("{ctx}: {p}")));
            units.extend(f.units.into_iter().map(|(p, t)| (t, p)));
            let o = run(&d, &sc.args);
            if !o.status.success() && !(sc.done)(&d) {
                tally.rerun_failed += 1;
                problems.push(format!(
                    "{ctx}: re-run failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            let mut f = check(&d, &refs);
            f.corrupt.extend(host_files(&d));
            tally.corrupt += f.corrupt.len() + f.link_behind.len();
            problems.extend(
                f.corrupt
                    .iter()
                    .chain(&f.link_behind)
                    .map(|p| format!("{ctx}, after the re-run: {p}")),
            );
            units.extend(f.units.into_iter().map(|(p, t)| (t, p)));
            let _ = fs::remove_dir_all(&d);
        }
    }
    problems.extend(verify_units(work, &units));
    eprintln!(
        "\n{:<20} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "command", "points", "kills", "random", "corrupt", "behind", "rerun!"
    );
    let mut all = BTreeSet::new();
    for (cmd, t) in &tallies {
        eprintln!(
            "{cmd:<20} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8}",
            t.points.len(),
            t.kills,
            format!("{}+{}", t.random_kills, t.random_finished),
            t.corrupt,
            t.link_behind,
            t.rerun_failed
        );
        eprintln!(
            "    {}",
            t.points.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        all.extend(t.points.iter().cloned());
    }
    eprintln!(
        "{} distinct failpoints, {} runs, {} distinct units verified, {:.0?}",
        all.len(),
        n,
        units.len(),
        t0.elapsed()
    );
    for p in &problems {
        eprintln!("CORRUPT: {p}");
    }
    assert!(problems.is_empty(), "{} problems", problems.len());
}

/// Start every command at once; wait for all.
fn parallel(root: &Path, jobs: &[Vec<String>]) -> Vec<Output> {
    let children: Vec<_> = jobs
        .iter()
        .map(|a| {
            command(root, a)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn assert_all_ok(jobs: &[Vec<String>], outs: &[Output]) {
    for (a, o) in jobs.iter().zip(outs) {
        assert!(
            o.status.success(),
            "{a:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn assert_clean(root: &Path, refs: &Reference, phase: &str) {
    let f = check(root, refs);
    assert!(
        f.corrupt.is_empty() && f.link_behind.is_empty(),
        "{phase}: {:#?}",
        f
    );
}

/// Hold `lock` (a file under the lock directory) for `secs` with flock(1).
fn hold_lock(root: &Path, lock: &str, secs: f32) -> std::process::Child {
    let dir = Root::new(root).join(paths::LOCK_DIR);
    fs::create_dir_all(&dir).unwrap();
    let ready = dir.join(format!("{lock}.held"));
    let _ = fs::remove_file(&ready);
    let c = Command::new("flock")
        .arg(dir.join(lock))
        .args(["-c", &format!("touch '{}'; sleep {secs}", ready.display())])
        .spawn()
        .expect("flock(1)");
    let t = Instant::now();
    while !ready.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "flock(1) did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

#[test]
fn concurrency() {
    let t0 = Instant::now();
    let work = workdir("concurrency");
    let work = work.path();
    let refs = reference(work);
    let root = work.join("root");
    fs::create_dir_all(&root).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut runs = 0;

    // 1. Ten overlapping pulls (hello, hello-v2 and hello-hostfs share their
    //    busybox layer; some images twice).
    let jobs: Vec<_> = [
        "hello",
        "hello-v2",
        "hello-hostfs",
        "layered",
        "tiny",
        "hello",
        "hello-v2",
        "hello-noreceiver",
        "layered",
        "hello-hostfs",
    ]
    .iter()
    .map(|t| s(&["pull", &tar(t)]))
    .collect();
    assert_all_ok(&jobs, &parallel(&root, &jobs));
    runs += jobs.len();
    assert_clean(&root, &refs, "parallel pulls");

    // 2. Installs of different names racing prunes, a pull and a delete
    //    that make layers dangling.
    ok(&root, &["images", "delete", "localhost/sctest/layered"]);
    let mut jobs: Vec<_> = (1..=6)
        .map(|i| {
            let img = if i % 2 == 0 { HELLO_V2 } else { HELLO };
            s(&["install", "--name", &format!("c{i}"), img])
        })
        .collect();
    jobs.push(s(&["images", "prune"]));
    jobs.push(s(&["images", "prune"]));
    jobs.push(s(&["pull", &tar("layered")]));
    jobs.push(s(&["images", "delete", "localhost/sctest/tiny"]));
    jobs.push(s(&["images", "prune"]));
    assert_all_ok(&jobs, &parallel(&root, &jobs));
    runs += jobs.len();
    assert_clean(&root, &refs, "installs racing prune");

    // 3. Uninstalls, installs, updates, a rollback and prunes, all at once.
    ok(&root, &["containers", "update", "--rebase", HELLO_V2, "c5"]);
    let jobs = vec![
        s(&["uninstall", "c1"]),
        s(&["uninstall", "c2"]),
        s(&["install", "--name", "c7", HELLO]),
        s(&["install", "--name", "c8", &tar("hello-hostfs")]),
        s(&["containers", "update", "--rebase", HELLO_V2, "c3"]),
        s(&["containers", "update", "--set", "FOO=1", "c4"]),
        s(&["containers", "rollback", "c5"]),
        s(&["images", "prune"]),
        s(&["images", "delete", "localhost/sctest/layered"]),
        s(&["images", "prune"]),
    ];
    assert_all_ok(&jobs, &parallel(&root, &jobs));
    runs += jobs.len();
    assert_clean(&root, &refs, "mixed commands");

    // 4. Eight installs of one name: exactly one wins, the others are
    //    refused, and nothing of the winner is removed by a loser.
    let jobs: Vec<_> = (0..8)
        .map(|i| {
            let img = if i % 2 == 0 { HELLO } else { HELLO_V2 };
            s(&["install", "--name", "same", img])
        })
        .collect();
    let outs = parallel(&root, &jobs);
    runs += jobs.len();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "one install of 'same' must win");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("already present"), "{e}");
    }
    assert_clean(&root, &refs, "installs of one name");
    // ... and eight updates and rollbacks of it: they serialise. One update
    // first, so that a rollback that gets the lock before every update
    // still has a deployment to go back to.
    ok(&root, &["containers", "update", "--set", "N=first", "same"]);
    let mut jobs: Vec<_> = (0..4)
        .map(|i| s(&["containers", "update", "--set", &format!("N={i}"), "same"]))
        .collect();
    jobs.extend((0..4).map(|_| s(&["containers", "rollback", "same"])));
    assert_all_ok(&jobs, &parallel(&root, &jobs));
    runs += jobs.len();
    assert_clean(&root, &refs, "updates and rollbacks of one name");

    // 5. A command that waits for a lock says so after a second.
    let mut holder = hold_lock(&root, "store.lock", 2.5);
    let o = run(&root, &s(&["images", "prune"]));
    holder.wait().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("waiting for lock"), "no wait notice: {e}");
    let mut holder = hold_lock(&root, "container.c4.lock", 2.5);
    let o = run(&root, &s(&["disable", "c4"]));
    holder.wait().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("waiting for lock") && e.contains("'c4'"),
        "no wait notice: {e}"
    );
    runs += 2;
    assert_clean(&root, &refs, "after the lock waits");
    eprintln!(
        "concurrency: {runs} commands, up to {} at once, {:.0?}",
        10,
        t0.elapsed()
    );
}
