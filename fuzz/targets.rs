//! The fuzz targets' bodies, shared by the cargo-fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`) and the stable quick pass over the saved corpus
//! (`core/tests/fuzz_corpus.rs`), which both include this file with `#[path]`.
//!
//! Each function takes arbitrary bytes and must not panic, hang or allocate
//! without bound. Besides "no panic", each checks a property that must hold
//! for every input (round trips, agreement between two entry points).

#![allow(dead_code)]

use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use syscontainer::imgref;
use syscontainer::record::Record;
use syscontainer::source::manifest::{self, Parsed, Platform};
use syscontainer::template;

/// Template engine: `variables` and `render_with` agree; rendering with every
/// variable set to a fixed value succeeds; text without `$` is unchanged.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = template::variables("fuzz.template", text);
    let rendered = template::render_with("fuzz.template", text, |v| {
        Ok(Some(Cow::Owned(format!("<{v}>"))))
    });
    match (&vars, &rendered) {
        (Ok(vs), Ok(out)) => {
            for v in vs {
                assert!(out.contains(&format!("<{v}>")), "{v} not rendered");
            }
            if !text.contains('$') {
                assert_eq!(out, text);
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!("variables() and render() disagree: {vars:?} vs {rendered:?}"),
    }
    // An unset variable is an error naming it.
    if let Ok(vs) = &vars {
        if let Some(first) = vs.iter().next() {
            let r = template::render_with("fuzz.template", text, |v| {
                Ok((v != first).then_some(Cow::Borrowed("x")))
            });
            assert!(matches!(r, Err(template::TemplateError::Unset { .. })));
        }
    }
}

/// Record parser: a record that parses serializes and parses back equal.
pub fn record(data: &[u8]) {
    // The file stem must equal the record's name: take the name from the
    // document when there is one, so that valid records get through.
    let name = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(String::from))
        .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains('\0'))
        .unwrap_or_else(|| "fuzz".into());
    let path = format!("/etc/syscontainer/containers/{name}.json");
    let Ok((rec, warnings0)) = Record::parse(Path::new(&path), data) else {
        return;
    };
    let json = rec.to_json();
    let (again, warnings) = Record::parse(Path::new(&path), json.as_bytes())
        .unwrap_or_else(|e| panic!("a parsed record does not parse back: {e}\n{json}"));
    assert_eq!(rec, again, "record round trip");
    // Unknown fields are kept (and warned about) again, not lost.
    assert_eq!(warnings, warnings0);
}

/// Image references: a parsed reference's canonical form parses to the same
/// canonical form and is left alone by `qualify` and `with_tag`; splitting
/// a name and joining it again gives `with_tag`'s form; branch escaping
/// round-trips for any string; only lowercase hex is a digest.
pub fn imgref(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = imgref::ImageRef::parse(s) {
        let c = r.canonical();
        let again = imgref::ImageRef::parse(&c)
            .unwrap_or_else(|e| panic!("canonical form {c:?} of {s:?} does not parse: {e}"));
        assert_eq!(again.canonical(), c, "canonical form of {s:?}");
        let _ = r.reference();
        let _ = r.api_host();
        assert_eq!(imgref::qualify(&c), c, "qualify of {c:?}");
        assert_eq!(imgref::with_tag(&c), c, "with_tag of {c:?}");
        let want = match (&r.tag, &r.digest) {
            (Some(t), _) => t.as_str(),
            (None, Some(d)) => d.as_str(),
            (None, None) => imgref::DEFAULT_TAG,
        };
        assert_eq!(imgref::split_name(&c), (r.name().as_str(), want));
        let b = imgref::image_branch(&c);
        match imgref::parse_branch(&b) {
            Ok(imgref::Branch::Image(n)) => assert_eq!(n, c),
            other => panic!("branch {b:?} of {c:?} parsed as {other:?}"),
        }
    }
    let e = imgref::escape(s);
    assert_eq!(imgref::unescape(&e).unwrap(), s, "escape round trip");
    assert!(e
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
    let _ = imgref::unescape(s);
    let _ = imgref::parse_branch(s);
    let _ = imgref::validate_digest(s);
    let joined = match imgref::split_digest(s) {
        (_, Some(_)) => {
            let (repo, d) = imgref::split_name(s);
            format!("{repo}@{d}")
        }
        (_, None) => {
            let (repo, tag) = imgref::split_name(s);
            format!("{repo}:{tag}")
        }
    };
    assert_eq!(joined, imgref::with_tag(s), "split_name of {s:?}");
    let lower = |h: &str| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if let Ok(b) = imgref::layer_branch(s) {
        assert!(imgref::digest_hex(s).is_some_and(lower), "{s:?}");
        assert_eq!(
            imgref::parse_branch(&b),
            Ok(imgref::Branch::Layer(s.to_string()))
        );
    }
    if let Some(h) = imgref::id_prefix(s) {
        assert!(!h.is_empty() && lower(h), "{s:?}");
    }
    let _ = imgref::Transport::of(s);
}

/// Manifest, index and config parsing, and platform selection. The first
/// byte picks the Content-Type header the document came with.
pub fn manifest(data: &[u8]) {
    let (ct, raw) = match data.split_first() {
        Some((b, rest)) => (
            match b % 5 {
                0 => None,
                1 => Some("application/vnd.oci.image.manifest.v1+json"),
                2 => Some("application/vnd.oci.image.index.v1+json"),
                3 => Some("application/vnd.docker.distribution.manifest.v2+json"),
                _ => Some("application/json; charset=utf-8"),
            },
            rest,
        ),
        None => (None, data),
    };
    match manifest::parse(raw, ct, "fuzz manifest") {
        Ok(Parsed::Index(entries)) => {
            for want in [
                manifest::host_platform(),
                Platform {
                    architecture: "arm".into(),
                    os: "linux".into(),
                    variant: Some("v7".into()),
                },
            ] {
                if let Ok(e) = manifest::select_platform(&entries, &want, "fuzz index") {
                    assert!(entries.iter().any(|x| std::ptr::eq(x, e)));
                }
            }
        }
        Ok(Parsed::Manifest(_)) | Err(_) => {}
    }
    if let Ok(ids) = manifest::config_diff_ids(raw, "fuzz config") {
        for d in ids {
            assert!(imgref::digest_hex(&d).is_some(), "{d}");
        }
    }
}

thread_local! {
    /// One temp repo per process (per thread), created on first use.
    static REPO: (tempfile::TempDir, ostree::Repo) = {
        let d = tempfile::tempdir().expect("temp dir for the fuzz repo");
        // bare-user works without root; the importer's logic is the same.
        let mode = if is_root() { ostree::RepoMode::Bare } else { ostree::RepoMode::BareUser };
        let repo = ostree::Repo::new_for_path(d.path());
        repo.create(mode, gio::Cancellable::NONE).expect("creating the fuzz repo");
        (d, repo)
    };
}

fn is_root() -> bool {
    // Our uid from /proc: no libc call (the workspace denies unsafe code).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The tar-to-OSTree importer, with small limits so that bombs are cheap.
/// Each input is imported in a transaction that is then aborted, so the repo
/// does not grow.
pub fn import(data: &[u8]) {
    use syscontainer::store::import::{import_layer_with, ImportError, ImportLimits};
    let limits = ImportLimits {
        max_entries: 4096,
        max_content_bytes: 16 << 20,
        max_depth: 64,
        max_header_bytes: 64 << 10,
        ..ImportLimits::default()
    };
    REPO.with(|(_d, repo)| {
        repo.prepare_transaction(gio::Cancellable::NONE)
            .expect("starting a transaction");
        let r = import_layer_with(repo, data, &limits);
        // The header guard under the tar parser must stay in step with it.
        // Compared exactly: tar's own messages quote the input, which may
        // hold these words (fuzz/regressions/import/crash-8b686dd7...).
        if let Err(ImportError::Read { source, .. }) = &r {
            assert!(
                source.to_string() != "the tar stream's extension headers are inconsistent",
                "the header guard lost step with the tar parser: {source}"
            );
        }
        if let Ok(i) = &r {
            let s = &i.stats;
            // The stream is read to its end (so a digest reader below sees it).
            assert_eq!(s.tar_bytes, data.len() as u64);
            assert!(s.content_bytes <= limits.max_content_bytes);
            assert!(
                s.files + s.dirs + s.symlinks + s.hardlinks + s.whiteouts <= limits.max_entries
            );
        }
        repo.abort_transaction(gio::Cancellable::NONE)
            .expect("aborting the transaction");
    });
}

thread_local! {
    /// The scratch directory of the `dockertar` target, on tmpfs when there
    /// is one: every checkout ends with a `syncfs`.
    static SCRATCH: tempfile::TempDir = {
        let shm = Path::new("/dev/shm");
        let b = tempfile::Builder::new().prefix("syscontainer-fuzz-dockertar.").tempdir_in(
            if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() },
        );
        b.expect("scratch dir for the dockertar target")
    };
}

/// Whole docker-archives through the real `dockertar:` source and `pull`
/// into a fresh store. An image that pulls must be found by its name, pass
/// `verify`, pull again as up to date with the same commit, and check out
/// (with both methods, when they succeed) to a tree `verify_checkout` finds
/// equal to the image. Mutated layers rarely match their digests, so an
/// archive whose digests do not match its layers is then also pulled with
/// them fixed (see [`fix_docker_archive`]), to get to the commit and checkout.
///
/// The cargo-fuzz binary lowers the import limits first (`dockertar_init`).
pub fn dockertar(data: &[u8]) {
    dockertar_pull(data);
    if let Some(fixed) = fix_docker_archive(data) {
        dockertar_pull(&fixed);
    }
}

/// Small import limits, so that layer bombs are cheap. Call it before any
/// thread starts (it sets environment variables).
pub fn dockertar_init() {
    std::env::set_var(syscontainer::paths::ENV_MAX_LAYER_ENTRIES, "4096");
    std::env::set_var(
        syscontainer::paths::ENV_MAX_LAYER_BYTES,
        (16u64 << 20).to_string(),
    );
}

/// One pull of `archive` into a fresh store, and the checks when it pulled;
/// whether it pulled.
pub fn dockertar_pull(archive: &[u8]) -> bool {
    use syscontainer::paths::Root;
    use syscontainer::source::{self, SourceOptions};
    use syscontainer::store::{pull, CheckoutMethod, Location, NoProgress, Store};
    SCRATCH.with(|base| {
        let root = base.path().join("root");
        if root.exists() {
            std::fs::remove_dir_all(&root).expect("clearing the previous store");
        }
        std::fs::create_dir(&root).expect("creating the store root");
        let file = base.path().join("image.tar");
        std::fs::write(&file, archive).expect("writing the archive");
        let root = Root::new(&root);
        let store = Store::open_with(&root, &Location::default()).expect("a fresh store");
        store.repo().set_disable_fsync(true);
        let spec = format!("dockertar:{}", file.display());
        let opts = SourceOptions::new(root.clone());
        let Ok(mut src) = source::open(&spec, &opts) else {
            return false;
        };
        let Ok(report) = pull(&store, src.as_mut(), &mut NoProgress) else {
            return false;
        };
        drop(src);
        assert!(!report.up_to_date, "a fresh store had {}", report.name);
        assert_eq!(
            report.layers_fetched + report.layers_skipped,
            report.layers_total
        );
        let img = store
            .image(&report.name)
            .unwrap_or_else(|e| panic!("the pulled image {:?} is not found: {e}", report.name));
        assert_eq!(img.image_id, report.image_id);
        assert_eq!(img.manifest_digest, report.manifest_digest);
        assert_eq!(img.layers.len(), report.layers_total);
        let v = store.verify(&img).expect("verify runs");
        assert!(v.ok(), "a freshly pulled image does not verify: {v:?}");

        let mut src = source::open(&spec, &opts).expect("an archive that pulled opens again");
        let again = pull(&store, src.as_mut(), &mut NoProgress)
            .unwrap_or_else(|e| panic!("an archive that pulled does not pull again: {e}"));
        assert!(
            again.up_to_date,
            "second pull of {}: {again:?}",
            report.name
        );
        assert_eq!(again.commit, report.commit);

        for (method, dir) in [
            (CheckoutMethod::Hardlink, "hardlink"),
            (CheckoutMethod::Libostree, "libostree"),
        ] {
            let dest = store.checkout_root().join(dir);
            match store.checkout_with(&img, &dest, method) {
                Ok(_) => {
                    let diff = store
                        .verify_checkout(&img, &dest)
                        .unwrap_or_else(|e| panic!("verify_checkout of {method:?}: {e}"));
                    assert!(
                        diff.ok(),
                        "{method:?} checkout differs from the image: {diff:?}"
                    );
                }
                Err(_) => assert!(
                    std::fs::symlink_metadata(&dest).is_err(),
                    "a failed {method:?} checkout left {}",
                    dest.display()
                ),
            }
        }
        true
    })
}

/// Lexical normalisation of a path inside an archive (as `dockertar` does):
/// no `.`, no leading `/`, `..` resolved; None when it climbs out.
fn archive_path(p: &[u8]) -> Option<String> {
    let p = std::str::from_utf8(p).ok()?;
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// `data` rebuilt, when it is a tar holding a `manifest.json` and its config,
/// with the config's `rootfs.diff_ids` set to the digests of the layers as
/// decompressed, and each `blobs/sha256/HEX` layer renamed to its digest.
/// None when there is nothing to fix or no such structure. The rebuilt
/// archive is written by the `tar` crate (the raw input covers odd tars).
pub fn fix_docker_archive(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    use syscontainer::source::{decompress, sha256_digest, Descriptor};
    const MAX_LAYER: u64 = 16 << 20;
    struct Entry {
        header: tar::Header,
        path: Vec<u8>,
        link: Option<Vec<u8>>,
        data: Vec<u8>,
    }
    let mut entries = Vec::new();
    let mut ar = tar::Archive::new(data);
    for e in ar.entries().ok()? {
        let mut e = e.ok()?;
        let mut content = Vec::new();
        (&mut e)
            .take(data.len() as u64)
            .read_to_end(&mut content)
            .ok()?;
        entries.push(Entry {
            header: e.header().clone(),
            path: e.path_bytes().into_owned(),
            link: e.link_name_bytes().map(|l| l.into_owned()),
            data: content,
        });
    }
    // The last entry of a path wins, as in `dockertar`'s index; links are
    // followed (legacy `docker save` links repeated layers).
    let find = |p: &str| {
        let mut p = p.to_string();
        for _ in 0..8 {
            let i = entries
                .iter()
                .rposition(|e| archive_path(&e.path).as_deref() == Some(p.as_str()))?;
            let e = &entries[i];
            let kind = e.header.entry_type();
            if kind.is_file() {
                return Some(i);
            }
            let link = e.link.as_deref()?;
            p = if kind.is_symlink() {
                let dir = p.rsplit_once('/').map_or("", |(d, _)| d);
                archive_path(format!("{dir}/{}", String::from_utf8_lossy(link)).as_bytes())?
            } else if kind.is_hard_link() {
                archive_path(link)?
            } else {
                return None;
            };
        }
        None
    };
    let mi = find("manifest.json")?;
    let mut manifest: serde_json::Value = serde_json::from_slice(&entries[mi].data).ok()?;
    let first = manifest.as_array_mut()?.first_mut()?;
    let ci = find(&archive_path(first.get("Config")?.as_str()?.as_bytes())?)?;
    let mut config: serde_json::Value = serde_json::from_slice(&entries[ci].data).ok()?;
    let layers: Vec<String> = first
        .get("Layers")?
        .as_array()?
        .iter()
        .map(|l| l.as_str().map(String::from))
        .collect::<Option<_>>()?;
    let mut diff_ids = Vec::new();
    let mut renamed = Vec::new();
    let mut new_layers = Vec::new();
    for l in &layers {
        let li = find(&archive_path(l.as_bytes())?)?;
        let raw = &entries[li].data;
        let d = Descriptor {
            media_type: String::new(),
            digest: sha256_digest(raw),
            size: raw.len() as u64,
        };
        let mut tar = Vec::new();
        decompress(&d, Box::new(&raw[..]))
            .ok()?
            .take(MAX_LAYER + 1)
            .read_to_end(&mut tar)
            .ok()?;
        if tar.len() as u64 > MAX_LAYER {
            return None;
        }
        diff_ids.push(serde_json::Value::String(sha256_digest(&tar)));
        let name = archive_path(l.as_bytes())?;
        match name.strip_prefix("blobs/sha256/") {
            Some(hex) if hex != d.digest.trim_start_matches("sha256:") => {
                let to = format!("blobs/sha256/{}", d.digest.trim_start_matches("sha256:"));
                renamed.push((li, to.clone()));
                new_layers.push(serde_json::Value::String(to));
            }
            _ => new_layers.push(serde_json::Value::String(l.clone())),
        }
    }
    let rootfs = config
        .as_object_mut()?
        .entry("rootfs")
        .or_insert_with(|| serde_json::json!({"type": "layers"}));
    if !rootfs.is_object() {
        *rootfs = serde_json::json!({"type": "layers"});
    }
    let rootfs = rootfs.as_object_mut()?;
    let diff_ids = serde_json::Value::Array(diff_ids);
    if rootfs.get("diff_ids") == Some(&diff_ids) && renamed.is_empty() {
        return None;
    }
    rootfs.insert("diff_ids".into(), diff_ids);
    first["Layers"] = serde_json::Value::Array(new_layers);
    entries[ci].data = serde_json::to_vec(&config).ok()?;
    entries[mi].data = serde_json::to_vec(&manifest).ok()?;
    for (i, to) in renamed {
        entries[i].path = to.into_bytes();
    }
    let mut b = tar::Builder::new(Vec::new());
    for mut e in entries {
        let kind = e.header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let link = e.link.unwrap_or_default();
            e.header.set_size(0);
            b.append_link(
                &mut e.header,
                Path::new(std::ffi::OsStr::from_bytes(&e.path)),
                Path::new(std::ffi::OsStr::from_bytes(&link)),
            )
            .ok()?;
        } else {
            if kind.is_gnu_sparse() {
                e.header.set_entry_type(tar::EntryType::Regular);
            }
            e.header.set_size(e.data.len() as u64);
            b.append_data(
                &mut e.header,
                Path::new(std::ffi::OsStr::from_bytes(&e.path)),
                &e.data[..],
            )
            .ok()?;
        }
    }
    b.into_inner().ok()
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name (the corpus directory names).
pub const TARGETS: &[(&str, Target)] = &[
    ("template", template),
    ("record", record),
    ("imgref", imgref),
    ("manifest", manifest),
    ("import", import),
    ("dockertar", dockertar),
];
