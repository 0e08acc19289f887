//! `syscontainer images info` (and `--json`) pinned, output for output, on
//! every `/exports` of the corpus (`tests/corpus`) and on manifests that the
//! typed `deploy::Manifest` would read differently or refuse: a null
//! default, number, boolean and object defaults, wrongly-typed fields,
//! `defaultValues` null, a list or missing, a manifest that is a list, and
//! the error cases (a manifest that is not JSON, a template that is not
//! UTF-8 or malformed).
//!
//! The expected transcripts are in `cli/tests/images_info/CASE.txt`;
//! `BLESS=1` rewrites them (review the diff). The facts that matter most are
//! also asserted here, in code.
//!
//! Images are docker-archives built here with the `tar` crate. Needs root
//! (bare OSTree repos store ownership).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{sha, tar_header};

/// What goes into a layer.
enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
    Dir(&'a str),
}

fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::File(p, data) => b
                .append_data(&mut tar_header(data.len(), 0o644), p, &data[..])
                .unwrap(),
            Entry::Symlink(p, target) => {
                let mut h = tar_header(0, 0o777);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::Dir(p) => {
                let mut h = tar_header(0, 0o755);
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A docker-archive of one image `tag` with `layers` (bottom first), at
/// `path`.
fn archive(path: &Path, tag: &str, layers: &[Vec<u8>]) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", sha(l))).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let names: Vec<String> = (0..layers.len()).map(|i| format!("l{i}.tar")).collect();
    let manifest = format!(
        r#"[{{"Config":"config.json","RepoTags":["{tag}"],"Layers":[{}]}}]"#,
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (p, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("config.json", config.as_bytes()),
    ] {
        b.append_data(&mut tar_header(data.len(), 0o644), p, data)
            .unwrap();
    }
    for (n, l) in names.iter().zip(layers) {
        b.append_data(&mut tar_header(l.len(), 0o644), n, &l[..])
            .unwrap();
    }
    b.finish().unwrap();
    format!("dockertar:{}", path.display())
}

fn cli(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syscontainer"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("SYSCONTAINER_ROOT")
        .env_remove("ATOMIC_OSTREE_CHECKOUT_PATH")
        .env("HOME", root.join("home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env("ATOMIC_OSTREE_REPO", "/repo")
        .output()
        .unwrap()
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .canonicalize()
        .expect("tests/corpus exists")
}

/// The `/exports` files of a corpus image (azure keeps them one level down).
fn corpus_exports(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = if dir.join("exports").is_dir() {
        dir.join("exports")
    } else {
        dir.to_path_buf()
    };
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

const TEMPLATE: &str = r#"{"process":{"args":["$EXEC_START","--port=$PORT","$RECEIVER","$NAME","${RUN_DIRECTORY}/x","$UUID","$NOVALUE"],"env":["N=$N","B=$B","Z=$Z","O=$O","L=$L","E=$E","HOME=$$HOME"]}}"#;

/// A case: its name and its layers, each a list of entries.
struct Case {
    name: String,
    layers: Vec<Vec<u8>>,
}

fn exports_case(name: &str, files: &[(&str, &[u8])]) -> Case {
    let mut entries = vec![Entry::File("bin/sh", b"#!/bin/true\n".to_vec())];
    for (f, data) in files {
        entries.push(Entry::File(
            Box::leak(format!("exports/{f}").into_boxed_str()),
            data.to_vec(),
        ));
    }
    Case {
        name: name.into(),
        layers: vec![layer(&entries)],
    }
}

fn cases() -> Vec<Case> {
    let t = TEMPLATE.as_bytes();
    let mut v = vec![
        exports_case(
            "defaults-typed",
            &[
                ("config.json.template", t),
                (
                    "manifest.json",
                    br#"{"version":"1.0","defaultValues":{"PORT":8080,"RECEIVER":"World","N":1.5,"B":true,"Z":null,"O":{"a":[1,"x"]},"L":[],"E":"","UNUSED":"u","NAME":"not-this","RUN_DIRECTORY":"/srv"}}"#,
                ),
            ],
        ),
        exports_case(
            "wrong-types",
            &[
                ("config.json.template", t),
                (
                    "manifest.json",
                    br#"{"version":2,"defaultValues":{"PORT":"1"},"renameFiles":5,"installedFilesTemplate":"x","noContainerService":"yes","useLinks":"no","extra":{}}"#,
                ),
            ],
        ),
        exports_case(
            "defaults-null",
            &[
                ("config.json.template", t),
                ("manifest.json", br#"{"defaultValues":null}"#),
            ],
        ),
        exports_case(
            "defaults-list",
            &[
                ("config.json.template", t),
                ("manifest.json", br#"{"defaultValues":["PORT","1"]}"#),
            ],
        ),
        exports_case(
            "defaults-missing",
            &[
                ("config.json.template", t),
                ("manifest.json", br#"{"version":"1.0"}"#),
            ],
        ),
        exports_case(
            "manifest-list",
            &[
                ("config.json.template", t),
                ("manifest.json", br#"[{"defaultValues":{"PORT":"1"}}]"#),
            ],
        ),
        exports_case(
            "manifest-duplicate-keys",
            &[
                ("config.json.template", t),
                (
                    "manifest.json",
                    br#"{"defaultValues":{"PORT":"1","PORT":"2"},"defaultValues":{"RECEIVER":"last"}}"#,
                ),
            ],
        ),
        exports_case("no-manifest", &[("config.json.template", t)]),
        exports_case("no-exports", &[]),
        exports_case(
            "only-manifest",
            &[("manifest.json", br#"{"defaultValues":{"PORT":"1"}}"#)],
        ),
        exports_case(
            "several-templates",
            &[
                ("service.template", b"[Service]\nExecStart=$EXEC_START\nUser=$USER\n"),
                ("tmpfiles.template", b"d ${RUN_DIRECTORY}/$NAME - - - -\n"),
                ("config.json.template", t),
                ("not-a-template.txt", b"$IGNORED\n"),
                ("config.json", b"{\"x\":\"$ALSO_IGNORED\"}"),
                ("manifest.json", br#"{"defaultValues":{"USER":"root"}}"#),
            ],
        ),
        exports_case(
            "manifest-not-json",
            &[
                ("config.json.template", t),
                ("manifest.json", b"{\"defaultValues\": {\"PORT\": 1,}}"),
            ],
        ),
        exports_case(
            "manifest-not-utf8",
            &[
                ("config.json.template", t),
                ("manifest.json", b"{\"defaultValues\":{\"PORT\":\"\xff\"}}"),
            ],
        ),
        exports_case(
            "template-not-utf8",
            &[("service.template", b"ExecStart=$EXEC_START \xff\n")],
        ),
        exports_case(
            "template-malformed",
            &[("service.template", b"ExecStart=${EXEC_START\n")],
        ),
    ];
    // Symlinks and directories in /exports.
    v.push(Case {
        name: "links-and-dirs".into(),
        layers: vec![layer(&[
            Entry::File("bin/sh", b"#!/bin/true\n".to_vec()),
            Entry::File(
                "etc/real-manifest.json",
                br#"{"defaultValues":{"PORT":"7"}}"#.to_vec(),
            ),
            Entry::File("etc/real.template", b"$PORT $FROM_LINK\n".to_vec()),
            Entry::Symlink("exports/manifest.json", "/etc/real-manifest.json"),
            Entry::Symlink("exports/linked.template", "../etc/real.template"),
            Entry::Symlink("exports/dangling.template", "/nonexistent"),
            Entry::Dir("exports/dir.template"),
        ])],
    });
    // Two layers: the upper one whites out the manifest and a template, and
    // replaces another.
    v.push(Case {
        name: "layers-whiteout".into(),
        layers: vec![
            layer(&[
                Entry::File("bin/sh", b"#!/bin/true\n".to_vec()),
                Entry::File(
                    "exports/manifest.json",
                    br#"{"defaultValues":{"PORT":"1"}}"#.to_vec(),
                ),
                Entry::File("exports/gone.template", b"$GONE\n".to_vec()),
                Entry::File("exports/config.json.template", b"$LOWER\n".to_vec()),
            ]),
            layer(&[
                Entry::File("exports/.wh.manifest.json", Vec::new()),
                Entry::File("exports/.wh.gone.template", Vec::new()),
                Entry::File("exports/config.json.template", b"$PORT $UPPER\n".to_vec()),
            ]),
        ],
    });
    v.push(Case {
        name: "layers-manifest-replaced".into(),
        layers: vec![
            layer(&[
                Entry::File("bin/sh", b"#!/bin/true\n".to_vec()),
                Entry::File(
                    "exports/manifest.json",
                    br#"{"defaultValues":{"PORT":"1","RECEIVER":"lower"}}"#.to_vec(),
                ),
                Entry::File("exports/config.json.template", t.to_vec()),
            ]),
            layer(&[Entry::File(
                "exports/manifest.json",
                br#"{"defaultValues":{"PORT":"2"}}"#.to_vec(),
            )]),
        ],
    });
    // The corpus.
    for set in ["atomic-system-containers", "atomic-test-images"] {
        let mut dirs: Vec<PathBuf> = fs::read_dir(corpus().join(set))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            let files = corpus_exports(&d);
            let files: Vec<(&str, &[u8])> =
                files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
            let name = format!("corpus-{}", d.file_name().unwrap().to_string_lossy());
            v.push(exports_case(&name, &files));
        }
    }
    v
}

fn transcript(root: &Path, image: &str) -> String {
    let mut out = String::new();
    for args in [
        &["images", "info", image][..],
        &["images", "info", "--json", image],
    ] {
        let o = cli(root, args);
        writeln!(out, "$ syscontainer {}", args.join(" ")).unwrap();
        writeln!(out, "exit {:?}", o.status.code()).unwrap();
        writeln!(out, "--- stdout\n{}", String::from_utf8_lossy(&o.stdout)).unwrap();
        writeln!(out, "--- stderr\n{}", String::from_utf8_lossy(&o.stderr)).unwrap();
    }
    out
}

fn json(root: &Path, image: &str) -> serde_json::Value {
    let o = cli(root, &["images", "info", "--json", image]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn images_info_output_is_pinned() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let expected_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images_info");
    let bless = std::env::var_os("BLESS").is_some();
    if bless {
        fs::create_dir_all(&expected_dir).unwrap();
    }
    let cases = cases();
    assert!(cases.len() > 30, "the corpus is there: {}", cases.len());
    let mut failed = Vec::new();
    for c in &cases {
        let image = format!("example.com/info/{}:1", c.name);
        let spec = archive(&root.join(format!("{}.tar", c.name)), &image, &c.layers);
        let o = cli(root, &["pull", "-q", &spec]);
        assert_eq!(o.status.code(), Some(0), "{}: {o:?}", c.name);
        let got = transcript(root, &image);
        let f = expected_dir.join(format!("{}.txt", c.name));
        if bless {
            fs::write(&f, &got).unwrap();
            continue;
        }
        let want = fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", f.display()));
        if got != want {
            eprintln!(
                "=== {}: expected {}\n{want}\n=== got\n{got}",
                c.name,
                f.display()
            );
            failed.push(c.name.clone());
        }
    }
    assert!(failed.is_empty(), "output changed for: {failed:?}");
    // No stale expectation files.
    let mut names: Vec<String> = fs::read_dir(&expected_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = cases.iter().map(|c| format!("{}.txt", c.name)).collect();
    want.sort();
    assert_eq!(names, want);

    // What matters, in code: non-string defaults are shown as JSON (a null
    // as "null", where install would use ""), a built-in never takes a
    // default, an overridable one does; nothing else in the manifest is read.
    let v = json(root, "example.com/info/defaults-typed:1");
    let vars = &v["variables"];
    assert_eq!(
        vars["with_default"],
        serde_json::json!({
            "PORT": "8080", "RECEIVER": "World", "N": "1.5", "B": "true",
            "Z": "null", "O": r#"{"a":[1,"x"]}"#, "L": "[]", "E": "",
            "RUN_DIRECTORY": "/srv",
        })
    );
    assert_eq!(
        vars["builtin"],
        serde_json::json!(["EXEC_START", "NAME", "UUID"])
    );
    assert_eq!(vars["required"], serde_json::json!(["NOVALUE"]));
    assert_eq!(
        vars["templates"],
        serde_json::json!(["/exports/config.json.template"])
    );
    let v = json(root, "example.com/info/wrong-types:1");
    assert_eq!(
        v["variables"]["with_default"],
        serde_json::json!({"PORT": "1"})
    );
    for case in [
        "defaults-null",
        "defaults-list",
        "defaults-missing",
        "manifest-list",
    ] {
        let v = json(root, &format!("example.com/info/{case}:1"));
        assert_eq!(
            v["variables"]["with_default"],
            serde_json::json!({}),
            "{case}"
        );
        assert!(
            v["variables"]["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("PORT")),
            "{case}: {v}"
        );
    }
    for (case, code, what) in [
        (
            "manifest-not-json",
            3,
            "image 'example.com/info/manifest-not-json:1': /exports/manifest.json is not valid UTF-8 or JSON",
        ),
        (
            "template-not-utf8",
            3,
            "image 'example.com/info/template-not-utf8:1': /exports/service.template is not valid UTF-8 or JSON",
        ),
        (
            "template-malformed",
            3,
            "has a malformed placeholder at line 1",
        ),
    ] {
        let o = cli(root, &["images", "info", &format!("example.com/info/{case}:1")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{case}: {err}");
        assert!(err.contains(what), "{case}: {err}");
    }
}

/// A store error on the way (a layer's ref gone from the repo) keeps its
/// message and its exit code (4: missing).
#[test]
fn images_info_on_a_missing_layer_exits_4() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let c = exports_case(
        "layer-missing",
        &[("service.template", b"ExecStart=$EXEC_START\n")],
    );
    let image = "example.com/info/layer-missing:1";
    let spec = archive(&root.join("l.tar"), image, &c.layers);
    let o = cli(root, &["pull", "-q", &spec]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // docker-archive layers are uncompressed: the layer digest is the tar's.
    let digest = sha(&c.layers[0]);
    let o = Command::new("ostree")
        .arg(format!("--repo={}", root.join("repo").display()))
        .args(["refs", "--delete", &format!("ociimage/{}", &digest[7..])])
        .output()
        .expect("the ostree CLI is installed");
    assert!(o.status.success(), "{o:?}");
    let o = cli(root, &["images", "info", image]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("error: reading the templates of '{image}': image '{image}': layer {digest} is missing from the repo\n")
    );
}
