//! Registry credentials: `--creds`, auth files (containers-auth.json(5) and
//! `~/.docker/config.json`), and `WWW-Authenticate` challenges.
//!
//! Secrets never reach a message: [`Credentials`] prints as the user name
//! only, and auth-file errors name the file and the key, not the value.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::SourceError;

/// A user name and password. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// `--creds USER:PASS`. A missing password is an error here: the CLI
    /// prompts for it before calling the library.
    pub fn parse_creds(s: &str, registry: &str) -> Result<Credentials, SourceError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials::new(u, p)),
            Some(_) => Err(SourceError::Credentials {
                registry: registry.to_string(),
                reason: "--creds has an empty user name".into(),
            }),
            None => Err(SourceError::Credentials {
                registry: registry.to_string(),
                reason: format!("--creds gives no password for user '{s}' (use USER:PASS)"),
            }),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The auth files consulted when `--authfile` is not given, in order:
/// `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config`),
/// `~/.docker/config.json`. `env` gives the value of an environment variable
/// as the binary read it (`HOME`, `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME`).
pub fn default_auth_files(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = nonempty("HOME");
    let mut files = Vec::new();
    if let Some(d) = nonempty("XDG_RUNTIME_DIR") {
        files.push(d.join("containers/auth.json"));
    }
    match (nonempty("XDG_CONFIG_HOME"), &home) {
        (Some(d), _) => files.push(d.join("containers/auth.json")),
        (None, Some(h)) => files.push(h.join(".config/containers/auth.json")),
        (None, None) => {}
    }
    if let Some(h) = &home {
        files.push(h.join(".docker/config.json"));
    }
    files
}

#[derive(Debug, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

/// Normalise a registry name or an auth-file key: no scheme, no `/v1/`
/// suffix, Docker Hub's aliases folded into `docker.io`.
fn normalize_key(k: &str) -> String {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, rest) = match k.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (k, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

/// Look up the credentials for `registry/repository` in one parsed auth
/// file: the most specific key (`host/ns/repo`, then `host/ns`, then `host`)
/// wins.
fn lookup_in(
    file: &AuthFile,
    path: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, SourceError> {
    let entries: BTreeMap<String, &AuthEntry> = file
        .auths
        .iter()
        .map(|(k, v)| (normalize_key(k), v))
        .collect();
    let mut key = format!("{}/{repository}", normalize_key(registry));
    loop {
        if let Some(e) = entries.get(&key) {
            return decode_entry(e, path, &key).map(Some);
        }
        match key.rfind('/') {
            Some(i) => key.truncate(i),
            None => break,
        }
    }
    let host = normalize_key(registry);
    if file.cred_helpers.contains_key(&host) || file.creds_store.is_some() {
        log::warn!(
            "{}: credential helpers are not supported; ignoring them for {host}",
            path.display()
        );
    }
    Ok(None)
}

fn decode_entry(e: &AuthEntry, path: &Path, key: &str) -> Result<Credentials, SourceError> {
    let bad = |reason: &str| SourceError::AuthFile {
        path: path.to_path_buf(),
        reason: format!("entry '{key}': {reason}"),
    };
    if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| bad("'auth' is not valid base64"))?;
        let s = String::from_utf8(raw).map_err(|_| bad("'auth' is not UTF-8"))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| bad("'auth' does not decode to USER:PASSWORD"))?;
        return Ok(Credentials::new(u, p));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) => Ok(Credentials::new(u.clone(), p.clone())),
        _ => Err(bad("it has neither 'auth' nor 'username' and 'password'")),
    }
}

/// Search `files` in order; the first file with a matching entry decides.
/// Missing files are skipped; unreadable or malformed ones are errors.
pub fn lookup(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, SourceError> {
    for path in files {
        let raw = match std::fs::read(path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SourceError::File {
                    what: "reading auth file",
                    path: path.clone(),
                    source: e,
                })
            }
        };
        // serde_json's messages can quote input; report position only.
        let file: AuthFile = serde_json::from_slice(&raw).map_err(|e| SourceError::AuthFile {
            path: path.clone(),
            reason: format!("invalid JSON at line {} column {}", e.line(), e.column()),
        })?;
        if let Some(c) = lookup_in(&file, path, registry, repository)? {
            log::debug!("using credentials for {registry} from {}", path.display());
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme: `bearer` or `basic`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// Parse `Bearer realm="...",service="...",scope="..."` (or `Basic
/// realm=...`). Quoted strings may contain commas and `\"` escapes.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = match h.find(char::is_whitespace) {
        Some(i) => (&h[..i], h[i..].trim_start()),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n)
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn creds_parse_and_redact() {
        let c = Credentials::parse_creds("bob:s3cr:et", "r").unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.password(), "s3cr:et");
        assert!(!format!("{c:?}").contains("s3cr"));
        assert_eq!(c.basic_header(), format!("Basic {}", b64("bob:s3cr:et")));
        let e = Credentials::parse_creds("bob", "reg.example")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reg.example") && e.contains("bob"), "{e}");
        assert!(Credentials::parse_creds(":x", "r").is_err());
    }

    #[test]
    fn default_files_follow_containers_auth_order() {
        let env = |k: &str| match k {
            "XDG_RUNTIME_DIR" => Some("/run/user/0".into()),
            "HOME" => Some("/root".into()),
            _ => None,
        };
        assert_eq!(
            default_auth_files(env),
            vec![
                PathBuf::from("/run/user/0/containers/auth.json"),
                PathBuf::from("/root/.config/containers/auth.json"),
                PathBuf::from("/root/.docker/config.json"),
            ]
        );
        let env = |k: &str| (k == "XDG_CONFIG_HOME").then(|| "/cfg".into());
        assert_eq!(
            default_auth_files(env),
            vec![PathBuf::from("/cfg/containers/auth.json")]
        );
    }

    #[test]
    fn most_specific_entry_wins_and_first_file_decides() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.json");
        let b = d.path().join("b.json");
        std::fs::write(
            &a,
            format!(
                r#"{{"auths":{{
                "quay.io":{{"auth":"{}"}},
                "quay.io/team":{{"auth":"{}"}},
                "quay.io/team/app":{{"auth":"{}"}},
                "https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                b64("host:1"),
                b64("ns:2"),
                b64("repo:3"),
                b64("hub:4")
            ),
        )
        .unwrap();
        std::fs::write(
            &b,
            r#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let files = [d.path().join("missing.json"), a.clone(), b.clone()];
        let who = |reg: &str, repo: &str| {
            lookup(&files, reg, repo)
                .unwrap()
                .map(|c| format!("{}:{}", c.username, c.password()))
        };
        assert_eq!(who("quay.io", "team/app").as_deref(), Some("repo:3"));
        assert_eq!(who("quay.io", "team/other").as_deref(), Some("ns:2"));
        assert_eq!(who("quay.io", "other/x").as_deref(), Some("host:1"));
        assert_eq!(
            who("docker.io", "library/busybox").as_deref(),
            Some("hub:4")
        );
        assert_eq!(who("127.0.0.1:5000", "x").as_deref(), Some("u:p"));
        assert_eq!(who("example.com", "x"), None);
    }

    #[test]
    fn bad_auth_files_are_named_without_secrets() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.json");
        std::fs::write(&a, r#"{"auths":{"quay.io":{"auth":"!!notbase64-secret"}}}"#).unwrap();
        let e = lookup(std::slice::from_ref(&a), "quay.io", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.json") && e.contains("quay.io"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        std::fs::write(&a, r#"{"auths": "secret"#).unwrap();
        let e = lookup(&[a], "quay.io", "x").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(
            c.param("scope"),
            Some("repository:library/busybox:pull,push")
        );
        let c = parse_challenge(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("basic-realm"));
        let c = parse_challenge(r#"Bearer realm=http://x/t, service="a\"b""#).unwrap();
        assert_eq!(c.param("realm"), Some("http://x/t"));
        assert_eq!(c.param("service"), Some("a\"b"));
        assert!(parse_challenge("").is_none());
    }
}
