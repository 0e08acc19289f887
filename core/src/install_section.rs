//! The `[Install]` section of a rendered unit, turned into the links that
//! `systemctl enable` would make (systemd.unit(5), systemd 252's
//! `src/shared/install.c`).
//!
//! atomic ran `systemctl enable` on the unit it rendered. Generated units
//! cannot be enabled, so the generator makes the same links itself, for
//! enabled containers only:
//!
//! - `WantedBy=X` gives `X.wants/NAME.service`, `RequiredBy=X` gives
//!   `X.requires/NAME.service`, `UpheldBy=X` gives `X.upholds/NAME.service`.
//!   systemd 252 knows neither `UpheldBy=` nor `.upholds/` (both came with
//!   254): there the link is inert, as `systemctl enable` ignores the key.
//! - `Alias=A.service` gives the symlink `A.service -> NAME.service`. An
//!   alias must be a plain name with the unit's own suffix; an alias to the
//!   unit itself is ignored, as `systemctl enable` does. The legacy form
//!   `Alias=X.wants/NAME.service` (or `.requires/`) is the same as
//!   `WantedBy=X` (or `RequiredBy=X`).
//! - `Also=` asks `systemctl enable` to enable other units too. A generator
//!   only makes its own units, so `Also=` is reported and left to the admin.
//! - `DefaultInstance=` only applies to templates, which container units
//!   never are.
//!
//! Values are parsed as systemd does: space-separated (quotes group words),
//! repeated keys add to the list, an empty assignment empties it, comments and
//! continuation lines as in any unit file. Specifiers are expanded as by
//! `systemctl enable`, except those that depend on the host (`%H`, `%m`,
//! ...): the generator's output depends on the records alone, so those are
//! refused. Every value must then be a valid unit name, which also means it
//! has no `/` and no white space. A bad value is reported and left out; the
//! others still apply.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The keys of `[Install]` that make links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    WantedBy,
    RequiredBy,
    UpheldBy,
    Alias,
    Also,
}

impl Key {
    pub fn name(self) -> &'static str {
        match self {
            Key::WantedBy => "WantedBy",
            Key::RequiredBy => "RequiredBy",
            Key::UpheldBy => "UpheldBy",
            Key::Alias => "Alias",
            Key::Also => "Also",
        }
    }

    fn from_name(s: &str) -> Option<Key> {
        Some(match s {
            "WantedBy" => Key::WantedBy,
            "RequiredBy" => Key::RequiredBy,
            "UpheldBy" => Key::UpheldBy,
            "Alias" => Key::Alias,
            "Also" => Key::Also,
            _ => return None,
        })
    }

    /// The directory suffix of a dependency key.
    fn dir_suffix(self) -> Option<&'static str> {
        match self {
            Key::WantedBy => Some(".wants"),
            Key::RequiredBy => Some(".requires"),
            Key::UpheldBy => Some(".upholds"),
            Key::Alias | Key::Also => None,
        }
    }
}

/// Why one `[Install]` value is left out.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BadValue {
    #[error("its quotes are unbalanced")]
    Quotes,
    #[error("the specifier %{0} depends on the host, and the generator's output depends only on the record")]
    HostSpecifier(char),
    #[error("%{0} is not a specifier")]
    UnknownSpecifier(char),
    #[error("'{0}' is not a valid unit name")]
    NotUnitName(String),
    #[error("an alias must be a plain unit name ending in .{0}, like the unit")]
    AliasType(String),
    #[error("an alias with a '/' must be UNIT.wants/{0} or UNIT.requires/{0}")]
    AliasPath(String),
    #[error("it is the unit of container '{0}'")]
    TakenByRecord(String),
    #[error("it is already an alias of container '{0}'")]
    TakenByAlias(String),
    #[error("the directory name '{0}' would be longer than 255 bytes")]
    TooLong(String),
}

/// A value of the `[Install]` section that cannot be applied.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("record {record}: service template line {line}: {key}={value} is ignored: {source}", key = key.name())]
pub struct InstallError {
    pub record: PathBuf,
    pub line: usize,
    pub key: Key,
    pub value: String,
    #[source]
    pub source: BadValue,
}

/// One word of a key, as written (specifiers not expanded yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub key: Key,
    pub line: usize,
    pub text: String,
}

/// The parsed `[Install]` section: the words of each key, in order, after
/// empty assignments; and the lines that could not be split.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Section {
    pub words: Vec<Word>,
    /// (line, key, text from the word with an unbalanced quote to the end of
    /// the line), which systemd drops.
    pub bad_lines: Vec<(usize, Key, String)>,
}

/// The white space of systemd's unit file parser (`WHITESPACE`).
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Parse the `[Install]` section(s) of a unit text, as systemd's unit file
/// parser does (sections of the same name merge).
pub fn parse(text: &str) -> Section {
    let mut sec = Section::default();
    let mut in_install = false;
    let mut cont: Option<(String, usize)> = None;
    for (i, raw) in crate::text::lines(text).enumerate() {
        // Comment lines are skipped, even inside a continuation.
        let lead = raw.trim_start_matches(is_ws);
        if lead.starts_with('#') || lead.starts_with(';') {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let continued = (raw.len() - raw.trim_end_matches('\\').len()) % 2 == 1;
        match cont.take() {
            None if !continued => parse_line(raw, i + 1, &mut in_install, &mut sec),
            None => cont = Some((format!("{} ", &raw[..raw.len() - 1]), i + 1)),
            Some((mut c, start)) => {
                c.push_str(raw);
                if continued {
                    c.pop();
                    c.push(' ');
                    cont = Some((c, start));
                } else {
                    parse_line(&c, start, &mut in_install, &mut sec);
                }
            }
        }
    }
    if let Some((c, s)) = cont {
        parse_line(&c, s, &mut in_install, &mut sec); // continued at the end of the file
    }
    sec
}

fn parse_line(line: &str, lineno: usize, in_install: &mut bool, sec: &mut Section) {
    let t = line.trim_matches(is_ws);
    if t.starts_with('[') {
        *in_install = t == "[Install]";
        return;
    }
    if !*in_install {
        return;
    }
    let Some((k, v)) = t.split_once('=') else {
        return;
    };
    let Some(key) = Key::from_name(k.trim_matches(is_ws)) else {
        return; // DefaultInstance= (templates only), or unknown
    };
    let v = v.trim_matches(is_ws);
    if v.is_empty() {
        sec.words.retain(|w| w.key != key);
        sec.bad_lines.retain(|b| b.1 != key);
        return;
    }
    let (words, bad) = split_words(v);
    sec.words.extend(words.into_iter().map(|text| Word {
        key,
        line: lineno,
        text,
    }));
    if let Some(rest) = bad {
        sec.bad_lines.push((lineno, key, rest.to_string()));
    }
}

/// Split a value into words as systemd's `extract_first_word()` with
/// `EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE` does: white space separates,
/// `'...'` and `"..."` group (and are removed), a backslash is kept as it is.
/// Returns the words before any unbalanced quote, and the text from the start
/// of the word that has one.
fn split_words(v: &str) -> (Vec<String>, Option<&str>) {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    for (i, c) in v.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if is_ws(c) => {
                if start.take().is_some() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => {
                start.get_or_insert(i);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else {
                    cur.push(c);
                }
            }
        }
    }
    if quote.is_some() {
        return (words, start.map(|i| &v[i..]));
    }
    if start.is_some() {
        words.push(cur);
    }
    (words, None)
}

/// The unit types of systemd 252 (`unit_type_from_string`).
const UNIT_TYPES: [&str; 11] = [
    "service",
    "mount",
    "swap",
    "socket",
    "target",
    "device",
    "automount",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's `UNIT_NAME_MAX`, including the terminating NUL.
const UNIT_NAME_MAX: usize = 256;
/// The longest file name (Linux `NAME_MAX`).
const NAME_MAX: usize = 255;

/// The kind of a valid unit name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Plain,
    Instance,
    Template,
}

/// Classify a unit name as systemd's `unit_name_is_valid()` does, or `None`
/// if it is not one: a known type suffix, and before it only
/// `[A-Za-z0-9:_.\-@\\]` with a non-empty part before the first `@`.
pub fn unit_name_kind(n: &str) -> Option<NameKind> {
    if n.is_empty() || n.len() >= UNIT_NAME_MAX {
        return None;
    }
    let dot = n.rfind('.')?;
    if dot == 0 || !UNIT_TYPES.contains(&&n[dot + 1..]) {
        return None;
    }
    let stem = &n[..dot];
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'\\' | b'@'))
    {
        return None;
    }
    match stem.find('@') {
        None => Some(NameKind::Plain),
        Some(0) => None,
        Some(at) if at + 1 == stem.len() => Some(NameKind::Template),
        Some(_) => Some(NameKind::Instance),
    }
}

/// Expand the specifiers that `systemctl enable` expands in `[Install]`
/// (systemd 252's `install_name_printf()`), for the plain unit `unit`
/// (`NAME.service`). The system manager's credentials are fixed (`%u` root,
/// `%U` 0, `%g` root, `%G` 0); the host's names and ids are refused.
fn expand_specifiers(text: &str, unit: &str) -> Result<String, BadValue> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let prefix = unit.rsplit_once('.').map_or(unit, |(p, _)| p);
    let mut out = String::with_capacity(text.len() + unit.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(s) = chars.next() else {
            out.push('%'); // a stray % at the end stays, as in systemd
            break;
        };
        match s {
            '%' => out.push('%'),
            'n' => out.push_str(unit),
            // %N (prefix and instance) and %p (prefix) are the same for a
            // plain unit, and %i (instance) is empty.
            'N' | 'p' => out.push_str(prefix),
            'i' => {}
            'j' => out.push_str(prefix.rsplit_once('-').map_or(prefix, |(_, l)| l)),
            'u' | 'g' => out.push_str("root"),
            'U' | 'G' => out.push('0'),
            'a' | 'A' | 'b' | 'B' | 'H' | 'l' | 'm' | 'M' | 'o' | 'q' | 'v' | 'w' | 'W' => {
                return Err(BadValue::HostSpecifier(s))
            }
            s => return Err(BadValue::UnknownSpecifier(s)),
        }
    }
    Ok(out)
}

/// A link the `[Install]` section asks for, relative to the generator's
/// output directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// `UNIT.wants/NAME.service` (or `.requires/`, `.upholds/`) -> `../NAME.service`.
    Dependency { dir: String },
    /// `ALIAS -> NAME.service`.
    Alias { name: String },
}

impl Link {
    /// The symlink's path and target, relative to the output directory.
    pub fn path_and_target(&self, unit: &str) -> (PathBuf, PathBuf) {
        match self {
            // `dir` and `unit` are unit names: no '/'.
            Link::Dependency { dir } => (
                PathBuf::from([dir, "/", unit].concat()),
                PathBuf::from(["../", unit].concat()),
            ),
            Link::Alias { name } => (PathBuf::from(name), PathBuf::from(unit)),
        }
    }
}

/// What a section gives for the plain unit `unit` (`NAME.service`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Sorted, without duplicates.
    pub links: Vec<Link>,
    /// Units named by `Also=` (after expansion), which are not enabled.
    pub also: Vec<String>,
    pub errors: Vec<InstallError>,
}

/// Validate and expand the words of `sec` for `unit`. `taken` says whether an
/// alias name is already another container's unit or alias (and whose).
pub fn plan(
    sec: &Section,
    unit: &str,
    record: &Path,
    taken: &dyn Fn(&str) -> Option<BadValue>,
) -> Plan {
    let suffix = unit.rsplit_once('.').map_or("", |(_, s)| s);
    let mut p = Plan::default();
    let mut err = |w: &Word, source| {
        p.errors.push(InstallError {
            record: record.to_path_buf(),
            line: w.line,
            key: w.key,
            value: w.text.clone(),
            source,
        })
    };
    let mut links = Vec::new();
    let mut also = Vec::new();
    for w in &sec.words {
        let name = match expand_specifiers(&w.text, unit) {
            Ok(n) => n,
            Err(e) => {
                err(w, e);
                continue;
            }
        };
        match w.key {
            Key::WantedBy | Key::RequiredBy | Key::UpheldBy => {
                if unit_name_kind(&name).is_none() {
                    err(w, BadValue::NotUnitName(name));
                    continue;
                }
                let dir = [name.as_str(), w.key.dir_suffix().unwrap_or_default()].concat();
                if dir.len() > NAME_MAX {
                    err(w, BadValue::TooLong(dir));
                    continue;
                }
                links.push(Link::Dependency { dir });
            }
            Key::Also => {
                if unit_name_kind(&name).is_none() {
                    err(w, BadValue::NotUnitName(name));
                    continue;
                }
                also.push(name);
            }
            Key::Alias => match alias_link(&name, unit, suffix) {
                Ok(None) => {} // an alias to itself
                Ok(Some(link)) => {
                    if let Link::Alias { name } = &link {
                        if let Some(e) = taken(name) {
                            err(w, e);
                            continue;
                        }
                    }
                    links.push(link);
                }
                Err(e) => err(w, e),
            },
        }
    }
    for (line, key, text) in &sec.bad_lines {
        p.errors.push(InstallError {
            record: record.to_path_buf(),
            line: *line,
            key: *key,
            value: text.clone(),
            source: BadValue::Quotes,
        });
    }
    p.errors.sort_by_key(|e| e.line);
    links.sort();
    links.dedup();
    also.dedup();
    p.links = links;
    p.also = also;
    p
}

/// The link for `Alias=name` of the plain unit `unit` whose type is
/// `suffix`, or `None` for an alias to the unit itself (systemd 252's
/// `unit_file_verify_alias()`).
fn alias_link(name: &str, unit: &str, suffix: &str) -> Result<Option<Link>, BadValue> {
    if let Some((dir, base)) = name.rsplit_once('/') {
        let stem = dir
            .strip_suffix(".wants")
            .map(|s| (s, ".wants"))
            .or_else(|| dir.strip_suffix(".requires").map(|s| (s, ".requires")));
        return match stem {
            Some((s, kind))
                if unit_name_kind(s).is_some() && base == unit && dir.len() <= NAME_MAX =>
            {
                Ok(Some(Link::Dependency {
                    dir: format!("{s}{kind}"),
                }))
            }
            _ => Err(BadValue::AliasPath(unit.to_string())),
        };
    }
    match unit_name_kind(name) {
        None => Err(BadValue::NotUnitName(name.to_string())),
        Some(NameKind::Plain) if name.rsplit_once('.').map(|(_, s)| s) == Some(suffix) => {
            Ok((name != unit).then(|| Link::Alias {
                name: name.to_string(),
            }))
        }
        Some(_) => Err(BadValue::AliasType(suffix.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(Key, String)> {
        parse(text)
            .words
            .into_iter()
            .map(|w| (w.key, w.text))
            .collect()
    }

    fn plan_of(text: &str) -> Plan {
        plan(
            &parse(text),
            "my-web.service",
            Path::new("/etc/syscontainer/containers/my-web.json"),
            &|n| (n == "other.service").then(|| BadValue::TakenByRecord("other".into())),
        )
    }

    fn dirs(p: &Plan) -> Vec<String> {
        p.links
            .iter()
            .map(|l| match l {
                Link::Dependency { dir } => dir.clone(),
                Link::Alias { name } => format!("alias {name}"),
            })
            .collect()
    }

    #[test]
    fn lists_repeat_and_reset() {
        let t = "[Service]\nWantedBy=not-install.target\n[Install]\nWantedBy=a.target  b.target\nWantedBy=\nWantedBy=c.target\nRequiredBy=d.service\nWantedBy=e.target\n";
        assert_eq!(
            words(t),
            [
                (Key::WantedBy, "c.target".to_string()),
                (Key::RequiredBy, "d.service".to_string()),
                (Key::WantedBy, "e.target".to_string()),
            ]
        );
    }

    #[test]
    fn sections_merge_and_comments_and_continuations() {
        let t = "[Install]\nWantedBy=a.target \\\n# comment inside\n  b.target\n[Unit]\nX=y\n[Install]\n; c\nRequiredBy = c.service\n";
        assert_eq!(
            words(t),
            [
                (Key::WantedBy, "a.target".to_string()),
                (Key::WantedBy, "b.target".to_string()),
                (Key::RequiredBy, "c.service".to_string()),
            ]
        );
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(
            split_words(r#"a.target "b c.target" 'd'.target  x"y"z "#),
            (
                vec![
                    "a.target".into(),
                    "b c.target".into(),
                    "d.target".into(),
                    "xyz".into()
                ],
                None
            )
        );
        assert_eq!(
            split_words(r#"a.target  x"b.target c"#),
            (vec!["a.target".to_string()], Some(r#"x"b.target c"#))
        );
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name_kind("a.target"), Some(NameKind::Plain));
        assert_eq!(unit_name_kind("getty@.target"), Some(NameKind::Template));
        assert_eq!(
            unit_name_kind("getty@tty1.service"),
            Some(NameKind::Instance)
        );
        assert_eq!(unit_name_kind("dev-x\\x2dy.device"), Some(NameKind::Plain));
        for bad in [
            "",
            ".target",
            "a",
            "a.nope",
            "../a.target",
            "a/b.target",
            "a b.target",
            "@x.target",
            "a%.target",
            "a\n.target",
        ] {
            assert_eq!(unit_name_kind(bad), None, "{bad:?}");
        }
        assert_eq!(
            unit_name_kind(&format!("{}.target", "a".repeat(248))),
            Some(NameKind::Plain)
        );
        assert_eq!(unit_name_kind(&format!("{}.target", "a".repeat(249))), None);
    }

    #[test]
    fn specifiers() {
        let e = |t| expand_specifiers(t, "my-web.service");
        assert_eq!(e("%n.x.target").unwrap(), "my-web.service.x.target");
        assert_eq!(
            e("%N-%p-%j-%i.target").unwrap(),
            "my-web-my-web-web-.target"
        );
        assert_eq!(e("%%u-%u-%U.target").unwrap(), "%u-root-0.target");
        assert_eq!(e("a%").unwrap(), "a%");
        assert_eq!(e("%H.target"), Err(BadValue::HostSpecifier('H')));
        assert_eq!(e("%z.target"), Err(BadValue::UnknownSpecifier('z')));
    }

    #[test]
    fn links_and_errors() {
        let p = plan_of(
            "[Install]\nWantedBy=multi-user.target %N-extra.target getty@.target ../../etc/x.target\nRequiredBy=docker.service\nUpheldBy=up.target\nAlias=web2.service my-web.service web.socket other.service\nAlias=m.target.wants/my-web.service n.target.wants/evil.service\nAlso=x.socket\nWantedBy=%m.target\n",
        );
        assert_eq!(
            dirs(&p),
            [
                "docker.service.requires",
                "getty@.target.wants",
                "m.target.wants",
                "multi-user.target.wants",
                "my-web-extra.target.wants",
                "up.target.upholds",
                "alias web2.service",
            ]
        );
        assert_eq!(p.also, ["x.socket"]);
        let errs: Vec<String> = p.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].starts_with("record /etc/syscontainer/containers/my-web.json: service template line 2: WantedBy=../../etc/x.target is ignored: '../../etc/x.target' is not a valid unit name"), "{errs:#?}");
        assert!(errs[1].contains("Alias=web.socket is ignored: an alias must be a plain unit name ending in .service"), "{errs:#?}");
        assert!(
            errs[2].contains("Alias=other.service is ignored: it is the unit of container 'other'"),
            "{errs:#?}"
        );
        assert!(errs[3].contains("line 6: Alias=n.target.wants/evil.service is ignored: an alias with a '/' must be UNIT.wants/my-web.service"), "{errs:#?}");
        assert!(
            errs[4].contains(
                "line 8: WantedBy=%m.target is ignored: the specifier %m depends on the host"
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn unbalanced_quotes_keep_the_words_before() {
        let p = plan_of("[Install]\nWantedBy=a.target \"b.target\n");
        assert_eq!(dirs(&p), ["a.target.wants"]);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].source, BadValue::Quotes);
    }
}
