//! Container names.
//!
//! A container name becomes a unit name (`NAME.service`), a record file name
//! (`NAME.json`), a deployment directory (`NAME.0`) and a runc container id, so
//! it must be safe for all four.

use thiserror::Error;

/// The longest name accepted, in bytes. systemd allows 255 for a whole unit
/// name; this leaves room for `.service` and for deployment suffixes.
pub const MAX_NAME_LEN: usize = 200;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid container name '{name}': {reason}")]
    Invalid { name: String, reason: &'static str },
}

impl NameError {
    /// The documented exit code: always invalid input.
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID
    }
}

/// Validate a container name: a valid systemd unit name prefix
/// (`[A-Za-z0-9:_.\-]`), no `/`, no `..`, no `@`, no leading `-` or `.`, and
/// at most [`MAX_NAME_LEN`] bytes.
pub fn validate(name: &str) -> Result<(), NameError> {
    let bad = |reason| {
        Err(NameError::Invalid {
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 200 bytes");
    }
    if name.contains('/') {
        return bad("it contains '/'");
    }
    if name.contains("..") {
        return bad("it contains '..'");
    }
    if name.contains('@') {
        return bad("it contains '@' (template units are not supported)");
    }
    if name.starts_with('-') {
        return bad("it starts with '-'");
    }
    if name.starts_with('.') {
        return bad("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-' | b'\\'))
    {
        return bad("only letters, digits and ':', '_', '.', '-' are allowed");
    }
    if name.contains('\\') {
        return bad("it contains '\\'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "etcd",
            "flannel-1",
            "kube_let",
            "a.b",
            "x:y",
            "name.0",
            "E2",
        ] {
            validate(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        validate(&"a".repeat(200)).unwrap();
    }

    #[test]
    fn rejects_bad_names() {
        for n in [
            "", "a/b", "..", "a..b", "a@b", "-a", ".hidden", "a b", "a\nb", "ä", "a%b", "a\\x2d",
            "a$b",
        ] {
            assert!(validate(n).is_err(), "{n:?} accepted");
        }
        assert!(validate(&"a".repeat(201)).is_err());
    }

    #[test]
    fn error_names_the_name() {
        let e = validate("a/b").unwrap_err().to_string();
        assert!(e.contains("'a/b'") && e.contains("'/'"), "{e}");
    }
}
