//! The store's error type, with the exit code of each kind.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::{CheckoutFailure, ImportError, READ_FILE_MAX};
use crate::source::SourceError;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot read the deployment at {path}")]
    ReadDeployment {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot checksum {path} in the deployment")]
    Checksum {
        path: PathBuf,
        #[source]
        source: glib::Error,
    },
    #[error("cannot create directory {path}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the OSTree repo at {path}")]
    OpenRepo {
        path: PathBuf,
        #[source]
        source: glib::Error,
    },
    #[error("the OSTree repo at {path} is in mode '{mode}'; syscontainer needs a 'bare' repo")]
    RepoMode { path: PathBuf, mode: String },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read ref '{name}' in the OSTree repo")]
    Ref {
        name: String,
        #[source]
        source: glib::Error,
    },
    #[error("cannot list refs in the OSTree repo")]
    ListRefs {
        #[source]
        source: glib::Error,
    },
    #[error("cannot load commit {commit} ({what})")]
    Commit {
        commit: String,
        what: String,
        #[source]
        source: glib::Error,
    },
    #[error("image commit {commit} on '{name}' is not usable: {reason}")]
    BadImageCommit {
        name: String,
        commit: String,
        reason: String,
    },
    #[error("image '{name}': its manifest in commit {commit} is not valid JSON")]
    ManifestJson {
        name: String,
        commit: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("image '{name}' not found in the store (no ref and no image ID starting with it)")]
    ImageNotFound { name: String },
    #[error("image ID prefix '{prefix}' is ambiguous: {matches}")]
    AmbiguousId { prefix: String, matches: String },
    #[error(
        "image '{name}' ({id}) is used by an installed container; use --force to delete it anyway"
    )]
    InUse { name: String, id: String },
    #[error("image '{name}': layer {digest} is missing from the repo")]
    LayerMissing { name: String, digest: String },
    #[error("image '{name}' from {source_desc} is invalid: {reason}")]
    BadImage {
        name: String,
        source_desc: String,
        reason: String,
    },
    /// The signature policy refused the image (nothing was written).
    #[error(transparent)]
    Untrusted(Box<crate::trust::TrustError>),
    #[error("image source {source_desc}")]
    Source {
        source_desc: String,
        #[source]
        source: SourceError,
    },
    #[error("layer {digest} of image '{name}'")]
    Layer {
        name: String,
        digest: String,
        /// Boxed: its refusals carry their figures.
        #[source]
        source: Box<ImportError>,
    },
    #[error("layer {digest} of image '{name}': verifying its compressed content")]
    LayerVerify {
        name: String,
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest} is stored with diff_id {stored}, but image '{name}' says {expected}")]
    DiffIdMismatch {
        name: String,
        digest: String,
        expected: String,
        stored: String,
    },
    #[error("OSTree transaction failed ({what})")]
    Transaction {
        what: String,
        #[source]
        source: glib::Error,
    },
    #[error("cannot check out into {dest}: not on the filesystem of the OSTree repo at {repo} (a checkout is hardlinks into it)")]
    CrossDevice { repo: PathBuf, dest: PathBuf },
    #[error("checkout destination {path} already exists")]
    DestExists { path: PathBuf },
    #[error("checking out layer {digest} of image '{name}' into {dest}")]
    Checkout {
        name: String,
        digest: String,
        dest: PathBuf,
        #[source]
        source: glib::Error,
    },
    #[error("checking out layer {digest} of image '{name}' into {dest}")]
    CheckoutIo {
        name: String,
        digest: String,
        dest: PathBuf,
        #[source]
        source: Box<CheckoutFailure>,
    },
    #[error("the signatures stored for image '{name}' at {path}: {what}")]
    Signatures {
        name: String,
        path: PathBuf,
        what: String,
    },
    #[error("cannot sync the filesystem of {path}")]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image '{name}': cannot read {path}")]
    ReadFile {
        name: String,
        path: String,
        #[source]
        source: glib::Error,
    },
    #[error("image '{name}': {path} is larger than {READ_FILE_MAX} bytes")]
    FileTooLarge { name: String, path: String },
    #[error("cannot set ref '{name}'")]
    SetRef {
        name: String,
        #[source]
        source: glib::Error,
    },
    #[error("pruning the OSTree repo")]
    Prune {
        #[source]
        source: glib::Error,
    },
    #[error("'{name}' is not a valid image name")]
    BadName { name: String },
    /// A digest or branch name that [`crate::imgref`] refuses.
    #[error(transparent)]
    Reference(#[from] crate::imgref::ImgRefError),
}

impl StoreError {
    /// The documented exit code, from the wrapped error where there is one.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::{self, FAILURE, INVALID, MISSING};
        use StoreError::*;
        match self {
            ImageNotFound { .. } | LayerMissing { .. } => MISSING,
            Source { source, .. } => source.exit_code(),
            Untrusted(e) => e.exit_code(),
            Layer { source, .. } => source.exit_code(),
            Reference(e) => e.exit_code(),
            LayerVerify { source, .. } => exit::of_io(source),
            AmbiguousId { .. }
            | BadImage { .. }
            | DiffIdMismatch { .. }
            | FileTooLarge { .. }
            | BadName { .. } => INVALID,
            ReadDeployment { .. }
            | Checksum { .. }
            | Mkdir { .. }
            | OpenRepo { .. }
            | RepoMode { .. }
            | Lock { .. }
            | Ref { .. }
            | ListRefs { .. }
            | Commit { .. }
            | BadImageCommit { .. }
            | ManifestJson { .. }
            | InUse { .. }
            | Transaction { .. }
            | DestExists { .. }
            | CrossDevice { .. }
            | Checkout { .. }
            | CheckoutIo { .. }
            | Sync { .. }
            | Signatures { .. }
            | ReadFile { .. }
            | SetRef { .. }
            | Prune { .. } => FAILURE,
        }
    }
}
