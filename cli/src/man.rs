//! `syscontainer generate-man DIR` (hidden; `make man` calls it): the
//! syscontainer(1) page, generated from the clap definitions with
//! `clap_mangen`, so that it lists every command and option there is.
//!
//! One page, as the hand-written one was: the global options, then every
//! command (nested ones as `images list`) with its synopsis, description and
//! options, then the exit codes and environment of `--help`'s epilogue. Only
//! FILES and SEE ALSO are prose kept here. syscontainer-record(5),
//! syscontainer-generator(8) and syscontainer-exec(8) stay hand-written in
//! packaging/man.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::{Command, CommandFactory};
use clap_mangen::Man;
use roff::{bold, italic, roman, Roff};

/// The page's file name.
pub const PAGE: &str = "syscontainer.1";

/// Write `dir/syscontainer.1` (atomically: a temp file renamed into place).
pub fn generate(dir: &Path) -> anyhow::Result<()> {
    let page = render(crate::Cli::command()).context("rendering the manual page")?;
    let dest = dir.join(PAGE);
    let tmp = dir.join(format!(".{PAGE}.tmp"));
    std::fs::write(&tmp, page).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming {}", dest.display()))?;
    Ok(())
}

/// clap_mangen writes the apostrophe preamble before every piece; keep one.
fn piece(
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    first: bool,
) -> std::io::Result<String> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let s = String::from_utf8(buf).expect("clap_mangen writes UTF-8");
    let preamble = Roff::new().render();
    Ok(match s.strip_prefix(&preamble) {
        Some(rest) if !first => rest.to_string(),
        _ => s,
    })
}

/// The page for `root` (the `syscontainer` command, not yet built).
fn render(root: Command) -> std::io::Result<String> {
    let version = root.get_version().unwrap_or_default().to_string();
    let epilogue = root.get_after_help().map(|h| h.to_string());
    let man = Man::new(root.clone())
        .title("SYSCONTAINER")
        .section("1")
        .source(format!("syscontainer {version}"))
        .manual("User Commands");
    let mut out = String::new();
    out += &piece(|w| man.render_title(w), true)?;
    out += &piece(|w| man.render_name_section(w), false)?;
    out += &piece(|w| man.render_synopsis_section(w), false)?;
    out += &piece(|w| man.render_description_section(w), false)?;
    out += &piece(|w| man.render_options_section(w), false)?;
    let mut r = Roff::new();
    r.control("SH", ["COMMANDS"]);
    out += &r.to_roff();
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        commands(&mut out, sub, "syscontainer")?;
    }
    if let Some(e) = epilogue {
        out += &epilogue_sections(&e);
    }
    out += &trailer();
    Ok(out)
}

/// `cmd` as a subsection `PARENT NAME`, then its own subcommands.
fn commands(out: &mut String, cmd: &Command, parent: &str) -> std::io::Result<()> {
    let path = format!("{parent} {}", cmd.get_name());
    let mut r = Roff::new();
    r.control("SS", [path.as_str()]);
    *out += &r.to_roff();
    // Global options are documented once, under OPTIONS; `cmd` is not built
    // yet, so it has none of them, and no help flag when disabled here.
    let man = Man::new(
        cmd.clone()
            .bin_name(&path)
            .disable_help_flag(true)
            .disable_help_subcommand(true),
    );
    let synopsis = piece(|w| man.render_synopsis_section(w), false)?;
    *out += without_heading(&synopsis);
    *out += &description(cmd);
    let options = piece(|w| man.render_options_section(w), false)?;
    *out += without_heading(&options);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        commands(out, sub, &path)?;
    }
    Ok(())
}

/// A rendered section without its first `.SH` line (it goes in a `.SS`).
fn without_heading(s: &str) -> &str {
    match s.strip_prefix(".SH ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
        None => s,
    }
}

/// The long help of a command as paragraphs; indented lines (the source
/// table of `pull`) stay as they are.
fn description(cmd: &Command) -> String {
    let Some(text) = cmd.get_long_about().or_else(|| cmd.get_about()) else {
        return String::new();
    };
    let mut r = Roff::new();
    r.control("PP", []);
    let mut verbatim = false;
    for line in text.to_string().lines() {
        let indented = line.starts_with(' ');
        if indented != verbatim {
            r.control(if indented { "nf" } else { "fi" }, []);
            verbatim = indented;
        }
        if line.trim().is_empty() {
            r.control("PP", []);
        } else {
            r.text([roman(line)]);
        }
    }
    if verbatim {
        r.control("fi", []);
    }
    r.to_roff()
}

/// `--help`'s epilogue (`Exit codes:` and `Environment:`, each a list of
/// `  TERM  description` lines, continued by deeper-indented lines) as
/// EXIT STATUS and ENVIRONMENT.
fn epilogue_sections(text: &str) -> String {
    let mut r = Roff::new();
    let mut item: Option<(String, String)> = None;
    let flush = |r: &mut Roff, item: &mut Option<(String, String)>| {
        if let Some((term, desc)) = item.take() {
            r.control("TP", []);
            r.text([bold(term)]);
            r.text([roman(desc)]);
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(h) = line.strip_suffix(':').filter(|_| !line.starts_with(' ')) {
            flush(&mut r, &mut item);
            let heading = match h {
                "Exit codes" => "EXIT STATUS".to_string(),
                h => h.to_uppercase(),
            };
            r.control("SH", [heading.as_str()]);
            continue;
        }
        let body = line.trim_start();
        let indent = line.len() - body.len();
        match (&mut item, body.split_once("  ")) {
            (Some((_, desc)), _) if indent > 2 => {
                desc.push(' ');
                desc.push_str(body);
            }
            (_, Some((term, desc))) => {
                flush(&mut r, &mut item);
                item = Some((term.to_string(), desc.trim().to_string()));
            }
            _ => {
                flush(&mut r, &mut item);
                r.text([roman(body)]);
            }
        }
    }
    flush(&mut r, &mut item);
    r.to_roff()
}

/// FILES and SEE ALSO: prose, not from the CLI definitions.
fn trailer() -> String {
    let mut r = Roff::new();
    r.control("SH", ["FILES"]);
    for (path, what) in [
        ("/etc/syscontainer/containers/NAME.json", "the records"),
        (
            "/var/lib/containers/atomic/NAME.0, NAME.1",
            "the two deployments of a container",
        ),
        ("/ostree/repo", "the image store"),
        (
            "/run/syscontainer/health/NAME.json",
            "the state of a container's health check",
        ),
        ("syscontainers.target", "groups every container"),
        (
            "syscontainer-prune.timer",
            "a weekly images prune, disabled by default",
        ),
    ] {
        r.control("TP", []);
        r.text([italic(path)]);
        r.text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    let refs = [
        ("syscontainer-record", "5"),
        ("syscontainer-generator", "8"),
        ("syscontainer-exec", "8"),
        ("systemctl", "1"),
        ("runc", "8"),
    ];
    let mut line = Vec::new();
    for (i, (page, sec)) in refs.iter().enumerate() {
        line.push(bold(*page));
        let sep = if i + 1 < refs.len() { "), " } else { ")" };
        line.push(roman(format!("({sec}{sep}")));
    }
    r.text(line);
    r.to_roff()
}
