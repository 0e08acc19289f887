//! syscontainer-generator: a systemd generator (systemd.generator(7)).
//!
//! Usage: syscontainer-generator [--dry-run] NORMAL_DIR [EARLY_DIR LATE_DIR]
//!
//! Reads container records only (never /var, OSTree, the network or D-Bus)
//! and writes NAME.service plus TARGET.wants/ symlinks into NORMAL_DIR. A bad
//! record is logged and skipped (it gets a unit that fails with the reason),
//! the others are still generated, and the exit code is then 1.

mod settings;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use syscontainer::generate::{self, Message};
use syscontainer::logging::{self, Style};

use settings::Settings;

const IDENT: &str = "syscontainer-generator";

const USAGE: &str = "\
Usage: syscontainer-generator [--dry-run] NORMAL_DIR [EARLY_DIR LATE_DIR]

systemd generator for system containers. Reads records from
/etc/syscontainer/containers, /run/syscontainer/containers and
/usr/lib/syscontainer/containers (earlier wins; a symlink to /dev/null masks)
and writes NAME.service and TARGET.wants/NAME.service into NORMAL_DIR.

  --dry-run   print the units to stdout instead of writing them
  -h, --help  show this help";

const EXIT_STATUS: &str = "\
Exit status: 0 all records generated, 1 at least one record failed (the
others were generated), 2 usage error.";

/// The whole `--help`: usage, the variables of [`settings::VARS`] (logs go to
/// /dev/kmsg when it is writable, else to stderr), the exit status.
fn usage() -> String {
    format!(
        "{USAGE}\n\n{}\n\n{EXIT_STATUS}",
        syscontainer::settings::help(settings::VARS)
    )
}

enum Mode {
    Write(PathBuf),
    DryRun,
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    let mut dry = false;
    let mut dirs = Vec::new();
    for a in args {
        match a.as_str() {
            "--dry-run" => dry = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option '{s}'")),
            s => dirs.push(PathBuf::from(s)),
        }
    }
    match (dry, dirs.len()) {
        (true, 0 | 1 | 3) => Ok(Mode::DryRun),
        (false, 1 | 3) => Ok(Mode::Write(dirs.swap_remove(0))),
        (false, 0) => Err("missing NORMAL_DIR".into()),
        _ => Err("expected 1 or 3 directories".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse_args(&args) {
        Ok(m) => m,
        Err(e) if e.is_empty() => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{IDENT}: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let settings = Settings::from_env();
    logging::init(IDENT, Style::Ident, &settings.log);
    log::debug!("environment: {}", settings.env.describe());
    let mut writer = generate::Writer::default();
    let mut write_error = None;
    let stdout = std::io::stdout();
    let failed = generate::generate(&settings.root, |g| {
        for m in &g.messages {
            match m {
                Message::Warn(s) => log::warn!("{s}"),
                Message::Error(s) => log::error!("{s}"),
            }
        }
        match &mode {
            Mode::DryRun => {
                let _ = stdout
                    .lock()
                    .write_all(generate::dry_run(&g.outputs).as_bytes());
            }
            Mode::Write(dir) => {
                if let Err(e) = writer.write(dir, &g.outputs) {
                    log::error!("cannot write units to {}: {e}", dir.display());
                    write_error = Some(e);
                }
            }
        }
    });
    if failed > 0 {
        log::error!("{failed} record(s) failed; the others were generated");
        return ExitCode::from(1);
    }
    if write_error.is_some() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
