//! Logging for the three binaries: the one meaning of `SYSCONTAINER_LOG`,
//! and the logger they install.
//!
//! `SYSCONTAINER_LOG` is a comma-separated list of tokens, each a level
//! (`error`, `warn`, `info`, `debug`, `trace`) or a destination (`stderr`,
//! `kmsg`): `stderr`, `debug`, `stderr,debug`. A later token wins over an
//! earlier one of its kind; what no token sets keeps the binary's default.
//! An unknown token is ignored, with one warning on stderr: a binary never
//! refuses to run over it (the generator must never hold up a boot).
//!
//! `kmsg` writes `<PRI>ident[PID]: msg` to `/dev/kmsg`, the form the kernel
//! log and journald understand (zram-generator's `kernlog.rs`), one write per
//! message; when `/dev/kmsg` cannot be opened or written, the message goes to
//! stderr. `stderr` writes in the binary's [`Style`].

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The variable.
pub const ENV: &str = "SYSCONTAINER_LOG";

/// `--help`'s line for [`ENV`], the same in every binary, ending with the
/// binary's defaults: `log_meaning!("default info, stderr")`.
#[macro_export]
macro_rules! log_meaning {
    ($defaults:literal) => {
        concat!(
            "level error|warn|info|debug|trace and/or destination stderr|kmsg, comma-separated; ",
            $defaults
        )
    };
}

/// The tokens, for messages.
const TOKENS: &str = "error, warn, info, debug, trace, stderr or kmsg";

/// Where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    /// `/dev/kmsg`, else stderr.
    Kmsg,
}

/// How a message looks on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `ident: msg` (the generator).
    Ident,
    /// `<N>ident: msg`: journald takes the priority from the prefix (the
    /// exec helper, whose stderr is the unit's).
    Priority,
    /// `ident: msg` for errors and warnings, the bare message for the rest
    /// (the CLI, for a person at a terminal).
    Console,
}

impl Style {
    /// One line of stderr, without the newline.
    pub fn line(self, ident: &str, level: Level, msg: &dyn std::fmt::Display) -> String {
        match self {
            Style::Ident => format!("{ident}: {msg}"),
            Style::Priority => format!("<{}>{ident}: {msg}", priority(level)),
            Style::Console => match level {
                Level::Error | Level::Warn => format!("{ident}: {msg}"),
                _ => msg.to_string(),
            },
        }
    }
}

/// What `SYSCONTAINER_LOG` asks for, with the binary's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: LevelFilter,
    pub destination: Destination,
    /// The warning about unknown tokens, printed once by [`init`].
    pub warning: Option<String>,
}

impl LogConfig {
    /// Parse the value of [`ENV`] (unset or empty: the defaults).
    pub fn parse(
        value: Option<&OsStr>,
        default_level: LevelFilter,
        default_destination: Destination,
    ) -> LogConfig {
        let mut c = LogConfig {
            level: default_level,
            destination: default_destination,
            warning: None,
        };
        let Some(value) = value else {
            return c;
        };
        let text = value.to_string_lossy();
        let mut unknown = Vec::new();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token {
                "error" => c.level = LevelFilter::Error,
                "warn" => c.level = LevelFilter::Warn,
                "info" => c.level = LevelFilter::Info,
                "debug" => c.level = LevelFilter::Debug,
                "trace" => c.level = LevelFilter::Trace,
                "stderr" => c.destination = Destination::Stderr,
                "kmsg" => c.destination = Destination::Kmsg,
                t => unknown.push(format!("'{t}'")),
            }
        }
        if !unknown.is_empty() {
            c.warning = Some(format!(
                "{ENV}='{text}': ignoring {} (the tokens are {TOKENS})",
                unknown.join(", ")
            ));
        }
        c
    }
}

fn priority(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

struct Logger {
    ident: &'static str,
    style: Style,
    kmsg: Option<Mutex<File>>,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if let Some(k) = &self.kmsg {
            // One write() per message: the kernel takes each as a record.
            let line = format!(
                "<{}>{}[{}]: {}\n",
                priority(r.level()),
                self.ident,
                std::process::id(),
                r.args()
            );
            if let Ok(mut f) = k.lock() {
                if f.write_all(line.as_bytes()).is_ok() {
                    return;
                }
            }
        }
        let line = self.style.line(self.ident, r.level(), r.args());
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    fn flush(&self) {}
}

/// Install the logger of `config` and print its warning, if any, on stderr
/// (whatever the destination and level).
pub fn init(ident: &'static str, style: Style, config: &LogConfig) {
    if let Some(w) = &config.warning {
        let _ = writeln!(std::io::stderr(), "{}", style.line(ident, Level::Warn, w));
    }
    let kmsg = match config.destination {
        Destination::Stderr => None,
        Destination::Kmsg => OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .ok()
            .map(Mutex::new),
    };
    if log::set_boxed_logger(Box::new(Logger { ident, style, kmsg })).is_ok() {
        log::set_max_level(config.level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Option<&str>) -> LogConfig {
        LogConfig::parse(v.map(OsStr::new), LevelFilter::Info, Destination::Kmsg)
    }

    fn got(v: &str) -> (LevelFilter, Destination) {
        let c = parse(Some(v));
        assert_eq!(c.warning, None, "{v}");
        (c.level, c.destination)
    }

    #[test]
    fn unset_and_empty_keep_the_defaults() {
        for v in [None, Some(""), Some(","), Some(" , ")] {
            let c = parse(v);
            assert_eq!(
                (c.level, c.destination, c.warning),
                (LevelFilter::Info, Destination::Kmsg, None),
                "{v:?}"
            );
        }
    }

    #[test]
    fn levels_and_destinations_combine() {
        use Destination::*;
        use LevelFilter::*;
        assert_eq!(got("stderr"), (Info, Stderr));
        assert_eq!(got("debug"), (Debug, Kmsg));
        assert_eq!(got("stderr,debug"), (Debug, Stderr));
        assert_eq!(got(" debug , stderr "), (Debug, Stderr));
        assert_eq!(got("error"), (Error, Kmsg));
        assert_eq!(got("warn"), (Warn, Kmsg));
        assert_eq!(got("trace"), (Trace, Kmsg));
        // A later token wins over an earlier one of its kind.
        assert_eq!(got("stderr,kmsg,error,info"), (Info, Kmsg));
        assert_eq!(
            LogConfig::parse(
                Some(OsStr::new("kmsg")),
                LevelFilter::Warn,
                Destination::Stderr
            )
            .destination,
            Kmsg
        );
    }

    #[test]
    fn unknown_tokens_are_ignored_with_one_warning() {
        let c = parse(Some("stderr,loud,DEBUG"));
        assert_eq!(
            (c.level, c.destination),
            (LevelFilter::Info, Destination::Stderr)
        );
        assert_eq!(
            c.warning.as_deref(),
            Some(
                "SYSCONTAINER_LOG='stderr,loud,DEBUG': ignoring 'loud', 'DEBUG' \
                 (the tokens are error, warn, info, debug, trace, stderr or kmsg)"
            )
        );
    }

    #[test]
    fn styles() {
        let m = "msg";
        assert_eq!(Style::Ident.line("gen", Level::Info, &m), "gen: msg");
        assert_eq!(Style::Priority.line("ex", Level::Warn, &m), "<4>ex: msg");
        assert_eq!(Style::Priority.line("ex", Level::Debug, &m), "<7>ex: msg");
        assert_eq!(Style::Console.line("sc", Level::Error, &m), "sc: msg");
        assert_eq!(Style::Console.line("sc", Level::Info, &m), "msg");
    }
}
