#!/bin/bash
# Pull benchmark: `syscontainer pull` of the ~160 MB (uncompressed), 3-layer
# Debian-based `medium` image from a real registry on 127.0.0.1, side by side
# in one run with the fair rival, `skopeo copy docker://... oci:DIR` followed
# by `umoci unpack` (what a user would otherwise do to get an unpacked image).
# Reps are interleaved (the order alternates), each on a fresh repo / OCI dir
# on the same filesystem; medians are printed with the ratio. Also: the
# re-pull of an image already present, and the peak RSS of a pull.
#
#   bench/pull.sh [-n REPS] [-f FS]...
#     -n REPS   repetitions per side (default 5)
#     -f FS     where to run: root (a directory on the filesystem of /var/tmp,
#               default), ext4 (a fresh loop-mounted ext4), tmpfs. Repeatable:
#               each FS gets its own table.
#
# Needs root, docker-registry, skopeo, umoci, python3 (apt: see
# tests/fixtures/registry.sh deps). Builds the release CLI and the `medium`
# fixture (cached) first. Note: our pull ends with a syncfs (objects durable
# before the ref is written); skopeo+umoci do not sync.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=5
FSS=()
while getopts n:f: o; do
	case $o in
	n) REPS=$OPTARG ;;
	f) FSS+=("$OPTARG") ;;
	*) sed -n '2,20p' "$0" >&2; exit 2 ;;
	esac
done
[ ${#FSS[@]} -gt 0 ] || FSS=(root)
[ "$(id -u)" = 0 ] || { echo "pull.sh: must run as root" >&2; exit 1; }
for c in skopeo umoci python3 docker-registry; do
	command -v $c >/dev/null || { echo "pull.sh: $c is missing" >&2; exit 1; }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p syscontainer-cli
SC=$(realpath "$CARGO_TARGET_DIR/release/syscontainer")
tests/fixtures/make-images.sh medium >/dev/null

W=$(mktemp -d /var/tmp/syscontainer-pullbench.XXXXXX)
. bench/lib.sh
cleanup() {
	set +e
	bench_unmount
	tests/fixtures/registry.sh stop "$W/reg" >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/reg"
eval "$(tests/fixtures/registry.sh start "$W/reg" plain)"
IMG=$(tests/fixtures/registry.sh push "$W/reg" medium | tail -1)
OURS_SRC="http:$IMG"
RIVAL_SRC="docker://$IMG"

now() { echo "$EPOCHREALTIME"; }
# run NAME CMD...: append "NAME seconds peak-KiB" to $RES
run() {
	local name=$1 t0 t1 rss
	shift
	t0=$(now)
	rss=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
	t1=$(now)
	echo "$name $(python3 -c "print($t1-$t0)") $rss" >>"$RES"
}

ours() {  # ours DIR
	run ours env SYSCONTAINER_ROOT="$1/ours" "$SC" pull -q "$OURS_SRC"
	for _ in 1 2 3; do
		run repull env SYSCONTAINER_ROOT="$1/ours" "$SC" pull -q "$OURS_SRC"
	done
}
rival() {  # rival DIR
	run skopeo skopeo copy -q --src-tls-verify=false "$RIVAL_SRC" "oci:$1/oci:medium"
	run umoci umoci unpack --image "$1/oci:medium" "$1/bundle"
}

bench_fs() {  # bench_fs FS
	local fs=$1 d
	bench_mount "$fs"
	d=$BENCH_DIR
	RES=$W/results.$fs
	: >"$RES"
	echo "== $fs: $(df -T "$(dirname "$d")" | awk 'NR==2 {print $2" on "$7}'), $REPS reps, load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	for i in $(seq 1 "$REPS"); do
		rm -rf "$d"; mkdir -p "$d"; sync
		if [ $((i % 2)) = 1 ]; then ours "$d"; rival "$d"; else rival "$d"; ours "$d"; fi
		printf '  rep %d done (load %s)\n' "$i" "$(cut -d' ' -f1 /proc/loadavg)" >&2
	done
	rm -rf "$d"
	python3 - "$RES" "$fs" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
t = {}; m = {}
for name, secs, rss in rows:
    t.setdefault(name, []).append(float(secs)); m.setdefault(name, []).append(int(rss))
med = {k: st.median(v) for k, v in t.items()}
rival = [a + b for a, b in zip(t["skopeo"], t["umoci"])]
r = st.median(rival)
print(f"pull of medium from a local registry ({sys.argv[2]}; medians of {len(t['ours'])} interleaved reps; load after: {sys.argv[3]})")
print(f"  syscontainer pull            {med['ours']:7.3f} s   (runs: {' '.join('%.2f' % x for x in t['ours'])})")
print(f"  skopeo copy + umoci unpack   {r:7.3f} s   (skopeo {med['skopeo']:.2f} s + umoci {med['umoci']:.2f} s; runs: {' '.join('%.2f' % x for x in rival)})")
print(f"  ratio ours / rival           {med['ours'] / r:7.2f}x  (target <= 1.0x, aim 0.6x)")
print(f"  re-pull (already present)    {med['repull'] * 1e3:7.1f} ms  (target < 50 ms; min {min(t['repull']) * 1e3:.1f} ms)")
print(f"  peak RSS of a pull           {max(m['ours']) / 1024:7.1f} MiB (target < 64 MiB; skopeo {max(m['skopeo']) / 1024:.0f} MiB, umoci {max(m['umoci']) / 1024:.0f} MiB)")
PY
	bench_unmount
}

echo "$(nproc) CPUs; $(uptime)" >&2
for fs in "${FSS[@]}"; do bench_fs "$fs"; done
