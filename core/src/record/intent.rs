//! Intent: the small file an admin, Ignition or `syscontainer install`
//! writes, `{/etc,/run,/usr/lib}/syscontainer/containers/NAME.json`.
//!
//! ```json
//! { "version": 1, "image": "registry.example.com/etcd:3.5", "values": { "ETCD_NAME": "node1" } }
//! ```
//!
//! Only `version` and `image` are required. syscontainer never rewrites a
//! file it did not write ([`super::state`] remembers which ones it did).
//! A first-wave record (with `image_id` and `deployment`) is read as intent
//! and state in one ([`Intent::is_legacy`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::{
    default_runtime, default_target, default_true, valid_target, AutoUpdate, RecordError,
    RECORD_VERSION,
};
use crate::name;
use crate::paths;

/// What a declarative file asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    pub version: u32,
    /// Must equal the file name's stem when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image reference: any pull source (`REGISTRY/NAME:TAG`,
    /// `http:HOST:PORT/NAME:TAG`, ...) or a stored image.
    pub image: String,
    /// Template values; numbers and booleans are taken as their JSON text.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_values"
    )]
    pub values: BTreeMap<String, String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_target", skip_serializing_if = "is_default_target")]
    pub target: String,
    #[serde(
        default = "default_runtime",
        skip_serializing_if = "is_default_runtime"
    )]
    pub runtime: String,
    #[serde(
        default,
        alias = "auto_update",
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_update: Option<AutoUpdate>,
    /// Registry credentials for the pull (containers-auth.json(5)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authfile: Option<String>,
    /// The admin's health check ([`crate::health`]): it wins, field by
    /// field, over the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthSpec>,
    /// Seconds an applied edit must stay running before it is kept
    /// (default 10, as `containers update --settle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<u64>,
    /// Fields this version does not know (warned about, never written).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

fn is_default_target(t: &str) -> bool {
    t == paths::DEFAULT_TARGET
}
fn is_default_runtime(r: &str) -> bool {
    r == paths::DEFAULT_RUNTIME
}

fn scalar_values<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok((k, v.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "value of '{}' must be a string, number or boolean, not {other}",
                k.escape_debug()
            ))),
        })
        .collect()
}

/// Fields of a first-wave record: state, not intent. Not warned about.
const STATE_FIELDS: &[&str] = &[
    "image_id",
    "deployment",
    "default_values",
    "service_template",
    "uuid",
    "host_uid",
    "host_gid",
    "repo",
    "host_files",
    "no_container_service",
];

/// The default settle time of an applied edit.
pub const DEFAULT_SETTLE_SECS: u64 = 10;

impl Intent {
    /// The intent of an installed record (what `syscontainer install`
    /// writes).
    pub fn of_record(rec: &super::Record) -> Intent {
        Intent {
            version: RECORD_VERSION,
            name: None,
            image: rec.reference(),
            values: rec.values.clone(),
            enabled: rec.enabled,
            target: rec.target.clone(),
            runtime: rec.runtime.clone(),
            auto_update: rec.auto_update,
            authfile: None,
            health: rec.health.clone(),
            settle: None,
            unknown: BTreeMap::new(),
        }
    }

    /// Parse an intent file; `logical` names it in messages, and its stem
    /// is the container name. Returns the intent and warnings.
    pub fn parse(logical: &Path, text: &[u8]) -> Result<(Intent, Vec<String>), RecordError> {
        let path = || logical.to_path_buf();
        let intent: Intent = super::parse_json(logical, text)?;
        if intent.version > RECORD_VERSION || intent.version == 0 {
            return Err(RecordError::Version {
                path: path(),
                version: intent.version,
            });
        }
        let stem = logical
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".json"));
        if let Some(n) = &intent.name {
            name::validate(n).map_err(|source| RecordError::Name {
                path: path(),
                source,
            })?;
            if let Some(stem) = stem {
                if stem != n {
                    return Err(RecordError::NameMismatch {
                        path: path(),
                        name: n.clone(),
                        expected: stem.to_string(),
                    });
                }
            }
        }
        if intent.image.is_empty() {
            return Err(RecordError::EmptyImage { path: path() });
        }
        if !valid_target(&intent.target) {
            return Err(RecordError::Target {
                path: path(),
                target: intent.target,
            });
        }
        let warnings = if intent.is_legacy() {
            Vec::new()
        } else {
            intent
                .unknown
                .keys()
                .filter(|k| !STATE_FIELDS.contains(&k.as_str()))
                .map(|k| {
                    format!(
                        "record {}: unknown field '{}' ignored",
                        logical.display(),
                        k.escape_debug()
                    )
                })
                .collect()
        };
        Ok((intent, warnings))
    }

    /// A first-wave record: intent and state in one file.
    pub fn is_legacy(&self) -> bool {
        self.unknown.contains_key("image_id") && self.unknown.contains_key("deployment")
    }

    /// The copy kept in the state and compared with the file: no name, no
    /// unknown fields.
    pub fn normalized(&self) -> Intent {
        Intent {
            name: None,
            unknown: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// Same as `other`, once both are normalized.
    pub fn same(&self, other: &Intent) -> bool {
        self.version == other.version
            && self.image == other.image
            && self.values == other.values
            && self.enabled == other.enabled
            && self.target == other.target
            && self.runtime == other.runtime
            && self.auto_update == other.auto_update
            && self.authfile == other.authfile
            && self.health == other.health
            && self.settle == other.settle
    }

    /// Pretty JSON, as `syscontainer install` writes it.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.normalized()).expect("intents serialize");
        s.push('\n');
        s
    }

    /// The settle time of an applied edit.
    pub fn settle_secs(&self) -> u64 {
        self.settle.unwrap_or(DEFAULT_SETTLE_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/etc/syscontainer/containers/etcd.json")
    }

    #[test]
    fn minimal_and_full() {
        let (i, w) = Intent::parse(p(), br#"{"version":1,"image":"r/etcd:3.5"}"#).unwrap();
        assert!(w.is_empty() && i.enabled && i.values.is_empty());
        assert_eq!(i.target, "multi-user.target");
        assert_eq!(
            i.to_json(),
            "{\n  \"version\": 1,\n  \"image\": \"r/etcd:3.5\",\n  \"enabled\": true\n}\n"
        );
        let (i, w) = Intent::parse(
            p(),
            br#"{"version":1,"name":"etcd","image":"r/etcd:3.5","values":{"A":"x","N":3,"B":true},
                "enabled":false,"autoUpdate":"registry","authfile":"/etc/auth.json","health":{"command":["true"],"interval":"5s"},
                "settle":2,"colour":"red"}"#,
        )
        .unwrap();
        assert_eq!(i.values["N"], "3");
        assert_eq!(i.values["B"], "true");
        assert_eq!(i.auto_update, Some(AutoUpdate::Registry));
        assert_eq!(i.settle_secs(), 2);
        let h = i.health.as_ref().expect("typed health");
        assert_eq!(h.command.as_deref(), Some(&["true".to_string()][..]));
        assert_eq!(h.interval, Some(std::time::Duration::from_secs(5)));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("'colour'"), "{w:?}");
        let j = i.to_json();
        assert!(
            !j.contains("colour") && !j.contains("\"name\"") && j.contains("autoUpdate"),
            "{j}"
        );
        let (back, _) = Intent::parse(p(), j.as_bytes()).unwrap();
        assert!(back.same(&i) && back == i.normalized());
        let (snake, _) = Intent::parse(
            p(),
            br#"{"version":1,"image":"i","auto_update":"registry"}"#,
        )
        .unwrap();
        assert_eq!(snake.auto_update, Some(AutoUpdate::Registry));
    }

    #[test]
    fn refusals_name_the_file() {
        for (text, want) in [
            (&br#"{"version":1"#[..], "not valid JSON"),
            (br#"{"version":1}"#, "image"),
            (br#"{"version":1,"image":""}"#, "no image"),
            (br#"{"version":3,"image":"i"}"#, "version 3"),
            (br#"{"version":1,"image":"i","name":"other"}"#, "'other'"),
            (
                br#"{"version":1,"image":"i","values":{"A":[1]}}"#,
                "value of 'A'",
            ),
            (br#"{"version":1,"image":"i","target":"x"}"#, "target 'x'"),
            (
                br#"{"version":1,"image":"i","autoUpdate":"daily"}"#,
                "daily",
            ),
            (
                br#"{"version":1,"image":"i","health":{"command":["true"],"interval":"soon"}}"#,
                "interval",
            ),
            (
                br#"{"version":1,"image":"i","health":{"cmd":["true"]}}"#,
                "cmd",
            ),
        ] {
            let e = Intent::parse(p(), text).unwrap_err();
            let m = e.to_string();
            assert!(m.contains("etcd.json") && m.contains(want), "{m}");
            assert_eq!(e.exit_code(), crate::exit::INVALID, "{m}");
        }
    }

    #[test]
    fn legacy_records_are_recognised_without_warnings() {
        let (i, w) = Intent::parse(
            p(),
            br#"{"version":1,"name":"etcd","image":"i","image_id":"sha256:x","deployment":"/d","uuid":"u"}"#,
        )
        .unwrap();
        assert!(i.is_legacy() && w.is_empty(), "{w:?}");
        let (i, w) =
            Intent::parse(p(), br#"{"version":1,"image":"i","uuid":"u","colour":1}"#).unwrap();
        assert!(!i.is_legacy());
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
