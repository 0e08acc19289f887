//! The exit codes the binaries document (their `--help`, the README), for
//! units' `RestartPreventExitStatus=`.
//!
//! Every library error type has an `exit_code()`. An error that wraps
//! another (a `#[source]`, a boxed store error inside a deployment error)
//! asks the wrapped one, so the kind survives however deep it is boxed.
//! [`of`] is the one place that finds a library error in a `dyn Error`
//! chain (the binaries carry theirs in `anyhow`) and asks it for its code.

use std::error::Error;

/// Any other failure: network, repo, I/O.
pub const FAILURE: i32 = 1;
/// Bad arguments.
pub const USAGE: i32 = 2;
/// Invalid input: a hostile or malformed layer or image, a bad record,
/// template, config or value.
pub const INVALID: i32 = 3;
/// An image, record, deployment or runtime that is not there.
pub const MISSING: i32 = 4;
/// The runtime (runc) or systemd-tmpfiles failed (the exec helper).
pub const RUNTIME: i32 = 5;

/// The exit code of `e`, if it is one of the library's errors; `None` for
/// anything else (an `anyhow` context, a bare `io::Error`).
pub fn of(e: &(dyn Error + 'static)) -> Option<i32> {
    macro_rules! first_of {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = e.downcast_ref::<$t>() {
                return Some(e.exit_code());
            })*
        };
    }
    #[cfg(feature = "store")]
    first_of!(
        crate::deploy::DeployError,
        crate::deploy::VariablesError,
        crate::deploy::auto_update::StateError,
        crate::store::StoreError,
        crate::store::ImportError,
        crate::source::SourceError,
        crate::source::SlowTransfer,
        crate::source::VerifyError,
        crate::trust::TrustError,
    );
    #[cfg(feature = "runtime")]
    first_of!(crate::exec::ExecError, crate::bundle::BundleError);
    first_of!(
        crate::record::RecordError,
        crate::template::TemplateError,
        crate::vars::VarsError,
        crate::unit::UnitError,
        crate::imgref::ImgRefError,
        crate::name::NameError,
    );
    None
}

/// The code for an I/O error that may carry a verification failure (a
/// digest or size mismatch travels inside an `io::Error`) or a too-slow
/// transfer.
#[cfg(feature = "store")]
pub(crate) fn of_io(e: &std::io::Error) -> i32 {
    if let Some(v) = crate::source::VerifyError::from_io(e) {
        return v.exit_code();
    }
    if let Some(s) = crate::source::SlowTransfer::from_io(e) {
        return s.exit_code();
    }
    match e.kind() {
        // What decompressors say about a corrupt stream.
        std::io::ErrorKind::InvalidData => INVALID,
        _ => FAILURE,
    }
}
