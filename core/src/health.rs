//! Health checks: what a check is, where it is declared, and which
//! declaration wins.
//!
//! A check is declared in three places, highest precedence first, merged
//! field by field:
//! 1. the record's `health` (the admin's, kept across updates; set with
//!    `syscontainer install/containers update --health-*`);
//! 2. the image's `/exports/manifest.json` `health`;
//! 3. the image config's Docker `Healthcheck` (`Test` `CMD`, `CMD-SHELL` or
//!    `NONE`).
//!
//! 2 and 3 are merged at install and update time into the record's
//! `image_health` ([`image_health`]), as `defaultValues` are into
//! `default_values`. An empty `command` (or `NONE`) at a higher level turns
//! the check off. A check with no command anywhere is no check.
//!
//! ```json
//! "health": { "command": ["/bin/check"], "interval": "30s", "timeout": 5,
//!             "startPeriod": "1min", "retries": 3, "onFailure": "kill" }
//! ```
//!
//! Durations are seconds (a number) or systemd time spans (`"30s"`,
//! `"1min 30s"`, `"500ms"`). Unknown fields are refused; every error names
//! the field (`health.interval`), and the caller names the file.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Docker's and podman's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
pub const DEFAULT_RETRIES: u32 = 3;

/// What happens after `retries` failed checks in a row (podman's
/// `--health-on-failure` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Only report: the state becomes `unhealthy`.
    #[default]
    None,
    /// Kill the container (SIGKILL through the runtime): the unit's main
    /// process exits with a failure and `Restart=` takes over.
    Kill,
}

impl OnFailure {
    pub const VALUES: &'static [&'static str] = &["none", "kill"];

    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::None => "none",
            OnFailure::Kill => "kill",
        }
    }
}

impl std::str::FromStr for OnFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(OnFailure::None),
            "kill" => Ok(OnFailure::Kill),
            other => Err(format!(
                "'{}' is not an action this syscontainer knows (known: {})",
                other.escape_debug(),
                OnFailure::VALUES.join(", ")
            )),
        }
    }
}

impl fmt::Display for OnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A health check as declared in one place: every field optional, merged
/// over lower-precedence declarations with [`HealthSpec::over`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    /// argv, run inside the container through the runtime's `exec`. Empty:
    /// no check (turns off a lower declaration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_duration"
    )]
    pub interval: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_duration"
    )]
    pub timeout: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_duration"
    )]
    pub start_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_on_failure"
    )]
    pub on_failure: Option<OnFailure>,
}

/// An effective health check: every field known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Not empty.
    pub command: Vec<String>,
    /// Between two checks; more than zero.
    pub interval: Duration,
    /// One check's bound; more than zero.
    pub timeout: Duration,
    /// Failures within this time after the container started do not count.
    pub start_period: Duration,
    /// Failures in a row that make the container unhealthy; at least 1.
    pub retries: u32,
    pub on_failure: OnFailure,
}

impl HealthCheck {
    /// How long `systemctl start` waits for a first passing check
    /// (`syscontainer-exec wait-healthy`): the start period, and then as
    /// long as the checks would take to declare the container unhealthy.
    pub fn wait_bound(&self) -> Duration {
        self.start_period + self.interval * self.retries
    }
}

impl HealthSpec {
    /// `self`'s fields, and `lower`'s where `self` has none.
    pub fn over(&self, lower: &HealthSpec) -> HealthSpec {
        HealthSpec {
            command: self.command.clone().or_else(|| lower.command.clone()),
            interval: self.interval.or(lower.interval),
            timeout: self.timeout.or(lower.timeout),
            start_period: self.start_period.or(lower.start_period),
            retries: self.retries.or(lower.retries),
            on_failure: self.on_failure.or(lower.on_failure),
        }
    }

    /// The check, with defaults for what is not given; `None` without a
    /// command (or with an empty one).
    pub fn check(&self) -> Option<HealthCheck> {
        let command = self.command.clone().filter(|c| !c.is_empty())?;
        Some(HealthCheck {
            command,
            interval: self.interval.unwrap_or(DEFAULT_INTERVAL),
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
            start_period: self.start_period.unwrap_or(DEFAULT_START_PERIOD),
            retries: self.retries.unwrap_or(DEFAULT_RETRIES),
            on_failure: self.on_failure.unwrap_or_default(),
        })
    }
}

/// The effective check of a container: the record's `health` over the
/// image's (`image_health`).
pub fn effective(user: Option<&HealthSpec>, image: Option<&HealthSpec>) -> Option<HealthCheck> {
    match (user, image) {
        (None, None) => None,
        (Some(u), None) => u.check(),
        (None, Some(i)) => i.check(),
        (Some(u), Some(i)) => u.over(i).check(),
    }
}

/// The image's check, as kept in a record's `image_health`: the manifest's
/// `health` over the image config's Docker `Healthcheck` (`config` is the
/// image config's `config` object). `None` when neither declares one.
pub fn image_health(manifest: Option<&HealthSpec>, config: &Value) -> Option<HealthSpec> {
    let docker = from_docker(config);
    match (manifest, docker) {
        (None, None) => None,
        (Some(m), None) => Some(m.clone()),
        (None, Some(d)) => Some(d),
        (Some(m), Some(d)) => Some(m.over(&d)),
    }
}

/// The Docker `Healthcheck` of an image config's `config` object, if it has
/// one that this syscontainer can use (`Test` `CMD`, `CMD-SHELL` or `NONE`;
/// durations in nanoseconds, 0 for the default). Anything else is ignored
/// with a warning: the image config is not the admin's to fix.
pub fn from_docker(config: &Value) -> Option<HealthSpec> {
    let hc = config.get("Healthcheck")?;
    let test: Vec<String> = hc
        .get("Test")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<_>>()?;
    let command = match test.split_first() {
        Some((k, rest)) if k == "CMD" => rest.to_vec(),
        Some((k, [cmd])) if k == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
        }
        Some((k, _)) if k == "NONE" => Vec::new(),
        // An empty Test inherits: nothing to say.
        None => return None,
        Some(_) => {
            log::warn!("the image config's Healthcheck Test {test:?} is not CMD, CMD-SHELL or NONE: ignored");
            return None;
        }
    };
    let nanos = |k: &str| {
        hc.get(k)
            .and_then(Value::as_u64)
            .filter(|&n| n > 0)
            .map(Duration::from_nanos)
    };
    Some(HealthSpec {
        command: Some(command),
        interval: nanos("Interval"),
        timeout: nanos("Timeout"),
        start_period: nanos("StartPeriod"),
        retries: hc
            .get("Retries")
            .and_then(Value::as_u64)
            .filter(|&n| n > 0)
            .map(|n| n.min(u32::MAX as u64) as u32),
        on_failure: None,
    })
}

/// The declaration as written (in a record or a manifest): unknown fields
/// refused, each field checked with its name in the message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    command: Option<Value>,
    #[serde(default)]
    interval: Option<Value>,
    #[serde(default)]
    timeout: Option<Value>,
    #[serde(default)]
    start_period: Option<Value>,
    #[serde(default)]
    retries: Option<Value>,
    #[serde(default)]
    on_failure: Option<Value>,
}

impl<'de> Deserialize<'de> for HealthSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw =
            Raw::deserialize(d).map_err(|e| serde::de::Error::custom(format!("health: {e}")))?;
        HealthSpec::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

impl HealthSpec {
    fn from_raw(raw: Raw) -> Result<HealthSpec, String> {
        let field = |name: &str, why: String| format!("health.{name}: {why}");
        let command = match raw.command {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let mut argv = Vec::with_capacity(a.len());
                for v in a {
                    match v {
                        Value::String(s) if s.contains('\0') => {
                            return Err(field("command", "an argument contains a NUL byte".into()))
                        }
                        Value::String(s) => argv.push(s),
                        other => {
                            return Err(field(
                                "command",
                                format!("{other} is not a string (the command is an argv array of strings)"),
                            ))
                        }
                    }
                }
                if argv.first().is_some_and(|a| a.is_empty()) {
                    return Err(field("command", "the program name is empty".into()));
                }
                Some(argv)
            }
            Some(other) => {
                return Err(field(
                    "command",
                    format!("{other} is not an array of strings (write [\"/bin/sh\", \"-c\", \"...\"] for a shell command)"),
                ))
            }
        };
        let dur =
            |name: &str, v: Option<Value>, zero_ok: bool| -> Result<Option<Duration>, String> {
                let d = match v {
                    None | Some(Value::Null) => return Ok(None),
                    Some(v) => duration_value(&v).map_err(|e| field(name, e))?,
                };
                if d.is_zero() && !zero_ok {
                    return Err(field(name, "must be more than 0".into()));
                }
                Ok(Some(d))
            };
        let interval = dur("interval", raw.interval, false)?;
        let timeout = dur("timeout", raw.timeout, false)?;
        let start_period = dur("startPeriod", raw.start_period, true)?;
        let retries = match raw.retries {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=1_000_000) => Some(n as u32),
                _ => {
                    return Err(field(
                        "retries",
                        format!("{v} is not a whole number from 1 to 1000000"),
                    ))
                }
            },
        };
        let on_failure = match raw.on_failure {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().map_err(|e| field("onFailure", e))?),
            Some(other) => {
                return Err(field(
                    "onFailure",
                    format!(
                        "{other} is not a string (known: {})",
                        OnFailure::VALUES.join(", ")
                    ),
                ))
            }
        };
        Ok(HealthSpec {
            command,
            interval,
            timeout,
            start_period,
            retries,
            on_failure,
        })
    }
}

/// A duration as JSON: seconds (a number) or a systemd time span.
fn duration_value(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(s) if s.is_finite() && (0.0..=MAX_SECS).contains(&s) => {
                Ok(Duration::from_secs_f64(s))
            }
            _ => Err(format!(
                "{n} is not a number of seconds from 0 to {MAX_SECS}"
            )),
        },
        Value::String(s) => parse_timespan(s),
        other => Err(format!(
            "{other} is not a duration (seconds, or a time span such as \"30s\" or \"1min 30s\")"
        )),
    }
}

/// No duration of a check is longer than a year.
const MAX_SECS: f64 = 366.0 * 86400.0;

/// Parse a systemd time span (systemd.time(7)): `"30"` (seconds), `"30s"`,
/// `"1min 30s"`, `"1.5h"`, `"500ms"`.
pub fn parse_timespan(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        Err(format!(
            "'{}' is not a time span ({why}; write seconds, or e.g. \"30s\", \"1min 30s\", \"500ms\")",
            s.escape_debug()
        ))
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return bad("it is empty");
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return bad("a number is missing");
        }
        let Ok(n) = rest[..num_len].parse::<f64>() else {
            return bad("a number is malformed");
        };
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "us" | "usec" | "µs" => 1e-6,
            "ms" | "msec" => 1e-3,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 7.0 * 86400.0,
            _ => return bad(&format!("unknown unit '{}'", unit.escape_debug())),
        };
        total += n * scale;
        rest = rest[unit_len..].trim_start();
    }
    if total > MAX_SECS {
        return bad("it is longer than a year");
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration as a systemd time span: whole seconds as `30s`, else `ms` or
/// `us`.
pub fn timespan(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros().max(1))
    }
}

fn ser_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&timespan(*d)),
        None => s.serialize_none(),
    }
}

fn ser_on_failure<S: Serializer>(o: &Option<OnFailure>, s: S) -> Result<S::Ok, S::Error> {
    match o {
        Some(o) => s.serialize_str(o.as_str()),
        None => s.serialize_none(),
    }
}

/// podman's `--health-cmd`: `none` turns the check off, a JSON array is the
/// argv, anything else is a shell command (`/bin/sh -c CMD`).
pub fn parse_cmd_arg(s: &str) -> Result<Vec<String>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    if t.starts_with('[') {
        let argv: Vec<String> = serde_json::from_str(t)
            .map_err(|e| format!("--health-cmd {s:?} is not a JSON array of strings: {e}"))?;
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(format!("--health-cmd {s:?}: the program name is empty"));
        }
        return Ok(argv);
    }
    if t.is_empty() {
        return Err("--health-cmd is empty (write 'none' to turn the check off)".into());
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), s.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<HealthSpec, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timespan("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timespan("1min 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timespan("1min30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timespan("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timespan("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timespan(" 2 min "), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "10 fortnights", "1..2s", "-1s", "2y"] {
            let e = parse_timespan(bad).unwrap_err();
            assert!(e.contains("not a time span"), "{bad}: {e}");
        }
        assert!(parse_timespan("400d")
            .unwrap_err()
            .contains("longer than a year"));
        assert_eq!(timespan(Duration::from_secs(30)), "30s");
        assert_eq!(timespan(Duration::from_millis(1500)), "1500ms");
        assert_eq!(timespan(Duration::from_micros(3)), "3us");
    }

    #[test]
    fn full_spec_and_roundtrip() {
        let s = parse(json!({
            "command": ["/bin/check", "--quick"], "interval": "10s", "timeout": 2,
            "startPeriod": "1min", "retries": 5, "onFailure": "kill"
        }))
        .unwrap();
        let c = s.check().unwrap();
        assert_eq!(c.command, ["/bin/check", "--quick"]);
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.start_period, Duration::from_secs(60));
        assert_eq!((c.retries, c.on_failure), (5, OnFailure::Kill));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(
            back,
            json!({"command": ["/bin/check", "--quick"], "interval": "10s", "timeout": "2s",
                   "startPeriod": "60s", "retries": 5, "onFailure": "kill"})
        );
        assert_eq!(parse(back).unwrap(), s);
        // fractional seconds survive
        let s = parse(json!({"interval": 0.25})).unwrap();
        assert_eq!(parse(serde_json::to_value(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn defaults() {
        let c = parse(json!({"command": ["true"]}))
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(
            (
                c.interval,
                c.timeout,
                c.start_period,
                c.retries,
                c.on_failure
            ),
            (
                Duration::from_secs(30),
                Duration::from_secs(30),
                Duration::ZERO,
                3,
                OnFailure::None
            )
        );
        assert_eq!(parse(json!({"interval": 5})).unwrap().check(), None);
        assert_eq!(parse(json!({"command": []})).unwrap().check(), None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"interval": "soon"}),
                "health.interval",
                "'soon' is not a time span",
            ),
            (json!({"interval": 0}), "health.interval", "more than 0"),
            (json!({"timeout": "0s"}), "health.timeout", "more than 0"),
            (
                json!({"startPeriod": -1}),
                "health.startPeriod",
                "not a number of seconds",
            ),
            (
                json!({"startPeriod": true}),
                "health.startPeriod",
                "not a duration",
            ),
            (json!({"retries": 0}), "health.retries", "from 1"),
            (json!({"retries": "3"}), "health.retries", "whole number"),
            (
                json!({"onFailure": "restart"}),
                "health.onFailure",
                "known: none, kill",
            ),
            (
                json!({"command": "curl -f x"}),
                "health.command",
                "not an array",
            ),
            (
                json!({"command": ["a", 1]}),
                "health.command",
                "1 is not a string",
            ),
            (
                json!({"command": [""]}),
                "health.command",
                "program name is empty",
            ),
            (json!({"cmd": ["x"]}), "health", "unknown field `cmd`"),
        ];
        for (v, field, want) in cases {
            let e = parse(v.clone()).unwrap_err();
            assert!(e.contains(field) && e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn precedence() {
        let user = parse(json!({"interval": "5s", "onFailure": "kill"})).unwrap();
        let manifest =
            parse(json!({"command": ["/bin/m"], "interval": "20s", "retries": 2})).unwrap();
        let config = json!({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"],
            "Interval": 60_000_000_000u64, "Timeout": 3_000_000_000u64, "Retries": 9}});
        let img = image_health(Some(&manifest), &config).unwrap();
        // the manifest over the image config
        assert_eq!(img.command.as_deref(), Some(&["/bin/m".to_string()][..]));
        assert_eq!(img.interval, Some(Duration::from_secs(20)));
        assert_eq!(img.timeout, Some(Duration::from_secs(3)));
        assert_eq!(img.retries, Some(2));
        // the record over the image
        let c = effective(Some(&user), Some(&img)).unwrap();
        assert_eq!(c.command, ["/bin/m"]);
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!((c.retries, c.on_failure), (2, OnFailure::Kill));
        // the image config alone
        let c = effective(None, image_health(None, &config).as_ref()).unwrap();
        assert_eq!(c.command, ["/bin/sh", "-c", "curl -f localhost"]);
        assert_eq!((c.interval, c.retries), (Duration::from_secs(60), 9));
        // an empty command in the record turns the image's off
        let off = parse(json!({"command": []})).unwrap();
        assert_eq!(effective(Some(&off), Some(&img)), None);
        // Docker's NONE turns nothing on, and CMD is an argv
        let none = json!({"Healthcheck": {"Test": ["NONE"]}});
        assert_eq!(effective(None, image_health(None, &none).as_ref()), None);
        let cmd = json!({"Healthcheck": {"Test": ["CMD", "/bin/x", "a b"]}});
        let c = effective(None, image_health(None, &cmd).as_ref()).unwrap();
        assert_eq!(c.command, ["/bin/x", "a b"]);
        assert_eq!(image_health(None, &json!({})), None);
    }

    #[test]
    fn cmd_arg() {
        assert_eq!(parse_cmd_arg("none").unwrap(), Vec::<String>::new());
        assert_eq!(parse_cmd_arg(r#"["/bin/x","y"]"#).unwrap(), ["/bin/x", "y"]);
        assert_eq!(
            parse_cmd_arg("test -e /x").unwrap(),
            ["/bin/sh", "-c", "test -e /x"]
        );
        assert!(parse_cmd_arg("[1]").unwrap_err().contains("JSON array"));
        assert!(parse_cmd_arg(" ").unwrap_err().contains("empty"));
    }
}

#[cfg(test)]
mod record_tests {
    use crate::record::Record;
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str = r#""version":1,"name":"a","image":"i","image_id":"x","deployment":"/d""#;

    #[test]
    fn record_health_fields() {
        let p = Path::new("/etc/syscontainer/containers/a.json");
        // none: none written
        let (r, _) = Record::parse(p, format!("{{{BASE}}}").as_bytes()).unwrap();
        assert_eq!(r.health_check(), None);
        assert!(!r.to_json().contains("health"));
        let text = format!(
            r#"{{{BASE},"health":{{"interval":"2s","onFailure":"kill"}},"image_health":{{"command":["/bin/ok"],"interval":30}}}}"#
        );
        let (r, w) = Record::parse(p, text.as_bytes()).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let c = r.health_check().unwrap();
        assert_eq!(c.command, ["/bin/ok"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.on_failure, super::OnFailure::Kill);
        let (back, _) = Record::parse(p, r.to_json().as_bytes()).unwrap();
        assert_eq!(back, r);
        // an error names the file and the field
        let text = format!(r#"{{{BASE},"health":{{"command":["/bin/ok"],"timeout":"fast"}}}}"#);
        let e = Record::parse(p, text.as_bytes()).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::INVALID);
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/syscontainer/containers/a.json")
                && msg.contains("health.timeout")
                && msg.contains("'fast'"),
            "{msg}"
        );
    }
}
