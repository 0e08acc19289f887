//! `syscontainer pull` and `syscontainer images ...`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::Settings;
use anyhow::{bail, Context};
use clap::{ArgAction, Args, Subcommand};
use syscontainer::imgref::short_id;
use syscontainer::paths::Root;
use syscontainer::record::{self, FoundState};
use syscontainer::source::{self, LowSpeed, SourceOptions};
use syscontainer::store::{self, ImageInfo, Store};
use syscontainer::trust::{self, Trust};

use crate::progress::ConsoleProgress;
use indicatif::HumanBytes;

/// The low-speed limit of registry transfers, as curl's --speed-limit and
/// --speed-time (pull, install, containers update).
#[derive(Args, Debug, Clone)]
pub struct TransferArgs {
    /// Abort a registry blob transfer that averages under BYTES per second
    /// for --speed-time seconds; it is fetched again from where it stopped
    /// (3 retries), then the pull fails. 0: no limit.
    #[arg(
        long,
        value_name = "BYTES",
        env = "SYSCONTAINER_SPEED_LIMIT",
        default_value_t = 1000
    )]
    pub speed_limit: u64,
    /// The window of --speed-limit, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        env = "SYSCONTAINER_SPEED_TIME",
        default_value_t = 30
    )]
    pub speed_time: u64,
}

impl TransferArgs {
    pub fn low_speed(&self) -> LowSpeed {
        LowSpeed {
            limit: self.speed_limit,
            time: std::time::Duration::from_secs(self.speed_time),
        }
    }
}

/// The signature policy a pull is checked against (containers-policy.json(5),
/// containers-registries.d(5)): pull, install, containers update.
#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// The signature policy (containers-policy.json(5)) every pulled image
    /// must satisfy, checked before anything is stored; a refused image
    /// exits 3. Default /etc/containers/policy.json under the root; when
    /// that file does not exist, no policy is in force.
    #[arg(long, value_name = "PATH")]
    pub signature_policy: Option<PathBuf>,
    /// Where signatures are looked up (containers-registries.d(5): lookaside).
    /// Default /etc/containers/registries.d under the root.
    #[arg(long = "registries.d", value_name = "DIR")]
    pub registries_d: Option<PathBuf>,
}

impl TrustArgs {
    /// Load the policy these arguments name.
    pub fn load(&self, root: &Root) -> anyhow::Result<Trust> {
        let policy = self
            .signature_policy
            .clone()
            .unwrap_or_else(|| root.join(trust::DEFAULT_POLICY));
        let dir = self
            .registries_d
            .clone()
            .unwrap_or_else(|| root.join(trust::DEFAULT_REGISTRIES_D));
        Ok(Trust::load(
            &policy,
            &dir,
            root.join(trust::DEFAULT_LOOKASIDE),
        )?)
    }
}

/// Pull an image into the OSTree store.
///
/// Every blob is streamed and its sha256 verified, and each layer's
/// uncompressed digest is checked against the image config, before anything
/// refers to it. Each layer becomes one OSTree commit (`ociimage/<digest>`);
/// layers already present are never fetched again; identical files are
/// stored once. The image ref is written last: an interrupted or failed pull
/// leaves no image behind.
///
/// With a signature policy (/etc/containers/policy.json, or
/// --signature-policy), the image must satisfy it before anything is stored
/// (insecureAcceptAnything, reject, signedBy GPGKeys with lookaside
/// signatures, sigstoreSigned with an ECDSA P-256 public key and the
/// sha256-<digest>.sig attachment when registries.d sets
/// use-sigstore-attachments; Fulcio/Rekor keyless sigstore is not
/// supported); a refused image exits 3. The signatures read are kept with
/// the image, for `images verify` and for installs of the stored image.
///
/// SOURCE is one of:
///   [docker://]REGISTRY/NAME[:TAG|@sha256:DIGEST]   a registry (a bare NAME means docker.io/library/NAME)
///   http:REGISTRY/NAME[:TAG]                          a plain-HTTP registry
///   dockertar:/path/file.tar                          a `docker save` / docker-archive tarball
///   oci:/path[:REF]                                   an OCI image layout
///   docker:NAME[:TAG]                                 a local Docker-compatible engine (/var/run/docker.sock)
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PullArgs {
    /// Registry credentials, USER[:PASSWORD].
    #[arg(long, value_name = "USER[:PASS]")]
    creds: Option<String>,
    /// A containers auth.json file (default lookup: $XDG_RUNTIME_DIR/containers/auth.json,
    /// $XDG_CONFIG_HOME/containers/auth.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Verify the registry's TLS certificate (extra CAs: /etc/containers/certs.d/HOST[:PORT]/*.crt).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    tls_verify: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    transfer: TransferArgs,
    #[command(flatten)]
    trust: TrustArgs,
    /// Where to pull from (see above).
    #[arg(value_name = "SOURCE")]
    source: String,
}

#[derive(Subcommand, Debug)]
pub enum ImagesCmd {
    /// List stored images. `>` marks images used by an installed container.
    List {
        /// Also list dangling layers (layer refs no image uses).
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete an image by name (that name only) or by image ID prefix (all
    /// its names). Its layers stay until `images prune`.
    Delete {
        /// Delete even if an installed container uses it.
        #[arg(short, long)]
        force: bool,
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
    /// Remove layers no image uses, then unreachable objects; print what went.
    Prune {
        #[arg(long)]
        json: bool,
    },
    /// Give an image another name (same content, no copy).
    Tag {
        #[arg(value_name = "SRC")]
        src: String,
        #[arg(value_name = "DST")]
        dst: String,
    },
    /// Show the template variables an image's /exports/*.template files use:
    /// those with a default (from /exports/manifest.json) and those that must
    /// be given with `install --set`.
    Info {
        #[arg(value_name = "IMAGE")]
        image: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every stored object of every layer against its checksum; exit 1
    /// if anything is corrupt (including edits made through a deployment's
    /// hardlinks). With a signature policy in force, also re-check the
    /// signatures stored with each image (when it was pulled) against the
    /// current policy, as `docker://NAME`; a refused image exits 3.
    Verify {
        #[arg(
            value_name = "IMAGE",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        image: Option<String>,
        /// Verify every stored image.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

/// Pull `spec` (any pull source) into `store`: the one pull path of the CLI,
/// shared by `pull`, `install` and `containers update --rebase`.
pub fn pull_into(
    store: &Store,
    spec: &str,
    opts: &SourceOptions,
    trust: &TrustArgs,
    quiet: bool,
) -> anyhow::Result<store::PullReport> {
    let trust = trust.load(&opts.root)?;
    let mut src = source::open(spec, opts).with_context(|| format!("opening source '{spec}'"))?;
    let mut progress = ConsoleProgress::new(quiet);
    store::pull_checked(store, src.as_mut(), &mut progress, &trust.for_spec(spec))
        .with_context(|| format!("pulling {spec}"))
}

/// Re-check the signatures stored with `img` against `trust`: `None` when
/// no policy is in force.
pub(crate) fn recheck(
    store: &Store,
    trust: &Trust,
    img: &store::ImageInfo,
) -> anyhow::Result<Option<Result<(), trust::TrustError>>> {
    if !trust.in_force() {
        return Ok(None);
    }
    let stored = store.signatures(&img.name, &img.manifest_digest)?;
    Ok(Some(trust.check_stored(
        &img.name,
        &img.manifest_digest,
        stored.as_ref(),
    )))
}

/// The image store where the settings (`ATOMIC_OSTREE_REPO`,
/// `ATOMIC_OSTREE_CHECKOUT_PATH`) put it, with their checkout method and
/// import limits.
pub(crate) fn open(settings: &Settings) -> anyhow::Result<Store> {
    settings.store().context("opening the image store")
}

/// Image IDs used by installed containers, from their records.
fn in_use(root: &Root) -> Vec<String> {
    let (found, errors) = record::discover(root);
    for e in errors {
        log::warn!("{e}");
    }
    found
        .into_iter()
        .filter_map(|f| match f.state {
            FoundState::Ok { record, .. } => Some(record.image_id),
            _ => None,
        })
        .collect()
}

pub fn pull(settings: &Settings, a: PullArgs) -> anyhow::Result<()> {
    let store = open(settings)?;
    let opts = SourceOptions {
        creds: a.creds,
        authfile: a.authfile,
        tls_verify: a.tls_verify,
        quiet: a.quiet,
        low_speed: a.transfer.low_speed(),
        ..settings.source_options()
    };
    let r = pull_into(&store, &a.source, &opts, &a.trust, a.quiet || a.json)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
}

fn created(i: &ImageInfo) -> String {
    // "2024-01-02T03:04:05.123Z" -> "2024-01-02 03:04"
    match &i.created {
        Some(c) if c.len() >= 16 => c[..16].replacen('T', " ", 1),
        Some(c) => c.clone(),
        None => "-".into(),
    }
}

fn list(settings: &Settings, all: bool, json: bool) -> anyhow::Result<()> {
    let root = &settings.root;
    let store = open(settings)?;
    let used: BTreeSet<String> = in_use(root).into_iter().collect();
    let images = store.images().context("listing images")?;
    let layers = if all {
        store.dangling_layers().context("listing layers")?
    } else {
        Vec::new()
    };
    if json {
        let mut rows = Vec::new();
        for i in &images {
            let (repo, tag) = i.repo_tag();
            rows.push(serde_json::json!({
                "kind": "image", "name": i.name, "repository": repo, "tag": tag,
                "image_id": i.image_id, "manifest_digest": i.manifest_digest,
                "created": i.created, "virtual_size": i.size,
                "in_use": used.contains(&i.image_id), "layers": i.layers,
            }));
        }
        for l in &layers {
            rows.push(serde_json::json!({
                "kind": "layer", "digest": l.digest, "commit": l.commit,
                "diff_id": l.diff_id, "size": l.size, "virtual_size": l.uncompressed_size,
            }));
        }
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let rows: Vec<[String; 6]> = images
        .iter()
        .map(|i| {
            let (repo, tag) = i.repo_tag();
            [
                if used.contains(&i.image_id) { ">" } else { " " }.into(),
                repo.into(),
                tag.into(),
                i.short_id().into(),
                created(i),
                HumanBytes(i.size).to_string(),
            ]
        })
        .chain(layers.iter().map(|l| {
            [
                " ".into(),
                "<layer>".into(),
                "<none>".into(),
                short_id(&l.digest).into(),
                "-".into(),
                HumanBytes(l.uncompressed_size.or(l.size).unwrap_or(0)).to_string(),
            ]
        }))
        .collect();
    let head = [
        "",
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "VIRTUAL SIZE",
    ];
    let mut w = head.map(str::len);
    for r in &rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.len());
        }
    }
    let line = |r: [&str; 6]| {
        let s: Vec<String> = (0..6).map(|k| format!("{:<1$}", r[k], w[k])).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(head);
    for r in &rows {
        line(std::array::from_fn(|k| r[k].as_str()));
    }
    Ok(())
}

pub fn run(settings: &Settings, cmd: ImagesCmd) -> anyhow::Result<()> {
    let root = &settings.root;
    match cmd {
        ImagesCmd::List { all, json } => list(settings, all, json),
        ImagesCmd::Delete { force, images } => {
            let store = open(settings)?;
            let used = in_use(root);
            for i in images {
                let removed = store
                    .delete(&i, &used, force)
                    .with_context(|| format!("deleting image '{i}'"))?;
                for n in removed {
                    println!("Deleted {n}");
                }
            }
            Ok(())
        }
        ImagesCmd::Prune { json } => {
            let store = open(settings)?;
            let r = store.prune().context("pruning the image store")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for l in &r.layers {
                    println!("Deleted layer {l}");
                }
                println!(
                    "Pruned {} of {} objects, freed {}",
                    r.objects_pruned,
                    r.objects_total,
                    HumanBytes(r.bytes_freed)
                );
            }
            Ok(())
        }
        ImagesCmd::Tag { src, dst } => {
            let store = open(settings)?;
            let n = store
                .tag(&src, &dst)
                .with_context(|| format!("tagging '{src}' as '{dst}'"))?;
            println!("Tagged {src} as {n}");
            Ok(())
        }
        ImagesCmd::Info { image, json } => {
            let store = open(settings)?;
            let img = store.image(&image)?;
            let v = syscontainer::deploy::variables(&store, &img)
                .with_context(|| format!("reading the templates of '{}'", img.name))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "name": img.name, "image_id": img.image_id, "variables": v,
                    }))?
                );
                return Ok(());
            }
            println!("Image: {} ({})", img.name, img.image_id);
            if v.templates.is_empty() {
                println!("No /exports/*.template files: the built-in defaults apply.");
                return Ok(());
            }
            println!("Templates: {}", v.templates.join(", "));
            println!("\nTemplate variables with a default value, overridable with --set:");
            for (k, val) in &v.with_default {
                println!("  {k}: {val}");
            }
            println!("\nTemplate variables that have no default value and must be set with --set:");
            for k in &v.required {
                println!("  {k}");
            }
            println!("\nTemplate variables set by syscontainer:");
            for k in &v.builtin {
                println!("  {k}");
            }
            Ok(())
        }
        ImagesCmd::Verify {
            image,
            all,
            json,
            trust,
        } => {
            let store = open(settings)?;
            let trust = trust.load(&settings.root)?;
            let imgs = match image {
                Some(i) if !all => vec![store.image(&i)?],
                _ => store.images()?,
            };
            let mut corrupt = Vec::new();
            let mut refused = Vec::new();
            let mut out = Vec::new();
            for img in &imgs {
                let r = store
                    .verify(img)
                    .with_context(|| format!("verifying '{}'", img.name))?;
                let sig = recheck(&store, &trust, img)?;
                if json {
                    let mut v = serde_json::to_value(&r)?;
                    v["name"] = img.name.clone().into();
                    v["signatures"] = match &sig {
                        None => serde_json::json!({"checked": false}),
                        Some(Ok(())) => serde_json::json!({"checked": true, "accepted": true}),
                        Some(Err(e)) => serde_json::json!({
                            "checked": true, "accepted": false, "reason": e.to_string()
                        }),
                    };
                    out.push(v);
                } else {
                    for l in &r.layers {
                        if l.errors.is_empty() {
                            println!("{}: OK ({} objects)", l.digest, l.objects);
                        } else {
                            println!("{}: CORRUPT ({} objects)", l.digest, l.objects);
                            for e in &l.errors {
                                println!("  {e}");
                            }
                        }
                    }
                    match &sig {
                        None => {}
                        Some(Ok(())) => println!("{}: signatures accepted by the policy", img.name),
                        Some(Err(e)) => println!("{}: signatures REFUSED: {e}", img.name),
                    }
                }
                if !r.ok() {
                    corrupt.push(img.name.clone());
                }
                if let Some(Err(e)) = sig {
                    refused.push(e);
                }
            }
            if json {
                // One object for one image named, a list for --all.
                let v = match (all, out.len()) {
                    (false, 1) => out.pop().unwrap(),
                    _ => serde_json::Value::Array(out),
                };
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            if !corrupt.is_empty() {
                bail!("image '{}' is corrupt", corrupt.join("', '"));
            }
            if let Some(e) = refused.into_iter().next() {
                return Err(e.into());
            }
            Ok(())
        }
    }
}
