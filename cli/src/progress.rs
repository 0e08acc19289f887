//! The console side of a pull: a bar per layer on a terminal (stderr), plain
//! lines otherwise. The store reports through [`Progress`].

use std::collections::HashMap;
use std::io::{self, IsTerminal};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};
use syscontainer::imgref::short_id;
use syscontainer::source::{Descriptor, ResolvedImage};
use syscontainer::store::{ImportStats, Progress, PullReport};

enum Mode {
    Quiet,
    Plain,
    Bars(MultiProgress),
}

/// Progress for the CLI: a bar per layer on a terminal (stderr), plain lines
/// otherwise, nothing when quiet.
pub struct ConsoleProgress {
    mode: Mode,
    total: usize,
    bars: HashMap<usize, ProgressBar>,
}

impl ConsoleProgress {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::new())
        } else {
            Mode::Plain
        };
        ConsoleProgress {
            mode,
            total: 0,
            bars: HashMap::new(),
        }
    }

    fn line(&self, s: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{s}"),
            Mode::Bars(m) => {
                let _ = m.println(s);
            }
        }
    }
}

impl Progress for ConsoleProgress {
    fn resolved(&mut self, img: &ResolvedImage) {
        self.total = img.layers.len();
        self.line(&format!(
            "Pulling {} ({} layers, manifest {})",
            img.name,
            img.layers.len(),
            img.manifest_digest
        ));
    }

    fn layer_skipped(&mut self, idx: usize, d: &Descriptor) {
        self.line(&format!(
            "Layer {}/{} {}: already present",
            idx + 1,
            self.total,
            short_id(&d.digest)
        ));
    }

    fn layer_started(&mut self, idx: usize, d: &Descriptor) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!(
                "Layer {}/{} {}: fetching {}",
                idx + 1,
                self.total,
                short_id(&d.digest),
                HumanBytes(d.size)
            ),
            Mode::Bars(m) => {
                let pb = m.add(ProgressBar::new(d.size));
                pb.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                pb.set_prefix(format!(
                    "Layer {}/{} {}",
                    idx + 1,
                    self.total,
                    short_id(&d.digest)
                ));
                self.bars.insert(idx, pb);
            }
        }
    }

    fn layer_bytes(&mut self, idx: usize, read: u64) {
        if let Some(pb) = self.bars.get(&idx) {
            pb.set_position(read);
        }
    }

    fn layer_done(&mut self, idx: usize, d: &Descriptor, s: &ImportStats) {
        let mut msg = format!(
            "{} files, {} dirs, {} symlinks, {} hardlinks, {} whiteouts",
            s.files, s.dirs, s.symlinks, s.hardlinks, s.whiteouts
        );
        if s.dropped_special > 0 {
            msg.push_str(&format!(
                "; {} device nodes/FIFOs dropped",
                s.dropped_special
            ));
        }
        match self.bars.remove(&idx) {
            Some(pb) => pb.finish_with_message(msg),
            None => self.line(&format!(
                "Layer {}/{} {}: stored ({msg})",
                idx + 1,
                self.total,
                short_id(&d.digest)
            )),
        }
    }

    fn finished(&mut self, r: &PullReport) {
        if r.up_to_date {
            self.line(&format!(
                "Image {} is up to date ({})",
                r.name,
                short_id(&r.image_id)
            ));
        } else {
            self.line(&format!(
                "Pulled {} ({}): {} of {} layers fetched, {}",
                r.name,
                short_id(&r.image_id),
                r.layers_fetched,
                r.layers_total,
                HumanBytes(r.bytes_fetched)
            ));
        }
    }
}
