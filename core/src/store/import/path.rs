//! Entry names: a tar path checked and split into its components.

use super::{ImportError, NAME_MAX, PATH_MAX};

/// Display form of a raw path, shortened for very long ones.
pub(super) fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    } else {
        s.into_owned()
    }
}

/// Validate and split a tar path into its components (empty for the root).
pub fn normalize(raw: &[u8]) -> Result<Vec<&str>, ImportError> {
    if raw.len() > PATH_MAX {
        return Err(ImportError::PathTooLong {
            path: show(raw),
            len: raw.len(),
        });
    }
    // A GNU long name or a PAX path may carry a NUL inside; libostree's C
    // API would see a shorter name (and glib's bindings panic on it).
    if raw.contains(&0) {
        return Err(ImportError::Nul {
            path: show(raw).replace('\0', "\\0"),
            what: "path",
        });
    }
    let s = std::str::from_utf8(raw).map_err(|_| ImportError::NotUtf8 {
        path: show(raw),
        what: "path",
    })?;
    if s.starts_with('/') {
        return Err(ImportError::Absolute { path: s.into() });
    }
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(ImportError::DotDot { path: s.into() }),
            c if c.len() > NAME_MAX => return Err(ImportError::NameTooLong { path: s.into() }),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(b"./a//b/./c").unwrap(), vec!["a", "b", "c"]);
        assert!(normalize(b"./").unwrap().is_empty());
        assert!(matches!(
            normalize(b"/etc/x"),
            Err(ImportError::Absolute { .. })
        ));
        assert!(matches!(
            normalize(b"a/../../x"),
            Err(ImportError::DotDot { .. })
        ));
        assert!(matches!(
            normalize(&vec![b'a'; PATH_MAX + 1]),
            Err(ImportError::PathTooLong { .. })
        ));
        assert!(matches!(
            normalize(&[b'a'; 256]),
            Err(ImportError::NameTooLong { .. })
        ));
        assert!(matches!(
            normalize(b"a\xff"),
            Err(ImportError::NotUtf8 { .. })
        ));
        // Found by fuzzing: a GNU long name with a NUL inside panicked in
        // glib (fuzz/regressions/import/crash-interior-nul-gnu-longname).
        let e = normalize(b"a\0b/c").unwrap_err();
        assert!(matches!(e, ImportError::Nul { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "layer entry 'a\\0b/c': the path contains a NUL byte"
        );
        // "..." and "..x" are ordinary names.
        assert_eq!(normalize(b"...").unwrap(), vec!["..."]);
    }
}
