//! `syscontainer-exec run|stop|cleanup NAME`: the ExecStart, ExecStop and
//! ExecStopPost of generated units (and `wait`, `wait-healthy`, `health`). All logic is in `syscontainer::exec`.

mod settings;

use std::process::ExitCode;

use syscontainer::exec::{self, ExecError, EXIT_USAGE};
use syscontainer::health_check;
use syscontainer::logging::{self, Style};

use settings::Settings;

const USAGE: &str = "\
Usage: syscontainer-exec run|wait|wait-healthy|health|stop|cleanup NAME

  run NAME      render the runc bundle of NAME from its record and active
                deployment, apply its tmpfiles, clear stale runc state, and
                exec runc (ExecStart=)
  wait NAME     wait until the container is running, or the unit's main
                process ($MAINPID) is gone (ExecStartPost=, so that
                `systemctl start` returns with the container running)
  wait-healthy NAME
                with a health check: run it until it passes, at most the
                start period + retries x interval (ExecStartPost= after wait,
                so that `systemctl start` returns with the container healthy)
  health NAME   run the health check once, keep its state in
                /run/syscontainer/health/NAME.json, report to NAME.service's
                journal, and after `retries` failures in a row apply
                onFailure (kill: SIGKILL through runc) (NAME-health.service)
  stop NAME     send SIGTERM through runc and wait for the container to stop
                (ExecStop=; at most SYSCONTAINER_STOP_TIMEOUT seconds, default 90)
  cleanup NAME  delete the runc state and the rendered bundle (ExecStopPost=)";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the health check failed (health, wait-healthy)
  2  usage error
  3  invalid record, config or template
  4  record, deployment or runtime missing
  5  runtime (runc) or systemd-tmpfiles failure
";

/// The whole `--help`: usage, the variables of [`settings::VARS`] (logs go
/// to stderr, with `<N>` priority prefixes, by default), the exit codes.
fn usage() -> String {
    format!(
        "{USAGE}\n\n{}\n\n{EXIT_CODES}",
        syscontainer::settings::help(settings::VARS)
    )
}

/// Print the error chain once, on one line.
fn report(e: &ExecError) -> ExitCode {
    report_chain(e, e.exit_code())
}

fn report_chain(e: &dyn std::error::Error, code: i32) -> ExitCode {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    log::error!("{msg}");
    ExitCode::from(code as u8)
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    logging::init("syscontainer-exec", Style::Priority, &settings.log);
    log::debug!("environment: {}", settings.env.describe());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, name) = match args.as_slice() {
        [h] if h == "--help" || h == "-h" => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        [cmd, name] => (cmd.as_str(), name.as_str()),
        _ => {
            eprint!("{}", usage());
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let root = &settings.root;
    let health = match cmd {
        "health" => Some(health_check::health(root, name).map(drop)),
        "wait-healthy" => Some(health_check::wait_healthy(root, name, settings.main_pid)),
        _ => None,
    };
    if let Some(res) = health {
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report_chain(&e, e.exit_code()),
        };
    }
    let res = match cmd {
        "run" => exec::run(root, name).map(|never| match never {}),
        "stop" => exec::stop(root, name, settings.stop_timeout),
        "cleanup" => exec::cleanup(root, name),
        "wait" => exec::wait_running(root, name, settings.main_pid),
        _ => {
            eprint!("{}", usage());
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}
