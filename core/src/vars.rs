//! Template variables: precedence, fixed variables and built-ins.
//!
//! Precedence, highest first: the fixed variables (never overridable), the
//! values given with `--set`, the image's `manifest.json` `defaultValues`,
//! then the overridable built-ins.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use thiserror::Error;

use crate::paths;
use crate::record::Record;

/// Variables that are always computed by syscontainer.
pub const FIXED: [&str; 10] = [
    "DESTDIR",
    "NAME",
    "EXEC_START",
    "EXEC_STOP",
    "EXEC_STARTPRE",
    "EXEC_STOPPOST",
    "HOST_UID",
    "HOST_GID",
    "IMAGE_ID",
    "IMAGE_NAME",
];

/// Built-ins that `--set` or `defaultValues` may override.
pub const OVERRIDABLE: [&str; 7] = [
    "RUN_DIRECTORY",
    "STATE_DIRECTORY",
    "CONF_DIRECTORY",
    "PIDFILE",
    "UUID",
    "ALL_PROCESS_CAPABILITIES",
    "RUNTIME",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VarsError {
    #[error("'{var}' is set by syscontainer and cannot be overridden with --set")]
    Fixed { var: String },
    #[error("invalid --set '{arg}': expected KEY=VALUE with KEY matching [A-Za-z_][A-Za-z0-9_]*")]
    Syntax { arg: String },
    #[error("the value of '{var}' contains a control character (newline, tab, ...), which is not allowed")]
    Control { var: String },
}

impl VarsError {
    /// The documented exit code: always invalid input.
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID
    }
}

/// The variables of one record, resolved on lookup (no map is built: the
/// generator resolves thousands of records at boot). The computed values are
/// made on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars<'a> {
    rec: &'a Record,
    exec_start: OnceCell<String>,
    exec_stop: OnceCell<String>,
    exec_cleanup: OnceCell<String>,
    pidfile: OnceCell<String>,
    host_uid: OnceCell<String>,
    host_gid: OnceCell<String>,
}

impl<'a> Vars<'a> {
    /// The variables for a record.
    pub fn for_record(rec: &'a Record) -> Vars<'a> {
        Vars {
            rec,
            exec_start: OnceCell::new(),
            exec_stop: OnceCell::new(),
            exec_cleanup: OnceCell::new(),
            pidfile: OnceCell::new(),
            host_uid: OnceCell::new(),
            host_gid: OnceCell::new(),
        }
    }

    /// The value of `k`: a fixed variable, else a `--set` value, else a
    /// manifest default, else an overridable built-in.
    pub fn get(&self, k: &str) -> Option<&str> {
        let rec = self.rec;
        let name = rec.name.as_str();
        fn helper<'c>(cell: &'c OnceCell<String>, cmd: &str, name: &str) -> &'c str {
            cell.get_or_init(|| [paths::EXEC_HELPER, " ", cmd, " ", name].concat())
        }
        let fixed = match k {
            "DESTDIR" => Some(rec.deployment.as_str()),
            "NAME" => Some(name),
            "EXEC_START" => Some(helper(&self.exec_start, "run", name)),
            "EXEC_STOP" => Some(helper(&self.exec_stop, "stop", name)),
            "EXEC_STARTPRE" | "EXEC_STOPPOST" => Some(helper(&self.exec_cleanup, "cleanup", name)),
            "HOST_UID" => Some(
                self.host_uid
                    .get_or_init(|| rec.host_uid.to_string())
                    .as_str(),
            ),
            "HOST_GID" => Some(
                self.host_gid
                    .get_or_init(|| rec.host_gid.to_string())
                    .as_str(),
            ),
            "IMAGE_ID" => Some(rec.image_id.as_str()),
            "IMAGE_NAME" => Some(rec.image.as_str()),
            _ => None,
        };
        if fixed.is_some() {
            return fixed;
        }
        if let Some(v) = rec.values.get(k).or_else(|| rec.default_values.get(k)) {
            return Some(v.as_str());
        }
        match k {
            "RUN_DIRECTORY" => Some("/run"),
            "STATE_DIRECTORY" => Some("/var/lib"),
            "CONF_DIRECTORY" => Some("/etc"),
            "PIDFILE" => Some(
                self.pidfile
                    .get_or_init(|| format!("/run/container-{name}.pid"))
                    .as_str(),
            ),
            "UUID" => Some(rec.uuid.as_str()),
            "RUNTIME" => Some(rec.runtime.as_str()),
            "ALL_PROCESS_CAPABILITIES" => Some(all_capabilities()),
            _ => None,
        }
    }
}

/// `true` for a valid variable name.
pub fn valid_name(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Parse `--set K=V` arguments. Fixed variables and control characters are
/// refused, naming the variable.
pub fn parse_set(args: &[String]) -> Result<BTreeMap<String, String>, VarsError> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| VarsError::Syntax { arg: a.clone() })?;
        if !valid_name(k) {
            return Err(VarsError::Syntax { arg: a.clone() });
        }
        if FIXED.contains(&k) {
            return Err(VarsError::Fixed { var: k.to_string() });
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(VarsError::Control { var: k.to_string() });
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The capabilities this host can grant, as a JSON list body:
/// `"CAP_CHOWN", "CAP_DAC_OVERRIDE", ...`, in the kernel's order. These are
/// the running kernel's capabilities (`/proc/sys/kernel/cap_last_cap`, as far
/// as the `caps` crate knows them) that are in our bounding set: runc cannot
/// grant a container a capability the caller does not have.
pub fn all_capabilities() -> &'static str {
    static CAPS: OnceLock<String> = OnceLock::new();
    CAPS.get_or_init(granted_capabilities)
}

/// [`all_capabilities`] for the calling thread, uncached.
fn granted_capabilities() -> String {
    let kernel = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| kernel.clone());
    let mut granted: Vec<caps::Capability> = kernel.intersection(&bounding).copied().collect();
    granted.sort_by_key(|c| c.index());
    granted
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        let mut r = Record::new(
            "web",
            "reg.example/web:1",
            "sha256:1234",
            "/var/lib/containers/atomic/web.0",
        );
        r.uuid = "0000-uuid".into();
        r
    }

    #[test]
    fn precedence_set_over_defaults_over_builtins() {
        let mut r = rec();
        r.default_values.insert("PORT".into(), "80".into());
        r.default_values
            .insert("RUN_DIRECTORY".into(), "/srv/run".into());
        r.default_values
            .insert("STATE_DIRECTORY".into(), "/srv/state".into());
        r.values.insert("PORT".into(), "8080".into());
        r.values.insert("STATE_DIRECTORY".into(), "/data".into());
        let v = Vars::for_record(&r);
        assert_eq!(v.get("PORT"), Some("8080"));
        assert_eq!(v.get("RUN_DIRECTORY"), Some("/srv/run"));
        assert_eq!(v.get("STATE_DIRECTORY"), Some("/data"));
        assert_eq!(v.get("CONF_DIRECTORY"), Some("/etc"));
        assert_eq!(v.get("PIDFILE"), Some("/run/container-web.pid"));
        assert_eq!(v.get("UUID"), Some("0000-uuid"));
    }

    #[test]
    fn fixed_cannot_be_overridden() {
        let mut r = rec();
        r.values.insert("NAME".into(), "evil".into());
        r.default_values.insert("DESTDIR".into(), "/evil".into());
        let v = Vars::for_record(&r);
        assert_eq!(v.get("NAME"), Some("web"));
        assert_eq!(v.get("DESTDIR"), Some("/var/lib/containers/atomic/web.0"));
        assert_eq!(v.get("IMAGE_NAME"), Some("reg.example/web:1"));
        assert_eq!(v.get("IMAGE_ID"), Some("sha256:1234"));
        assert_eq!(v.get("HOST_UID"), Some("0"));
        assert!(v
            .get("EXEC_START")
            .unwrap()
            .ends_with("syscontainer-exec run web"));
        assert!(v
            .get("EXEC_STOP")
            .unwrap()
            .ends_with("syscontainer-exec stop web"));
        let e = parse_set(&["NAME=x".into()]).unwrap_err();
        assert_eq!(e, VarsError::Fixed { var: "NAME".into() });
    }

    #[test]
    fn every_fixed_and_builtin_variable_resolves() {
        let mut r = rec();
        for k in FIXED {
            r.values.insert(k.to_string(), "overridden".into());
            r.default_values.insert(k.to_string(), "overridden".into());
        }
        let v = Vars::for_record(&r);
        for k in FIXED {
            let val = v.get(k).unwrap_or_else(|| panic!("{k} unset"));
            assert_ne!(val, "overridden", "{k} was overridden");
        }
        let r = rec();
        let v = Vars::for_record(&r);
        for k in OVERRIDABLE {
            assert!(v.get(k).is_some(), "{k} unset");
        }
        assert_eq!(v.get("NOT_A_BUILTIN"), None);
    }

    #[test]
    fn parse_set_rules() {
        let m = parse_set(&["A=1".into(), "B_2=x=y".into(), "E=".into()]).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B_2"], "x=y");
        assert_eq!(m["E"], "");
        assert!(matches!(
            parse_set(&["noequals".into()]),
            Err(VarsError::Syntax { .. })
        ));
        assert!(matches!(
            parse_set(&["1A=x".into()]),
            Err(VarsError::Syntax { .. })
        ));
        let e = parse_set(&["PORT=80\nExecStart=/bin/evil".into()]).unwrap_err();
        assert_eq!(e, VarsError::Control { var: "PORT".into() });
        assert!(e.to_string().contains("'PORT'"));
    }

    /// The capabilities of Linux 5.9 to 6.x, by number (capability.h): the
    /// expectation, kept apart from the `caps` crate the code uses.
    const LINUX_CAPS: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];

    /// The kernel's capabilities in the bounding set of the calling thread,
    /// from /proc/sys/kernel/cap_last_cap and the `CapBnd` mask of
    /// /proc/thread-self/status, named by the list above.
    fn expected_capabilities() -> String {
        let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            last < LINUX_CAPS.len(),
            "this kernel has capabilities after CAP_CHECKPOINT_RESTORE (cap_last_cap {last}): \
             name them here, and check that the caps crate knows them"
        );
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let bnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
            .unwrap();
        LINUX_CAPS[..=last]
            .iter()
            .enumerate()
            .filter(|(i, _)| bnd & (1 << i) != 0)
            .map(|(_, c)| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn capabilities_follow_the_kernel() {
        let want = expected_capabilities();
        assert!(
            want.starts_with("\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\""),
            "{want}"
        );
        assert_eq!(all_capabilities(), want);
        let r = rec();
        let v = Vars::for_record(&r);
        assert_eq!(v.get("ALL_PROCESS_CAPABILITIES"), Some(want.as_str()));
    }

    /// A capability dropped from the bounding set is not offered (in a thread
    /// of its own: the bounding set is per thread; needs root, as the suite).
    #[test]
    fn capabilities_follow_the_bounding_set() {
        std::thread::spawn(|| {
            caps::drop(None, caps::CapSet::Bounding, caps::Capability::CAP_NET_RAW)
                .expect("dropping CAP_NET_RAW from this thread's bounding set (run as root)");
            let want = expected_capabilities();
            assert!(
                !want.contains("CAP_NET_RAW") && want.contains("CAP_NET_ADMIN"),
                "{want}"
            );
            assert_eq!(granted_capabilities(), want);
        })
        .join()
        .unwrap();
    }
}
