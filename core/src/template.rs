//! The template engine, compatible with atomic's system containers (Python's
//! `string.Template`):
//!
//! - `$VAR` and `${VAR}` are replaced; names are `[A-Za-z_][A-Za-z0-9_]*`,
//!   matched greedily (`$A_B` is `A_B`);
//! - `$$` is a literal `$`;
//! - a `$` followed by anything else (or at the end) is kept as a literal `$`;
//! - an unclosed or malformed `${...}` is an error;
//! - values are spliced verbatim (a value may be a JSON fragment);
//! - a variable without a value is an error, in atomic's wording.

use std::borrow::Cow;
use std::collections::BTreeSet;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("The template file '{file}' still contains an unreplaced value for: '{var}'")]
    Unset { file: String, var: String },
    #[error("The template file '{file}' has a malformed placeholder at line {line}: {what}")]
    Malformed {
        file: String,
        line: usize,
        what: &'static str,
    },
    #[error("The template file '{file}': the value of '{var}' {reason}")]
    BadValue {
        file: String,
        var: String,
        reason: String,
    },
}

impl TemplateError {
    /// The documented exit code: always invalid input (a bad template or value).
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn is_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}
fn is_cont(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Split a template into text and variables.
fn parse<'a>(file: &str, text: &'a str) -> Result<Vec<Piece<'a>>, TemplateError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut lit = 0; // start of pending literal text
    let mut i = 0;
    let malformed = |at: usize, what| TemplateError::Malformed {
        file: file.to_string(),
        line: text[..at].matches('\n').count() + 1,
        what,
    };
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                // "$$" -> "$": emit text up to and including the first '$'.
                out.push(Piece::Text(&text[lit..=i]));
                i += 2;
                lit = i;
            }
            Some(b'{') => {
                let start = i + 2;
                let mut j = start;
                while j < bytes.len() && is_cont(bytes[j]) {
                    j += 1;
                }
                if j == bytes.len() || bytes[j] == b'\n' {
                    return Err(malformed(i, "'${' is not closed"));
                }
                if bytes[j] != b'}' || j == start || !is_start(bytes[start]) {
                    return Err(malformed(
                        i,
                        "'${' must hold a variable name followed by '}'",
                    ));
                }
                out.push(Piece::Text(&text[lit..i]));
                out.push(Piece::Var(&text[start..j]));
                i = j + 1;
                lit = i;
            }
            Some(&b) if is_start(b) => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && is_cont(bytes[j]) {
                    j += 1;
                }
                out.push(Piece::Text(&text[lit..i]));
                out.push(Piece::Var(&text[start..j]));
                i = j;
                lit = i;
            }
            _ => i += 1, // a lone '$' stays literal
        }
    }
    out.push(Piece::Text(&text[lit..]));
    out.retain(|p| !matches!(p, Piece::Text("")));
    Ok(out)
}

/// The variables a template refers to, sorted and deduplicated.
pub fn variables(file: &str, text: &str) -> Result<BTreeSet<String>, TemplateError> {
    Ok(parse(file, text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Var(v) => Some(v.to_string()),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Render `text`. `lookup` returns a variable's value, `Ok(None)` when unset,
/// or an error message when the value is not acceptable in this context.
pub fn render_with<'v, F>(file: &str, text: &str, lookup: F) -> Result<String, TemplateError>
where
    F: FnMut(&str) -> Result<Option<Cow<'v, str>>, String>,
{
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    render_into(file, text, &mut out, lookup)?;
    Ok(out)
}

/// [`render_with`], appending to `out` (on an error, `out` holds part of the
/// text: discard it).
pub fn render_into<'v, F>(
    file: &str,
    text: &str,
    out: &mut String,
    mut lookup: F,
) -> Result<(), TemplateError>
where
    F: FnMut(&str) -> Result<Option<Cow<'v, str>>, String>,
{
    for piece in parse(file, text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(v) => match lookup(v) {
                Ok(Some(val)) => out.push_str(&val),
                Ok(None) => {
                    return Err(TemplateError::Unset {
                        file: file.to_string(),
                        var: v.to_string(),
                    })
                }
                Err(reason) => {
                    return Err(TemplateError::BadValue {
                        file: file.to_string(),
                        var: v.to_string(),
                        reason,
                    })
                }
            },
        }
    }
    Ok(())
}

/// Render `text` with values from `vars`.
pub fn render(file: &str, text: &str, vars: &crate::vars::Vars) -> Result<String, TemplateError> {
    render_with(file, text, |v| Ok(vars.get(v).map(Cow::Borrowed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn r(text: &str, kv: &[(&str, &str)]) -> Result<String, TemplateError> {
        let m: BTreeMap<&str, &str> = kv.iter().copied().collect();
        render_with("t", text, |v| {
            Ok(m.get(v).map(|s| Cow::Owned(s.to_string())))
        })
    }

    #[test]
    fn both_forms() {
        assert_eq!(r("a $X b ${X}c", &[("X", "1")]).unwrap(), "a 1 b 1c");
    }

    #[test]
    fn greedy_names() {
        assert_eq!(r("$A_B", &[("A", "no"), ("A_B", "yes")]).unwrap(), "yes");
        assert_eq!(r("${A}_B", &[("A", "x")]).unwrap(), "x_B");
        assert_eq!(r("$A1-x", &[("A1", "v")]).unwrap(), "v-x");
    }

    #[test]
    fn dollar_dollar() {
        assert_eq!(r("$$", &[]).unwrap(), "$");
        assert_eq!(r("$$VAR", &[("VAR", "no")]).unwrap(), "$VAR");
        assert_eq!(r("$$$VAR", &[("VAR", "v")]).unwrap(), "$v");
        assert_eq!(r("a$$$$b", &[]).unwrap(), "a$$b");
    }

    #[test]
    fn lone_dollar_is_literal() {
        assert_eq!(r("cost: 5$", &[]).unwrap(), "cost: 5$");
        assert_eq!(r("$ x $1 $-", &[]).unwrap(), "$ x $1 $-");
    }

    #[test]
    fn adjacent_variables() {
        assert_eq!(
            r("$A${B}$C", &[("A", "1"), ("B", "2"), ("C", "3")]).unwrap(),
            "123"
        );
        assert_eq!(r("${A}${A}", &[("A", "x")]).unwrap(), "xx");
    }

    #[test]
    fn unclosed_brace_is_an_error() {
        let e = r("line1\n${ABC", &[("ABC", "v")]).unwrap_err();
        assert!(
            matches!(e, TemplateError::Malformed { line: 2, .. }),
            "{e:?}"
        );
        assert!(r("${", &[]).is_err());
        assert!(r("${}", &[]).is_err());
        assert!(r("${1A}", &[]).is_err());
        assert!(r("${A B}", &[("A", "")]).is_err());
    }

    #[test]
    fn unset_uses_atomic_wording() {
        let e = r("x $MISSING", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The template file 't' still contains an unreplaced value for: 'MISSING'"
        );
    }

    #[test]
    fn values_are_verbatim() {
        let frag = r#", {"type":"bind","source":"/a","destination":"/b"}"#;
        assert_eq!(r("[x $M]", &[("M", frag)]).unwrap(), format!("[x {frag}]"));
        // A value that looks like a variable is not expanded again.
        assert_eq!(r("$A", &[("A", "$B")]).unwrap(), "$B");
        assert_eq!(r("$A", &[("A", "")]).unwrap(), "");
    }

    #[test]
    fn lists_variables() {
        let v = variables("t", "$A ${B} $$C $A").unwrap();
        assert_eq!(v.into_iter().collect::<Vec<_>>(), ["A", "B"]);
    }

    #[test]
    fn bad_value_names_the_variable() {
        let e = render_with("f", "$X", |_| Err("contains a newline".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The template file 'f': the value of 'X' contains a newline"
        );
    }

    #[test]
    fn unicode_passthrough() {
        assert_eq!(r("é $A ü", &[("A", "ß")]).unwrap(), "é ß ü");
    }
}
