//! `syscontainer auto-update`: keep opted-in containers (`auto_update:
//! "registry"` in the record) on the image their reference names now.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};
use serde::Serialize;
use syscontainer::deploy::auto_update::{self, Decision, Deployed, Failed, State};
use syscontainer::deploy::{self, DeployError, UpdateOptions, UpdateOutcome};
use syscontainer::imgref::short_id;
use syscontainer::paths;
use syscontainer::record::{self, FoundState, Record};
use syscontainer::source::registry::RegistrySource;
use syscontainer::source::{SourceError, SourceOptions};

use crate::Settings;

/// How many manifest requests are in flight at once.
const PARALLEL_CHECKS: usize = 8;

/// Update the containers whose record says `"autoUpdate": "registry"`.
///
/// For each one, ask the registry for the manifest digest its image
/// reference names now (one manifest request, no pull) and compare it with
/// the deployed image's. When it moved: pull, update into the other slot,
/// and gate on health as `containers update` does (active within
/// --timeout, then still the same process after --settle; a stopped
/// container is switched without a restart). A version that fails the gate
/// is rolled back, and its digest is remembered in
/// /var/lib/syscontainer/auto-update.json: it is not tried again until the
/// reference names another digest (result `skipped`).
///
/// A container installed or declared from an `http:` reference is asked,
/// and pulled, over plain HTTP again: the timer's plain run needs no
/// --tls-verify=false for it.
///
/// One line per container: unit, image, result (unchanged, updated,
/// rolled back, failed, skipped, or pending with --dry-run), and the
/// deployed and the reference's digests. Exit status 1 when a container
/// failed or was rolled back.
#[derive(Args, Debug)]
pub struct AutoUpdateArgs {
    /// Only check: say which containers would be updated (`pending`); pull
    /// and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON array, one object per container
    #[arg(long)]
    json: bool,
    /// A containers auth.json file (default: the lookup of `pull`)
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Verify the registries' TLS certificates (false also allows plain HTTP)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    tls_verify: bool,
    /// Seconds an updated unit may take to become active before rolling back
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
    /// Seconds it must then stay active, as the same process
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    settle: u64,
    #[command(flatten)]
    transfer: crate::images::TransferArgs,
    /// The signature policy of the pulls (as for `pull`).
    #[command(flatten)]
    trust: crate::images::TrustArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    Unchanged,
    Updated,
    #[serde(rename = "rolled back")]
    RolledBack,
    Failed,
    Skipped,
    Pending,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Updated => "updated",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Pending => "pending",
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    unit: String,
    name: String,
    image: String,
    result: Outcome,
    /// The deployed image's manifest digest, when known.
    old_digest: Option<String>,
    /// The digest the reference names now, when the registry answered.
    new_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The opted-in containers, by name.
fn opted_in(root: &paths::Root) -> Vec<Record> {
    let (found, errors) = record::discover(root);
    for e in errors {
        log::warn!("{e}");
    }
    found
        .into_iter()
        .filter_map(|f| match f.state {
            FoundState::Ok { record, .. } if record.auto_update.is_some() => Some(*record),
            FoundState::Broken(e) => {
                log::warn!("{e}");
                None
            }
            _ => None,
        })
        .collect()
}

/// The reference's digest now, for every record: the requests overlap.
fn check_all(recs: &[Record], opts: &SourceOptions) -> Vec<Result<String, SourceError>> {
    let mut out = Vec::with_capacity(recs.len());
    for chunk in recs.chunks(PARALLEL_CHECKS) {
        std::thread::scope(|s| {
            let hs: Vec<_> = chunk
                .iter()
                .map(|r| s.spawn(|| RegistrySource::new(&r.reference(), opts)?.current_digest()))
                .collect();
            out.extend(hs.into_iter().map(|h| h.join().expect("a check panicked")));
        });
    }
    out
}

pub fn run(settings: &Settings, a: AutoUpdateArgs) -> Result<()> {
    let root = &settings.root;
    // One run at a time: the state is read, then written.
    let dir = root.join(paths::LOCK_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join("auto-update.lock");
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    syscontainer::flock::wait(&lock, true, &lock_path, "another auto-update is running")
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;

    let recs = opted_in(root);
    let mut state = State::load(root)?;
    let before = state.clone();
    let names: Vec<&str> = recs.iter().map(|r| r.name.as_str()).collect();
    state.retain(&names);
    let opts = SourceOptions {
        authfile: a.authfile.clone(),
        tls_verify: a.tls_verify,
        quiet: true,
        low_speed: a.transfer.low_speed(),
        ..settings.source_options()
    };
    let store = crate::images::open(settings)?;
    let remote = check_all(&recs, &opts);
    let update_opts = UpdateOptions {
        timeout: Duration::from_secs(a.timeout),
        settle: Duration::from_secs(a.settle),
        ..UpdateOptions::default()
    };
    let mut rows = Vec::new();
    for (rec, remote) in recs.iter().zip(remote) {
        let st = state.containers.entry(rec.name.clone()).or_default();
        let old = auto_update::deployed_digest(&store, rec, st);
        let mut row = Row {
            unit: format!("{}.service", rec.name),
            name: rec.name.clone(),
            image: rec.image.clone(),
            result: Outcome::Failed,
            old_digest: old.clone(),
            new_digest: None,
            error: None,
        };
        let new = match remote {
            Ok(d) => d,
            Err(e) => {
                row.error = Some(format!("{:#}", anyhow::Error::new(e)));
                rows.push(row);
                continue;
            }
        };
        row.new_digest = Some(new.clone());
        let failed = st.failed.as_ref().map(|f| f.digest.as_str());
        row.result = match auto_update::decide(&new, old.as_deref(), failed) {
            Decision::Unchanged => {
                // Back on the deployed digest: what failed is history.
                st.failed = None;
                Outcome::Unchanged
            }
            Decision::KnownBad => Outcome::Skipped,
            Decision::Update if a.dry_run => Outcome::Pending,
            Decision::Update => {
                // The reference moved on from what failed; and the pull
                // moves the tag off the deployed image: remember its digest.
                st.failed = None;
                if let Some(o) = &old {
                    st.deployed = Some(Deployed {
                        image_id: rec.image_id.clone(),
                        digest: o.clone(),
                    });
                }
                let (outcome, error, pulled) =
                    apply(settings, &store, rec, &opts, &update_opts, st, &a);
                // The pull may have found a newer digest than the check.
                if let Some(d) = pulled {
                    row.new_digest = Some(d);
                }
                row.error = error;
                outcome
            }
        };
        rows.push(row);
    }
    // Nothing to remember about a container that never moved.
    state.containers.retain(|_, c| *c != Default::default());
    if state != before && !a.dry_run {
        state.save(root)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_rows(&rows);
    }
    let bad = rows
        .iter()
        .filter(|r| matches!(r.result, Outcome::Failed | Outcome::RolledBack))
        .count();
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} containers failed or were rolled back",
            rows.len()
        );
    }
    Ok(())
}

/// Pull `rec`'s reference and update the container to it, recording in
/// `st` what was deployed or what failed.
fn apply(
    settings: &Settings,
    store: &syscontainer::store::Store,
    rec: &Record,
    opts: &SourceOptions,
    update_opts: &UpdateOptions,
    st: &mut auto_update::ContainerState,
    args: &AutoUpdateArgs,
) -> (Outcome, Option<String>, Option<String>) {
    let name = &rec.name;
    let (trust, quiet) = (&args.trust, args.json);
    let pulled = match crate::images::pull_into(store, &rec.reference(), opts, trust, quiet) {
        Ok(p) => p,
        Err(e) => return (Outcome::Failed, Some(format!("{e:#}")), None),
    };
    let digest = Some(pulled.manifest_digest.clone());
    let mark_failed = |st: &mut auto_update::ContainerState, reason: String| {
        st.failed = Some(Failed {
            digest: pulled.manifest_digest.clone(),
            reason,
        });
    };
    let res = settings
        .store_source()
        .map_err(anyhow::Error::new)
        .and_then(|src| {
            deploy::update(&settings.root, &src, name, update_opts).map_err(Into::into)
        });
    match res {
        Ok(o) => {
            st.deployed = Some(Deployed {
                image_id: pulled.image_id.clone(),
                digest: pulled.manifest_digest.clone(),
            });
            match o {
                UpdateOutcome::Updated(_) => (Outcome::Updated, None, digest),
                // A new manifest of the same image (re-pushed).
                UpdateOutcome::UpToDate => (Outcome::Unchanged, None, digest),
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            match e.downcast_ref::<DeployError>() {
                Some(DeployError::UpdateFailed { .. }) => {
                    mark_failed(st, msg.clone());
                    (Outcome::RolledBack, Some(msg), digest)
                }
                // The new image itself is unusable (a template that does
                // not render, a bad manifest): trying again will not help.
                _ if e.chain().find_map(syscontainer::exit::of)
                    == Some(syscontainer::exit::INVALID) =>
                {
                    mark_failed(st, msg.clone());
                    (Outcome::Failed, Some(msg), digest)
                }
                _ => (Outcome::Failed, Some(msg), digest),
            }
        }
    }
}

fn print_rows(rows: &[Row]) {
    let w = rows.iter().map(|r| r.unit.len()).max().unwrap_or(0);
    let wi = rows.iter().map(|r| r.image.len()).max().unwrap_or(0);
    let short = |d: &Option<String>| d.as_deref().map(short_id).unwrap_or("-").to_string();
    for r in rows {
        println!(
            "{:<w$}  {:<wi$}  {:<11}  {} -> {}",
            r.unit,
            r.image,
            r.result.as_str(),
            short(&r.old_digest),
            short(&r.new_digest),
        );
        if let Some(e) = &r.error {
            eprintln!("{}: {e}", r.unit);
        }
    }
}
