//! What the generator reads from the environment, once, at its start (see
//! `syscontainer::settings`). systemd runs generators with an almost empty
//! environment; both variables are for tests and debugging.

use syscontainer::logging::{self, Destination, LogConfig};
use syscontainer::paths::{self, Root};
use syscontainer::settings::{Fragments, Var};

/// Every variable the generator reads; `--help` lists them.
pub const VARS: &[Var] = &[
    Var {
        name: paths::ROOT_ENV,
        meaning: "prefix every path read with this directory (default /)",
    },
    Var {
        name: logging::ENV,
        meaning: syscontainer::log_meaning!(
            "default info, kmsg (stderr when /dev/kmsg is not writable)"
        ),
    },
];

/// What the generator was told, read once.
pub struct Settings {
    pub root: Root,
    /// Default: `/dev/kmsg` when it can be opened for writing, else stderr;
    /// info.
    pub log: LogConfig,
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
                Destination::Kmsg,
            ),
            env,
        }
    }
}
