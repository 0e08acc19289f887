//! The console side of a pull: a bar per layer on a terminal (stderr), under
//! a bar for the whole image (a pull fetches a few layers at once), plain
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
    /// The whole image's bar (bars only).
    image: Option<ProgressBar>,
    /// Compressed bytes read so far, by layer; skipped layers count whole.
    read: HashMap<usize, u64>,
}

/// The compressed bytes of layers `read` so far, out of all of them.
fn image_position(read: &HashMap<usize, u64>) -> u64 {
    read.values().sum()
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
            image: None,
            read: HashMap::new(),
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
        if let Mode::Bars(m) = &self.mode {
            let pb = m.add(ProgressBar::new(img.layers.iter().map(|l| l.size).sum()));
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30.green/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_prefix(format!("Image ({} layers)", img.layers.len()));
            self.image = Some(pb);
        }
    }

    fn layer_skipped(&mut self, idx: usize, d: &Descriptor) {
        self.read.insert(idx, d.size);
        if let Some(pb) = &self.image {
            pb.set_position(image_position(&self.read));
        }
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
        self.read.insert(idx, read);
        if let Some(pb) = &self.image {
            pb.set_position(image_position(&self.read));
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
        if let Some(pb) = self.image.take() {
            pb.finish();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::ProgressDrawTarget;

    fn desc(n: u8, size: u64) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size,
        }
    }

    #[test]
    fn the_image_bar_adds_up_the_layers_in_flight_and_skipped() {
        let layers = vec![desc(0, 1000), desc(1, 300), desc(2, 200)];
        let img = ResolvedImage {
            name: "example.com/x:latest".into(),
            manifest_raw: Vec::new(),
            manifest_digest: format!("sha256:{}", "ab".repeat(32)),
            config_raw: Vec::new(),
            config: desc(9, 10),
            layers: layers.clone(),
            diff_ids: Vec::new(),
        };
        let mut p = ConsoleProgress::new(true);
        p.mode = Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::hidden()));
        p.resolved(&img);
        let image = p.image.clone().expect("an image bar");
        assert_eq!(image.length(), Some(1500));
        p.layer_skipped(1, &layers[1]);
        p.layer_started(0, &layers[0]);
        p.layer_started(2, &layers[2]);
        p.layer_bytes(0, 400);
        p.layer_bytes(2, 200);
        assert_eq!(image.position(), 300 + 400 + 200);
        assert_eq!(p.bars[&0].position(), 400);
        p.layer_done(2, &layers[2], &ImportStats::default());
        p.layer_bytes(0, 1000);
        assert_eq!(image.position(), 1500);
    }
}
