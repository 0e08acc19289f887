//! `pull`: an [`ImageSource`] into the store.
//!
//! For each layer not yet present: `open_blob` -> verify the compressed
//! digest -> decompress -> verify the `diff_id` -> import; a few layers at
//! once, their content objects written by a pool of threads (see
//! `workers`). The refs are written only after every layer is imported and
//! verified and every transaction of the pull committed (its objects
//! durable), each ref synced on its own, the layer refs before the image
//! ref. Any error aborts every transaction, so no ref is left behind (the
//! repo is as it was; objects already staged are reused by libostree on
//! the next attempt).
//!
//! The parts: `workers` (the layers fetched at once), `layer` (one layer's
//! blob into the store), `pipe` (between a layer's reader thread and its
//! importer).

use std::collections::HashSet;

use glib::prelude::*;

use super::import::ImportStats;
use super::lock::LockMode;
use super::{Store, StoreError};
use super::{META_CONFIG, META_MANIFEST, META_MANIFEST_DIGEST, META_NAME};
use crate::imgref;
use crate::source::{Descriptor, ImageSource, ResolvedImage};
use crate::trust::Signatures;

mod layer;
mod pipe;
mod workers;
pub use workers::{MAX_LAYERS_IN_FLIGHT, MAX_WRITERS};

/// Receives pull events. Every method has an empty default.
pub trait Progress: Send {
    fn resolved(&mut self, _img: &ResolvedImage) {}
    fn layer_skipped(&mut self, _idx: usize, _d: &Descriptor) {}
    fn layer_started(&mut self, _idx: usize, _d: &Descriptor) {}
    /// `read` compressed bytes of layer `idx` so far.
    fn layer_bytes(&mut self, _idx: usize, _read: u64) {}
    fn layer_done(&mut self, _idx: usize, _d: &Descriptor, _stats: &ImportStats) {}
    fn finished(&mut self, _report: &PullReport) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PullReport {
    pub name: String,
    pub image_id: String,
    pub manifest_digest: String,
    /// The image commit.
    pub commit: String,
    pub layers_total: usize,
    pub layers_fetched: usize,
    pub layers_skipped: usize,
    /// Compressed bytes read from the source.
    pub bytes_fetched: u64,
    /// Device nodes and FIFOs dropped from the fetched layers.
    pub dropped_special: u64,
    /// The image was already stored with the same manifest: nothing changed.
    pub up_to_date: bool,
}

/// Aborts the transaction unless committed.
struct Txn<'r> {
    repo: &'r ostree::Repo,
    open: bool,
}

impl Txn<'_> {
    fn begin(repo: &ostree::Repo) -> Result<Txn<'_>, StoreError> {
        repo.prepare_transaction(gio::Cancellable::NONE)
            .map_err(|source| StoreError::Transaction {
                what: "prepare".into(),
                source,
            })?;
        Ok(Txn { repo, open: true })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.repo
            .commit_transaction(gio::Cancellable::NONE)
            .map_err(|source| StoreError::Transaction {
                what: "commit".into(),
                source,
            })?;
        Ok(())
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.repo.abort_transaction(gio::Cancellable::NONE);
        }
    }
}

fn write_commit(
    repo: &ostree::Repo,
    subject: &str,
    meta: &glib::VariantDict,
    root: &ostree::RepoFile,
) -> Result<String, StoreError> {
    // Time 0: the same content gives the same commit on every host, and a
    // re-pull leaves refs untouched.
    repo.write_commit_with_time(
        None,
        Some(subject),
        None,
        Some(&meta.end()),
        root,
        0,
        gio::Cancellable::NONE,
    )
    .and_then(|c| {
        // Until the transaction is committed and the commit is known to be
        // whole, mark it partial: a kill while libostree moves the staged
        // objects into place may leave the commit object without its tree,
        // and fsck (and prune) then treat it as the partial commit it is.
        repo.mark_commit_partial(&c, true)?;
        Ok(c.to_string())
    })
    .map_err(|source| StoreError::Transaction {
        what: format!("write commit for {subject}"),
        source,
    })
}

/// The image commit: an empty tree, the manifest and config as metadata;
/// written into `repo`'s transaction, marked partial.
fn write_image_commit(
    repo: &ostree::Repo,
    img: &ResolvedImage,
    name: &str,
) -> Result<String, StoreError> {
    let write_err = |source| StoreError::Transaction {
        what: "write image root".into(),
        source,
    };
    let mtree = ostree::MutableTree::new();
    let mut metas = super::import::DirMetas::new();
    let dm = metas.get(repo, 0, 0, 0o755, None).map_err(write_err)?;
    mtree.set_metadata_checksum(&dm);
    let root = repo
        .write_mtree(&mtree, gio::Cancellable::NONE)
        .map_err(write_err)?
        .downcast::<ostree::RepoFile>()
        .expect("write_mtree returns an OstreeRepoFile");
    let meta = glib::VariantDict::new(None);
    let manifest = String::from_utf8_lossy(&img.manifest_raw).into_owned();
    let config = String::from_utf8_lossy(&img.config_raw).into_owned();
    meta.insert(META_MANIFEST, manifest);
    meta.insert(META_MANIFEST_DIGEST, img.manifest_digest.clone());
    meta.insert(META_CONFIG, config);
    meta.insert(META_NAME, name);
    write_commit(repo, name, &meta, &root)
}

fn check_resolved(img: &ResolvedImage, desc: &str) -> Result<(), StoreError> {
    let bad = |reason: String| StoreError::BadImage {
        name: img.name.clone(),
        source_desc: desc.to_string(),
        reason,
    };
    if img.layers.len() != img.diff_ids.len() {
        return Err(bad(format!(
            "{} layers but {} diff_ids in the config",
            img.layers.len(),
            img.diff_ids.len()
        )));
    }
    for d in img
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain(&img.diff_ids)
        .chain([&img.config.digest, &img.manifest_digest])
    {
        if imgref::validate_digest(d).is_err() {
            return Err(bad(format!("'{d}' is not a sha256 digest")));
        }
    }
    if img.name.is_empty() || img.name.contains(char::is_control) {
        return Err(bad("empty image name".into()));
    }
    Ok(())
}

/// Decides whether a resolved image may be stored: called once per pull,
/// after the manifest and config are fetched and verified and before the
/// store is locked or anything is written. An error aborts the pull with
/// nothing stored. The signature policy ([`crate::trust`]) is one; it may
/// read signatures through `src`, and returns those it read, which the pull
/// keeps with the image ([`Store::signatures`]).
pub trait PullCheck {
    fn check(
        &self,
        img: &ResolvedImage,
        src: &mut dyn ImageSource,
    ) -> Result<Option<Signatures>, crate::trust::TrustError>;
}

/// Accepts every image.
pub struct AcceptAll;
impl PullCheck for AcceptAll {
    fn check(
        &self,
        _img: &ResolvedImage,
        _src: &mut dyn ImageSource,
    ) -> Result<Option<Signatures>, crate::trust::TrustError> {
        Ok(None)
    }
}

/// Pull `src` into `store`, accepting any image ([`pull_checked`] with
/// [`AcceptAll`]).
pub fn pull(
    store: &Store,
    src: &mut dyn ImageSource,
    progress: &mut dyn Progress,
) -> Result<PullReport, StoreError> {
    pull_checked(store, src, progress, &AcceptAll)
}

/// Pull `src` into `store` if `check` accepts the resolved image.
pub fn pull_checked(
    store: &Store,
    src: &mut dyn ImageSource,
    progress: &mut dyn Progress,
    check: &dyn PullCheck,
) -> Result<PullReport, StoreError> {
    let desc = src.describe();
    let img = src.resolve().map_err(|source| StoreError::Source {
        source_desc: desc.clone(),
        source,
    })?;
    check_resolved(&img, &desc)?;
    // The trust check: before the lock, the up-to-date shortcut and any write.
    let sigs = check
        .check(&img, src)
        .map_err(|e| StoreError::Untrusted(Box::new(e)))?
        .filter(|s| !s.is_empty());
    progress.resolved(&img);
    let name = imgref::with_tag(&img.name);
    let image_ref = imgref::image_branch(&name);
    let repo = store.repo();
    let _lock = store.lock(LockMode::Exclusive)?;
    crate::failpoint!("pull.locked");

    let mut report = PullReport {
        name: name.clone(),
        image_id: img.config.digest.clone(),
        manifest_digest: img.manifest_digest.clone(),
        commit: String::new(),
        layers_total: img.layers.len(),
        layers_fetched: 0,
        layers_skipped: 0,
        bytes_fetched: 0,
        dropped_special: 0,
        up_to_date: false,
    };

    // Already stored with this very manifest and every layer present?
    if let Some(c) = store.resolve_ref(&image_ref)? {
        let same = store.image_from_commit(&name, &c).is_ok_and(|i| {
            i.manifest_digest == img.manifest_digest && i.image_id == img.config.digest
        });
        let mut all = same;
        for l in &img.layers {
            if !all {
                break;
            }
            all = store.layer_commit(&l.digest)?.is_some();
        }
        if all {
            if let Some(s) = &sigs {
                store.put_signatures(&name, &img.manifest_digest, s)?;
            }
            for (i, l) in img.layers.iter().enumerate() {
                progress.layer_skipped(i, l);
            }
            report.commit = c;
            report.layers_skipped = img.layers.len();
            report.up_to_date = true;
            progress.finished(&report);
            return Ok(report);
        }
    }

    let txn = Txn::begin(repo)?;
    crate::failpoint!("pull.txn-begun");
    // The layers to fetch: each digest once, unless stored already.
    let mut todo = Vec::new();
    let mut planned = HashSet::new();
    for (i, (d, diff_id)) in img.layers.iter().zip(&img.diff_ids).enumerate() {
        if planned.contains(&d.digest) {
            report.layers_skipped += 1;
            progress.layer_skipped(i, d);
            continue;
        }
        if let Some(l) = store.layer(&d.digest)? {
            if let Some(stored) = l.diff_id.filter(|s| s != diff_id) {
                return Err(StoreError::DiffIdMismatch {
                    name: name.clone(),
                    digest: d.digest.clone(),
                    expected: diff_id.clone(),
                    stored,
                });
            }
            report.layers_skipped += 1;
            progress.layer_skipped(i, d);
            continue;
        }
        planned.insert(d.digest.clone());
        todo.push(i);
    }
    // Every object durable, in the transactions of the pull's threads and
    // this one (which holds the image commit), all committed at once.
    let (fetched, commit) =
        workers::fetch_layers(store, src, &img, &todo, &desc, &name, progress, || {
            let commit = write_image_commit(repo, &img, &name)?;
            crate::failpoint!("pull.image-commit-written");
            txn.commit()?;
            Ok(commit)
        })?;
    crate::failpoint!("pull.objects-committed");
    // The signatures before any ref: an image that is stored has them.
    if let Some(s) = &sigs {
        store.put_signatures(&name, &img.manifest_digest, s)?;
    }
    // Then the refs, each written and synced on its own: the layers' before
    // the image's.
    let set_ref = |branch: &str, commit: &str| {
        repo.set_ref_immediate(None, branch, Some(commit), gio::Cancellable::NONE)
            .map_err(|source| StoreError::SetRef {
                name: branch.to_string(),
                source,
            })
    };
    for f in &fetched {
        let d = &img.layers[f.idx];
        set_ref(&imgref::layer_branch(&d.digest)?, &f.commit)?;
        report.layers_fetched += 1;
        report.bytes_fetched += d.size;
        report.dropped_special += f.stats.dropped_special;
    }
    crate::failpoint!("pull.layer-refs-written");
    set_ref(&image_ref, &commit)?;
    for c in fetched.iter().map(|f| &f.commit).chain([&commit]) {
        repo.mark_commit_partial(c, false)
            .map_err(|source| StoreError::Transaction {
                what: format!("mark commit {c} complete"),
                source,
            })?;
    }
    crate::failpoint!("pull.committed");
    report.commit = commit;
    progress.finished(&report);
    Ok(report)
}
