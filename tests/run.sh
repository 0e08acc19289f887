#!/bin/bash
# The whole test suite: lints, unit/golden/store/registry/runtime tests, unit
# verification, and the system tests under real systemd in systemd-nspawn.
# Run as root on Debian 12; installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/deps.sh
ensure_deps
export CARGO_TERM_COLOR=never
step() { echo; echo "=== $* ($(date +%T))"; }
T0=$SECONDS

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "the failpoints feature builds on its own"
cargo check -p syscontainer-core --features failpoints
step "build (generator and exec helper without libostree/TLS, then the CLI)"
make -s build
REL=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
step "the generator links neither libostree nor TLS (and the check does see them in the CLI)"
tests/generator-links.sh "$REL/syscontainer-generator"
if out=$(tests/generator-links.sh "$REL/syscontainer" 2>&1) || ! grep -q 'libostree-1.so.*rustls' <<<"$out"; then
    echo "tests/generator-links.sh does not see libostree and rustls in the CLI: $out" >&2
    exit 1
fi
step "manual pages (make man: syscontainer(1) generated from the CLI, the others from packaging/man)"
make -s man
for p in syscontainer.1 syscontainer-record.5 syscontainer-generator.8 syscontainer-exec.8; do
    f=$(dirname "$REL")/man/$p
    [ -s "$f" ] || { echo "make man did not write $f" >&2; exit 1; }
    w=$(MANWIDTH=80 man --warnings=all -E ascii -l "$f" 2>&1 >/dev/null)
    [ -z "$w" ] || { echo "man -l $f warns: $w" >&2; exit 1; }
done
step "test images (cached in \${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures})"
tests/fixtures/make-images.sh all
step "cargo test (with the crash-consistency and concurrency tests: cli/tests/crash.rs, feature failpoints)"
cargo test --workspace --all-features
step "systemd-analyze verify on generated units"
tests/verify-units.sh "$REL/syscontainer-generator" "$REL/syscontainer-exec" "$REL/syscontainer"
step "Debian package (test-boot-activation installs it with dpkg -i)"
packaging/build-deb.sh
step "system tests (systemd in systemd-nspawn)"
tests/system/run-all.sh
step "all tests passed in $((SECONDS - T0)) s"
