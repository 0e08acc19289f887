//! What the CLI reads from the environment, once, at its start, and passes
//! down (see `syscontainer::settings`): the fragments are the environment,
//! the inputs add the command line (`--root` and `--verbose` win over their
//! variables), and [`Settings`] holds the values parsed.
//!
//! clap reads three of the variables itself, as the defaults of options:
//! `SYSCONTAINER_ROOT` (`--root`), `SYSCONTAINER_SPEED_LIMIT` and
//! `SYSCONTAINER_SPEED_TIME` (`--speed-limit`, `--speed-time`). They are in
//! [`VARS`] too, so that `--help` names them with the rest; a test checks
//! that every variable clap reads is there.

use std::path::PathBuf;

use syscontainer::deploy::store::StoreSource;
use syscontainer::logging::{self, Destination, LogConfig};
use syscontainer::paths::{self, Root};
use syscontainer::settings::{Fragments, Var};
use syscontainer::source::{auth, SourceOptions};
use syscontainer::store::import::ImportLimits;
use syscontainer::store::{CheckoutMethod, Location, LocationError, Store, StoreError};

const DOCKER_HOST: &str = "DOCKER_HOST";
const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
const HOME: &str = "HOME";
const MAINPID: &str = "MAINPID";
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Every variable the CLI reads; `--help` and syscontainer(1) list them.
pub const VARS: &[Var] = &[
    Var {
        name: paths::ROOT_ENV,
        meaning: "resolve every path under this directory (default /; --root wins)",
    },
    Var {
        name: logging::ENV,
        meaning: syscontainer::log_meaning!("default info (debug with -v), stderr"),
    },
    Var {
        name: paths::ENV_OSTREE_REPO,
        meaning: "the OSTree repo (default /ostree/repo when it exists on the checkout root's \
                  filesystem, else CHECKOUT_ROOT/.storage/ostree)",
    },
    Var {
        name: paths::ENV_CHECKOUT_PATH,
        meaning: "where install puts NAME.0, NAME.1 and the link NAME (default \
                  /var/lib/containers/atomic); the record keeps it, so later commands, the \
                  generator and syscontainer-exec follow the record",
    },
    Var {
        name: paths::ENV_CHECKOUT,
        meaning: "libostree: check deployments out with libostree's checkout_at instead of \
                  our hardlink walk",
    },
    Var {
        name: paths::ENV_MAX_LAYER_ENTRIES,
        meaning: "refuse a layer with more tar entries (default 1000000)",
    },
    Var {
        name: paths::ENV_MAX_LAYER_BYTES,
        meaning: "refuse a layer with more file content (default 64 GiB)",
    },
    Var {
        name: paths::ENV_MAX_SPARSE_RATIO,
        meaning: "declared bytes of sparse files a layer may hold per compressed byte, beyond \
                  256 MiB (default 1000)",
    },
    Var {
        name: "SYSCONTAINER_SPEED_LIMIT",
        meaning: "the default of --speed-limit (pull, install, update): 1000 B/s",
    },
    Var {
        name: "SYSCONTAINER_SPEED_TIME",
        meaning: "the default of --speed-time, its window: 30 s",
    },
    Var {
        name: DOCKER_HOST,
        meaning: "the engine of docker: sources, unix:///PATH (default /var/run/docker.sock)",
    },
    Var {
        name: XDG_RUNTIME_DIR,
        meaning: "auth files without --authfile: $XDG_RUNTIME_DIR/containers/auth.json,",
    },
    Var {
        name: XDG_CONFIG_HOME,
        meaning: "then $XDG_CONFIG_HOME/containers/auth.json (default ~/.config),",
    },
    Var {
        name: HOME,
        meaning: "then ~/.docker/config.json",
    },
    Var {
        name: MAINPID,
        meaning: "apply --confirm (the unit's ExecStartPost=): the main process that must stay up",
    },
    Var {
        name: NOTIFY_SOCKET,
        meaning:
            "apply (the unit's ExecStartPre=): where a failed first deployment says why (STATUS=)",
    },
];

/// `--help`'s epilogue: the exit codes, then [`VARS`].
pub fn after_help(exit_codes: &str) -> String {
    format!("{exit_codes}\n\n{}", syscontainer::settings::help(VARS))
}

/// The environment, read once.
pub fn read_env() -> Fragments {
    Fragments::read(VARS, |k| std::env::var_os(k))
}

/// Logging: stderr, info; `--verbose` means debug, whatever the variable says.
pub fn log_config(env: &Fragments, verbose: bool) -> LogConfig {
    let mut c = LogConfig::parse(
        env.get(logging::ENV),
        log::LevelFilter::Info,
        Destination::Stderr,
    );
    if verbose {
        c.level = log::LevelFilter::Debug;
    }
    c
}

/// What the environment and the command line say, read once at the start
/// and passed down.
pub(crate) struct Settings {
    pub root: Root,
    /// `ATOMIC_OSTREE_REPO`, `ATOMIC_OSTREE_CHECKOUT_PATH`.
    pub location: Location,
    /// `SYSCONTAINER_CHECKOUT`.
    pub checkout: CheckoutMethod,
    /// `SYSCONTAINER_MAX_LAYER_*`, `SYSCONTAINER_MAX_SPARSE_RATIO`.
    pub import_limits: ImportLimits,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// The auth files read without `--authfile`, from `XDG_RUNTIME_DIR`,
    /// `XDG_CONFIG_HOME` and `HOME`.
    pub auth_files: Vec<PathBuf>,
    /// `MAINPID`, set by systemd for `ExecStartPost=`; not a number: none.
    pub main_pid: Option<i32>,
    /// `NOTIFY_SOCKET`, set by systemd.
    pub notify_socket: Option<String>,
}

impl Settings {
    /// From the environment and `root` (`--root`, or its variable as clap
    /// read it).
    pub fn new(env: &Fragments, root: PathBuf) -> Result<Settings, LocationError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let location = Location::from_vars(
            env.get(paths::ENV_OSTREE_REPO).map(Into::into),
            env.get(paths::ENV_CHECKOUT_PATH).map(Into::into),
            &cwd,
        )?;
        Ok(Settings {
            root: Root::new(root),
            location,
            checkout: CheckoutMethod::from_var(env.get(paths::ENV_CHECKOUT)),
            import_limits: ImportLimits::from_vars(|k| env.str(k)),
            docker_host: env.str(DOCKER_HOST).map(String::from),
            auth_files: auth::default_auth_files(|k| env.get(k).map(Into::into)),
            main_pid: env.str(MAINPID).and_then(|p| p.parse().ok()),
            notify_socket: env.str(NOTIFY_SOCKET).map(String::from),
        })
    }

    /// The image store, with these settings.
    pub fn store(&self) -> Result<Store, StoreError> {
        Ok(Store::open_with(&self.root, &self.location)?
            .with_checkout_method(self.checkout)
            .with_import_limits(self.import_limits))
    }

    /// The image store as deploy's source of images.
    pub fn store_source(&self) -> Result<StoreSource, syscontainer::deploy::DeployError> {
        Ok(StoreSource::open(&self.root, &self.location)?.with_checkout_method(self.checkout))
    }

    /// The options of every pull, before the command line's.
    pub fn source_options(&self) -> SourceOptions {
        let mut o = SourceOptions::new(self.root.clone());
        o.auth_files = self.auth_files.clone();
        o.docker_host = self.docker_host.clone();
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every `env = ...` of an argument, in every subcommand.
    fn clap_vars(cmd: &clap::Command, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if let Some(e) = a.get_env() {
                out.push(e.to_string_lossy().into_owned());
            }
        }
        for s in cmd.get_subcommands() {
            clap_vars(s, out);
        }
    }

    #[test]
    fn every_variable_clap_reads_is_in_the_table() {
        let mut vars = Vec::new();
        clap_vars(&crate::Cli::command(), &mut vars);
        vars.sort();
        vars.dedup();
        assert_eq!(
            vars,
            [
                "SYSCONTAINER_ROOT",
                "SYSCONTAINER_SPEED_LIMIT",
                "SYSCONTAINER_SPEED_TIME"
            ]
        );
        for v in &vars {
            assert!(VARS.iter().any(|t| t.name == v), "{v} is not in VARS");
        }
    }

    #[test]
    fn settings_from_the_environment() {
        let set = [
            ("ATOMIC_OSTREE_REPO", "/srv/repo"),
            ("SYSCONTAINER_CHECKOUT", "libostree"),
            ("SYSCONTAINER_MAX_LAYER_ENTRIES", "10"),
            ("DOCKER_HOST", "unix:///tmp/d.sock"),
            ("HOME", "/home/u"),
        ];
        let env = Fragments::read(VARS, |k| {
            set.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
        });
        let s = Settings::new(&env, PathBuf::from("/tmp/r")).unwrap();
        assert_eq!(s.root, Root::new("/tmp/r"));
        assert_eq!(s.location.repo, Some(PathBuf::from("/srv/repo")));
        assert_eq!(s.checkout, CheckoutMethod::Libostree);
        assert_eq!(s.import_limits.max_entries, 10);
        assert_eq!(
            s.import_limits.max_content_bytes,
            ImportLimits::default().max_content_bytes
        );
        assert_eq!(s.docker_host.as_deref(), Some("unix:///tmp/d.sock"));
        assert_eq!(
            s.auth_files,
            [
                PathBuf::from("/home/u/.config/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json")
            ]
        );
        let o = s.source_options();
        assert_eq!(o.auth_files, s.auth_files);
        assert_eq!(o.docker_host, s.docker_host);

        let none = Settings::new(&Fragments::read(VARS, |_| None), PathBuf::from("/")).unwrap();
        assert_eq!(none.checkout, CheckoutMethod::Hardlink);
        assert_eq!(none.import_limits, ImportLimits::default());
        assert_eq!(none.docker_host, None);
        assert!(none.auth_files.is_empty());
    }

    #[test]
    fn verbose_wins_over_the_level_of_the_variable() {
        let env = Fragments::read(VARS, |k| (k == logging::ENV).then(|| "error".into()));
        assert_eq!(log_config(&env, false).level, log::LevelFilter::Error);
        assert_eq!(log_config(&env, true).level, log::LevelFilter::Debug);
        let none = Fragments::read(VARS, |_| None);
        let c = log_config(&none, false);
        assert_eq!(
            (c.level, c.destination),
            (log::LevelFilter::Info, Destination::Stderr)
        );
    }
}
