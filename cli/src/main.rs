//! `syscontainer`: pull images into OSTree and run them as system containers
//! under systemd. Thin: parse arguments, call the library, map errors to the
//! documented exit codes.

mod containers;
mod images;
mod man;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use syscontainer::exit;
use syscontainer::paths::{self, Root};
use syscontainer::store::{Location, LocationError};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (network, repo, I/O, corruption found by `images verify`)
  2  usage error (bad arguments, or a bad ATOMIC_OSTREE_* value)
  3  invalid input: a hostile or malformed layer or image, a bad template or record
  4  image or deployment missing

Environment:
  SYSCONTAINER_ROOT            resolve every path under this directory (default /)
  ATOMIC_OSTREE_REPO           the OSTree repo (default /ostree/repo when it exists on the
                               checkout root's filesystem, else CHECKOUT_ROOT/.storage/ostree)
  ATOMIC_OSTREE_CHECKOUT_PATH  where install puts NAME.0, NAME.1 and the link NAME (default
                               /var/lib/containers/atomic); the record keeps it, so later
                               commands, the generator and syscontainer-exec follow the record
  SYSCONTAINER_MAX_LAYER_ENTRIES  refuse a layer with more tar entries (default 1000000)
  SYSCONTAINER_MAX_LAYER_BYTES    refuse a layer with more file content (default 64 GiB)
  SYSCONTAINER_SPEED_LIMIT     --speed-limit of pull, install, containers update (default 1000 B/s)
  SYSCONTAINER_SPEED_TIME      --speed-time, its window (default 30 s)";

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
#[command(name = "syscontainer", version, after_help = EXIT_CODES)]
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
    /// Write the syscontainer(1) manual page into DIR (`make man`).
    #[command(hide = true)]
    GenerateMan {
        dir: PathBuf,
    },
}

/// What the environment says, read once at the start and passed down.
pub(crate) struct Settings {
    pub root: Root,
    /// `ATOMIC_OSTREE_REPO`, `ATOMIC_OSTREE_CHECKOUT_PATH`.
    pub location: Location,
}

impl Settings {
    fn from_env(root: PathBuf) -> Result<Settings, LocationError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let location = Location::from_vars(
            std::env::var_os(paths::ENV_OSTREE_REPO),
            std::env::var_os(paths::ENV_CHECKOUT_PATH),
            &cwd,
        )?;
        Ok(Settings {
            root: Root::new(root),
            location,
        })
    }
}

fn run(settings: &Settings, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Pull(a) => images::pull(settings, a),
        Cmd::Images(c) => images::run(settings, c),
        Cmd::Container(c) => containers::run(c, settings),
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

struct Logger(log::LevelFilter);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            match r.level() {
                log::Level::Error | log::Level::Warn => eprintln!("syscontainer: {}", r.args()),
                _ => eprintln!("{}", r.args()),
            }
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    if log::set_boxed_logger(Box::new(Logger(level))).is_ok() {
        log::set_max_level(level);
    }
    let settings = match Settings::from_env(cli.root) {
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
