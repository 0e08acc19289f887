//! Every well-known path, in one place.
//!
//! All paths here are *logical* paths, as seen on the running system. I/O
//! goes through [`Root`], which prefixes them with `SYSCONTAINER_ROOT` (default
//! `/`) so that every test runs on a temporary directory.

use std::path::{Path, PathBuf};

/// Admin records: highest precedence.
pub const RECORDS_ETC: &str = "/etc/syscontainer/containers";
/// Runtime records.
pub const RECORDS_RUN: &str = "/run/syscontainer/containers";
/// Vendor records, for image-based OSes that preinstall containers.
pub const RECORDS_USR: &str = "/usr/lib/syscontainer/containers";
/// syscontainer's own state of each container (`NAME.json`): under
/// `/etc`, as the generator reads it (never `/var`).
pub const STATE_DIR: &str = "/etc/syscontainer/state";
/// Record directories, highest precedence first.
pub const RECORD_DIRS: [&str; 3] = [RECORDS_ETC, RECORDS_RUN, RECORDS_USR];

/// Where deployments are checked out (`NAME.0`, `NAME.1`, symlink `NAME`),
/// unless [`ENV_CHECKOUT_PATH`] says otherwise. An installed container's
/// checkout root is the directory of its record's `deployment`.
pub const CHECKOUT_ROOT: &str = "/var/lib/containers/atomic";
/// The OSTree repo, when it is on the same filesystem as the checkout root.
pub const OSTREE_REPO: &str = "/ostree/repo";
/// Fallback repo location, relative to the checkout root.
pub const OSTREE_REPO_FALLBACK: &str = ".storage/ostree";
/// atomic's override of the checkout root (read by the CLI only, at start).
pub const ENV_CHECKOUT_PATH: &str = "ATOMIC_OSTREE_CHECKOUT_PATH";
/// atomic's override of the repo location (read by the CLI only, at start).
pub const ENV_OSTREE_REPO: &str = "ATOMIC_OSTREE_REPO";
/// `syscontainer auto-update`'s state: the digests that failed, and the
/// manifest digest of what it deployed.
pub const AUTO_UPDATE_STATE: &str = "/var/lib/syscontainer/auto-update.json";
/// Per-container runtime state of the exec helper (rendered bundles).
pub const RUN_STATE: &str = "/run/syscontainer";
/// Rendered runc bundles, one directory per container (`BUNDLES/NAME`). Not
/// `RUN_STATE/NAME`: that would collide with `containers` and `lock`.
pub const BUNDLES: &str = "/run/syscontainer/bundle";
/// runc's default state directory (`runc --root`), on the real host.
pub const RUNC_STATE: &str = "/run/runc";
/// Present when systemd is the running init (sd_booted(3)).
pub const SYSTEMD_RUNNING: &str = "/run/systemd/system";
/// Lock directory.
pub const LOCK_DIR: &str = "/run/syscontainer/lock";

/// The default target that enabled containers are wanted by.
pub const DEFAULT_TARGET: &str = "multi-user.target";
/// The target that groups every system container.
pub const CONTAINERS_TARGET: &str = "syscontainers.target";

/// The exec helper, as written into generated units. Set at build time with
/// `SYSCONTAINER_EXEC_HELPER` (the Makefile passes `$(LIBEXECDIR)/syscontainer-exec`).
pub const EXEC_HELPER: &str = match option_env!("SYSCONTAINER_EXEC_HELPER") {
    Some(p) => p,
    None => "/usr/libexec/syscontainer-exec",
};

/// The CLI, as written into generated units (`ExecStartPre=CLI apply NAME`).
/// Set at build time with `SYSCONTAINER_CLI` (the Makefile passes
/// `$(BINDIR)/syscontainer`).
pub const CLI: &str = match option_env!("SYSCONTAINER_CLI") {
    Some(p) => p,
    None => "/usr/bin/syscontainer",
};

/// The default OCI runtime.
pub const DEFAULT_RUNTIME: &str = match option_env!("SYSCONTAINER_RUNTIME") {
    Some(p) => p,
    None => "/usr/sbin/runc",
};

/// The environment variable naming the root all paths are resolved under.
pub const ROOT_ENV: &str = "SYSCONTAINER_ROOT";
/// The checkout implementation: `libostree` for libostree's `checkout_at`.
pub const ENV_CHECKOUT: &str = "SYSCONTAINER_CHECKOUT";
/// Overrides the cap on entries per layer (`store::import::MAX_ENTRIES`).
pub const ENV_MAX_LAYER_ENTRIES: &str = "SYSCONTAINER_MAX_LAYER_ENTRIES";
/// Overrides the cap on file-content bytes per layer
/// (`store::import::MAX_CONTENT_BYTES`).
pub const ENV_MAX_LAYER_BYTES: &str = "SYSCONTAINER_MAX_LAYER_BYTES";
/// Overrides how many declared bytes of sparse files a layer may hold per
/// compressed byte, beyond a floor (`store::import::MAX_SPARSE_RATIO`).
pub const ENV_MAX_SPARSE_RATIO: &str = "SYSCONTAINER_MAX_SPARSE_RATIO";

/// A root directory under which logical paths are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(p: impl Into<PathBuf>) -> Self {
        Root(p.into())
    }

    /// The root from the value of [`ROOT_ENV`] as the binary read it: `/`
    /// when unset or empty.
    pub fn from_var(value: Option<&std::ffi::OsStr>) -> Self {
        match value {
            Some(v) if !v.is_empty() => Root(PathBuf::from(v)),
            _ => Root(PathBuf::from("/")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn is_host(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// Resolve a logical absolute path under this root.
    pub fn join(&self, logical: impl AsRef<Path>) -> PathBuf {
        let l = logical.as_ref();
        let rel = l.strip_prefix("/").unwrap_or(l);
        self.0.join(rel)
    }
}

/// The logical path of a record in the admin directory.
pub fn record_path(name: &str) -> PathBuf {
    Path::new(RECORDS_ETC).join(format!("{name}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_strips_leading_slash() {
        let r = Root::new("/tmp/x");
        assert_eq!(r.join("/etc/a"), PathBuf::from("/tmp/x/etc/a"));
        assert_eq!(Root::new("/").join("/etc/a"), PathBuf::from("/etc/a"));
    }

    #[test]
    fn root_from_its_variable() {
        use std::ffi::OsStr;
        assert_eq!(Root::from_var(None), Root::new("/"));
        assert_eq!(Root::from_var(Some(OsStr::new(""))), Root::new("/"));
        assert_eq!(
            Root::from_var(Some(OsStr::new("/tmp/r"))),
            Root::new("/tmp/r")
        );
    }
}
