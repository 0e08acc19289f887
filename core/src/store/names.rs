//! Branch names for images and layers, atomic-compatible: thin wrappers
//! over [`crate::imgref`], which owns the escaping rules.

use crate::imgref;

/// Prefix of every branch the store owns.
pub(crate) const PREFIX: &str = imgref::BRANCH_PREFIX;

/// Reverse of the branch escaping; `None` when the input is not a valid escape.
pub(crate) fn unescape(s: &str) -> Option<String> {
    imgref::unescape(s).ok()
}

/// `name` with `:latest` appended when it has neither a tag nor a digest.
pub(crate) fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:{}", imgref::DEFAULT_TAG)
    }
}

/// `ociimage/<escaped name:tag>`.
pub(crate) fn branch_for_image(name: &str) -> String {
    imgref::image_branch(name)
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
