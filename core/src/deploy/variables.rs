//! The template variables an image uses, split by where their value comes
//! from (`images info`): the templates' placeholders, the manifest's
//! `defaultValues` ([`Manifest::info_defaults`]) and the precedence rules of
//! [`crate::vars`]. The store only reads the files, through the union of
//! the image's layers.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::Manifest;
use crate::store::{ImageInfo, Store, StoreError};
use crate::template::TemplateError;

/// The template variables an image uses (`images info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageVariables {
    /// The `/exports/*.template` files scanned.
    pub templates: Vec<String>,
    /// Used, with a value from `manifest.json` `defaultValues`.
    pub with_default: BTreeMap<String, String>,
    /// Used, set by syscontainer itself (built-ins without a manifest default).
    pub builtin: BTreeSet<String>,
    /// Used, with no default: must be given with `--set`.
    pub required: BTreeSet<String>,
}

#[derive(Debug, Error)]
pub enum VariablesError {
    /// Reading the image's files.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image '{name}': {path} is not valid UTF-8 or JSON")]
    ExportsFile { name: String, path: String },
    #[error("image '{name}': template {path}")]
    Template {
        name: String,
        path: String,
        #[source]
        source: TemplateError,
    },
}

impl VariablesError {
    /// The documented exit code: 3 for a bad file, else the store's.
    pub fn exit_code(&self) -> i32 {
        match self {
            VariablesError::Store(e) => e.exit_code(),
            VariablesError::ExportsFile { .. } => crate::exit::INVALID,
            VariablesError::Template { source, .. } => source.exit_code(),
        }
    }
}

const MANIFEST: &str = "/exports/manifest.json";

/// The template variables of `img`'s `/exports/*.template` files.
pub fn variables(store: &Store, img: &ImageInfo) -> Result<ImageVariables, VariablesError> {
    let mut used = BTreeSet::new();
    let mut templates = Vec::new();
    for n in store.list_dir(img, "/exports")? {
        if !n.ends_with(".template") {
            continue;
        }
        let path = format!("/exports/{n}");
        let Some(data) = store.read_file(img, &path)? else {
            continue;
        };
        let text = String::from_utf8(data).map_err(|_| VariablesError::ExportsFile {
            name: img.name.clone(),
            path: path.clone(),
        })?;
        let vars = crate::template::variables(&path, &text).map_err(|source| {
            VariablesError::Template {
                name: img.name.clone(),
                path: path.clone(),
                source,
            }
        })?;
        used.extend(vars);
        templates.push(path);
    }
    let defaults = match store.read_file(img, MANIFEST)? {
        Some(m) => Manifest::info_defaults(&m).ok_or_else(|| VariablesError::ExportsFile {
            name: img.name.clone(),
            path: MANIFEST.into(),
        })?,
        None => BTreeMap::new(),
    };
    Ok(classify(templates, used, &defaults))
}

/// Sort the used variables by where their value comes from: a fixed
/// built-in, a manifest default, an overridable built-in, or nowhere.
fn classify(
    templates: Vec<String>,
    used: BTreeSet<String>,
    defaults: &BTreeMap<String, String>,
) -> ImageVariables {
    let mut out = ImageVariables {
        templates,
        ..ImageVariables::default()
    };
    for v in used {
        if crate::vars::FIXED.contains(&v.as_str()) {
            out.builtin.insert(v);
        } else if let Some(d) = defaults.get(&v) {
            out.with_default.insert(v, d.clone());
        } else if crate::vars::OVERRIDABLE.contains(&v.as_str()) {
            out.builtin.insert(v);
        } else {
            out.required.insert(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_of_the_sources() {
        let used: BTreeSet<String> = ["NAME", "RUN_DIRECTORY", "UUID", "PORT", "X"]
            .map(String::from)
            .into();
        let defaults: BTreeMap<String, String> =
            [("NAME", "n"), ("RUN_DIRECTORY", "/srv"), ("PORT", "1")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into();
        let v = classify(vec!["/exports/t.template".into()], used, &defaults);
        assert_eq!(v.templates, ["/exports/t.template"]);
        // A fixed built-in never takes a default; an overridable one does.
        assert_eq!(v.builtin, ["NAME", "UUID"].map(String::from).into());
        assert_eq!(
            v.with_default,
            [("PORT", "1"), ("RUN_DIRECTORY", "/srv")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into()
        );
        assert_eq!(v.required, ["X"].map(String::from).into());
    }
}
