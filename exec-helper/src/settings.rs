//! What the exec helper reads from the environment, once, at its start (see
//! `syscontainer::settings`).

use std::time::Duration;

use syscontainer::logging::{self, Destination, LogConfig};
use syscontainer::paths::{self, Root};
use syscontainer::settings::{Fragments, Var};

/// `stop` waits at most this long by default.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(90);

const STOP_TIMEOUT: &str = "SYSCONTAINER_STOP_TIMEOUT";
const MAINPID: &str = "MAINPID";

/// Every variable the exec helper reads; `--help` lists them.
pub const VARS: &[Var] = &[
    Var {
        name: paths::ROOT_ENV,
        meaning: "prefix every path with this directory (default /)",
    },
    Var {
        name: logging::ENV,
        meaning: syscontainer::log_meaning!("default info, stderr"),
    },
    Var {
        name: STOP_TIMEOUT,
        meaning: "seconds that stop waits for the container to stop (default 90)",
    },
    Var {
        name: MAINPID,
        meaning: "the unit's main process, set by systemd; wait stops waiting when it is gone",
    },
];

/// What the exec helper was told, read once.
pub struct Settings {
    pub root: Root,
    /// Default: stderr, info.
    pub log: LogConfig,
    /// `SYSCONTAINER_STOP_TIMEOUT` in seconds; not a number: the default.
    pub stop_timeout: Duration,
    /// `MAINPID`; not a number: none.
    pub main_pid: Option<i32>,
    /// The raw values, for a debug message.
    pub env: Fragments,
}

impl Settings {
    pub fn from_env() -> Settings {
        Settings::from_fragments(Fragments::read(VARS, |k| std::env::var_os(k)))
    }

    fn from_fragments(env: Fragments) -> Settings {
        Settings {
            root: Root::from_var(env.get(paths::ROOT_ENV)),
            log: LogConfig::parse(
                env.get(logging::ENV),
                log::LevelFilter::Info,
                Destination::Stderr,
            ),
            stop_timeout: env
                .str(STOP_TIMEOUT)
                .and_then(|s| s.parse().ok())
                .map_or(DEFAULT_STOP_TIMEOUT, Duration::from_secs),
            main_pid: env.str(MAINPID).and_then(|s| s.parse().ok()),
            env,
        }
    }
}
