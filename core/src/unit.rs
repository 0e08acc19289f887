//! Rendering a record into a systemd service unit.
//!
//! The unit is the image's `service.template` (or [`DEFAULT_SERVICE_TEMPLATE`])
//! rendered with the record's variables, plus what syscontainer needs in every
//! unit: a header naming the generator, `SourcePath=`, `RequiresMountsFor=`,
//! `PartOf=syscontainers.target`, `Delegate=yes`, and `Type=exec` unless the
//! template chooses a type.
//!
//! Substituted values cannot change the unit's structure: a value with a
//! control character is refused, `%` becomes `%%` (no specifier expansion),
//! and in `Exec*=` lines `$` becomes `$$` (no environment expansion).

use std::borrow::Cow;
use std::path::Path;

use thiserror::Error;

use crate::paths;
use crate::record::Record;
use crate::template::{self, TemplateError};
use crate::vars::Vars;

/// The unit used when the image ships no `service.template`.
pub const DEFAULT_SERVICE_TEMPLATE: &str = "\
[Unit]
Description=System container $NAME

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
Restart=on-failure
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
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

/// The logical file name used in messages for a record's service template.
fn template_file_name(rec: &Record) -> &'static str {
    match rec.service_template {
        Some(_) => "service.template",
        None => "<built-in service template>",
    }
}

/// Escape a value for a unit file line whose key is `key`.
fn escape_value(key: &str, val: &str) -> Result<String, String> {
    if let Some(c) = val.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains the control character {:?}, which would change the structure of the unit",
            c
        ));
    }
    let mut out = val.replace('%', "%%");
    if key.starts_with("Exec") {
        out = out.replace('$', "$$");
    }
    Ok(out)
}

/// The key of a `Key=value` line, if it is one.
fn line_key(line: &str) -> &str {
    let t = line.trim_start();
    match t.split_once('=') {
        Some((k, _)) if !k.contains('$') => k.trim_end(),
        _ => "",
    }
}

/// Render the service template of `rec` (no syscontainer additions).
fn render_template(rec: &Record, vars: &Vars, source: &Path) -> Result<String, UnitError> {
    let text = rec
        .service_template
        .as_deref()
        .unwrap_or(DEFAULT_SERVICE_TEMPLATE);
    let file = template_file_name(rec);
    let record = source.display().to_string();
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n').trim_end_matches('\r');
        let key = line_key(body);
        let mut last_var = String::new();
        let rendered = template::render_with(file, body, |v| {
            last_var = v.to_string();
            match vars.get(v) {
                None => Ok(None),
                Some(val) => escape_value(key, val).map(|s| Some(Cow::Owned(s))),
            }
        })
        .map_err(|source| UnitError::Template {
            record: record.clone(),
            source,
        })?;
        if rendered != body {
            let structure = |what| UnitError::Structure {
                record: record.clone(),
                var: last_var.clone(),
                what,
            };
            if rendered.ends_with('\\') && !body.ends_with('\\') {
                return Err(structure("a trailing backslash would continue the line"));
            }
            let starts = |s: &str, c: &[char]| s.trim_start().starts_with(c);
            if starts(body, &['$']) && starts(&rendered, &['[', '#', ';']) {
                return Err(structure("it would start a section or a comment"));
            }
        }
        out.push_str(&rendered);
        out.push('\n');
    }
    Ok(out)
}

/// A value for a path list in a unit (`RequiresMountsFor=`): `%` escaped,
/// paths with white space or control characters left out.
fn unit_path(p: &str) -> Option<String> {
    if p.is_empty() || !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(p.replace('%', "%%"))
}

/// Render the unit for a record found at logical path `source`.
pub fn render(rec: &Record, source: &Path) -> Result<String, UnitError> {
    let vars = Vars::for_record(rec);
    let body = render_template(rec, &vars, source)?;

    let mounts: Vec<String> = [Some(rec.deployment.as_str()), rec.repo.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(unit_path)
        .collect();
    let mut unit_lines = vec![format!(
        "SourcePath={}",
        source.display().to_string().replace('%', "%%")
    )];
    if !mounts.is_empty() {
        unit_lines.push(format!("RequiresMountsFor={}", mounts.join(" ")));
    }
    unit_lines.push(format!("PartOf={}", paths::CONTAINERS_TARGET));

    let mut sections = split_sections(&body);
    let service = sections
        .iter()
        .position(|s| s.name == "[Service]")
        .ok_or_else(|| UnitError::NoService {
            record: source.display().to_string(),
        })?;
    let has_type = sections[service]
        .lines
        .iter()
        .any(|l| line_key(l) == "Type");
    let mut service_lines = Vec::new();
    if !has_type {
        service_lines.push("Type=exec".to_string());
    }
    service_lines.push("Delegate=yes".to_string());
    // Type=exec only waits for the exec of the helper, which then execs
    // runc: wait for the container itself, if the unit runs one.
    let runs_container = vars.get("EXEC_START").is_some_and(|start| {
        let start = start.replace('%', "%%");
        sections[service]
            .lines
            .iter()
            .any(|l| line_key(l) == "ExecStart" && l.contains(&start))
    });
    if !has_type && runs_container {
        service_lines.push(format!(
            "ExecStartPost={} wait {}",
            paths::EXEC_HELPER,
            rec.name
        ));
    }
    sections[service].prepend(service_lines);
    match sections.iter().position(|s| s.name == "[Unit]") {
        Some(i) => sections[i].prepend(unit_lines),
        None => sections.insert(
            0,
            Section {
                name: "[Unit]".to_string(),
                lines: unit_lines,
            },
        ),
    }

    let mut out = format!(
        "# Automatically generated by {GENERATOR_NAME} from {}\n# Edit the record with syscontainer, not this file.\n",
        source.display()
    );
    for s in &sections {
        if !s.name.is_empty() {
            out.push_str(&s.name);
            out.push('\n');
        }
        for l in &s.lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A unit section: its header line (empty for text before the first header)
/// and its lines.
struct Section {
    name: String,
    lines: Vec<String>,
}

impl Section {
    fn prepend(&mut self, mut lines: Vec<String>) {
        lines.append(&mut self.lines);
        self.lines = lines;
    }
}

fn split_sections(text: &str) -> Vec<Section> {
    let mut out = vec![Section {
        name: String::new(),
        lines: Vec::new(),
    }];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            out.push(Section {
                name: t.to_string(),
                lines: Vec::new(),
            });
        } else {
            out.last_mut()
                .expect("never empty")
                .lines
                .push(line.to_string());
        }
    }
    if out[0].lines.iter().all(|l| l.trim().is_empty()) {
        out.remove(0);
    }
    out
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
         Description=System container {name} (broken record)\n\
         SourcePath={}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=/bin/sh -c \"echo \\\"$$0\\\" >&2; exit 6\" {}\n",
        src.replace('%', "%%"),
        quote_exec_arg(&format!("syscontainer: cannot start {name}: {reason}")),
    )
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
        let u = render(&rec(None), Path::new(SRC)).unwrap();
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
        assert!(u.contains("\nRestart=on-failure\n"));
        assert!(u.contains("\nWorkingDirectory=/var/lib/containers/atomic/web.0\n"));
        assert!(u.contains("\nWantedBy=multi-user.target\n"));
    }

    #[test]
    fn no_wait_without_a_container() {
        let u = render(
            &rec(Some("[Service]\nExecStart=/bin/sleep 1\n")),
            Path::new(SRC),
        )
        .unwrap();
        assert!(u.contains("\nType=exec\n"), "{u}");
        assert!(!u.contains("ExecStartPost"), "{u}");
    }

    #[test]
    fn template_type_is_kept() {
        let u = render(
            &rec(Some("[Service]\nType=notify\nExecStart=$EXEC_START\n")),
            Path::new(SRC),
        )
        .unwrap();
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
        let u = render(&r, Path::new(SRC)).unwrap();
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
    }
}
