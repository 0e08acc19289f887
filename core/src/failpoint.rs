//! Crash injection for the crash-consistency tests (feature `failpoints`,
//! off by default and never enabled in packaging).
//!
//! [`failpoint!`](crate::failpoint) marks a point between two durable steps
//! of a mutating command. With the feature on:
//!
//! - `SYSCONTAINER_FAILPOINT=NAME` (or `NAME@N`: the Nth time it is reached)
//!   makes the process SIGKILL itself there: no destructors, no buffered
//!   output, exactly like a crash;
//! - `SYSCONTAINER_FAILPOINT_LOG=FILE` appends the name of every failpoint
//!   reached to FILE, so that a harness can discover a command's points.
//!
//! Without the feature the macro expands to nothing.

/// Environment variable: the failpoint to die at (`NAME` or `NAME@N`).
pub const ENV: &str = "SYSCONTAINER_FAILPOINT";
/// Environment variable: a file to log every failpoint reached to.
pub const ENV_LOG: &str = "SYSCONTAINER_FAILPOINT_LOG";

/// A crash point. See the [module docs](crate::failpoint).
#[macro_export]
macro_rules! failpoint {
    ($name:expr) => {{
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($name);
    }};
}

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::Mutex;

    static COUNTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
    if let Some(log) = std::env::var_os(ENV_LOG) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{name}");
        }
    }
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    let (want, nth) = match spec.split_once('@') {
        Some((w, n)) => (w, n.parse().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if want != name {
        return;
    }
    let mut g = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let c = g
        .get_or_insert_with(HashMap::new)
        .entry(name.to_string())
        .or_insert(0);
    *c += 1;
    if *c == nth {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; never continue past a failpoint.
        std::process::abort();
    }
}
