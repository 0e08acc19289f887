#!/bin/sh
# Start latency: `syscontainer-exec run NAME` of a busybox container running
# /bin/true, with a one-line tmpfiles.template (as most corpus images have),
# side by side with a bare `runc run` of the same bundle, in one run. Prints
# the ratio. Needs root, runc and busybox; uses hyperfine when
# installed (apt-get install hyperfine), else a shell loop.
#
#   bench/start-latency.sh [RUNS]
set -eu
RUNS=${1:-200}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p syscontainer-exec
HELPER=$CARGO_TARGET_DIR/release/syscontainer-exec
RUNC=/usr/sbin/runc
[ "$(id -u)" = 0 ] || { echo "start-latency: must run as root" >&2; exit 1; }
[ -x "$RUNC" ] || { echo "start-latency: $RUNC is missing" >&2; exit 1; }

T=$(mktemp -d /tmp/syscontainer-bench.XXXXXX)
NAME=bench$$
trap '$RUNC delete -f $NAME >/dev/null 2>&1; $RUNC delete -f ${NAME}bare >/dev/null 2>&1; start_fixture_cleanup "$T"; rm -rf "$T"' EXIT

# A deployment and its record, as `syscontainer install` writes them.
W=$T
. bench/lib.sh
start_fixture "$T" "$NAME"

# Render once, and copy the rendered bundle for bare runc.
SYSCONTAINER_ROOT=$T "$HELPER" run $NAME
mkdir -p "$T/bare"
cp "$T/run/syscontainer/bundle/$NAME/config.json" "$T/bare/config.json"

# No `env` wrapper: that would add an exec to our side only.
export SYSCONTAINER_ROOT=$T
HELPER_CMD="$HELPER run $NAME"
RUNC_CMD="$RUNC run --bundle $T/bare ${NAME}bare"

if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$T/h.json" \
        -n "bare runc run" "$RUNC_CMD" -n "syscontainer-exec run" "$HELPER_CMD"
    python3 - "$T/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, h = r["bare runc run"], r["syscontainer-exec run"]
print(f"(medians) bare runc: {b['median']*1e3:.2f} ms  syscontainer-exec: {h['median']*1e3:.2f} ms  "
      f"ratio {h['median']/b['median']:.3f}  (our own: {(h['median']-b['median'])*1e3:+.2f} ms)")
PY
else
    t() { s=$(date +%s%N); i=0; while [ $i -lt "$RUNS" ]; do $1 >/dev/null; i=$((i+1)); done; echo $(( ($(date +%s%N) - s) / RUNS / 1000 )); }
    B=$(t "$RUNC_CMD"); H=$(t "$HELPER_CMD")
    echo "bare runc: ${B} us  syscontainer-exec: ${H} us  ratio $(echo "scale=3; $H/$B" | bc)"
fi
