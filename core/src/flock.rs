//! Waiting for an `flock`: the one loop that the store lock and the
//! container locks share.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use fs2::FileExt;

/// Say that we wait after this long.
const WAIT_NOTICE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

/// Take an `flock` on `f` (the file at `path`), shared or exclusive, waiting
/// as long as it takes. After a second it says once that it waits, naming
/// `path` and `why` (who holds it, e.g. "another syscontainer command is
/// using the image store").
pub fn wait(f: &File, exclusive: bool, path: &Path, why: &str) -> io::Result<()> {
    let start = Instant::now();
    let mut told = false;
    loop {
        let tried = if exclusive {
            FileExt::try_lock_exclusive(f)
        } else {
            FileExt::try_lock_shared(f)
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::EWOULDBLOCK) =>
            {
                if !told && start.elapsed() >= WAIT_NOTICE {
                    log::warn!("waiting for lock {} ({why}) ...", path.display());
                    told = true;
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    }
}
