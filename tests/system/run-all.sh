#!/bin/bash
# Run every tests/system/test-*.sh in sequence (or only the ones named on the
# command line, e.g. `run-all.sh generator`) and report. Builds nothing: pass
# the binaries the way each test expects (GENERATOR=..., EXEC_HELPER=...,
# SYSCONTAINER=..., or a Makefile with an install target, see lib.sh).
#
#   SYSTEST_RESULTS=dir       where each test's logs go (default: a new /tmp dir)
#   SYSTEST_TEST_TIMEOUT=600  seconds per test script
# Exit status: 0 if every test passed, 1 otherwise (also if none ran).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export SYSTEST_RESULTS=${SYSTEST_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/sc-systest-results.XXXXXX")}
mkdir -p "$SYSTEST_RESULTS" || exit 1
per_test=${SYSTEST_TEST_TIMEOUT:-600}

tests=()
if [ $# -gt 0 ]; then
    for n; do
        n=${n#test-}; n=${n%.sh}
        [ -f "$here/test-$n.sh" ] || { echo "run-all: no such test: $here/test-$n.sh" >&2; exit 1; }
        tests+=("$here/test-$n.sh")
    done
else
    for t in "$here"/test-*.sh; do [ -f "$t" ] && tests+=("$t"); done
fi
[ ${#tests[@]} -gt 0 ] || { echo "run-all: FAIL: no tests/system/test-*.sh found" >&2; exit 1; }

report=()
failed=0
t_all=$(date +%s%N)
for t in "${tests[@]}"; do
    name=$(basename "${t%.sh}")
    echo "===== $name"
    t0=$(date +%s%N)
    timeout -k 30 "$per_test" bash "$t"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    counts=$(sed -n "s/.*$name: \([0-9]* passed, [0-9]* failed\).*/\1/p" "$SYSTEST_RESULTS/$name/summary.txt" 2>/dev/null | tail -n1)
    if [ $rc -eq 0 ]; then
        verdict=PASS
    else
        verdict=FAIL
        failed=$((failed + 1))
        [ $rc -eq 124 ] && counts="${counts:+$counts, }timed out after ${per_test}s"
    fi
    report+=("$(printf '%-4s %-28s %7.1f s  %s' "$verdict" "$name" "$(awk -v ms="$ms" 'BEGIN { print ms / 1000 }')" "${counts:-rc=$rc}")")
done

echo
echo "===== system tests (logs in $SYSTEST_RESULTS)"
printf '%s\n' "${report[@]}" | tee "$SYSTEST_RESULTS/report.txt"
echo "total $((($(date +%s%N) - t_all) / 1000000)) ms, ${#tests[@]} test(s), $failed failed" | tee -a "$SYSTEST_RESULTS/report.txt"
[ $failed -eq 0 ]
