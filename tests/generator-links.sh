#!/bin/bash
# The generator runs at every boot and daemon-reload, before the network and
# most file systems: it must link neither libostree nor TLS. Checks a built
# binary two ways: its shared libraries (ldd), and the crates compiled into it
# (the registry paths of their sources, which panic locations keep even in a
# stripped binary: rustls, aws-lc and ring are linked statically).
#
# Usage: tests/generator-links.sh BINARY   (exit 0: clean; 1: it links one)
set -euo pipefail
bin=${1:?usage: $0 BINARY}
[ -x "$bin" ] || { echo "generator-links: $bin: no such executable" >&2; exit 2; }
libs=$(ldd "$bin")
crates=$(grep -a -o -E '/(ostree|ostree-sys|gio|gio-sys|glib|glib-sys|rustls|ureq|ring|aws-lc-rs|aws-lc-sys|native-tls|openssl|openssl-sys|pgp|serde_yaml_ng|p256|ecdsa)-[0-9]+\.[0-9]+\.[0-9]+/' "$bin" | sort -u | tr -d / | tr '\n' ' ' || true)
bad_libs=$(grep -E -o 'lib(ostree|ssl|crypto|gnutls|glib|gio)[^ ]*' <<<"$libs" | sort -u | tr '\n' ' ' || true)
if [ -n "$bad_libs$crates" ]; then
    echo "FAIL: $bin links libostree or TLS: libraries: ${bad_libs:-none}; crates: ${crates:-none}" >&2
    exit 1
fi
echo "ok: $bin links neither libostree nor TLS ($(wc -l <<<"$libs") shared libraries)"
