#!/bin/bash
# demo.sh: syscontainer end to end, on a fresh Debian 12 machine, as root.
#
#   ./demo.sh            (or: make demo)
#
#  1. installs what it needs (apt packages; Rust through rustup if cargo is missing)
#  2. builds syscontainer (make build)
#  3. builds the example etcd image offline from Debian packages
#     (tests/fixtures/make-images.sh medium etcd; cached in /var/tmp/syscontainer-fixtures)
#  4. boots a throwaway guest with real systemd as PID 1 (systemd-nspawn, the
#     host's /usr as an overlay) and syscontainer installed with `make install`
#  5. starts a local registry (docker-registry, TLS) in the guest and pushes the image
#  6. in the guest: syscontainer pull, syscontainer install --set ETCD_NAME=...,
#     systemctl start etcd
#  7. shows systemctl status etcd, and an etcdctl put/get (also across a restart)
#  8. syscontainer containers list, syscontainer images list
#  9. tears everything down (also on failure or Ctrl-C)
#
# It exits non-zero if any step fails. About 5-8 minutes the first time
# (Rust build, debootstrap), well under a minute afterwards. Logs of a failed
# run are kept; the path is printed.
#
# Environment: SYSCONTAINER_FIXTURES (image cache), CARGO_TARGET_DIR, SYSTEST_KEEP=1
# (keep the guest root), DEMO_ETCD_NAME (default demo-node).
set -uo pipefail
cd "$(dirname "$0")" || exit 1
DEMO_START=$SECONDS

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' R=$'\e[0m'; else B='' D='' R=''; fi
STEPN=0
header() {
    STEPN=$((STEPN + 1))
    printf '\n%s== %s. %s%s %s[%ss]%s\n' "$B" "$STEPN" "$*" "$R" "$D" "$((SECONDS - DEMO_START))" "$R"
}
note() { printf '   %s%s%s\n' "$D" "$*" "$R"; }
# shown PROMPT CMD...: a command as an admin would type it: safe words as
# they are, others in '...'
shown() {
    local w out=$1
    shift
    for w; do
        if [[ $w =~ ^[A-Za-z0-9_./:=@%+,-]+$ || $w == '&&' || $w == \#* ]]; then out+=" $w"; else out+=" '${w//\'/\'\\\'\'}'"; fi
    done
    printf '%s%s%s\n' "$B" "$out" "$R"
}
indent() { sed -u 's/^/    /'; }

[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it installs packages, boots a systemd guest with systemd-nspawn)" >&2; exit 1; }
if ! grep -qs '^VERSION_ID="12"' /etc/os-release || ! grep -qs '^ID=debian' /etc/os-release; then
    echo "demo.sh: warning: made for Debian 12; this is $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")" >&2
fi

# --------------------------------------------------------------------- 1
header "Installing what the demo needs"
shown "host#" . tests/deps.sh '&&' ensure_deps
# shellcheck source=tests/deps.sh
. tests/deps.sh
ensure_deps 2>&1 | indent
[ "${PIPESTATUS[0]}" = 0 ] || { echo "demo.sh: FAILED: installing the dependencies (tests/deps.sh)" >&2; exit 1; }
[ -x "$HOME/.cargo/bin/cargo" ] && ! command -v cargo >/dev/null && export PATH="$HOME/.cargo/bin:$PATH"
note "apt packages and cargo are present"

# The guest's root (its image store, the registry's storage) goes on a tmpfs
# when there is memory to spare: pulling is faster (no fsync) and the teardown
# is an unmount. DEMO_TMPFS=0 keeps it on disk, under /tmp.
DEMO_TMPFS_DIR=
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo 2>/dev/null)
if [ "${DEMO_TMPFS:-1}" != 0 ] && [ -z "${SYSTEST_KEEP:-}" ] && [ "${avail_kb:-0}" -gt 3000000 ]; then
    DEMO_TMPFS_DIR=$(mktemp -d /tmp/syscontainer-demo.XXXXXX) || exit 1
    if mount -t tmpfs -o size=2g,mode=0755 syscontainer-demo "$DEMO_TMPFS_DIR"; then
        export SYSTEST_WORKDIR=$DEMO_TMPFS_DIR
    else
        rmdir "$DEMO_TMPFS_DIR"
        DEMO_TMPFS_DIR=
    fi
fi
# the logs stay on disk, and are kept if the demo fails
SYSTEST_RESULTS=$(mktemp -d /tmp/syscontainer-demo-logs.XXXXXX) || exit 1
export SYSTEST_RESULTS
# From here on the system-test harness (tests/system/lib.sh) owns the
# teardown: an EXIT trap stops the guest, kills what is left in its cgroups,
# and removes the guest root, whatever happens.
TEST_NAME=demo
# shellcheck source=tests/system/lib.sh
. tests/system/lib.sh
# shellcheck source=tests/system/guest-registry.sh
. tests/system/guest-registry.sh
ok() { PASSES=$((PASSES + 1)); }
step_failed() { die "$*"; }
# shellcheck disable=SC2317  # called by lib.sh's EXIT trap
systest_report() {
    local t=$((SECONDS - DEMO_START))
    rmdir "$WORK" 2>/dev/null
    if [ -n "$DEMO_TMPFS_DIR" ]; then
        umount "$DEMO_TMPFS_DIR" 2>/dev/null || umount -l "$DEMO_TMPFS_DIR"
        rmdir "$DEMO_TMPFS_DIR"
    fi
    if [ "$FAILS" -eq 0 ]; then
        rm -rf "$SYSTEST_RESULTS"
        printf '\n%sThe demo passed in %s s.%s The guest, its registry and everything they held are gone.\n' "$B" "$t" "$R"
        printf '\n%sNext:%s README.md, section "Using it on a real host":\n' "$B" "$R"
        printf '    make && make install      # or: packaging/build-deb.sh && dpkg -i target/deb/syscontainer_*.deb\n'
        printf '    syscontainer pull registry.example.com/etcd:3.5\n'
        printf '    syscontainer install --set ETCD_NAME=node1 registry.example.com/etcd:3.5\n'
        printf '    systemctl start etcd\n'
        printf '  "Writing a system container image" there explains the /exports files of tests/fixtures/images/etcd.\n'
    else
        printf '\n%sThe demo FAILED%s after %s s (see above). Everything it started was stopped and removed;\n' "$B" "$R" "$t"
        printf 'its logs (build, guest console, journal) are in %s\n' "$RESULTS"
    fi
}
# run_host CMD...: show "host# CMD", run it on the host, output indented
run_host() {
    shown "host#" "$@"
    "$@" 2>&1 | indent
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || step_failed "'$*' failed (exit $rc)"
}
# run_g CMD...: show "guest# CMD", run it in the guest, output indented
run_g() {
    shown "guest#" "$@"
    g "$@" 2>&1 | indent
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || step_failed "'$*' failed in the guest (exit $rc)"
}
ETCD_NAME=${DEMO_ETCD_NAME:-demo-node}
KEY=/atomic.io/network/config
VALUE='{"Network":"10.40.0.0/16"}'
FIX=$SYSCONTAINER_FIXTURES

# --------------------------------------------------------------------- 2
header "Building syscontainer"
shown "host#" make build
note "release build of syscontainer, syscontainer-exec, syscontainer-generator (a few minutes the first time)"
t=$SECONDS
make build >"$RESULTS/build.log" 2>&1 ||
    { tail -n 25 "$RESULTS/build.log" | indent; step_failed "make build failed (log: $RESULTS/build.log)"; }
note "built in $((SECONDS - t)) s"
ok

# --------------------------------------------------------------------- 3
header "Building the example image offline: etcd from Debian's etcd-server, on a minbase root"
note "cached in $FIX; the first time debootstrap takes a few minutes"
run_host tests/fixtures/make-images.sh medium etcd
note "/exports of the image (templates in the style of atomic's etcd system container):"
find tests/fixtures/images/etcd/rootfs/exports -type f -printf '%P\n' | sort | sed 's|^|    /exports/|'
ok

# --------------------------------------------------------------------- 4
header "Booting a throwaway systemd guest with syscontainer installed"
note "systemd-nspawn --boot: real systemd as PID 1, the host's /usr as an overlay, a private network"
setup_guest
install_into_guest
guest_registry_prepare tls
boot --quiet || step_failed "the guest did not boot (console: $RESULTS/console-boot1.log)"
run_g systemctl is-system-running
ok

# --------------------------------------------------------------------- 5
header "Starting a local registry and pushing the image to it"
note "Debian's docker-registry with a test CA, on the guest's 127.0.0.1; the CA is in the guest's"
note "/etc/containers/certs.d/$GREG_ADDR/, where syscontainer looks for it"
shown "guest#" systemd-run --unit="$GREG_UNIT" docker-registry serve "$GREG_DIR/config.yml"
guest_registry_start 2>&1 | indent
[ "${PIPESTATUS[0]}" = 0 ] || step_failed "the registry did not start in the guest"
shown "host#" nsenter --net=/proc/GUEST-PID1/ns/net skopeo copy "oci:$FIX/oci:etcd" "docker://$GREG_ADDR/sctest/etcd:latest"
REF=$(guest_registry_push etcd sctest/etcd:latest 2> >(indent)) || step_failed "pushing the etcd image failed"
ok

# --------------------------------------------------------------------- 6
header "Pulling and installing the etcd system container"
run_g syscontainer pull "$REF"
run_g syscontainer install --set "ETCD_NAME=$ETCD_NAME" "$REF"
note "install wrote /etc/syscontainer/containers/etcd.json and ran daemon-reload; the generator made etcd.service:"
run_g systemctl cat etcd.service
run_g systemctl start etcd
ok

# --------------------------------------------------------------------- 7
header "etcd is running under systemd"
wait_for 30 g runc exec etcd etcdctl endpoint health >/dev/null 2>&1 ||
    step_failed "etcd does not answer (runc exec etcd etcdctl endpoint health)"
note "runc runs the container in a sub-cgroup of the unit's own (Delegate=yes): systemd sees etcd"
run_g systemctl status --no-pager --lines=5 etcd
run_g runc exec etcd etcdctl put "$KEY" "$VALUE"
run_g runc exec etcd etcdctl get "$KEY"
got=$(g runc exec etcd etcdctl get --print-value-only "$KEY")
[ "$got" = "$VALUE" ] || step_failed "etcdctl get returned '$got', not '$VALUE'"
note "the data lives in the state directory, /var/lib/etcd/etcd.etcd; it survives a restart:"
run_g systemctl restart etcd
wait_for 30 g runc exec etcd etcdctl endpoint health >/dev/null 2>&1 ||
    step_failed "etcd does not answer after the restart"
run_g runc exec etcd etcdctl get "$KEY"
got=$(g runc exec etcd etcdctl get --print-value-only "$KEY")
[ "$got" = "$VALUE" ] || step_failed "after the restart, etcdctl get returned '$got', not '$VALUE'"
ok

# --------------------------------------------------------------------- 8
header "What syscontainer knows"
run_g syscontainer containers list
run_g syscontainer images list
ok

# --------------------------------------------------------------------- 9
header "Tearing down"
run_g systemctl stop etcd
shown "host#" kill -s RTMIN+4 GUEST-PID1 '# poweroff'
shutdown_guest || step_failed "the guest did not power off cleanly"
note "removing the guest root and its cgroups"
ok
exit 0
