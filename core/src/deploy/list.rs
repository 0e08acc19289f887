//! `containers list`.

use serde::Serialize;

use super::{slot_of, Systemd};
use crate::exec::Runtime;
use crate::health_check;
use crate::paths::Root;
use crate::record::{self, FoundState};

/// One row of `syscontainer containers list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRow {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// The active slot: `.0` or `.1`.
    pub deployment: String,
    /// `running`, `inactive`, `failed`, ... (from systemd when it runs, else
    /// from the runtime); `invalid` or `masked` for unusable records.
    pub state: String,
    pub runtime: String,
    pub enabled: bool,
    /// How the record file compares with what is deployed: `deployed`,
    /// `pending` (declared, not deployed yet), `edited` (the next start
    /// applies it), `refused` (the last good deployment stays), `removing`
    /// (the file is gone), `invalid`.
    pub declared: String,
    /// With a health check: `starting`, `healthy` or `unhealthy` while it
    /// runs ([`crate::health_check`]); empty without a check or when not
    /// running.
    pub health: String,
}

/// Installed containers. Without `all`, only the running ones (as atomic).
pub fn list(root: &Root, all: bool) -> Vec<ContainerRow> {
    let systemd = Systemd::detect(root);
    let (found, errors) = record::discover(root);
    for e in errors {
        log::warn!("{e}");
    }
    let mut rows = Vec::new();
    for f in found {
        let row = match f.state {
            FoundState::Ok { record, decl, .. } => {
                let state = unit_state(&systemd, &record.name, &record.runtime);
                let health = health_of(root, &record, &state);
                ContainerRow {
                    health,
                    name: record.name.clone(),
                    image: record.image.clone(),
                    image_id: record.image_id.clone(),
                    deployment: format!(".{}", slot_of(&record.deployment)),
                    state,
                    runtime: record.runtime.clone(),
                    enabled: record.enabled,
                    declared: decl.as_str().to_string(),
                }
            }
            FoundState::Pending { intent, .. } => ContainerRow {
                name: f.name.clone(),
                image: intent.image.clone(),
                image_id: String::new(),
                deployment: String::new(),
                state: unit_state(&systemd, &f.name, &intent.runtime),
                runtime: intent.runtime.clone(),
                enabled: intent.enabled,
                declared: "pending".into(),
                health: String::new(),
            },
            FoundState::Masked => continue,
            other => {
                log::warn!("{}: {other:?}", f.path.display());
                ContainerRow {
                    name: f.name.clone(),
                    image: String::new(),
                    image_id: String::new(),
                    deployment: String::new(),
                    state: "invalid".into(),
                    runtime: String::new(),
                    enabled: false,
                    declared: "invalid".into(),
                    health: String::new(),
                }
            }
        };
        if all || row.state == "running" {
            rows.push(row);
        }
    }
    rows
}

/// `running`, `inactive`, `failed`, ...: from systemd when it runs, else
/// from the runtime.
fn unit_state(systemd: &Systemd, name: &str, runtime: &str) -> String {
    match systemd.state(name) {
        Some(s) if s == "active" => "running".to_string(),
        Some(s) => s,
        None => match Runtime::new(runtime).status(name) {
            Some(s) if s == "stopped" => "inactive".to_string(),
            Some(s) => s,
            None => "inactive".to_string(),
        },
    }
}

/// The health state shown for a container in state `state`: the state
/// file's, when it is about the container's current run (a file left by an
/// earlier run is `starting` again).
fn health_of(root: &Root, rec: &crate::record::Record, state: &str) -> String {
    if rec.health_check().is_none() || state != "running" {
        return String::new();
    }
    let Some(st) = health_check::read_state(root, &rec.name) else {
        return health_check::Status::Starting.as_str().to_string();
    };
    let run = health_check::container_run(&Runtime::new(&rec.runtime), &rec.name);
    if run.is_some_and(|(id, _)| id == st.container) {
        st.status.as_str().to_string()
    } else {
        health_check::Status::Starting.as_str().to_string()
    }
}
