//! Logging for the generator: `/dev/kmsg` as `<PRI>ident[PID]: msg`, the form
//! the kernel log and journald understand, with stderr as the fallback
//! (`SYSCONTAINER_LOG=stderr` forces it, for tests).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct KmsgLogger {
    ident: &'static str,
    kmsg: Option<Mutex<File>>,
}

fn priority(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Log for KmsgLogger {
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
        let _ = writeln!(std::io::stderr(), "{}: {}", self.ident, r.args());
    }

    fn flush(&self) {}
}

/// Install the logger. Uses `/dev/kmsg` when it can be opened for writing
/// and `SYSCONTAINER_LOG` is not `stderr`.
pub fn init(ident: &'static str, level: LevelFilter) {
    let force_stderr = std::env::var_os("SYSCONTAINER_LOG").is_some_and(|v| v == "stderr");
    let kmsg = if force_stderr {
        None
    } else {
        OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .ok()
            .map(Mutex::new)
    };
    if log::set_boxed_logger(Box::new(KmsgLogger { ident, kmsg })).is_ok() {
        log::set_max_level(level);
    }
}
