//! Branch names for images and layers, atomic-compatible.
//!
//! TEMPORARY: `crate::imgref` (worktree `source`) provides
//! `branch_for_image`, `branch_for_layer` and `unescape`. This private copy
//! exists only so that the store branch compiles on its own; at merge time,
//! replace the bodies below with calls to `crate::imgref` (the signatures
//! match) and delete this file's tests.

/// Prefix of every branch the store owns.
pub(crate) const PREFIX: &str = "ociimage/";

/// Escape a name: bytes outside `[A-Za-z0-9.-]` become `_XX` (upper-case hex).
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 2);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// Reverse of [`escape`]; `None` when the input is not a valid escape.
pub(crate) fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `name` with `:latest` appended when it has neither a tag nor a digest.
pub(crate) fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// `ociimage/<escaped name:tag>`.
pub(crate) fn branch_for_image(name: &str) -> String {
    format!("{PREFIX}{}", escape(&with_tag(name)))
}

/// `ociimage/<hex>` for `sha256:<hex>`.
pub(crate) fn branch_for_layer(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("{PREFIX}{hex}")
}

/// `true` for a branch suffix that names a layer (64 hex digits).
pub(crate) fn is_layer_suffix(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The fully qualified form of a short name, as the registry source stores
/// it: `busybox` -> `docker.io/library/busybox`, `foo/bar` ->
/// `docker.io/foo/bar`. Qualified names are returned unchanged.
pub(crate) fn qualify(name: &str) -> String {
    let name = name.strip_prefix("docker://").unwrap_or(name);
    match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_escaping() {
        assert_eq!(
            branch_for_image("docker.io/busybox"),
            "ociimage/docker.io_2Fbusybox_3Alatest"
        );
        assert_eq!(
            branch_for_image("localhost:5000/a/b:v1"),
            "ociimage/localhost_3A5000_2Fa_2Fb_3Av1"
        );
        assert_eq!(
            unescape("docker.io_2Fbusybox_3Alatest").unwrap(),
            "docker.io/busybox:latest"
        );
        assert_eq!(unescape("bad_4"), None);
        assert_eq!(branch_for_layer("sha256:ab"), "ociimage/ab");
    }

    #[test]
    fn qualify_short_names() {
        assert_eq!(qualify("busybox"), "docker.io/library/busybox");
        assert_eq!(qualify("foo/bar:1"), "docker.io/foo/bar:1");
        assert_eq!(qualify("localhost/x"), "localhost/x");
        assert_eq!(qualify("quay.io/x/y"), "quay.io/x/y");
    }
}
