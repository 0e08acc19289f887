//! `dockertar:/path/file.tar`: what `docker save` and `skopeo copy ...
//! docker-archive:` write.
//!
//! The tar is indexed once (entry offsets, by seeking past file data); blobs
//! are then read in place with positioned reads. Nothing is extracted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::manifest::{
    config_diff_ids, synthesize_docker_manifest, DOCKER_CONFIG, DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR, OCI_LAYER_ZSTD,
};
use super::{
    sha256_digest, Compression, Descriptor, ImageSource, ResolvedImage, SourceError,
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::imgref::{digest_hex, ImageRef};

/// More entries than this is not a docker-archive.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A docker-archive tarball, from a file or from a spooled stream.
pub struct DockerArchiveSource {
    label: String,
    file: File,
    files: HashMap<String, Span>,
    links: HashMap<String, String>,
    /// Used instead of RepoTags / the file name.
    name: Option<String>,
    fallback_name: String,
    blobs: HashMap<String, Span>,
}

/// A reader over `[offset, offset+len)` of a file, with `pread`.
struct SectionReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for SectionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside an entry",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Normalise a path inside the archive: no `./`, no leading `/`; `..` is
/// resolved lexically and may not climb out.
fn normalize(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir => {}
            Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

impl DockerArchiveSource {
    /// Open and index `path`.
    pub fn open(path: &str) -> Result<Self, SourceError> {
        if path.is_empty() {
            return Err(SourceError::Spec {
                spec: format!("dockertar:{path}"),
                reason: "no file given".into(),
            });
        }
        let p = PathBuf::from(path);
        let file = File::open(&p).map_err(|e| SourceError::File {
            what: "opening docker-archive",
            path: p.clone(),
            source: e,
        })?;
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        Self::from_file(file, format!("docker-archive {}", p.display()), None, &stem)
    }

    /// Index an open archive. `name` overrides the name found inside;
    /// `fallback_name` is used when the archive has no RepoTags.
    pub fn from_file(
        file: File,
        label: String,
        name: Option<String>,
        fallback_name: &str,
    ) -> Result<Self, SourceError> {
        let bad = |reason: String| SourceError::Archive {
            archive: label.clone(),
            reason,
        };
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        (&file)
            .seek(SeekFrom::Start(0))
            .map_err(|e| SourceError::Read {
                what: label.clone(),
                source: e,
            })?;
        {
            let mut ar = tar::Archive::new(&file);
            let entries = ar.entries_with_seek().map_err(|e| SourceError::Read {
                what: label.clone(),
                source: e,
            })?;
            for entry in entries {
                // tar's messages can quote the file's bytes: keep one short line.
                let entry = entry.map_err(|e| {
                    let msg: String = e
                        .to_string()
                        .chars()
                        .take_while(|c| *c != '\n')
                        .take(120)
                        .collect();
                    bad(format!("not a valid tar archive: {msg}"))
                })?;
                if files.len() + links.len() >= MAX_ENTRIES {
                    return Err(bad(format!("more than {MAX_ENTRIES} entries")));
                }
                let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let Some(path) = normalize(&raw_path) else {
                    continue;
                };
                let kind = entry.header().entry_type();
                if kind.is_file() {
                    files.insert(
                        path,
                        Span {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                    );
                } else if kind.is_symlink() || kind.is_hard_link() {
                    if let Ok(Some(target)) = entry.link_name() {
                        let target = target.to_string_lossy().into_owned();
                        let joined = if kind.is_symlink() {
                            let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
                            dir.join(&target).to_string_lossy().into_owned()
                        } else {
                            target
                        };
                        if let Some(t) = normalize(&joined) {
                            links.insert(path, t);
                        }
                    }
                }
            }
        }
        Ok(DockerArchiveSource {
            label,
            file,
            files,
            links,
            name,
            fallback_name: fallback_name.to_string(),
            blobs: HashMap::new(),
        })
    }

    fn lookup(&self, path: &str) -> Result<Span, SourceError> {
        let mut p = normalize(path).unwrap_or_default();
        for _ in 0..8 {
            if let Some(s) = self.files.get(&p) {
                return Ok(*s);
            }
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(SourceError::Archive {
            archive: self.label.clone(),
            reason: format!("'{}' is missing from the archive", path.escape_debug()),
        })
    }

    fn section(&self, s: Span) -> SectionReader<'_> {
        SectionReader {
            file: &self.file,
            pos: s.offset,
            end: s.offset + s.size,
        }
    }

    fn read_small(&self, path: &str, limit: u64, what: &str) -> Result<Vec<u8>, SourceError> {
        let s = self.lookup(path)?;
        if s.size > limit {
            return Err(SourceError::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        let mut buf = Vec::with_capacity(s.size as usize);
        self.section(s)
            .read_to_end(&mut buf)
            .map_err(|e| SourceError::Read {
                what: what.to_string(),
                source: e,
            })?;
        Ok(buf)
    }

    fn image_name(&self, repo_tags: Option<&Vec<String>>) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(t) = repo_tags.and_then(|t| t.first()) {
            return match ImageRef::parse(t) {
                Ok(r) => r.canonical(),
                Err(_) => t.clone(),
            };
        }
        let clean: String = self
            .fallback_name
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("{clean}:latest")
    }
}

impl ImageSource for DockerArchiveSource {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn resolve(&mut self) -> Result<ResolvedImage, SourceError> {
        let mwhat = format!("manifest.json of {}", self.label);
        let raw = self.read_small("manifest.json", MAX_MANIFEST_SIZE, &mwhat)?;
        let list: Vec<ArchiveManifest> =
            serde_json::from_slice(&raw).map_err(|e| SourceError::Json {
                what: mwhat.clone(),
                source: e,
            })?;
        let m = list.first().ok_or_else(|| SourceError::Archive {
            archive: self.label.clone(),
            reason: "manifest.json lists no image".into(),
        })?;
        if list.len() > 1 {
            log::warn!(
                "{} holds {} images; using the first",
                self.label,
                list.len()
            );
        }
        let cwhat = format!("config {} of {}", m.config, self.label);
        let config_raw = self.read_small(&m.config, MAX_CONFIG_SIZE, &cwhat)?;
        let config = Descriptor {
            media_type: DOCKER_CONFIG.to_string(),
            digest: sha256_digest(&config_raw),
            size: config_raw.len() as u64,
        };
        let diff_ids = config_diff_ids(&config_raw, &cwhat)?;
        if diff_ids.len() != m.layers.len() {
            return Err(SourceError::Invalid {
                what: mwhat,
                reason: format!(
                    "it lists {} layers but the config has {} diff IDs",
                    m.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        let mut blobs = HashMap::new();
        for (path, diff_id) in m.layers.iter().zip(&diff_ids) {
            let span = self.lookup(path)?;
            let lwhat = format!("layer {path} of {}", self.label);
            let mut head = [0u8; 4];
            let n = self
                .section(span)
                .read(&mut head)
                .map_err(|e| SourceError::Read {
                    what: lwhat.clone(),
                    source: e,
                })?;
            let compression = Compression::sniff(&head[..n]);
            // blobs/sha256/<hex> names its digest; an uncompressed layer's
            // digest is its diff ID; anything else is hashed here. Either
            // way the store verifies the bytes as it reads them.
            let from_name = path
                .strip_prefix("blobs/sha256/")
                .map(|h| format!("sha256:{h}"))
                .filter(|d| digest_hex(d).is_some());
            let digest = match (from_name, compression) {
                (Some(d), _) => d,
                (None, Compression::None) => diff_id.clone(),
                (None, _) => hash_section(&self.file, span).map_err(|e| SourceError::Read {
                    what: lwhat.clone(),
                    source: e,
                })?,
            };
            let media_type = match compression {
                Compression::None => DOCKER_LAYER_TAR,
                Compression::Gzip => DOCKER_LAYER_GZIP,
                Compression::Zstd => OCI_LAYER_ZSTD,
            };
            let d = Descriptor {
                media_type: media_type.to_string(),
                digest,
                size: span.size,
            };
            blobs.insert(d.digest.clone(), span);
            layers.push(d);
        }
        blobs.insert(config.digest.clone(), self.lookup(&m.config)?);
        let name = self.image_name(m.repo_tags.as_ref());
        self.blobs = blobs;
        let manifest_raw = synthesize_docker_manifest(&config, &layers);
        Ok(ResolvedImage {
            name,
            manifest_digest: sha256_digest(&manifest_raw),
            manifest_raw,
            config_raw,
            config,
            layers,
            diff_ids,
        })
    }

    fn open_blob(&mut self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        match self.blobs.get(&d.digest) {
            Some(s) => Ok(Box::new(self.section(*s))),
            None => Err(SourceError::Archive {
                archive: self.label.clone(),
                reason: format!("no blob {} (resolve first)", d.digest),
            }),
        }
    }

    /// Blobs are read with `pread`, so a duplicate of the file descriptor
    /// reads its own at the same time.
    fn fork(&self) -> Option<Box<dyn ImageSource>> {
        Some(Box::new(DockerArchiveSource {
            label: self.label.clone(),
            file: self.file.try_clone().ok()?,
            files: self.files.clone(),
            links: self.links.clone(),
            name: self.name.clone(),
            fallback_name: self.fallback_name.clone(),
            blobs: self.blobs.clone(),
        }))
    }
}

fn hash_section(file: &File, s: Span) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut r = SectionReader {
        file,
        pos: s.offset,
        end: s.offset + s.size,
    };
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn add(b: &mut tar::Builder<File>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    }

    /// The legacy `docker save` layout: `ID/layer.tar`, a duplicate layer as
    /// a symlink, a gzip layer, no RepoTags.
    #[test]
    fn legacy_docker_save_layout() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("My App.tar");
        let layer = b"pretend this is a tar".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let gz = gz.finish().unwrap();
        let lid = sha256_digest(&layer);
        let config =
            format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{lid}","{lid}","{lid}"]}}}}"#);
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        add(&mut b, "aaa/layer.tar", &layer);
        add(&mut b, "ccc/layer.tar", &gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        add(&mut b, "cfg.json", config.as_bytes());
        add(
            &mut b,
            "manifest.json",
            br#"[{"Config":"cfg.json","RepoTags":null,"Layers":["aaa/layer.tar","bbb/layer.tar","./ccc/layer.tar"]}]"#,
        );
        b.into_inner().unwrap();

        let mut s = DockerArchiveSource::open(path.to_str().unwrap()).unwrap();
        let r = s.resolve().unwrap();
        assert_eq!(r.name, "my-app:latest");
        assert_eq!(r.layers.len(), 3);
        assert_eq!(r.layers[0].digest, lid);
        assert_eq!(r.layers[1].digest, lid);
        assert_eq!(r.layers[2].digest, sha256_digest(&gz));
        assert_eq!(r.layers[2].media_type, DOCKER_LAYER_GZIP);
        assert_eq!(r.config.digest, sha256_digest(config.as_bytes()));
        for l in r.layers.clone() {
            let mut v = Vec::new();
            let raw = s.open_blob(&l).unwrap();
            super::super::decompress(
                &l,
                Box::new(super::super::DigestReader::new(
                    raw,
                    &l.digest,
                    Some(l.size),
                )),
            )
            .unwrap()
            .read_to_end(&mut v)
            .unwrap();
            assert_eq!(v, layer);
        }
        // A layer missing from the archive is named.
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        add(&mut b, "cfg.json", config.as_bytes());
        add(
            &mut b,
            "manifest.json",
            br#"[{"Config":"cfg.json","Layers":["x/layer.tar","y","z"]}]"#,
        );
        b.into_inner().unwrap();
        let e = DockerArchiveSource::open(path.to_str().unwrap())
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("x/layer.tar") && e.contains("My App.tar"), "{e}");
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("./a/b.tar").as_deref(), Some("a/b.tar"));
        assert_eq!(normalize("/a/../b").as_deref(), Some("b"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("a/./b/").as_deref(), Some("a/b"));
    }
}
