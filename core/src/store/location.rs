//! Where the repo and the checkouts live: atomic's environment contract.
//!
//! atomic's `_get_system_checkout_path` takes `ATOMIC_OSTREE_CHECKOUT_PATH`
//! (default `/var/lib/containers/atomic`), and `_find_ostree_repo_location`
//! takes `ATOMIC_OSTREE_REPO`, else `/ostree/repo` when it exists on the
//! checkout root's filesystem, else `CHECKOUT/.storage/ostree`. The binary
//! reads the two variables once, at its start, and passes a [`Location`]
//! down; nothing here reads the environment.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use crate::paths;

/// Where the repo and the checkouts live, as logical paths (`None` = default
/// rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub repo: Option<PathBuf>,
    pub checkout: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum LocationError {
    #[error("{var}={value:?} is not valid UTF-8")]
    NotUtf8 { var: &'static str, value: OsString },
    #[error("{var}='{value}': a path with white space or a control character cannot be written into a unit's RequiresMountsFor= or a template's $DESTDIR")]
    BadChar { var: &'static str, value: String },
}

impl Location {
    /// From the values of [`paths::ENV_OSTREE_REPO`] and
    /// [`paths::ENV_CHECKOUT_PATH`] as the binary read them. An empty value
    /// is unset; a relative path is taken relative to `cwd`, as atomic did
    /// (records and units need absolute paths).
    pub fn from_vars(
        repo: Option<OsString>,
        checkout: Option<OsString>,
        cwd: &Path,
    ) -> Result<Location, LocationError> {
        Ok(Location {
            repo: one(paths::ENV_OSTREE_REPO, repo, cwd)?,
            checkout: one(paths::ENV_CHECKOUT_PATH, checkout, cwd)?,
        })
    }

    /// The logical checkout root: where `install` puts `NAME.0`, `NAME.1`
    /// and the link `NAME`.
    pub fn checkout_root(&self) -> PathBuf {
        self.checkout
            .clone()
            .unwrap_or_else(|| PathBuf::from(paths::CHECKOUT_ROOT))
    }
}

fn one(
    var: &'static str,
    value: Option<OsString>,
    cwd: &Path,
) -> Result<Option<PathBuf>, LocationError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let s = value
        .to_str()
        .ok_or_else(|| LocationError::NotUtf8 {
            var,
            value: value.clone(),
        })?
        .to_string();
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LocationError::BadChar { var, value: s });
    }
    let p = Path::new(&s);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    // `a//b/./c/` -> `a/b/c`: the paths end up in records and units.
    let clean: PathBuf = abs
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    Ok(Some(clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(repo: Option<&str>, co: Option<&str>) -> Result<Location, LocationError> {
        Location::from_vars(repo.map(Into::into), co.map(Into::into), Path::new("/work"))
    }

    #[test]
    fn unset_and_empty_mean_the_default() {
        assert_eq!(loc(None, None).unwrap(), Location::default());
        assert_eq!(loc(Some(""), Some("")).unwrap(), Location::default());
        assert_eq!(
            Location::default().checkout_root(),
            PathBuf::from("/var/lib/containers/atomic")
        );
    }

    #[test]
    fn paths_are_absolute_and_clean() {
        let l = loc(Some("/srv//repo/"), Some("co/./x")).unwrap();
        assert_eq!(l.repo, Some(PathBuf::from("/srv/repo")));
        assert_eq!(l.checkout_root(), PathBuf::from("/work/co/x"));
    }

    #[test]
    fn unit_breaking_paths_are_refused() {
        let e = loc(None, Some("/srv/my containers"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ATOMIC_OSTREE_CHECKOUT_PATH") && e.contains("/srv/my containers"),
            "{e}"
        );
        let e = loc(Some("/srv/r\nx"), None).unwrap_err().to_string();
        assert!(e.contains("ATOMIC_OSTREE_REPO"), "{e}");
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"/srv/\xff".to_vec());
        let e = Location::from_vars(None, Some(bad), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ATOMIC_OSTREE_CHECKOUT_PATH"), "{e}");
    }
}
