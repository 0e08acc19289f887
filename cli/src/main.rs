//! `syscontainer`: pull images into OSTree and run them as system containers
//! under systemd. Thin: parse arguments, call the library, map errors to the
//! documented exit codes.

mod apply;
mod auto_update;
mod containers;
mod health_args;
mod images;
mod man;
mod progress;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use syscontainer::exit;
use syscontainer::logging::{self, Style};

pub(crate) use settings::Settings;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (network, repo, I/O, corruption found by `images verify`)
  2  usage error (bad arguments, or a bad ATOMIC_OSTREE_* value)
  3  invalid input: a hostile or malformed layer or image, a bad template or record
  4  image or deployment missing

Signature policy:
  /etc/containers/policy.json  containers-policy.json(5), or --signature-policy; checked by pull,
      install and containers update after the manifest and before anything is stored; without
      the file nothing is checked. A refused image exits 3, naming the image, scope and reason.
  /etc/containers/registries.d  containers-registries.d(5), or --registries.d: lookaside URLs
      (file, http, https) for simple signatures, use-sigstore-attachments for sigstore ones.
  insecureAcceptAnything, reject  supported.
  signedBy  GPGKeys (keyPath, keyPaths, keyData): OpenPGP simple signatures from the lookaside.
  sigstoreSigned  an ECDSA P-256 public key (keyPath, keyPaths, keyData, keyDatas): the signatures
      of the sha256-DIGEST.sig attachment in the image's repository, read only with
      use-sigstore-attachments: true. Fulcio/Rekor (keyless) and pki are not supported and refused.
  signedIdentity  every type (matchRepoDigestOrExact by default).
  oci, docker-archive, docker-daemon  carry no signatures: signedBy and sigstoreSigned refuse them.
  images verify  re-checks the signatures kept with each image against the policy in force; an
      install of a stored image checks them too.";

/// System containers: services shipped as OCI images, stored in OSTree,
/// checked out read-only with hardlinks, run by runc, supervised by systemd.
///
/// `pull` fetches an image (registry, docker-archive, OCI layout or Docker
/// engine) into a bare OSTree repo, one commit per layer, verifying every
/// digest. `images` lists, inspects, verifies, tags, deletes and prunes what
/// is stored. `install` checks an image out as a container (pulling it first
/// if needed) and writes the record that the systemd generator turns into
/// NAME.service; then `systemctl start NAME`. `containers update|rollback`
/// switch between two deployments. Every listing takes `--json`. There is no
/// daemon: the store is a directory, guarded by a lock under
/// /run/syscontainer/lock.
#[derive(Parser)]
#[command(name = "syscontainer", version, after_help = settings::after_help(EXIT_CODES))]
struct Cli {
    /// Resolve every path under this directory (tests, image builds).
    #[arg(long, global = true, env = "SYSCONTAINER_ROOT", default_value = "/")]
    root: PathBuf,
    /// Print debug messages.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Pull(images::PullArgs),
    /// List, inspect, verify, tag, delete and prune stored images.
    #[command(subcommand)]
    Images(images::ImagesCmd),
    #[command(flatten)]
    Container(containers::ContainerCmd),
    AutoUpdate(auto_update::AutoUpdateArgs),
    Apply(apply::ApplyArgs),
    Reconcile(apply::ReconcileArgs),
    /// Write the syscontainer(1) manual page into DIR (`make man`).
    #[command(hide = true)]
    GenerateMan {
        dir: PathBuf,
    },
}

fn run(settings: &Settings, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Pull(a) => images::pull(settings, a),
        Cmd::Images(c) => images::run(settings, c),
        Cmd::Container(c) => containers::run(c, settings),
        Cmd::AutoUpdate(a) => auto_update::run(settings, a),
        Cmd::Apply(a) => apply::apply(settings, a),
        Cmd::Reconcile(a) => apply::reconcile(settings, a),
        Cmd::GenerateMan { dir } => man::generate(&dir),
    }
}

/// The exit code for an error: that of the outermost library error in the
/// chain (which asks the errors it wraps). The CLI documents 3 and 4; every
/// other failure, the exec helper's runtime failure (5) included, is 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.chain().find_map(exit::of) {
        Some(c @ (exit::INVALID | exit::MISSING)) => c as u8,
        _ => exit::FAILURE as u8,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = settings::read_env();
    logging::init(
        "syscontainer",
        Style::Console,
        &settings::log_config(&env, cli.verbose),
    );
    log::debug!("environment: {}", env.describe());
    let settings = match Settings::new(&env, cli.root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&settings, cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
