//! Small filesystem helpers: atomic writes and directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Write `data` to `path` atomically: a temp file in the same directory,
/// fsync, rename over the target, fsync of the directory. Readers see the old
/// content or the new one, never a mix, even across a power cut.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_via_temp(path, data, mode, true)
}

/// Write `data` to `path` atomically but not durably: a temp file in the
/// same directory, renamed over the target; no fsync. For volatile state
/// that is rendered again whenever it is needed (the runc bundle under
/// `/run`, written at every start): readers see the old content or the new
/// one, and a power cut loses nothing that the next start does not redo.
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_via_temp(path, data, mode, false)
}

/// A temp sibling, written and renamed over `path`; synced (the file, then
/// the directory) when `durable`. The temp file is removed on failure.
fn write_via_temp(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            fsync_dir(&parent_dir(path))?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Replace (or create) the symlink `link` so that it points at `target`,
/// atomically: a temp symlink renamed over the old one, then a directory fsync.
pub fn symlink_atomic(target: &Path, link: &Path) -> io::Result<()> {
    let dir = parent_dir(link);
    let tmp = temp_sibling(link);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(&dir)
}

/// fsync a directory, making renames and creations in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_sibling(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    parent_dir(p).join(format!(".{}.tmp.{}", name, std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_write_keeps_old_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.json");
        assert!(write_atomic(&p, b"x", 0o644).is_err());
        assert!(!p.exists());
    }

    #[test]
    fn symlink_switch() {
        let d = tempfile::tempdir().unwrap();
        let l = d.path().join("n");
        symlink_atomic(Path::new("n.0"), &l).unwrap();
        symlink_atomic(Path::new("n.1"), &l).unwrap();
        assert_eq!(fs::read_link(&l).unwrap(), PathBuf::from("n.1"));
    }
}
