//! The generator's `[Install]` links against the real `systemctl enable`
//! (systemd 252 here): for each section, the links that
//! `systemctl --root=DIR enable NAME.service` makes for the same unit must be
//! the links the generator makes for an enabled record with that service
//! template, apart from the record's own target. Where `systemctl enable`
//! fails, the generator must report an error too.
//!
//! Not compared here, and covered by the golden cases instead: `UpheldBy=`
//! (unknown to systemd 252), `Also=` (which enables other units), host
//! specifiers (`%H`, which the generator refuses), and aliases taken by
//! another container.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

const NAME: &str = "my-web";

/// Every path under `dir` that is a symlink, relative to `dir`; the
/// `Wants=` lines of a generator's drop-in `TARGET.d/syscontainer.conf`
/// count as the `TARGET.wants/UNIT` links they stand for.
fn links(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(e.path().strip_prefix(dir).unwrap().display().to_string());
            } else if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "syscontainer.conf" {
                let parent = d.strip_prefix(dir).unwrap().display().to_string();
                let target = parent.strip_suffix(".d").unwrap();
                for l in fs::read_to_string(e.path()).unwrap().lines() {
                    if let Some(u) = l.strip_prefix("Wants=") {
                        out.insert(format!("{target}.wants/{u}"));
                    }
                }
            }
        }
    }
    out
}

/// (links, success) of `systemctl --root enable` for `unit_text`.
fn systemctl_enable(unit_text: &str) -> (BTreeSet<String>, bool, String) {
    let root = tempfile::tempdir().unwrap();
    let lib = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&lib).unwrap();
    fs::create_dir_all(root.path().join("etc/systemd/system")).unwrap();
    fs::write(lib.join(format!("{NAME}.service")), unit_text).unwrap();
    let out = Command::new("systemctl")
        .arg(format!("--root={}", root.path().display()))
        .args(["enable", &format!("{NAME}.service")])
        .output()
        .expect("systemctl must be installed (systemd): this test compares with it");
    (
        links(&root.path().join("etc/systemd/system")),
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (links, success, log) of the generator for a record with `template`.
fn generator(template: &str) -> (BTreeSet<String>, bool, String) {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("etc/syscontainer/containers");
    fs::create_dir_all(&d).unwrap();
    let rec = serde_json::json!({
        "version": 1,
        "name": NAME,
        "image": "registry.example/web:1",
        "image_id": format!("sha256:{}", "ab".repeat(32)),
        "deployment": format!("/var/lib/containers/atomic/{NAME}.0"),
        "enabled": true,
        "target": "syscontainers.target",
        "service_template": template,
    });
    fs::write(d.join(format!("{NAME}.json")), rec.to_string()).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_syscontainer-generator"))
        .arg(out_dir.path())
        .env("SYSCONTAINER_ROOT", root.path())
        .env("SYSCONTAINER_LOG", "stderr")
        .output()
        .unwrap();
    let mut l = links(out_dir.path());
    assert!(
        l.remove(&format!("syscontainers.target.wants/{NAME}.service")),
        "{l:?}"
    );
    (
        l,
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECTIONS: &[&str] = &[
    // corpus forms
    "WantedBy=multi-user.target\nRequiredBy=docker.service\n",
    // lists, repeats, empty reset, duplicates, specifiers, templates, instances
    "WantedBy=multi-user.target a.target\nWantedBy=\nWantedBy=b.target %N-x.target %n.wants.target foo@.target bar@x.target\nRequiredBy=docker.service  docker.service\n",
    "WantedBy=%j.target i%i.target p%%.target %p.target %%.target\nRequiredBy=%u-%U-%g-%G.target\n",
    // aliases: plain, specifier, self, other type, instance, legacy dir form
    "Alias=web-alias.service %N-two.service my-web.service\nAlias=w2.service\n",
    "Alias=web.socket\n",
    "Alias=%N@x.service\n",
    "Alias=m.target.wants/my-web.service n.target.requires/my-web.service\n",
    "Alias=x.target.wants/other.service\n",
    "Alias=a/b/c.target.wants/my-web.service\n",
    // continuation lines, comments, spacing, quotes, backslashes
    "WantedBy=a.target \\\n  b.target\n# WantedBy=commented.target\n; WantedBy=commented2.target\nRequiredBy = spaced.service\n",
    "WantedBy='q.target' \"r.target\" s\"t\".target x\\x2dy.target\n",
    "WantedBy=a.target q\\\"b c\\\".target\n",
    "WantedBy=ok.target \"unbalanced.target\n",
    // invalid names, traversal attempts, wrong keys and sections
    "WantedBy=../../etc/evil.target a/b.target .target nosuffix x.nosuchtype @x.target ..target\n",
    "wantedby=lower.target\nWantedBy=upper.target\n[install]\nWantedBy=lowersection.target\n[Install]\nRequiredBy=back.service\n",
];

#[test]
fn links_equal_systemctl_enable() {
    let mut failures = Vec::new();
    let (mut n_links, mut n_refused) = (0, 0);
    for s in SECTIONS {
        let unit =
            format!("[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\n{s}");
        let (want, sc_ok, sc_log) = systemctl_enable(&unit);
        let (got, gen_ok, gen_log) = generator(&unit);
        n_links += want.len();
        n_refused += usize::from(!sc_ok);
        if want != got {
            failures.push(format!(
                "--- section\n{s}--- systemctl enable\n{want:?}\n{sc_log}--- generator\n{got:?}\n{gen_log}"
            ));
        }
        // a value systemctl enable refuses is an error for the generator too
        if !sc_ok && gen_ok {
            failures.push(format!(
                "--- section\n{s}systemctl enable failed but the generator did not:\n{sc_log}--- generator\n{gen_log}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the comparison is not vacuous: systemctl made links, and refused values
    assert!(
        n_links >= 25 && n_refused >= 6,
        "{n_links} links, {n_refused} refusals"
    );
}
