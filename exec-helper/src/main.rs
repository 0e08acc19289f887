//! `syscontainer-exec run|stop|cleanup NAME`: the ExecStart, ExecStop and
//! ExecStopPost of generated units. All logic is in `syscontainer::exec`.

use std::process::ExitCode;
use std::time::Duration;

use syscontainer::exec::{self, ExecError, EXIT_USAGE};
use syscontainer::paths::Root;

const USAGE: &str = "\
Usage: syscontainer-exec run|wait|stop|cleanup NAME

  run NAME      render the runc bundle of NAME from its record and active
                deployment, apply its tmpfiles, clear stale runc state, and
                exec runc (ExecStart=)
  wait NAME     wait until the container is running, or the unit's main
                process ($MAINPID) is gone (ExecStartPost=, so that
                `systemctl start` returns with the container running)
  stop NAME     send SIGTERM through runc and wait for the container to stop
                (ExecStop=; at most SYSCONTAINER_STOP_TIMEOUT seconds, default 90)
  cleanup NAME  delete the runc state and the rendered bundle (ExecStopPost=)

Environment: SYSCONTAINER_ROOT (default /), SYSCONTAINER_LOG (error, warn,
info, debug; default info).

Exit codes:
  0  success
  2  usage error
  3  invalid record, config or template
  4  record, deployment or runtime missing
  5  runtime (runc) or systemd-tmpfiles failure
";

/// Logs to stderr with `<N>` priority prefixes, which journald parses.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let pri = match r.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            eprintln!("<{pri}>syscontainer-exec: {}", r.args());
        }
    }
    fn flush(&self) {}
}

fn init_log() {
    let level = match std::env::var("SYSCONTAINER_LOG").as_deref() {
        Ok("error") => log::LevelFilter::Error,
        Ok("warn") => log::LevelFilter::Warn,
        Ok("debug") => log::LevelFilter::Debug,
        _ => log::LevelFilter::Info,
    };
    log::set_max_level(level);
    let _ = log::set_logger(&StderrLog);
}

/// Print the error chain once, on one line.
fn report(e: &ExecError) -> ExitCode {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    log::error!("{msg}");
    ExitCode::from(e.exit_code() as u8)
}

fn main() -> ExitCode {
    init_log();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, name) = match args.as_slice() {
        [h] if h == "--help" || h == "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [cmd, name] => (cmd.as_str(), name.as_str()),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let root = Root::from_env();
    let res = match cmd {
        "run" => exec::run(&root, name).map(|never| match never {}),
        "stop" => {
            let secs = std::env::var("SYSCONTAINER_STOP_TIMEOUT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(90);
            exec::stop(&root, name, Duration::from_secs(secs))
        }
        "cleanup" => exec::cleanup(&root, name),
        "wait" => {
            let main_pid = std::env::var("MAINPID").ok().and_then(|s| s.parse().ok());
            exec::wait_running(&root, name, main_pid)
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}
