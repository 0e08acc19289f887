#!/bin/bash
# System test, issue 5 scenario 10: etcd, the seeds' own example, as a system
# container under real systemd 252 in systemd-nspawn.
#
# The etcd image (tests/fixtures/make-images.sh etcd: Debian's etcd-server and
# etcd-client on a debootstrap minbase, /exports in the style of atomic's etcd
# image) is pushed to a real docker-registry with TLS and htpasswd auth that
# runs INSIDE the guest, on the guest's loopback (see guest-registry.sh); the
# guest's own syscontainer pulls it from there over HTTPS, verifying the
# registry's certificate against /etc/containers/certs.d, and installs it with
# --set ETCD_NAME=... Then: systemctl start etcd, runc exec etcd etcdctl
# put/get, and the data survives systemctl restart etcd (state under
# STATE_DIRECTORY, i.e. /var/lib/etcd/NAME.etcd).
#
#   make build && tests/fixtures/make-images.sh medium etcd && tests/system/test-etcd.sh
#
# The etcd image must be built first (it is slow: debootstrap); this test
# FAILs with a message when it is not.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/guest-registry.sh
. "$SYSTEST_DIR/guest-registry.sh"

NAME=etcd                 # the container (and unit) name: install's default for .../etcd:latest
ETCD_NAME=sctest-node1
KEY=/atomic.io/network/config
VALUE='{"Network":"10.40.0.0/16"}'
STATE=/var/lib/etcd/$NAME.etcd   # ${STATE_DIRECTORY}/etcd/${NAME}.etcd in the image's config

prop() { g systemctl show -P "$2" "$1"; }
prop_is() {
    local v
    v=$(prop "$1" "$2")
    echo "$1 $2=$v (want $3)"
    [ "$v" = "$3" ]
}
etcdctl() { g runc exec "$NAME" etcdctl "$@"; }
healthy() { etcdctl endpoint health; }
get_is() {   # get_is VALUE: etcdctl get prints the key, then the value
    local out
    out=$(etcdctl get "$KEY") || { echo "$out"; return 1; }
    printf '%s\n' "$out"
    [ "$out" = "$(printf '%s\n%s' "$KEY" "$1")" ]
}
# the container runs inside the unit's cgroup (not in a sibling)
in_unit_cgroup() {
    local pid cg
    pid=$(g runc state "$NAME" | jq -r .pid) || return 1
    cg=$(g cat "/proc/$pid/cgroup") || return 1
    echo "container init pid $pid (in the guest), /proc/$pid/cgroup:"
    echo "$cg"
    echo "$cg" | grep -q "/system.slice/$NAME.service"
}
image_listed() {
    local out
    out=$(g syscontainer images list) || return 1
    echo "$out"
    echo "$out" | grep -F "$GREG_ADDR/sctest/etcd"
}
container_listed() {
    local out
    out=$(g syscontainer containers list --all --json) || return 1
    echo "$out"
    echo "$out" | jq -e --arg n "$NAME" 'map(select(.name == $n)) | length == 1'
}
install_needs_etcd_name() {   # ETCD_NAME has no default: install must say so
    local out
    out=$(g syscontainer install --name etcd-noname "$REF" 2>&1) && { echo "install succeeded: $out"; return 1; }
    echo "$out"
    echo "$out" | grep -q ETCD_NAME && ! g test -e /etc/syscontainer/containers/etcd-noname.json
}
no_runc_state() { ! g test -e "/run/runc/$NAME"; }
revision() { etcdctl get "$KEY" -w json | jq -r .header.revision; }
runc_running() { g runc state "$NAME" | jq -e '.status == "running"'; }
member_is() { etcdctl member list | grep -F ", $1, "; }
restarted() {   # restarted OLD_MAINPID: active again, under a new main pid
    local p
    p=$(prop "$NAME" MainPID)
    echo "MainPID before $1, now $p"
    [ "$p" != "$1" ] && [ "$p" != 0 ] && prop_is "$NAME" ActiveState active
}
revision_is() {
    local r
    r=$(revision)
    echo "revision $r (want $1)"
    [ -n "$1" ] && [ "$r" = "$1" ]
}

# ===================================================================== setup
setup_guest
install_into_guest
for b in /usr/bin/syscontainer /usr/libexec/syscontainer-exec "$GUEST_GENERATOR_DIR/syscontainer-generator"; do
    [ -x "$(guest_file "$b")" ] || die "$b is not installed in the guest (make build first)"
done
F=$SYSCONTAINER_FIXTURES
jq -e '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="etcd")' "$F/oci/index.json" >/dev/null 2>&1 ||
    die "the etcd test image is not built: run tests/fixtures/make-images.sh medium etcd (a few minutes, cached)"
guest_registry_prepare auth

check "boot reaches 'running'" boot
check "docker-registry (TLS + htpasswd) runs in the guest on $GREG_ADDR (systemd-run)" guest_registry_start
REF=$GREG_ADDR/sctest/etcd:latest
check "skopeo pushes the etcd image into the guest's registry" guest_registry_push etcd sctest/etcd:latest

# --------------------------------------------------------------------- pull and install
check "pull without credentials is refused (401)" not g syscontainer pull "$REF"
check "pull with a wrong password is refused" not g syscontainer pull --creds "$GREG_USER:wrong" "$REF"
check "the registry's CA comes from /etc/containers/certs.d/$GREG_ADDR" g test -f "/etc/containers/certs.d/$GREG_ADDR/ca.crt"
# shellcheck disable=SC2086
check "syscontainer pull $GREG_CREDS $REF (HTTPS, verified)" g syscontainer pull $GREG_CREDS "$REF"
check "syscontainer images list shows the image" image_listed
check "syscontainer images verify re-hashes its layers" g syscontainer images verify "$REF"
check "install without ETCD_NAME fails and names ETCD_NAME" install_needs_etcd_name
check "syscontainer install --set ETCD_NAME=$ETCD_NAME $REF" g syscontainer install --set "ETCD_NAME=$ETCD_NAME" "$REF"
check "the record /etc/syscontainer/containers/$NAME.json" g test -f "/etc/syscontainer/containers/$NAME.json"
check "$NAME.service is generated (after install's daemon-reload)" prop_is "$NAME" UnitFileState generated
check "$NAME is enabled at boot (multi-user.target wants it)" \
    boot_wanted multi-user.target "$NAME.service"
check "systemd-analyze verify --generators=yes $NAME.service" \
    g systemd-analyze verify --man=no --generators=yes "$NAME.service"

# --------------------------------------------------------------------- start, put, get
check "systemctl start $NAME" g systemctl start "$NAME"
check "$NAME is active" prop_is "$NAME" ActiveState active
check "runc state: $NAME running" runc_running
check "the container runs inside $NAME.service's cgroup" in_unit_cgroup
check "etcd answers (runc exec $NAME etcdctl endpoint health)" wait_for 30 healthy
check "etcd runs as member '$ETCD_NAME' (the --set value reached the container)" member_is "$ETCD_NAME"
check "runc exec $NAME etcdctl put $KEY '$VALUE'" etcdctl put "$KEY" "$VALUE"
check "runc exec $NAME etcdctl get $KEY returns the value" get_is "$VALUE"
check "the data is under STATE_DIRECTORY: $STATE/member" g test -d "$STATE/member"
rev=$(revision)
pid1=$(prop "$NAME" MainPID)

# --------------------------------------------------------------------- restart: the data survives
check "systemctl restart $NAME" g systemctl restart "$NAME"
check "$NAME is active again, with a new main pid" restarted "$pid1"
check "etcd answers after the restart" wait_for 30 healthy
check "after restart, get $KEY still returns the value" get_is "$VALUE"
check "after restart, the store's revision is kept ($rev)" revision_is "$rev"
check "syscontainer containers list shows $NAME" container_listed

# --------------------------------------------------------------------- stop
check "systemctl stop $NAME" g systemctl stop "$NAME"
check "$NAME is inactive (clean stop, not failed)" prop_is "$NAME" ActiveState inactive
check "no runc state left for $NAME" no_runc_state
check "the data stays after stop" g test -d "$STATE/member"
check "clean poweroff" shutdown_guest
