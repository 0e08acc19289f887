//! `syscontainer install|uninstall|enable|disable|containers ...`.
//!
//! Wiring: `#[command(flatten)] Container(containers::ContainerCmd)` in the
//! top-level subcommand enum, and `Cmd::Container(c) => containers::run(c, &settings)`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use syscontainer::deploy::{self, InstallOptions, Switched, UpdateOptions, UpdateOutcome};
use syscontainer::paths::Root;

use crate::Settings;

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Install an image as a system container
    Install(Box<InstallArgs>),
    /// Stop and remove a system container (the image stays)
    Uninstall {
        /// Container name
        name: String,
    },
    /// List, update and roll back system containers
    Containers {
        #[command(subcommand)]
        cmd: ContainersCmd,
    },
    /// Start the container at boot
    Enable {
        /// Container name
        name: String,
    },
    /// Do not start the container at boot
    Disable {
        /// Container name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub transfer: crate::images::TransferArgs,
    #[command(flatten)]
    pub trust: crate::images::TrustArgs,
    /// Container name (default: the image name, with -TAG unless the tag is latest)
    #[arg(long)]
    pub name: Option<String>,
    /// Set a template variable (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// OCI runtime binary
    #[arg(long)]
    pub runtime: Option<String>,
    /// Do not start the container at boot
    #[arg(long)]
    pub no_enable: bool,
    /// Start the container now
    #[arg(long)]
    pub now: bool,
    /// Keep the container on the newest image of its reference:
    /// `syscontainer auto-update` (and its timer) asks the registry for
    /// the reference's digest and updates when it moved
    #[arg(long, value_name = "POLICY", value_parser = ["registry"])]
    pub auto_update: Option<String>,
    #[command(flatten)]
    pub health: crate::health_args::HealthArgs,
    /// Registry credentials for a pull, USER[:PASSWORD]
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Verify the registry's TLS certificate when pulling
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// A local image name or ID, or any pull source (pulled first when it is
    /// not stored yet): REGISTRY/NAME[:TAG], dockertar:FILE, oci:DIR[:REF], docker:NAME
    pub image: String,
}

#[derive(Debug, Subcommand)]
pub enum ContainersCmd {
    /// List system containers (running ones, or all with --all)
    List {
        /// Also show containers that are not running
        #[arg(short, long)]
        all: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Update to the latest image, new values, or another image. A running
    /// container is restarted; if it is not active within --timeout, or does
    /// not stay up for --settle after that, the update is rolled back
    Update(Box<UpdateArgs>),
    /// Switch back to the previous deployment, its values and its host
    /// files (host files the admin changed are left as they are)
    Rollback {
        /// Container name
        name: String,
    },
    /// Compare the active deployment with its image: modified, added and
    /// missing files (exit 1 if any)
    Verify {
        /// Container name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub transfer: crate::images::TransferArgs,
    #[command(flatten)]
    pub trust: crate::images::TrustArgs,
    /// Set a template variable (repeatable); other values are kept
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Switch to another image: a local image, or any pull source (pulled
    /// first), as for install
    #[arg(long, value_name = "IMAGE")]
    pub rebase: Option<String>,
    /// `--health-*`: merged over the record's health check, field by field
    #[command(flatten)]
    pub health: crate::health_args::HealthArgs,
    /// Registry credentials for pulling the --rebase image, USER[:PASSWORD]
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Verify the registry's TLS certificate when pulling
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Seconds a restarted unit may take to become active before rolling back
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Seconds the restarted unit must then stay active, as the same
    /// process (no restart), for the update to pass; if it leaves 'active'
    /// or restarts within them, the update is rolled back
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub settle: u64,
    /// Update every installed container
    #[arg(long, conflicts_with_all = ["name", "rebase"])]
    pub all: bool,
    /// Container name
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
}

pub fn run(cmd: ContainerCmd, settings: &Settings) -> Result<()> {
    let root = &settings.root;
    match cmd {
        ContainerCmd::Install(mut a) => {
            let ls = a.transfer.low_speed();
            let plain_http = a.image.starts_with(syscontainer::imgref::HTTP_SCHEME);
            a.image = pull_if_needed(
                settings,
                &a.image,
                a.creds.clone(),
                None,
                a.tls_verify,
                ls,
                &a.trust,
            )?;
            let src = settings.store_source()?;
            let opts = InstallOptions {
                name: a.name,
                set: a.set,
                runtime: a.runtime,
                no_enable: a.no_enable,
                now: a.now,
                checkout_root: Some(settings.location.checkout_root()),
                auto_update: a
                    .auto_update
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                declared: false,
                health: a.health.spec()?,
                plain_http,
            };
            let rec = deploy::install(root, &src, &a.image, &opts)
                .with_context(|| format!("cannot install {}", a.image))?;
            println!(
                "Installed {} as {} ({})",
                rec.image, rec.name, rec.deployment
            );
            report_copied(&rec.name, src.copied_files());
        }
        ContainerCmd::Uninstall { name } => {
            let rep = deploy::uninstall(root, &name, &settings.location.checkout_root())
                .with_context(|| format!("cannot uninstall {name}"))?;
            for f in rep.kept_host_files {
                println!("{f} was modified since it was installed; left in place");
            }
        }
        ContainerCmd::Enable { name } => set_enabled(root, &name, true)?,
        ContainerCmd::Disable { name } => set_enabled(root, &name, false)?,
        ContainerCmd::Containers { cmd } => match cmd {
            ContainersCmd::List { all, json } => list(root, all, json)?,
            ContainersCmd::Rollback { name } => {
                let s = deploy::rollback(root, &name)
                    .with_context(|| format!("cannot roll back {name}"))?;
                println!("Rolled back {name} from {} to {}", s.from, s.to);
                host_files_left(&s);
                if s.restarted {
                    println!("Restarted {name}.service");
                }
            }
            ContainersCmd::Update(a) => update(settings, *a)?,
            ContainersCmd::Verify { name, json } => verify(settings, &name, json)?,
        },
    }
    Ok(())
}

/// The local image to install (or rebase to): `image` itself when it is
/// stored, else the name it was pulled under.
pub(crate) fn pull_if_needed(
    settings: &Settings,
    image: &str,
    creds: Option<String>,
    authfile: Option<String>,
    tls_verify: bool,
    low_speed: syscontainer::source::LowSpeed,
    trust: &crate::images::TrustArgs,
) -> Result<String> {
    let store = crate::images::open(settings)?;
    if !syscontainer::imgref::Transport::is_explicit(image) {
        match store.image(image) {
            Ok(img) => {
                // Stored already: no pull, but the policy in force still
                // applies, to the signatures kept from its pull.
                let t = trust.load(&settings.root)?;
                if let Some(Err(e)) = crate::images::recheck(&store, &t, &img)? {
                    return Err(e.into());
                }
                return Ok(image.to_string());
            }
            // An ID prefix that names two stored images: never a pull of
            // docker.io/library/PREFIX.
            Err(e @ syscontainer::store::StoreError::AmbiguousId { .. }) => return Err(e.into()),
            Err(_) => {}
        }
    }
    let opts = syscontainer::source::SourceOptions {
        creds,
        authfile: authfile.map(std::path::PathBuf::from),
        tls_verify,
        quiet: false,
        low_speed,
        ..settings.source_options()
    };
    Ok(crate::images::pull_into(&store, image, &opts, trust, false)?.name)
}

fn verify(settings: &Settings, name: &str, json: bool) -> Result<()> {
    let root = &settings.root;
    let src = settings.store_source()?;
    let r = deploy::verify(root, &src, name).with_context(|| format!("cannot verify {name}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for (what, paths) in [
            ("modified", &r.diff.modified),
            ("added", &r.diff.added),
            ("missing", &r.diff.missing),
        ] {
            for p in paths {
                println!("{what}: /{p}");
            }
        }
        println!(
            "{name} ({}, {}): {} entries checked, {} modified, {} added, {} missing",
            r.deployment,
            r.image,
            r.diff.checked,
            r.diff.modified.len(),
            r.diff.added.len(),
            r.diff.missing.len()
        );
    }
    if !r.ok() {
        anyhow::bail!("the deployment of {name} differs from its image");
    }
    Ok(())
}

fn set_enabled(root: &Root, name: &str, on: bool) -> Result<()> {
    let what = if on { "enable" } else { "disable" };
    let changed =
        deploy::set_enabled(root, name, on).with_context(|| format!("cannot {what} {name}"))?;
    if !changed {
        println!("{name} is already {what}d");
    }
    Ok(())
}

fn update(settings: &Settings, a: UpdateArgs) -> Result<()> {
    let root = &settings.root;
    // --rebase takes any pull source, like install: pulled first
    let plain_http = a
        .rebase
        .as_deref()
        .is_some_and(|r| r.starts_with(syscontainer::imgref::HTTP_SCHEME));
    let rebase = match a.rebase {
        Some(img) => Some(pull_if_needed(
            settings,
            &img,
            a.creds,
            None,
            a.tls_verify,
            a.transfer.low_speed(),
            &a.trust,
        )?),
        None => None,
    };
    let src = settings.store_source()?;
    let opts = UpdateOptions {
        set: a.set,
        rebase,
        timeout: Duration::from_secs(a.timeout),
        settle: Duration::from_secs(a.settle),
        health: a.health.spec()?,
        plain_http,
    };
    let names: Vec<String> = match a.name {
        Some(n) => vec![n],
        None => deploy::list(root, true)
            .into_iter()
            .filter(|r| r.state != "invalid" && r.declared != "pending")
            .map(|r| r.name)
            .collect(),
    };
    let mut failed = 0;
    for name in &names {
        let before = src.copied_files();
        match deploy::update(root, &src, name, &opts) {
            Ok(UpdateOutcome::UpToDate) => println!("{name}: Latest version already installed."),
            Ok(UpdateOutcome::Updated(s)) => {
                println!("{name}: updated from {} to {}", s.from, s.to);
                report_copied(name, src.copied_files() - before);
                host_files_left(&s);
                if s.restarted {
                    println!("{name}: restarted");
                }
            }
            Err(e) if names.len() == 1 => {
                return Err(anyhow::Error::new(e).context(format!("cannot update {name}")))
            }
            Err(e) => {
                eprintln!("{name}: {:#}", anyhow::Error::new(e));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} updates failed", names.len());
    }
    Ok(())
}

/// Files a checkout had to copy: their objects had too many links.
fn report_copied(name: &str, copied: u64) {
    if copied > 0 {
        println!(
            "{name}: {copied} file(s) copied instead of hardlinked (their objects reached the filesystem's link limit)"
        );
    }
}

/// Host files a switch left alone because the admin changed them.
fn host_files_left(s: &Switched) {
    for f in &s.not_restored {
        println!("{f} was modified on the host; left in place, not restored");
    }
    for f in &s.kept_host_files {
        println!("{f} was modified since it was installed; left in place");
    }
}

fn list(root: &Root, all: bool, json: bool) -> Result<()> {
    let rows = deploy::list(root, all);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<40} {:<14} {:<5} {:<10} {:<10} {:<9} RUNTIME",
        "NAME", "IMAGE", "IMAGE ID", "DEPL", "STATE", "HEALTH", "RECORD"
    );
    for r in rows {
        println!(
            "{:<24} {:<40} {:<14} {:<5} {:<10} {:<10} {:<9} {}",
            r.name,
            r.image,
            syscontainer::imgref::short_id(&r.image_id),
            r.deployment,
            r.state,
            if r.health.is_empty() { "-" } else { &r.health },
            r.declared,
            r.runtime
        );
    }
    Ok(())
}
