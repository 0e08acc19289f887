//! The store lock: `flock` on `/run/syscontainer/lock/store.lock` (under the
//! root).
//!
//! Mutations (pull, delete, tag, prune) take it exclusive; readers that must
//! not see objects disappear under them (a checkout during install) take it
//! shared. Within one [`super::Store`] the lock nests: a shared holder asking
//! for exclusive upgrades for the guard's lifetime, then drops back.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    Shared,
    Exclusive,
}

#[derive(Default)]
pub(crate) struct LockState {
    file: Option<File>,
    mode: Option<LockMode>,
    depth: u32,
}

/// Held while alive.
#[must_use = "the lock is released when the guard is dropped"]
pub struct StoreLock<'a> {
    state: &'a RefCell<LockState>,
    /// The mode to go back to on drop, when this guard upgraded.
    restore: Option<LockMode>,
}

fn flock(f: &File, mode: LockMode, path: &Path) -> Result<(), StoreError> {
    let why = "another syscontainer command is using the image store";
    crate::flock::wait(f, mode == LockMode::Exclusive, path, why).map_err(|source| {
        StoreError::Lock {
            path: path.to_path_buf(),
            source,
        }
    })
}

pub(crate) fn acquire<'a>(
    state: &'a RefCell<LockState>,
    path: &Path,
    mode: LockMode,
) -> Result<StoreLock<'a>, StoreError> {
    let mut s = state.borrow_mut();
    if s.depth > 0 {
        let cur = s.mode.expect("held lock has a mode");
        let mut restore = None;
        if mode > cur {
            flock(s.file.as_ref().expect("held lock has a file"), mode, path)?;
            s.mode = Some(mode);
            restore = Some(cur);
        }
        s.depth += 1;
        return Ok(StoreLock { state, restore });
    }
    let io_err = |source| StoreError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err)?;
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err)?;
    flock(&f, mode, path)?;
    s.file = Some(f);
    s.mode = Some(mode);
    s.depth = 1;
    Ok(StoreLock {
        state,
        restore: None,
    })
}

impl Drop for StoreLock<'_> {
    fn drop(&mut self) {
        let mut s = self.state.borrow_mut();
        s.depth -= 1;
        if s.depth == 0 {
            // Closing the file releases the flock.
            s.file = None;
            s.mode = None;
        } else if let Some(m) = self.restore {
            if let Some(f) = &s.file {
                // Downgrading cannot block: we hold it exclusive.
                let _ = FileExt::lock_shared(f);
            }
            s.mode = Some(m);
        }
    }
}

/// The lock file's real path.
pub(crate) fn lock_path(root: &crate::paths::Root) -> PathBuf {
    root.join(crate::paths::LOCK_DIR).join("store.lock")
}
