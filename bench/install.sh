#!/bin/bash
# Install benchmark: `syscontainer install` (union checkout of the layers with
# hardlinks + render + record) of the ~160 MB, ~10k-file `medium` image (it
# has no /exports: the default config applies), side by side in one run with
# `cp -al` and `cp -a` of the same tree, on the same filesystem. Reps are
# interleaved (the order rotates); medians and ratios are printed.
#
#   bench/install.sh [-n REPS] [-f FS]...
#     -n REPS   repetitions per side (default 5)
#     -f FS     root (a directory on the filesystem of /var/tmp, default),
#               ext4 (a fresh loop-mounted ext4), tmpfs. Repeatable.
#
# Needs root and runc (install checks the runtime). The image is pulled once
# from the cached docker-archive fixture, untimed. Note: install ends with a
# syncfs and fsyncs its record; cp does not sync. On `root`, that syncfs also
# flushes whatever else is dirty on the shared filesystem.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=5
FSS=()
while getopts n:f: o; do
	case $o in
	n) REPS=$OPTARG ;;
	f) FSS+=("$OPTARG") ;;
	*) sed -n '2,17p' "$0" >&2; exit 2 ;;
	esac
done
[ ${#FSS[@]} -gt 0 ] || FSS=(root)
[ "$(id -u)" = 0 ] || { echo "install.sh: must run as root" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p syscontainer-cli
SC=$(realpath "$CARGO_TARGET_DIR/release/syscontainer")
tests/fixtures/make-images.sh medium >/dev/null
F=${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures}

W=$(mktemp -d /var/tmp/syscontainer-installbench.XXXXXX)
. bench/lib.sh
cleanup() {
	set +e
	bench_unmount
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; }
timed() {  # timed NAME CMD...: append "NAME seconds" to $RES
	local name=$1 t0 t1
	shift
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	echo "$name $(python3 -c "print($t1-$t0)")" >>"$RES"
}

bench_fs() {
	local fs=$1 d
	bench_mount "$fs"
	d=$BENCH_DIR
	RES=$W/results.$fs
	: >"$RES"
	local R=$d/root
	local A=$R/var/lib/containers/atomic
	mkdir -p "$R"
	SYSCONTAINER_ROOT=$R "$SC" pull -q "dockertar:$F/medium.tar"
	local img
	img=$(SYSCONTAINER_ROOT=$R "$SC" images list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
	# The reference tree for cp: a checkout of the image, hardlinked into the repo.
	SYSCONTAINER_ROOT=$R "$SC" install --no-enable --name ref "$img" >/dev/null
	local tree=$A/ref.0/rootfs
	echo "== $fs: $(df -T "$d" | awk 'NR==2 {print $2" on "$7}'), $(find "$tree" | wc -l) entries, $(du -sm "$tree" | cut -f1) MB, $REPS reps, load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	# `sync` before each timed command: our syncfs must not pay for the
	# previous command's dirty data. `cp -al + sync -f` is the durable rival.
	ours() { sync; timed install env SYSCONTAINER_ROOT="$R" "$SC" install --no-enable --name "b$1" "$img"; }
	cpal() {
		sync; timed cp-al cp -al "$tree" "$d/cpal"
		sync; timed cp-al-sync sh -c 'cp -al "$1" "$2" && sync -f "$2"' - "$tree" "$d/cpals"
	}
	cpa() { sync; timed cp-a cp -a "$tree" "$d/cpa"; }
	for i in $(seq 1 "$REPS"); do
		sync
		case $((i % 3)) in
		1) ours "$i"; cpal; cpa ;;
		2) cpal; cpa; ours "$i" ;;
		0) cpa; ours "$i"; cpal ;;
		esac
		SYSCONTAINER_ROOT=$R "$SC" uninstall "b$i" >/dev/null
		rm -rf "$d/cpal" "$d/cpals" "$d/cpa"
		printf '  rep %d done (load %s)\n' "$i" "$(cut -d' ' -f1 /proc/loadavg)" >&2
	done
	python3 - "$RES" "$fs" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics as st, sys
t = {}
for name, secs in (l.split() for l in open(sys.argv[1])):
    t.setdefault(name, []).append(float(secs))
m = {k: st.median(v) for k, v in t.items()}
runs = lambda k: " ".join("%.2f" % x for x in t[k])
print(f"install of medium ({sys.argv[2]}; medians of {len(t['install'])} interleaved reps; load after: {sys.argv[3]})")
print(f"  syscontainer install   {m['install']:7.3f} s   (runs: {runs('install')})")
print(f"  cp -al                 {m['cp-al']:7.3f} s   (runs: {runs('cp-al')})")
print(f"  cp -al + sync -f        {m['cp-al-sync']:7.3f} s   (runs: {runs('cp-al-sync')})")
print(f"  cp -a                  {m['cp-a']:7.3f} s   (runs: {runs('cp-a')})")
print(f"  ratio install / cp -al {m['install'] / m['cp-al']:7.2f}x  (target <= 1.5x)")
print(f"  ratio install / (cp -al + sync -f) {m['install'] / m['cp-al-sync']:7.2f}x")
print(f"  ratio install / cp -a  {m['install'] / m['cp-a']:7.2f}x")
PY
	rm -rf "$d"
	bench_unmount
}

echo "$(nproc) CPUs; $(uptime)" >&2
for fs in "${FSS[@]}"; do bench_fs "$fs"; done
