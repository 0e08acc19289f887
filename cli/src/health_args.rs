//! `--health-*` of `install` and `containers update`, as podman names them.

use anyhow::Result;
use clap::Args;
use syscontainer::health::{self, HealthSpec, OnFailure};

#[derive(Debug, Args, Default)]
pub struct HealthArgs {
    /// Health check command, run inside the container: a shell command
    /// (run with /bin/sh -c), a JSON array (the argv), or `none` to turn
    /// the image's check off
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between checks: seconds or a time span (30s, 1min)
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Failures in a row before the container is unhealthy
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// How long one check may run
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Failures within this time after the start do not count
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// What to do once unhealthy: `kill` (the unit's Restart= takes over)
    /// or `none` (only report)
    #[arg(long, value_name = "ACTION", value_parser = ["none", "kill"])]
    pub health_on_failure: Option<String>,
}

impl HealthArgs {
    /// The record's `health` as these options give it; `None` without any.
    pub fn spec(&self) -> Result<Option<HealthSpec>> {
        let dur = |opt: &str, v: &Option<String>, zero_ok: bool| -> Result<_> {
            let Some(v) = v else { return Ok(None) };
            let d = health::parse_timespan(v).map_err(|e| anyhow::anyhow!("--{opt}: {e}"))?;
            if d.is_zero() && !zero_ok {
                anyhow::bail!("--{opt}: must be more than 0");
            }
            Ok(Some(d))
        };
        if self.health_retries == Some(0) {
            anyhow::bail!("--health-retries: must be at least 1");
        }
        let spec = HealthSpec {
            command: self
                .health_cmd
                .as_deref()
                .map(health::parse_cmd_arg)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            interval: dur("health-interval", &self.health_interval, false)?,
            timeout: dur("health-timeout", &self.health_timeout, false)?,
            start_period: dur("health-start-period", &self.health_start_period, true)?,
            retries: self.health_retries,
            on_failure: self
                .health_on_failure
                .as_deref()
                .map(str::parse::<OnFailure>)
                .transpose()
                .map_err(anyhow::Error::msg)?,
        };
        Ok((spec != HealthSpec::default()).then_some(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn options_to_spec() {
        assert_eq!(HealthArgs::default().spec().unwrap(), None);
        let a = HealthArgs {
            health_cmd: Some("test -e /ok".into()),
            health_interval: Some("2s".into()),
            health_retries: Some(2),
            health_start_period: Some("0".into()),
            health_on_failure: Some("kill".into()),
            ..Default::default()
        };
        let s = a.spec().unwrap().unwrap();
        assert_eq!(
            s.command.as_deref().unwrap(),
            ["/bin/sh", "-c", "test -e /ok"]
        );
        assert_eq!(s.interval, Some(Duration::from_secs(2)));
        assert_eq!(s.start_period, Some(Duration::ZERO));
        assert_eq!((s.retries, s.on_failure), (Some(2), Some(OnFailure::Kill)));
        assert_eq!(s.timeout, None);
        let bad = HealthArgs {
            health_interval: Some("0s".into()),
            ..Default::default()
        };
        assert!(bad
            .spec()
            .unwrap_err()
            .to_string()
            .contains("--health-interval"));
        let bad = HealthArgs {
            health_timeout: Some("soon".into()),
            ..Default::default()
        };
        let e = bad.spec().unwrap_err().to_string();
        assert!(
            e.contains("--health-timeout") && e.contains("'soon'"),
            "{e}"
        );
    }
}
