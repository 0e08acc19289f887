//! syscontainer: system containers for immutable hosts, with systemd as the
//! only orchestrator.
//!
//! The library holds all the logic; the binaries (`syscontainer`,
//! `syscontainer-generator`, `syscontainer-exec`) are thin wrappers. Modules
//! that need libostree, TLS or the network sit behind the `store` feature, and
//! the runtime side (bundles, the exec helper's logic) behind `runtime`: the
//! generator links neither, the exec helper links no libostree and no TLS.

#[cfg(feature = "runtime")]
pub mod bundle;
#[cfg(feature = "runtime")]
pub mod exec;
pub mod exit;
pub mod failpoint;
#[cfg(feature = "store")]
pub mod flock;
pub mod fsutil;
pub mod gencache;
pub mod generate;
pub mod health;
#[cfg(feature = "runtime")]
pub mod health_check;
pub mod health_unit;
pub mod imgref;
pub mod install_section;
pub mod journal;
pub mod logging;
pub mod name;
pub mod paths;
pub mod record;
pub mod settings;
pub mod template;
pub mod text;
#[cfg(feature = "runtime")]
pub mod tmpfiles;
pub mod unit;
pub mod vars;

#[cfg(feature = "store")]
pub mod deploy;
#[cfg(feature = "store")]
pub mod source;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub mod trust;
