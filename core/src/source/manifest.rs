//! Manifests, indexes and image configs: parsing, platform selection, and
//! the resolve steps every source shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{sha256_digest, Descriptor, ResolvedImage, SourceError, MAX_CONFIG_SIZE};
use crate::imgref::digest_hex;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Not registered, but what docker-archive readers (containers/image) use.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifests: everything [`parse`] understands.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// The layer media types a pull can unpack.
pub const LAYER_TYPES: &[&str] = &[
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
}

/// An entry of a manifest list / OCI index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
}

/// An image manifest: the config and the layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Manifest(ImageManifest),
    Index(Vec<IndexEntry>),
}

fn json<'a, T: Deserialize<'a>>(raw: &'a [u8], what: &str) -> Result<T, SourceError> {
    serde_json::from_slice(raw).map_err(|e| SourceError::Json {
        what: what.to_string(),
        source: e,
    })
}

fn invalid(what: &str, reason: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        what: what.to_string(),
        reason: reason.into(),
    }
}

fn descriptor(
    raw: RawDescriptor,
    default_type: &str,
    what: &str,
) -> Result<(Descriptor, Option<Platform>), SourceError> {
    if digest_hex(&raw.digest).is_none() {
        return Err(invalid(
            what,
            format!(
                "descriptor digest '{}' is not sha256:<64 lowercase hex>",
                raw.digest.escape_debug()
            ),
        ));
    }
    Ok((
        Descriptor {
            media_type: raw.media_type.unwrap_or_else(|| default_type.to_string()),
            digest: raw.digest,
            size: raw.size,
        },
        raw.platform,
    ))
}

/// Parse a manifest or an index. The media type comes from the document's
/// `mediaType`, else from `content_type` (the HTTP header), else from its
/// shape. Schema1 and unknown types are refused.
pub fn parse(raw: &[u8], content_type: Option<&str>, what: &str) -> Result<Parsed, SourceError> {
    let m: RawManifest = json(raw, what)?;
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    let mt = match (m.media_type.clone(), header) {
        (Some(t), _) => t,
        (None, Some(h)) => h,
        (None, None) if m.schema_version == Some(1) => DOCKER_SCHEMA1.to_string(),
        (None, None) if m.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if m.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => return Err(invalid(what, "neither a manifest nor an index")),
    };
    if m.schema_version == Some(1) || mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED {
        return Err(SourceError::Unsupported {
            what: what.to_string(),
            media_type: mt,
            hint:
                " (Docker schema 1 manifests are obsolete; re-push the image with a current tool)",
        });
    }
    match mt.as_str() {
        OCI_INDEX | DOCKER_LIST => {
            let mut entries = Vec::new();
            for d in m.manifests.unwrap_or_default() {
                let (descriptor, platform) = descriptor(d, OCI_MANIFEST, what)?;
                entries.push(IndexEntry {
                    descriptor,
                    platform,
                });
            }
            Ok(Parsed::Index(entries))
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let default_config = if mt == DOCKER_MANIFEST {
                DOCKER_CONFIG
            } else {
                OCI_CONFIG
            };
            let config = m
                .config
                .ok_or_else(|| invalid(what, "the manifest has no config"))?;
            let (config, _) = descriptor(config, default_config, what)?;
            if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
                return Err(SourceError::Unsupported {
                    what: format!("config of {what}"),
                    media_type: config.media_type,
                    hint: " (this is not a container image)",
                });
            }
            let mut layers = Vec::new();
            for l in m.layers.unwrap_or_default() {
                let (l, _) = descriptor(l, OCI_LAYER_GZIP, what)?;
                if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                    return Err(SourceError::Unsupported {
                        what: format!("layer {} of {what}", l.digest),
                        media_type: l.media_type,
                        hint: "",
                    });
                }
                layers.push(l);
            }
            Ok(Parsed::Manifest(ImageManifest {
                media_type: mt,
                config,
                layers,
            }))
        }
        _ => Err(SourceError::Unsupported {
            what: what.to_string(),
            media_type: mt,
            hint: " (expected an OCI or Docker schema 2 manifest or index)",
        }),
    }
}

/// The platform this binary runs on, in Go's (OCI's) names:
/// `("linux", "amd64", None)`, `("linux", "arm", Some("v7"))`, ...
pub fn host_platform() -> Platform {
    let (arch, variant) = go_arch(std::env::consts::ARCH);
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant: variant.map(Into::into),
    }
}

/// Map a Rust `target_arch` name to Go's `GOARCH` (and a default variant).
pub fn go_arch(rust: &str) -> (&str, Option<&'static str>) {
    match rust {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "powerpc" => ("ppc", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips" => ("mips", None),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", None),
        "mips64" => ("mips64", None),
        "loongarch64" => ("loong64", None),
        other => (other, None),
    }
}

fn platform_str(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// Pick the entry for `want`: same OS and architecture, preferring the same
/// variant, then an entry with no variant, then any variant. An index with a
/// single entry that names no platform is taken as it is.
pub fn select_platform<'a>(
    entries: &'a [IndexEntry],
    want: &Platform,
    what: &str,
) -> Result<&'a IndexEntry, SourceError> {
    if let [only] = entries {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let same: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        })
        .collect();
    let variant = |e: &IndexEntry| e.platform.as_ref().and_then(|p| p.variant.clone());
    let pick = same
        .iter()
        .find(|e| variant(e).is_some() && variant(e) == want.variant)
        .or_else(|| same.iter().find(|e| variant(e).is_none()))
        .or_else(|| same.first());
    match pick {
        Some(e) => Ok(e),
        None => Err(SourceError::NoPlatform {
            what: what.to_string(),
            platform: platform_str(want),
            available: {
                let v: Vec<String> = entries
                    .iter()
                    .map(|e| {
                        e.platform
                            .as_ref()
                            .map(platform_str)
                            .unwrap_or("unspecified".into())
                    })
                    .collect();
                if v.is_empty() {
                    "nothing".into()
                } else {
                    v.join(", ")
                }
            },
        }),
    }
}

#[derive(Debug, Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    rootfs: RawRootfs,
}

/// The `rootfs.diff_ids` of an image config, each checked to be a sha256
/// digest.
pub fn config_diff_ids(raw: &[u8], what: &str) -> Result<Vec<String>, SourceError> {
    let c: RawConfig = json(raw, what)?;
    for d in &c.rootfs.diff_ids {
        if digest_hex(d).is_none() {
            return Err(invalid(
                what,
                format!(
                    "diff ID '{}' is not sha256:<64 lowercase hex>",
                    d.escape_debug()
                ),
            ));
        }
    }
    Ok(c.rootfs.diff_ids)
}

/// Check a small blob that was read whole against its descriptor.
pub fn verify_blob(raw: &[u8], d: &Descriptor, what: &str) -> Result<(), SourceError> {
    if raw.len() as u64 != d.size {
        return Err(SourceError::SizeMismatch {
            what: what.to_string(),
            expected: d.size,
            actual: raw.len() as u64,
        });
    }
    let actual = sha256_digest(raw);
    if actual != d.digest {
        return Err(SourceError::DigestMismatch {
            what: what.to_string(),
            expected: d.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// Reads a small blob (a manifest or a config) whole, capped at `limit`;
/// returns the bytes and, when known, the content type. Verification is done
/// by the caller.
pub type FetchFn<'a> =
    dyn FnMut(&Descriptor, u64, &str) -> Result<(Vec<u8>, Option<String>), SourceError> + 'a;

/// The resolve steps every source shares: given the top-level manifest or
/// index, pick the host platform, fetch and verify the image manifest and
/// the config, and check the diff IDs against the layers.
pub fn resolve_from(
    name: String,
    top_raw: Vec<u8>,
    top_content_type: Option<&str>,
    what: &str,
    fetch: &mut FetchFn<'_>,
) -> Result<ResolvedImage, SourceError> {
    let (manifest_raw, manifest) = match parse(&top_raw, top_content_type, what)? {
        Parsed::Manifest(m) => (top_raw, m),
        Parsed::Index(entries) => {
            let e = select_platform(&entries, &host_platform(), what)?;
            let d = e.descriptor.clone();
            let sub_what = format!("manifest {} of {what}", d.digest);
            if d.size > super::MAX_MANIFEST_SIZE {
                return Err(SourceError::TooLarge {
                    what: sub_what,
                    limit: super::MAX_MANIFEST_SIZE,
                });
            }
            let (raw, ct) = fetch(&d, super::MAX_MANIFEST_SIZE, &sub_what)?;
            verify_blob(&raw, &d, &sub_what)?;
            let ct = ct.or(Some(d.media_type.clone()));
            match parse(&raw, ct.as_deref(), &sub_what)? {
                Parsed::Manifest(m) => (raw, m),
                Parsed::Index(_) => {
                    return Err(invalid(
                        &sub_what,
                        "an index inside an index is not supported",
                    ))
                }
            }
        }
    };
    let config = manifest.config.clone();
    let config_what = format!("config {} of {what}", config.digest);
    if config.size > MAX_CONFIG_SIZE {
        return Err(SourceError::TooLarge {
            what: config_what,
            limit: MAX_CONFIG_SIZE,
        });
    }
    let (config_raw, _) = fetch(&config, MAX_CONFIG_SIZE, &config_what)?;
    verify_blob(&config_raw, &config, &config_what)?;
    let diff_ids = config_diff_ids(&config_raw, &config_what)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(invalid(
            what,
            format!(
                "the manifest lists {} layers but the config has {} diff IDs",
                manifest.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    Ok(ResolvedImage {
        name,
        manifest_digest: sha256_digest(&manifest_raw),
        manifest_raw,
        config_raw,
        config,
        layers: manifest.layers,
        diff_ids,
    })
}

/// A Docker schema 2 manifest, for sources that have none of their own
/// (docker-archive tarballs). Field order is fixed, so the bytes are stable.
pub fn synthesize_docker_manifest(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct D<'a> {
        media_type: &'a str,
        size: u64,
        digest: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct M<'a> {
        schema_version: u32,
        media_type: &'a str,
        config: D<'a>,
        layers: Vec<D<'a>>,
    }
    fn d(x: &Descriptor) -> D<'_> {
        D {
            media_type: &x.media_type,
            size: x.size,
            digest: &x.digest,
        }
    }
    let m = M {
        schema_version: 2,
        media_type: DOCKER_MANIFEST,
        config: d(config),
        layers: layers.iter().map(d).collect(),
    };
    serde_json::to_vec_pretty(&m).expect("serializing plain structs cannot fail")
}

/// Annotations are not needed by the store, but the OCI layout reader
/// matches `org.opencontainers.image.ref.name` in index.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutIndexEntry {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct LayoutIndex {
    #[serde(default)]
    pub manifests: Vec<LayoutIndexEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn manifest_json(mt: &str, layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}",
               "config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{}","size":10}},
               "layers":[{{"mediaType":"{layer_type}","digest":"{}","size":20}}]}}"#,
            dg('a'),
            dg('b')
        )
    }

    #[test]
    fn parses_docker_and_oci_manifests() {
        let Parsed::Manifest(m) = parse(
            manifest_json(DOCKER_MANIFEST, DOCKER_LAYER_GZIP).as_bytes(),
            None,
            "x",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(m.config.digest, dg('a'));
        assert_eq!(m.layers[0].size, 20);
        // OCI without mediaType: the header, then the shape decide.
        let raw = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":1}},"layers":[]}}"#,
            dg('c')
        );
        assert!(matches!(
            parse(
                raw.as_bytes(),
                Some("application/vnd.oci.image.manifest.v1+json; charset=x"),
                "x"
            ),
            Ok(Parsed::Manifest(_))
        ));
        assert!(matches!(
            parse(raw.as_bytes(), None, "x"),
            Ok(Parsed::Manifest(_))
        ));
    }

    #[test]
    fn refuses_schema1_unknown_and_bad_digests() {
        let e = parse(
            br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#,
            None,
            "img x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        assert!(e.to_string().contains("img x"), "{e}");
        let e = parse(b"{}", Some(DOCKER_SCHEMA1_SIGNED), "x").unwrap_err();
        assert!(matches!(e, SourceError::Unsupported { .. }));
        let e = parse(br#"{"mediaType":"application/vnd.foo+json"}"#, None, "x").unwrap_err();
        assert!(e.to_string().contains("application/vnd.foo+json"), "{e}");
        let e = parse(
            manifest_json(OCI_MANIFEST, "application/x-helm").as_bytes(),
            None,
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("application/x-helm"), "{e}");
        let bad =
            manifest_json(DOCKER_MANIFEST, DOCKER_LAYER_GZIP).replace(&dg('b'), "sha256:../../etc");
        assert!(parse(bad.as_bytes(), None, "x").is_err());
        assert!(matches!(
            parse(b"not json", None, "x"),
            Err(SourceError::Json { .. })
        ));
    }

    #[test]
    fn index_platform_selection() {
        let raw = format!(
            r#"{{"mediaType":"{OCI_INDEX}","manifests":[
              {{"digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
              {{"digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            dg('1'),
            dg('2'),
            dg('3'),
            dg('4')
        );
        let Parsed::Index(entries) = parse(raw.as_bytes(), None, "x").unwrap() else {
            panic!()
        };
        let p = |arch: &str, v: Option<&str>| Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: v.map(Into::into),
        };
        let pick =
            |want| select_platform(&entries, &want, "x").map(|e| e.descriptor.digest.clone());
        assert_eq!(pick(p("amd64", None)).unwrap(), dg('3'));
        assert_eq!(pick(p("arm", Some("v7"))).unwrap(), dg('2'));
        assert_eq!(pick(p("arm", Some("v5"))).unwrap(), dg('1'));
        let e = pick(p("s390x", None)).unwrap_err().to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm/v7"),
            "{e}"
        );
        assert_eq!(go_arch("x86_64").0, "amd64");
        assert_eq!(go_arch("aarch64").0, "arm64");
        assert_eq!(host_platform().os, "linux");
    }

    #[test]
    fn resolve_checks_config_and_diff_ids() {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
        let cd = Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: sha256_digest(config),
            size: config.len() as u64,
        };
        let man = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{OCI_LAYER_GZIP}","digest":"{}","size":5}}]}}"#,
            cd.digest,
            cd.size,
            dg('e')
        );
        let mut fetch = |d: &Descriptor, _cap: u64, _w: &str| {
            assert_eq!(d.digest, cd.digest);
            Ok((config.to_vec(), None))
        };
        let r = resolve_from(
            "n:latest".into(),
            man.clone().into_bytes(),
            None,
            "x",
            &mut fetch,
        )
        .unwrap();
        assert_eq!(r.layers.len(), 1);
        assert_eq!(r.diff_ids.len(), 1);
        assert_eq!(r.manifest_digest, sha256_digest(man.as_bytes()));

        // A config that does not match its digest is refused.
        let mut bad =
            |_: &Descriptor, _: u64, _: &str| Ok((config[..config.len() - 1].to_vec(), None));
        assert!(matches!(
            resolve_from("n".into(), man.clone().into_bytes(), None, "x", &mut bad),
            Err(SourceError::SizeMismatch { .. })
        ));
        // Two layers, one diff ID.
        let two = man.replace(
            r#""size":5}]"#,
            &format!(
                r#""size":5}},{{"mediaType":"{OCI_LAYER}","digest":"{}","size":1}}]"#,
                dg('f')
            ),
        );
        let e = resolve_from("n".into(), two.into_bytes(), None, "x", &mut fetch).unwrap_err();
        assert!(e.to_string().contains("2 layers"), "{e}");
    }

    #[test]
    fn synthesized_manifest_parses_back() {
        let c = Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: dg('a'),
            size: 3,
        };
        let l = Descriptor {
            media_type: DOCKER_LAYER_TAR.into(),
            digest: dg('b'),
            size: 4,
        };
        let raw = synthesize_docker_manifest(&c, std::slice::from_ref(&l));
        let Parsed::Manifest(m) = parse(&raw, None, "x").unwrap() else {
            panic!()
        };
        assert_eq!(m.config, c);
        assert_eq!(m.layers, vec![l]);
    }
}
