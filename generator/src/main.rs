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
    let stdout = std::io::stdout();
    let mut out = match &mode {
        Mode::DryRun => None,
        Mode::Write(dir) => Some(Pipeline::start(dir.clone())),
    };
    let failed = generate::generate(&settings.root, |g| {
        for m in &g.messages {
            match m {
                Message::Warn(s) => log::warn!("{s}"),
                Message::Error(s) => log::error!("{s}"),
            }
        }
        match &mut out {
            None => {
                let _ = stdout
                    .lock()
                    .write_all(generate::dry_run(&g.outputs).as_bytes());
            }
            Some(p) => p.push(g.outputs),
        }
    });
    let write_error = out.map(Pipeline::finish).is_some_and(|ok| !ok);
    if failed > 0 {
        log::error!("{failed} record(s) failed; the others were generated");
        return ExitCode::from(1);
    }
    if write_error {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Records per batch handed to the writing thread.
const BATCH: usize = 32;

/// The units are written by a second thread while this one reads the next
/// records: reading (listing, `stat`, parsing) and writing (creating files
/// in the output directory) are both mostly the kernel's work, and overlap
/// on a machine with two cores. The outputs go in batches (one wake-up per
/// batch, not per record) through a bounded channel, so memory does not
/// grow with the number of records; when the writer is behind (the channel
/// is full), this thread writes the batch itself, so both stay busy. The
/// files are independent of each other: the order in which they are made
/// does not matter. With fewer than [`BATCH`] records there is no thread.
struct Pipeline {
    dir: PathBuf,
    /// This thread's own writes.
    writer: generate::Writer,
    ok: bool,
    /// Each record's outputs apart: a failed write loses only its own.
    batch: Vec<Vec<generate::Output>>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<Vec<generate::Output>>>>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl Pipeline {
    fn start(dir: PathBuf) -> Pipeline {
        Pipeline {
            dir,
            writer: generate::Writer::default(),
            ok: true,
            batch: Vec::new(),
            tx: None,
            thread: None,
        }
    }

    fn push(&mut self, outputs: Vec<generate::Output>) {
        self.batch.push(outputs);
        if self.batch.len() < BATCH {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if self.tx.is_none() {
            self.spawn();
        }
        let rest = match &self.tx {
            Some(tx) => match tx.try_send(batch) {
                Ok(()) => return,
                Err(std::sync::mpsc::TrySendError::Full(b))
                | Err(std::sync::mpsc::TrySendError::Disconnected(b)) => b,
            },
            None => batch,
        };
        self.write(&rest);
    }

    /// The writing thread (when it cannot be made, this one writes all).
    fn spawn(&mut self) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<generate::Output>>>(2);
        let dir = self.dir.clone();
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                let mut writer = generate::Writer::default();
                let mut ok = true;
                for batch in rx {
                    ok &= write(&mut writer, &dir, &batch);
                }
                ok
            });
        if let Ok(t) = thread {
            self.tx = Some(tx);
            self.thread = Some(t);
        }
    }

    fn write(&mut self, batch: &[Vec<generate::Output>]) {
        self.ok &= write(&mut self.writer, &self.dir, batch);
    }

    /// Write what is left, wait for the writer; false when a write failed.
    fn finish(mut self) -> bool {
        let rest = std::mem::take(&mut self.batch);
        self.write(&rest);
        drop(self.tx.take());
        let theirs = self.thread.take().is_none_or(|t| t.join().unwrap_or(false));
        self.ok && theirs
    }
}

/// Write each record's outputs, logging a failure (the other records are
/// still written: each record's units stand on their own).
fn write(
    writer: &mut generate::Writer,
    dir: &std::path::Path,
    batch: &[Vec<generate::Output>],
) -> bool {
    let mut ok = true;
    for outputs in batch {
        if let Err(e) = writer.write(dir, outputs) {
            log::error!("cannot write units to {}: {e}", dir.display());
            ok = false;
        }
    }
    ok
}
