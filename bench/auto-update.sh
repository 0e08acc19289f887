#!/bin/bash
# Auto-update check benchmark (issue 12): `syscontainer auto-update` with N
# opted-in containers (default 20) and nothing new, side by side in one run
# with what a user would otherwise script: `skopeo inspect --raw` of each of
# the N references, one after another. Both ask a real registry on
# 127.0.0.1 (plain HTTP) for one manifest per container; the registry's log
# checks that ours makes exactly N manifest requests and fetches no blob.
# Reps are interleaved (the order alternates); medians and the ratio
# (target: at or below 0.5x) are printed.
#
#   bench/auto-update.sh [-n REPS] [-c N]
#
# Needs root, docker-registry, skopeo, python3, the `hello` fixture
# (tests/fixtures/make-images.sh; built if missing). Builds the release CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=7
N=20
while getopts n:c: o; do
	case $o in
	n) REPS=$OPTARG ;;
	c) N=$OPTARG ;;
	*) sed -n '2,14p' "$0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "auto-update.sh: must run as root" >&2; exit 1; }
for c in skopeo python3 docker-registry; do
	command -v $c >/dev/null || { echo "auto-update.sh: $c is missing" >&2; exit 1; }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
SC=${SYSCONTAINER:-}
if [ -z "$SC" ]; then
	cargo build -q --release -p syscontainer-cli
	SC=$(realpath "$CARGO_TARGET_DIR/release/syscontainer")
fi
tests/fixtures/make-images.sh hello >/dev/null

W=$(mktemp -d /var/tmp/syscontainer-aubench.XXXXXX)
cleanup() {
	set +e
	tests/fixtures/registry.sh stop "$W/reg" >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/reg" "$W/root"
eval "$(tests/fixtures/registry.sh start "$W/reg" plain)"
F=${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures}
refs=()
for i in $(seq 1 "$N"); do
	tests/fixtures/registry.sh push "$W/reg" "$F/hello.tar" "sctest/c$i:latest" >/dev/null
	refs+=("$REGISTRY/sctest/c$i:latest")
	SYSCONTAINER_ROOT=$W/root "$SC" install --name "c$i" --no-enable --auto-update registry \
		"http:$REGISTRY/sctest/c$i:latest" >/dev/null 2>&1
done

manifests() { grep -c '"GET /v2/sctest/c[0-9]*/manifests/' "$W/reg/registry.log" || true; }
blobs() { grep -c '"GET /v2/sctest/c[0-9]*/blobs/' "$W/reg/registry.log" || true; }

ours() { SYSCONTAINER_ROOT=$W/root "$SC" auto-update --tls-verify=false >"$W/out" 2>&1; }
rival() { for r in "${refs[@]}"; do skopeo inspect --raw --tls-verify=false "docker://$r" >/dev/null; done; }

# warm-up, and the request count of one run of ours
ours
m0=$(manifests) b0=$(blobs)
ours
m1=$(manifests) b1=$(blobs)
[ "$(grep -c ' unchanged ' "$W/out")" = "$N" ] || { cat "$W/out"; echo "auto-update.sh: not all $N unchanged" >&2; exit 1; }
[ $((m1 - m0)) = "$N" ] && [ "$b1" = "$b0" ] ||
	{ echo "auto-update.sh: $((m1 - m0)) manifest and $((b1 - b0)) blob requests for $N containers" >&2; exit 1; }
rival

RES=$W/res
: >"$RES"
t() { local t0=$EPOCHREALTIME; "$@"; python3 -c "print($EPOCHREALTIME - $t0)"; }
for i in $(seq 1 "$REPS"); do
	if [ $((i % 2)) = 1 ]; then
		echo "ours $(t ours)" >>"$RES"; echo "rival $(t rival)" >>"$RES"
	else
		echo "rival $(t rival)" >>"$RES"; echo "ours $(t ours)" >>"$RES"
	fi
done
python3 - "$RES" "$N" "$REPS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {k: statistics.median(float(v) for n, v in rows if n == k) for k in ("ours", "rival")}
n, reps = sys.argv[2], sys.argv[3]
print(f"auto-update check, {n} opted-in containers, nothing new ({reps} reps, medians):")
print(f"  syscontainer auto-update            {med['ours']*1000:8.1f} ms  ({n} manifest requests, 0 blobs)")
print(f"  {n} x skopeo inspect --raw          {med['rival']*1000:8.1f} ms")
print(f"  ratio ours/skopeo                   {med['ours']/med['rival']:8.2f}x  (target <= 0.5x)")
PY
