#!/bin/sh
# Run every cargo-fuzz target for SECONDS each (default 60), at low priority,
# one at a time. Needs nightly and cargo-fuzz:
#   rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz
# New inputs go to fuzz/corpus/TARGET (minimize with `cargo fuzz cmin` before
# committing); crashes to fuzz/artifacts/TARGET. A crash becomes a regression
# test by copying its input to fuzz/regressions/TARGET/ (fed to the same
# function by `cargo test --test fuzz_corpus` on stable).
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-template record imgref manifest import dockertar}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
status=0
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s"
    # -rss_limit_mb and -max_len bound memory; -timeout flags hangs.
    log="artifacts/$t/last-run.log"
    if ! nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=1
    fi
    tail -n 20 "$log"
    if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
        echo "!! $t: findings in fuzz/artifacts/$t"
        status=1
    fi
done
exit $status
