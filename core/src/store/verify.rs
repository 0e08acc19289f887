//! Verification: a layer's objects against their checksums (`images
//! verify`), a checkout against the union of its layers (`containers
//! verify`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use gio::prelude::*;

use super::{import, ImageInfo, Store, StoreError};

/// One layer's `images verify` result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerVerify {
    pub digest: String,
    pub commit: Option<String>,
    pub objects: usize,
    /// `object: error` for each bad object.
    pub errors: Vec<String>,
}

/// `images verify`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub layers: Vec<LayerVerify>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.layers.iter().all(|l| l.errors.is_empty())
    }
}

/// What a checkout differs in from the union of its image's layers
/// (`containers verify`). Paths are relative to the checkout, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckoutDiff {
    /// Files, symlinks and directories compared.
    pub checked: u64,
    /// Content, mode, ownership, xattrs or type differ.
    pub modified: Vec<String>,
    /// Present in the checkout, not in the image.
    pub added: Vec<String>,
    /// In the image, not in the checkout.
    pub missing: Vec<String>,
}

impl CheckoutDiff {
    pub fn ok(&self) -> bool {
        self.modified.is_empty() && self.added.is_empty() && self.missing.is_empty()
    }
}

/// An entry of an image's union tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Dir,
    /// A regular file or a symlink, by its OSTree file checksum.
    Object(String),
}

impl Store {
    /// The union of `img`'s layers as a path -> entry map, with whiteouts and
    /// opaque directories applied as a union checkout applies them.
    fn union_tree(&self, img: &ImageInfo) -> Result<BTreeMap<String, Expected>, StoreError> {
        fn remove_under(map: &mut BTreeMap<String, Expected>, path: &str, keep_self: bool) {
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let under: Vec<String> = map
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in under {
                map.remove(&k);
            }
            if !keep_self {
                map.remove(path);
            }
        }
        fn walk(
            dir: &gio::File,
            path: &str,
            map: &mut BTreeMap<String, Expected>,
        ) -> Result<(), glib::Error> {
            let it = dir.enumerate_children(
                "standard::name,standard::type",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                gio::Cancellable::NONE,
            )?;
            let mut entries = Vec::new();
            while let Some(info) = it.next_file(gio::Cancellable::NONE)? {
                entries.push((info.name().to_string_lossy().into_owned(), info.file_type()));
            }
            let join = |n: &str| {
                if path.is_empty() {
                    n.to_string()
                } else {
                    format!("{path}/{n}")
                }
            };
            // Whiteouts hide lower layers only: apply them first.
            for (n, _) in &entries {
                if n == import::OPAQUE_WHITEOUT {
                    remove_under(map, path, true);
                } else if let Some(w) = n.strip_prefix(import::WHITEOUT_PREFIX) {
                    remove_under(map, &join(w), false);
                }
            }
            for (n, t) in entries {
                if n.starts_with(import::WHITEOUT_PREFIX) {
                    continue;
                }
                let p = join(&n);
                let child = dir.child(&n);
                if t == gio::FileType::Directory {
                    if map.get(&p) != Some(&Expected::Dir) {
                        remove_under(map, &p, false);
                        map.insert(p.clone(), Expected::Dir);
                    }
                    walk(&child, &p, map)?;
                } else {
                    let csum = child
                        .downcast_ref::<ostree::RepoFile>()
                        .map(|f| f.checksum().to_string())
                        .unwrap_or_default();
                    remove_under(map, &p, false);
                    map.insert(p, Expected::Object(csum));
                }
            }
            Ok(())
        }
        let mut map = BTreeMap::new();
        for (root, digest) in self.layer_roots(img)?.iter().zip(&img.layers) {
            walk(root, "", &mut map).map_err(|source| StoreError::ReadFile {
                name: img.name.clone(),
                path: format!("(layer {digest})"),
                source,
            })?;
        }
        Ok(map)
    }

    /// Compare a checkout of `img` (a deployment's `rootfs`) against the
    /// union of its layers: every file and symlink is re-hashed as an OSTree
    /// object (content, mode, ownership, xattrs), so an edit made through a
    /// hardlink shows up here even though it also changed the repo object.
    /// Directories are compared by type only (a union checkout does not say
    /// which layer's directory metadata wins).
    pub fn verify_checkout(&self, img: &ImageInfo, dir: &Path) -> Result<CheckoutDiff, StoreError> {
        let mut expected = self.union_tree(img)?;
        let mut diff = CheckoutDiff::default();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        let rd_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::ReadDeployment { path: p, source }
        };
        fs::symlink_metadata(dir).map_err(rd_err(dir))?;
        while let Some((abs, rel)) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&abs)
                .map_err(rd_err(&abs))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(rd_err(&abs))?;
            names.sort();
            for n in names {
                let p = abs.join(&n);
                let n = n.to_string_lossy();
                let r = if rel.is_empty() {
                    n.into_owned()
                } else {
                    format!("{rel}/{n}")
                };
                let md = fs::symlink_metadata(&p).map_err(rd_err(&p))?;
                diff.checked += 1;
                let want = expected.remove(&r);
                let ft = md.file_type();
                if ft.is_dir() {
                    match want {
                        Some(Expected::Dir) => {}
                        Some(_) => diff.modified.push(r.clone()),
                        None => diff.added.push(r.clone()),
                    }
                    stack.push((p, r));
                    continue;
                }
                let Some(want) = want else {
                    diff.added.push(r);
                    continue;
                };
                let Expected::Object(want) = want else {
                    diff.modified.push(r);
                    continue;
                };
                if !(ft.is_file() || ft.is_symlink()) {
                    diff.modified.push(r);
                    continue;
                }
                let got = ostree::checksum_file_at(
                    libc::AT_FDCWD,
                    &p,
                    None,
                    ostree::ObjectType::File,
                    ostree::ChecksumFlags::NONE,
                    gio::Cancellable::NONE,
                )
                .map_err(|source| StoreError::Checksum {
                    path: p.clone(),
                    source,
                })?;
                if got.as_str() != want {
                    diff.modified.push(r);
                }
            }
        }
        diff.missing = expected.into_keys().collect();
        diff.modified.sort();
        diff.added.sort();
        Ok(diff)
    }

    /// Re-hash every object of every layer against its checksum.
    pub fn verify(&self, img: &ImageInfo) -> Result<VerifyReport, StoreError> {
        let mut layers = Vec::new();
        for l in &img.layers {
            let Some(commit) = self.layer_commit(l)? else {
                layers.push(LayerVerify {
                    digest: l.clone(),
                    commit: None,
                    objects: 0,
                    errors: vec!["layer ref is missing".into()],
                });
                continue;
            };
            let mut errors = Vec::new();
            let objs = match self
                .repo
                .traverse_commit(&commit, -1, gio::Cancellable::NONE)
            {
                Ok(o) => o,
                Err(e) => {
                    layers.push(LayerVerify {
                        digest: l.clone(),
                        commit: Some(commit),
                        objects: 0,
                        errors: vec![format!("cannot traverse the commit: {e}")],
                    });
                    continue;
                }
            };
            let mut objs: Vec<_> = objs.into_iter().collect();
            objs.sort_by(|a, b| a.checksum().cmp(b.checksum()));
            for o in &objs {
                if let Err(e) =
                    self.repo
                        .fsck_object(o.object_type(), o.checksum(), gio::Cancellable::NONE)
                {
                    errors.push(format!(
                        "{}.{}: {e}",
                        o.checksum(),
                        ostree::object_type_to_string(o.object_type())
                    ));
                }
            }
            layers.push(LayerVerify {
                digest: l.clone(),
                commit: Some(commit),
                objects: objs.len(),
                errors,
            });
        }
        Ok(VerifyReport {
            name: img.name.clone(),
            layers,
        })
    }
}
