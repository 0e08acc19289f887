//! A journal entry through the native protocol (systemd's
//! `sd_journal_sendv`, without libsystemd): one datagram of `KEY=VALUE`
//! fields to `/run/systemd/journal/socket`. Values are sent in the binary
//! form (`KEY\n`, 64-bit little-endian length, value, `\n`), so that they may
//! hold newlines.
//!
//! An entry of root with `OBJECT_SYSTEMD_UNIT=NAME.service` is shown by
//! `journalctl -u NAME` and `systemctl status NAME`: journald takes `_UID`
//! from the socket's credentials, and those tools match
//! `OBJECT_SYSTEMD_UNIT=` with `_UID=0`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The socket journald listens on.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// syslog priorities.
pub const ERR: u8 = 3;
pub const WARNING: u8 = 4;
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;

/// The datagram for `fields` (`PRIORITY` is one of them, as a string).
pub fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut d = Vec::with_capacity(fields.iter().map(|(k, v)| k.len() + v.len() + 10).sum());
    for (k, v) in fields {
        d.extend_from_slice(k.as_bytes());
        d.push(b'\n');
        d.extend_from_slice(&(v.len() as u64).to_le_bytes());
        d.extend_from_slice(v.as_bytes());
        d.push(b'\n');
    }
    d
}

/// Send one entry to the journal socket at `socket`. Keys must be
/// journal field names (upper case letters, digits, `_`; no leading `_`).
pub fn send_to(socket: &Path, fields: &[(&str, &str)]) -> io::Result<()> {
    let s = UnixDatagram::unbound()?;
    s.send_to(&encode(fields), socket).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_fields() {
        assert_eq!(
            encode(&[("MESSAGE", "a\nb"), ("PRIORITY", "4")]),
            b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\nPRIORITY\n\x01\0\0\0\0\0\0\x004\n"
        );
    }

    /// A real datagram socket receives what journald would.
    #[test]
    fn sends_one_datagram() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("socket");
        let r = UnixDatagram::bind(&p).unwrap();
        send_to(
            &p,
            &[("MESSAGE", "hi"), ("OBJECT_SYSTEMD_UNIT", "x.service")],
        )
        .unwrap();
        let mut buf = [0u8; 256];
        let n = r.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            encode(&[("MESSAGE", "hi"), ("OBJECT_SYSTEMD_UNIT", "x.service")])
        );
        assert!(send_to(&d.path().join("none"), &[("MESSAGE", "x")]).is_err());
    }
}
