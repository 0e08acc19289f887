//! Rendering a record into a systemd service unit.
//!
//! The unit is the image's `service.template` (or [`DEFAULT_SERVICE_TEMPLATE`])
//! rendered with the record's variables, plus what syscontainer needs in every
//! unit: a header naming the generator, `SourcePath=`, `RequiresMountsFor=`,
//! `PartOf=syscontainers.target`, `Delegate=yes`, and `Type=exec` unless the
//! template chooses a type.
//!
//! The template's `[Install]` section is returned parsed, for the generator
//! to make its links ([`crate::install_section`]), and is left in the unit
//! only as comments: a generated unit cannot be `systemctl enable`d (systemctl
//! refuses: "Unit ... is transient or generated"), so the section would only
//! suggest that it can. The built-in template has none: the record's target
//! wants the unit.
//!
//! Substituted values cannot change the unit's structure: a value with a
//! control character is refused, `%` becomes `%%` (no specifier expansion),
//! and in `Exec*=` lines `$` becomes `$$` (no environment expansion).

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

use crate::install_section::{self, Section};
use crate::paths;
use crate::record::Record;
use crate::template::{self, TemplateError};
use crate::text;
use crate::vars::Vars;

/// The unit used when the image ships no `service.template`. A start that
/// fails because the record or template is invalid (exit status 3) or the
/// deployment or image is missing (4) is not retried: it would fail again.
/// A missing working directory is left to the helper to report (exit 4):
/// systemd's own failure, 200/CHDIR, would be retried forever.
pub const DEFAULT_SERVICE_TEMPLATE: &str = "\
[Unit]
Description=System container $NAME

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
Restart=on-failure
RestartPreventExitStatus=3 4
WorkingDirectory=-$DESTDIR
";

/// The program named in the first line of every unit.
pub const GENERATOR_NAME: &str = "syscontainer-generator";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("record {record}: {source}")]
    Template {
        record: String,
        #[source]
        source: TemplateError,
    },
    #[error("record {record}: the service template has no [Service] section")]
    NoService { record: String },
    #[error(
        "record {record}: the value of '{var}' would change the structure of the unit ({what})"
    )]
    Structure {
        record: String,
        var: String,
        what: &'static str,
    },
}

impl UnitError {
    /// The documented exit code: always invalid input (a bad template or value).
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID
    }
}

/// The logical file name used in messages for a record's service template.
fn template_file_name(rec: &Record) -> &'static str {
    match rec.service_template {
        Some(_) => "service.template",
        None => "<built-in service template>",
    }
}

/// Escape a value for a unit file line whose key is `key`.
fn escape_value<'v>(key: &str, val: &'v str) -> Result<Cow<'v, str>, String> {
    let exec = key.starts_with("Exec");
    // The common case, printable ASCII with nothing to escape, in one scan.
    if val
        .bytes()
        .all(|b| (b' '..b'\x7f').contains(&b) && b != b'%' && !(exec && b == b'$'))
    {
        return Ok(Cow::Borrowed(val));
    }
    let mut special = false;
    for c in val.chars() {
        if c.is_control() {
            return Err(format!(
                "contains the control character {c:?}, which would change the structure of the unit"
            ));
        }
        special |= c == '%' || (exec && c == '$');
    }
    if !special {
        return Ok(Cow::Borrowed(val));
    }
    let mut out = val.replace('%', "%%");
    if exec {
        out = out.replace('$', "$$");
    }
    Ok(Cow::Owned(out))
}

/// The key of a `Key=value` line, if it is one.
fn line_key(line: &str) -> &str {
    let t = line.trim_start();
    match text::find(t, b'=') {
        Some(i) if !t.as_bytes()[..i].contains(&b'$') => t[..i].trim_end(),
        _ => "",
    }
}

/// The rendered service template, and what [`render`] needs to know of it.
struct Body {
    text: String,
    has_unit: bool,
    has_service: bool,
    /// `[Service]` chooses a `Type=`.
    has_type: bool,
    /// An `ExecStart=` of `[Service]` runs the helper's `run` command line.
    runs_container: bool,
}

/// `needle` is in `s`: a plain scan, cheaper than `str::contains` for one
/// short line.
fn contains(s: &str, needle: &str) -> bool {
    needle.is_empty()
        || s.as_bytes()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// `t` (trimmed) is a section header.
fn is_header(t: &str) -> bool {
    t.starts_with('[') && t.ends_with(']')
}

/// Render the service template of `rec` (no syscontainer additions), learning
/// its sections on the way.
fn render_template(rec: &Record, vars: &Vars, source: &Path) -> Result<Body, UnitError> {
    let text = rec
        .service_template
        .as_deref()
        .unwrap_or(DEFAULT_SERVICE_TEMPLATE);
    let file = template_file_name(rec);
    let record = || source.display().to_string();
    // The helper's `run` command line, as it appears in a rendered unit.
    let exec_start = percent_escaped(vars.get("EXEC_START").unwrap_or_default());
    let mut b = Body {
        text: String::with_capacity(text.len() + 256),
        has_unit: false,
        has_service: false,
        has_type: false,
        runs_container: false,
    };
    let out = &mut b.text;
    let mut in_service = false;
    let mut last_var = String::new();
    for line in text::lines(text) {
        // A line's own trailing '\r's go too (lines() drops one).
        let body = line.trim_end_matches('\r');
        let start = out.len();
        if body.as_bytes().contains(&b'$') {
            let key = line_key(body);
            template::render_into(file, body, out, |v| {
                last_var.clear();
                last_var.push_str(v);
                match vars.get(v) {
                    None => Ok(None),
                    Some(val) => escape_value(key, val).map(Some),
                }
            })
            .map_err(|source| UnitError::Template {
                record: record(),
                source,
            })?;
        } else {
            out.push_str(body);
        }
        let rendered = &out[start..];
        if rendered != body {
            let structure = |what| UnitError::Structure {
                record: record(),
                var: last_var.clone(),
                what,
            };
            if rendered.ends_with('\\') && !body.ends_with('\\') {
                return Err(structure("a trailing backslash would continue the line"));
            }
            let starts = |s: &str, c: &[char]| s.trim_start().starts_with(c);
            if starts(body, &['$']) && starts(rendered, &['[', '#', ';']) {
                return Err(structure("it would start a section or a comment"));
            }
        }
        let t = rendered.trim();
        if is_header(t) {
            in_service = t == "[Service]";
            b.has_unit |= t == "[Unit]";
            b.has_service |= in_service;
        } else if in_service {
            match line_key(rendered) {
                "Type" => b.has_type = true,
                "ExecStart" => b.runs_container |= contains(rendered, &exec_start),
                _ => {}
            }
        }
        out.push('\n');
    }
    Ok(b)
}

/// A value for a path list in a unit (`RequiresMountsFor=`): `%` escaped,
/// paths with white space or control characters left out.
fn unit_path(p: &str) -> Option<Cow<'_, str>> {
    if p.is_empty() || !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(percent_escaped(p))
}

/// `s` with `%` doubled (no specifier expansion), borrowed when it has none.
fn percent_escaped(s: &str) -> Cow<'_, str> {
    if s.contains('%') {
        Cow::Owned(s.replace('%', "%%"))
    } else {
        Cow::Borrowed(s)
    }
}

/// A rendered unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The unit file, its `[Install]` section commented out.
    pub text: String,
    /// The template's `[Install]` section, as `systemctl enable` reads it.
    pub install: Section,
}

/// The comment that replaces the `[Install]` header in a generated unit.
pub const INSTALL_COMMENT: &str = "# [Install] of the image, applied by the generator when the container is enabled (generated units cannot be enabled):";

/// What a declarative container's unit needs beyond the record's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra<'a> {
    /// `ExecStartPre=CLI apply NAME`: the start deploys (or applies an
    /// edit) first.
    pub apply: bool,
    /// `After=` and `Wants=network-online.target`: the start pulls.
    pub network: bool,
    /// Not deployed yet: `RestartSec=10s` (so that `Restart=` retries a
    /// failed pull without hitting the start limit) and a start timeout
    /// long enough for a pull.
    pub pending: bool,
    /// `ExecStartPost=CLI apply --confirm NAME`: an applied edit is on trial.
    pub confirm: bool,
    /// Appended to `Description=` in parentheses (a refused edit).
    pub note: Option<&'a str>,
}

/// How long the start of a unit that pulls may take.
pub const PULL_START_TIMEOUT: &str = "15min";

/// Render the unit for a record found at logical path `source`.
pub fn render(rec: &Record, source: &Path) -> Result<Rendered, UnitError> {
    render_with(rec, source, &Extra::default())
}

/// [`render`], with a declarative container's additions.
pub fn render_with(rec: &Record, source: &Path, extra: &Extra) -> Result<Rendered, UnitError> {
    let vars = Vars::for_record(rec);
    let Body {
        text: body,
        has_unit,
        has_service,
        has_type,
        runs_container,
    } = render_template(rec, &vars, source)?;
    // As `source.display()` shows it.
    let src = source.to_string_lossy();
    if !has_service {
        return Err(UnitError::NoService {
            record: src.into_owned(),
        });
    }

    let mut unit_lines = String::with_capacity(2 * src.len() + 200);
    for s in ["SourcePath=", &percent_escaped(&src), "\n"] {
        unit_lines.push_str(s);
    }
    let mounts = [Some(rec.deployment.as_str()), rec.repo.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(unit_path);
    let mut any_mount = false;
    for m in mounts {
        unit_lines.push_str(if any_mount { " " } else { "RequiresMountsFor=" });
        unit_lines.push_str(&m);
        any_mount = true;
    }
    if any_mount {
        unit_lines.push('\n');
    }
    // Stopped before the target (the reverse of After=): `systemctl stop
    // syscontainers.target` returns once every container has stopped.
    for s in ["PartOf=", paths::CONTAINERS_TARGET, "\nAfter="] {
        unit_lines.push_str(s);
    }
    unit_lines.push_str(paths::CONTAINERS_TARGET);
    unit_lines.push('\n');
    if extra.network {
        unit_lines.push_str("After=network-online.target\nWants=network-online.target\n");
    }
    let note = extra.note.map(|n| [" (", &plain_value(n), ")"].concat());
    if let Some(n) = &note {
        if !has_description(&body) {
            for s in ["Description=System container ", &rec.name, n, "\n"] {
                unit_lines.push_str(s);
            }
        }
    }
    let mut service_lines = String::with_capacity(80 + paths::EXEC_HELPER.len() + rec.name.len());
    service_lines.push_str(if has_type {
        "Delegate=yes\n"
    } else {
        "Type=exec\nDelegate=yes\n"
    });
    if extra.apply {
        for s in ["ExecStartPre=", paths::CLI, " apply ", &rec.name, "\n"] {
            service_lines.push_str(s);
        }
    }
    if extra.pending {
        // `apply` reports a failed pull with sd_notify STATUS=, which
        // `systemctl status` shows.
        service_lines.push_str("RestartSec=10s\nNotifyAccess=all\n");
    }
    if extra.network {
        for s in ["TimeoutStartSec=", PULL_START_TIMEOUT, "\n"] {
            service_lines.push_str(s);
        }
    }
    // Type=exec only waits for the exec of the helper, which then execs
    // runc: wait for the container itself, if the unit runs one.
    if !has_type && runs_container {
        for s in [
            "ExecStartPost=",
            paths::EXEC_HELPER,
            " wait ",
            &rec.name,
            "\n",
        ] {
            service_lines.push_str(s);
        }
    }
    // With a health check, `systemctl start` returns once it passes; the
    // start may take that long, and the default time besides (a template's
    // own TimeoutStartSec=, later in the section, wins).
    if let Some(check) = rec.health_check().filter(|_| runs_container) {
        let limit = crate::health::timespan(check.wait_bound() + Duration::from_secs(90));
        if !extra.network {
            // (A pending unit's own, longer, limit covers the pull.)
            for s in ["TimeoutStartSec=", &limit, "\n"] {
                service_lines.push_str(s);
            }
        }
        for s in [
            "ExecStartPost=",
            paths::EXEC_HELPER,
            " wait-healthy ",
            &rec.name,
            "\n",
        ] {
            service_lines.push_str(s);
        }
    }
    // After readiness: the trial of an applied edit.
    if extra.confirm {
        for s in [
            "ExecStartPost=",
            paths::CLI,
            " apply --confirm ",
            &rec.name,
            "\n",
        ] {
            service_lines.push_str(s);
        }
    }

    let mut out = String::with_capacity(body.len() + unit_lines.len() + src.len() + 200);
    for s in [
        "# Automatically generated by ",
        GENERATOR_NAME,
        " from ",
        &src,
        "\n# Edit the record with syscontainer, not this file.\n",
    ] {
        out.push_str(s);
    }
    if !has_unit {
        out.push_str("[Unit]\n");
        out.push_str(&unit_lines);
    }
    let (mut seen_header, mut unit_done, mut service_done) = (false, false, false);
    let mut in_install = false;
    let mut in_unit = false;
    for l in text::lines(&body) {
        let t = l.trim();
        if !seen_header && !is_header(t) && t.is_empty() {
            continue; // blank lines before the first section
        }
        if is_header(t) {
            in_install = t == "[Install]";
            in_unit = t == "[Unit]";
            seen_header = true;
        }
        if in_install {
            if t == "[Install]" {
                out.push_str(INSTALL_COMMENT);
            } else if !t.is_empty() {
                out.push_str("# ");
                out.push_str(l);
            }
            out.push('\n');
            continue;
        }
        out.push_str(l);
        if let Some(n) = &note {
            if in_unit && line_key(l) == "Description" {
                out.push_str(n);
            }
        }
        out.push('\n');
        if is_header(t) {
            seen_header = true;
            if t == "[Unit]" && !unit_done {
                out.push_str(&unit_lines);
                unit_done = true;
            } else if t == "[Service]" && !service_done {
                out.push_str(&service_lines);
                service_done = true;
            }
        }
    }
    Ok(Rendered {
        text: out,
        install: install_section::parse(&body),
    })
}

/// The `[Unit]` section of a rendered template sets `Description=`.
fn has_description(body: &str) -> bool {
    let mut in_unit = false;
    for l in text::lines(body) {
        let t = l.trim();
        if is_header(t) {
            in_unit = t == "[Unit]";
        } else if in_unit && line_key(l) == "Description" {
            return true;
        }
    }
    false
}

/// Quote one argument for an `ExecStart=` line: double quotes with C escapes,
/// `%` and `$` doubled, control characters replaced by spaces.
pub fn quote_exec_arg(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The unit written for a container whose record cannot be used: starting it
/// fails at once (exit status 6, which systemd shows as NOTCONFIGURED) and
/// prints the reason, so `systemctl status NAME` explains
/// what is wrong instead of "Unit not found".
pub fn render_broken(name: &str, source: &Path, reason: &str) -> String {
    let src = source.display().to_string();
    format!(
        "# Automatically generated by {GENERATOR_NAME} from {src}\n\
         # The record is broken: starting this unit prints why and fails.\n\
         [Unit]\n\
         Description=System container {name}, broken record: {}\n\
         SourcePath={}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=/bin/sh -c \"echo \\\"$$0\\\" >&2; exit 6\" {}\n",
        plain_value(reason),
        src.replace('%', "%%"),
        quote_exec_arg(&format!("syscontainer: cannot start {name}: {reason}")),
    )
}

/// `s` as a plain unit setting value (`Description=`): control characters
/// become spaces, `%` is doubled, and no trailing backslash continues the line.
fn plain_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    v.trim_end_matches('\\').replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tpl: Option<&str>) -> Record {
        let mut r = Record::new(
            "web",
            "reg.example/web:1",
            "sha256:12",
            "/var/lib/containers/atomic/web.0",
        );
        r.service_template = tpl.map(str::to_string);
        r
    }
    const SRC: &str = "/etc/syscontainer/containers/web.json";

    #[test]
    fn default_unit_has_the_essentials() {
        let u = render(&rec(None), Path::new(SRC)).unwrap().text;
        assert!(u.starts_with("# Automatically generated by syscontainer-generator from /etc/syscontainer/containers/web.json\n"));
        assert!(u.contains("\nSourcePath=/etc/syscontainer/containers/web.json\n"));
        assert!(u.contains("\nRequiresMountsFor=/var/lib/containers/atomic/web.0\n"));
        assert!(u.contains("\nType=exec\nDelegate=yes\n"));
        // systemctl start returns once the container runs, not once the
        // helper was exec'd
        assert!(
            u.contains("\nExecStartPost=/usr/libexec/syscontainer-exec wait web\n"),
            "{u}"
        );
        assert!(
            u.contains("\nExecStart=/usr/libexec/syscontainer-exec run web\n")
                || u.contains("syscontainer-exec run web\n")
        );
        assert!(
            u.contains("\nRestart=on-failure\nRestartPreventExitStatus=3 4\n"),
            "{u}"
        );
        assert!(u.contains("\nWorkingDirectory=-/var/lib/containers/atomic/web.0\n"));
        assert!(!u.contains("[Install]") && !u.contains("WantedBy"), "{u}");
    }

    #[test]
    fn install_section_is_parsed_and_commented_out() {
        let mut r = rec(Some(
            "[Install]\nWantedBy=a.target\n[Service]\nExecStart=/bin/true\n\n[Install]\nRequiredBy=$REQ\n\nAlias=x.service\n",
        ));
        r.values.insert("REQ".into(), "b%n.service".into());
        let u = render(&r, Path::new(SRC)).unwrap();
        assert!(
            u.text.ends_with(&format!(
                "{INSTALL_COMMENT}\n# RequiredBy=b%%n.service\n\n# Alias=x.service\n"
            )),
            "{}",
            u.text
        );
        assert!(
            u.text.contains(&format!(
                "{INSTALL_COMMENT}\n# WantedBy=a.target\n[Service]\n"
            )),
            "{}",
            u.text
        );
        assert!(!u.text.lines().any(|l| l == "[Install]"), "{}", u.text);
        let w: Vec<_> = u.install.words.iter().map(|w| w.text.as_str()).collect();
        // a substituted '%' stays literal: no specifier from a value
        assert_eq!(w, ["a.target", "b%%n.service", "x.service"]);
    }

    /// The built-in template names the exec helper's own exit codes.
    #[cfg(feature = "runtime")]
    #[test]
    fn restart_prevent_exit_status_is_the_helpers() {
        use crate::exec::{EXIT_INVALID, EXIT_MISSING};
        let line = format!("\nRestartPreventExitStatus={EXIT_INVALID} {EXIT_MISSING}\n");
        assert!(DEFAULT_SERVICE_TEMPLATE.contains(&line), "{line}");
    }

    #[test]
    fn no_wait_without_a_container() {
        let u = render(
            &rec(Some("[Service]\nExecStart=/bin/sleep 1\n")),
            Path::new(SRC),
        )
        .unwrap()
        .text;
        assert!(u.contains("\nType=exec\n"), "{u}");
        assert!(!u.contains("ExecStartPost"), "{u}");
    }

    #[test]
    fn template_type_is_kept() {
        let u = render(
            &rec(Some("[Service]\nType=notify\nExecStart=$EXEC_START\n")),
            Path::new(SRC),
        )
        .unwrap()
        .text;
        assert!(!u.contains("Type=exec"));
        assert!(!u.contains(" wait web"), "{u}");
        assert!(u.contains("[Service]\nDelegate=yes\nType=notify\n"), "{u}");
        assert!(u.contains("[Unit]\nSourcePath="), "{u}");
    }

    #[test]
    fn percent_and_dollar_are_escaped() {
        let mut r = rec(Some(
            "[Unit]\nDescription=$D\n[Service]\nExecStart=/bin/echo $D\n",
        ));
        r.values.insert("D".into(), "100% $HOME".into());
        let u = render(&r, Path::new(SRC)).unwrap().text;
        assert!(u.contains("Description=100%% $HOME\n"), "{u}");
        assert!(u.contains("ExecStart=/bin/echo 100%% $$HOME\n"), "{u}");
    }

    #[test]
    fn injection_is_refused_naming_the_variable() {
        let mut r = rec(Some("[Service]\nExecStart=/bin/echo $MSG\n"));
        r.values
            .insert("MSG".into(), "hi\nExecStartPre=/bin/evil".into());
        let e = render(&r, Path::new(SRC)).unwrap_err().to_string();
        assert!(
            e.contains("'MSG'") && e.contains("control character"),
            "{e}"
        );
        let mut r = rec(Some("[Service]\nExecStart=/bin/echo $MSG\n"));
        r.values.insert("MSG".into(), "x\\".into());
        let e = render(&r, Path::new(SRC)).unwrap_err().to_string();
        assert!(e.contains("'MSG'") && e.contains("backslash"), "{e}");
        let mut r = rec(Some("[Service]\nExecStart=/bin/true\n$EXTRA\n"));
        r.values.insert("EXTRA".into(), "[Install]".into());
        let e = render(&r, Path::new(SRC)).unwrap_err().to_string();
        assert!(e.contains("'EXTRA'"), "{e}");
    }

    #[test]
    fn unset_variable_names_file_and_variable() {
        let e = render(
            &rec(Some("[Service]\nExecStart=/bin/x $NOPE\n")),
            Path::new(SRC),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("service.template") && e.contains("'NOPE'") && e.contains("unreplaced"),
            "{e}"
        );
    }

    #[test]
    fn no_service_section_is_an_error() {
        assert!(matches!(
            render(&rec(Some("[Unit]\nDescription=x\n")), Path::new(SRC)),
            Err(UnitError::NoService { .. })
        ));
    }

    #[test]
    fn broken_unit_quotes_the_reason() {
        let u = render_broken(
            "bad",
            Path::new("/etc/syscontainer/containers/bad.json"),
            "x \"y\" 5% $Z\nnext",
        );
        assert!(u.contains(r#"ExecStart=/bin/sh -c "echo \"$$0\" >&2; exit 6" "syscontainer: cannot start bad: x \"y\" 5%% $$Z next""#), "{u}");
        assert!(
            u.contains("\nDescription=System container bad, broken record: x \"y\" 5%% $Z next\n"),
            "{u}"
        );
        assert_eq!(
            plain_value("ends in a backslash\\\\"),
            "ends in a backslash"
        );
    }
}
