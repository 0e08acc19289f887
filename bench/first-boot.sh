#!/bin/bash
# First-boot benchmark (issue 12): how long a host takes to bring up one
# declarative container by itself, against the same container brought up by
# hand. Real systemd as PID 1 in systemd-nspawn (tests/system/lib.sh), a
# docker-registry on the guest's loopback (plain HTTP) serving the image,
# the same guest root for both, its image store and records wiped before
# each run so that every run pulls.
#
#  declarative  the guest boots with nothing but
#               /etc/syscontainer/containers/web.json; the generator makes a
#               pending web.service, wanted by multi-user.target, whose start
#               pulls, installs and runs. Measured from the start of web's
#               start job (InactiveExitTimestamp: after network-online.target)
#               to web active (ActiveEnterTimestamp), from systemd's own
#               timestamps.
#  by hand      the guest boots without it; then, as an admin would type them:
#               syscontainer pull, syscontainer install, systemctl start web
#               (each through nsenter into the guest), wall time.
#
# Also printed: when multi-user.target was reached, relative to web active.
# A declarative container is wanted by multi-user.target, so the target
# waits for it (targets are ordered after what they want): the container
# is active before multi-user.target, not after.
#
#   bench/first-boot.sh [-n REPS] [-i IMAGE]
#     IMAGE: a fixture whose process keeps running (default hello; medium's
#     exits at once, so its unit never stays active)
#
# Needs root, systemd-nspawn, docker-registry, skopeo, jq; builds the release
# binaries unless GENERATOR / EXEC_HELPER / SYSCONTAINER are set.
set -uo pipefail
cd "$(dirname "$0")/.."
REPS=3
IMG=hello
while getopts n:i: o; do
	case $o in
	n) REPS=$OPTARG ;;
	i) IMG=$OPTARG ;;
	*) sed -n '2,29p' "$0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "first-boot.sh: must run as root" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
if [ -z "${GENERATOR:-}${EXEC_HELPER:-}${SYSCONTAINER:-}" ]; then
	cargo build -q --release -p syscontainer-cli -p syscontainer-exec -p syscontainer-generator || exit 1
	rel=$(realpath "$CARGO_TARGET_DIR/release")
	export GENERATOR=$rel/syscontainer-generator EXEC_HELPER=$rel/syscontainer-exec SYSCONTAINER=$rel/syscontainer
fi
export TEST_NAME=bench-first-boot
# shellcheck source=tests/system/sc.sh
. tests/system/sc.sh
# shellcheck source=tests/system/guest-registry.sh
. tests/system/guest-registry.sh

SC_IMAGES=$IMG
guest_registry_prepare plain
sc_setup

# The registry as a unit of the guest, up before network-online.target, as
# a registry on the network would be.
cat >"$ROOT/etc/systemd/system/bench-registry.service" <<UNIT
[Unit]
Description=Benchmark registry
Before=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart=/usr/bin/docker-registry serve $GREG_DIR/config.yml
ExecStartPost=/bin/sh -c 'for i in \$(seq 100); do curl -s -o /dev/null --max-time 1 http://$GREG_ADDR/v2/ && exit 0; sleep 0.1; done; exit 1'
UNIT
mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
ln -sf ../bench-registry.service "$ROOT/etc/systemd/system/multi-user.target.wants/"

REF=$GREG_ADDR/bench/web:latest
check "boot 0 reaches 'running'" boot
check "the registry unit is active" is_active bench-registry
check "push $IMG as $REF" guest_registry_push "$IMG" bench/web:latest
check "poweroff" shutdown_guest

wipe() {   # the guest's store, deployments, records and state
	rm -rf "$ROOT/ostree" "$ROOT$CHECKOUTS" "$ROOT$RECDIR" "$ROOT$STATEDIR" "$ROOT/var/lib/syscontainer"
}
# usec PROP UNIT: a monotonic timestamp of UNIT, in microseconds
usec() { prop "$2" "$1"; }

decl=() hand=() after=()
for r in $(seq "$REPS"); do
	wipe
	mkdir -p "$ROOT$RECDIR"
	printf '{ "version": 1, "image": "http:%s" }\n' "$REF" >"$ROOT$RECDIR/web.json"
	check "rep $r, declarative: boot" boot
	check "rep $r, declarative: web active, no CLI command run" wait_for 120 is_active web
	s=$(usec InactiveExitTimestampMonotonic web)
	a=$(usec ActiveEnterTimestampMonotonic web)
	m=$(usec ActiveEnterTimestampMonotonic multi-user.target)
	if [ "${s:-0}" -gt 0 ] && [ "${a:-0}" -gt "$s" ]; then
		decl+=($(((a - s) / 1000)))
		[ "${m:-0}" -gt 0 ] && after+=($(((m - a) / 1000)))
		log "rep $r, declarative: web's start took $(((a - s) / 1000)) ms; multi-user.target reached $(((m - a) / 1000)) ms after web active"
	else
		fail "rep $r: no timestamps for web (start $s, active $a)"
	fi
	check "rep $r, declarative: poweroff" shutdown_guest

	wipe
	check "rep $r, by hand: boot" boot
	t=$(_now)
	if sc pull -q "http:$REF" >/dev/null && sc install --name web "http:$REF" >/dev/null && g systemctl start web; then
		hand+=($(ms_since "$t"))
		log "rep $r, by hand: pull + install + systemctl start took ${hand[-1]} ms"
	else
		fail "rep $r, by hand: pull, install or start failed"
	fi
	check "rep $r, by hand: web active" is_active web
	check "rep $r, by hand: poweroff" shutdown_guest
done

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'; }
if [ ${#decl[@]} -gt 0 ] && [ ${#hand[@]} -gt 0 ]; then
	d=$(median "${decl[@]}")
	h=$(median "${hand[@]}")
	{
		echo
		echo "first boot, image $IMG, $REPS rep(s), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end:"
		echo "  declarative (web.json only): web's start job, pull + install + run   ${d} ms  (${decl[*]})"
		echo "  by hand: syscontainer pull + install + systemctl start               ${h} ms  (${hand[*]})"
		echo "  ratio declarative / by hand                                           $(awk -v a="$d" -v b="$h" 'BEGIN { printf "%.2fx", a / b }')"
		[ ${#after[@]} -gt 0 ] && echo "  multi-user.target reached after web active by                       $(median "${after[@]}") ms  (it waits for the containers it wants)"
	} | tee -a "$RESULTS/summary.txt"
fi
