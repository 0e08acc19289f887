//! Reading an image through the union of its layers, without a checkout:
//! whiteouts and opaque directories honoured, symlinks followed within the
//! image.

use std::collections::BTreeSet;
use std::io::Read;

use gio::prelude::*;

use super::{import, ImageInfo, Store, StoreError, READ_FILE_MAX};

fn not_found(e: &glib::Error) -> bool {
    e.matches(gio::IOErrorEnum::NotFound)
}

/// What one layer holds at a path, for union lookups.
enum Probe {
    Found(gio::File, gio::FileType),
    /// A symlink at component `at` (whose target is `target`).
    Symlink {
        at: usize,
        target: String,
    },
    /// Not in this layer; lower layers may have it.
    Absent,
    /// Hidden by a whiteout, an opaque directory or a non-directory in this
    /// layer: lower layers cannot provide it.
    Hidden,
}

impl Store {
    pub(super) fn layer_roots(&self, img: &ImageInfo) -> Result<Vec<gio::File>, StoreError> {
        let mut out = Vec::new();
        for l in &img.layers {
            let c = self
                .layer_commit(l)?
                .ok_or_else(|| StoreError::LayerMissing {
                    name: img.name.clone(),
                    digest: l.clone(),
                })?;
            let (root, _) =
                self.repo
                    .read_commit(&c, gio::Cancellable::NONE)
                    .map_err(|source| StoreError::Commit {
                        commit: c.clone(),
                        what: format!("layer {l}"),
                        source,
                    })?;
            out.push(root);
        }
        Ok(out)
    }

    /// Probe one layer for `comps`.
    fn probe(root: &gio::File, comps: &[String]) -> Result<Probe, glib::Error> {
        let exists = |f: &gio::File| -> Result<Option<gio::FileInfo>, glib::Error> {
            match f.query_info(
                "standard::type,standard::symlink-target",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                gio::Cancellable::NONE,
            ) {
                Ok(i) => Ok(Some(i)),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut dir = root.clone();
        for (i, c) in comps.iter().enumerate() {
            let child = dir.child(c);
            match exists(&child)? {
                Some(info) => match info.file_type() {
                    gio::FileType::SymbolicLink => {
                        return Ok(Probe::Symlink {
                            at: i,
                            target: info
                                .symlink_target()
                                .map(|t| t.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                        })
                    }
                    gio::FileType::Directory if i + 1 < comps.len() => dir = child,
                    t if i + 1 == comps.len() => return Ok(Probe::Found(child, t)),
                    _ => return Ok(Probe::Hidden),
                },
                None => {
                    let wh = dir.child(format!("{}{c}", import::WHITEOUT_PREFIX));
                    let opq = dir.child(import::OPAQUE_WHITEOUT);
                    if exists(&wh)?.is_some() || exists(&opq)?.is_some() {
                        return Ok(Probe::Hidden);
                    }
                    return Ok(Probe::Absent);
                }
            }
        }
        Ok(Probe::Found(dir, gio::FileType::Directory))
    }

    /// Resolve `path` in the union of the layers (top layer first), following
    /// symlinks within the image.
    fn lookup(
        &self,
        img: &ImageInfo,
        roots: &[gio::File],
        path: &str,
    ) -> Result<Option<(gio::File, gio::FileType)>, StoreError> {
        let mut comps = split_abs(path, &[]);
        let mut hops = 0;
        'restart: loop {
            for root in roots.iter().rev() {
                let p = Self::probe(root, &comps).map_err(|source| StoreError::ReadFile {
                    name: img.name.clone(),
                    path: path.to_string(),
                    source,
                })?;
                match p {
                    Probe::Found(f, t) => return Ok(Some((f, t))),
                    Probe::Hidden => return Ok(None),
                    Probe::Absent => continue,
                    Probe::Symlink { at, target } => {
                        hops += 1;
                        if hops > 16 {
                            return Ok(None);
                        }
                        let base = if target.starts_with('/') {
                            Vec::new()
                        } else {
                            comps[..at].to_vec()
                        };
                        let mut next = split_abs(&target, &base);
                        next.extend_from_slice(&comps[at + 1..]);
                        comps = next;
                        continue 'restart;
                    }
                }
            }
            return Ok(None);
        }
    }

    /// Read one file from the image (union of the layers, whiteouts honoured,
    /// symlinks followed within the image). `Ok(None)` if absent or not a
    /// regular file.
    pub fn read_file(&self, img: &ImageInfo, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let roots = self.layer_roots(img)?;
        self.read_file_in(img, &roots, path)
    }

    fn read_file_in(
        &self,
        img: &ImageInfo,
        roots: &[gio::File],
        path: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((f, gio::FileType::Regular)) = self.lookup(img, roots, path)? else {
            return Ok(None);
        };
        let err = |source| StoreError::ReadFile {
            name: img.name.clone(),
            path: path.to_string(),
            source,
        };
        let f = f
            .downcast::<ostree::RepoFile>()
            .expect("files under a commit root are OstreeRepoFiles");
        f.ensure_resolved().map_err(err)?;
        let (stream, _, _) = self
            .repo
            .load_file(&f.checksum(), gio::Cancellable::NONE)
            .map_err(err)?;
        let Some(stream) = stream else {
            return Ok(None);
        };
        let mut out = Vec::new();
        stream
            .into_read()
            .take(READ_FILE_MAX + 1)
            .read_to_end(&mut out)
            .map_err(|e| err(glib::Error::new(gio::IOErrorEnum::Failed, &e.to_string())))?;
        if out.len() as u64 > READ_FILE_MAX {
            return Err(StoreError::FileTooLarge {
                name: img.name.clone(),
                path: path.to_string(),
            });
        }
        Ok(Some(out))
    }

    /// Names in a directory of the image (union of the layers, whiteouts
    /// honoured). Empty if the directory is absent.
    pub fn list_dir(&self, img: &ImageInfo, path: &str) -> Result<BTreeSet<String>, StoreError> {
        let roots = self.layer_roots(img)?;
        self.list_dir_in(img, &roots, path)
    }

    fn list_dir_in(
        &self,
        img: &ImageInfo,
        roots: &[gio::File],
        path: &str,
    ) -> Result<BTreeSet<String>, StoreError> {
        let comps = split_abs(path, &[]);
        let err = |source| StoreError::ReadFile {
            name: img.name.clone(),
            path: path.to_string(),
            source,
        };
        let mut seen = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        for root in roots.iter().rev() {
            let dir = match Self::probe(root, &comps).map_err(err)? {
                Probe::Found(f, gio::FileType::Directory) => f,
                Probe::Absent => continue,
                _ => break,
            };
            let mut here = Vec::new();
            let mut opaque = false;
            let it = dir
                .enumerate_children(
                    "standard::name",
                    gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                    gio::Cancellable::NONE,
                )
                .map_err(err)?;
            while let Some(info) = it.next_file(gio::Cancellable::NONE).map_err(err)? {
                let n = info.name().to_string_lossy().into_owned();
                if n == import::OPAQUE_WHITEOUT {
                    opaque = true;
                } else if let Some(w) = n.strip_prefix(import::WHITEOUT_PREFIX) {
                    hidden.insert(w.to_string());
                } else {
                    here.push(n);
                }
            }
            for n in here {
                if !hidden.contains(&n) {
                    seen.insert(n);
                }
            }
            if opaque {
                break;
            }
        }
        Ok(seen)
    }
}

/// Split an image path into components, resolving `.` and `..` lexically
/// (never above the root), relative to `base`.
fn split_abs(path: &str, base: &[String]) -> Vec<String> {
    let mut out = base.to_vec();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_paths() {
        assert_eq!(split_abs("/a/./b/../c", &[]), vec!["a", "c"]);
        assert_eq!(split_abs("../../x", &["d".into()]), vec!["x"]);
    }
}
