#!/bin/bash
# Issue 5, scenario 5, and issue 9 (6): an update whose new version fails
# rolls back by itself, and the old version runs again, with its host files.
# The new version is `broken` (tiny + tests/system/images/broken as
# /exports: its process prints a line and exits 3, after $BROKEN_DELAY
# seconds, default 0, under Restart=on-failure). `containers update --rebase`
# to it must fail, naming the failure, and leave `web` running on web.0 with
# its old values and host files. Twice: failing at once, and becoming active
# and crashing 2 s later (within --settle 5). A good update passes the gate
# only after its settle time.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello-hostfs broken"
sc_setup
check "boot reaches 'running'" boot
check "install web (hello-hostfs, --now, RECEIVER=Stable)" sc_install web hello-hostfs --now --set RECEIVER=Stable
check "web running" runc_running web
check "web sees RECEIVER=Stable" wait_for 5 env_has web '^RECEIVER=Stable$'
id0=$(ident web)
# web's host files: the broken version has none, so a failed update that
# did not put them back would leave web without them.
host_files_of_web() {
    g sh -c 'cd /usr/local/lib && for f in renamed-web secret-message secret-message-template; do printf "%s: " $f; cat $f || exit 1; done'
}
check "web's host files are installed" host_files_of_web
web_files=$(host_files_of_web)

update_fails() {   # update_fails WHAT ARGS...: rc 1, and the message says why and that it rolled back
    local what=$1 out rc
    shift
    out=$(sc containers update --rebase "dockertar:$GIMG/broken.tar" "$@" web 2>&1)
    rc=$?
    echo "$out"
    echo "exit status $rc"
    # 1: "any other failure" (README, exit codes)
    [ $rc -eq 1 ] || { echo "exit status $rc, not 1"; return 1; }
    echo "$out" | grep -q 'rolled back to /var/lib/containers/atomic/web.0' || { echo "the error does not say it rolled back"; return 1; }
    echo "$out" | grep -Eq -- "$what" || { echo "the error does not say: $what"; return 1; }
}
old_is_back() {   # the old version runs on web.0, with its values and host files
    local tag=$1
    check "$tag: web is active again" wait_for 10 is_active web
    check "$tag: runc: web running" runc_running web
    check "$tag: symlink back on web.0" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.0"
    check "$tag: record back on web.0 and the hello-hostfs image, no BROKEN_DELAY" \
        gsh "jq -e '.record | .deployment == \"$CHECKOUTS/web.0\" and (.image | test(\"hello-hostfs:\")) and (.values.BROKEN_DELAY == null)' $STATEDIR/web.json"
    check "$tag: the unit runs web.0 (WorkingDirectory)" prop_is web WorkingDirectory "$CHECKOUTS/web.0"
    check "$tag: the old version runs again: last data log line is version 1, RECEIVER=Stable" \
        wait_for 5 sh -c "tail -n 1 '$ROOT/var/lib/web/log' | grep -x 'start version=1 receiver=Stable port=8081'"
    check "$tag: web's host files are back" web_files_back
    check "$tag: the container is in its unit's cgroup" in_unit_cgroup web
}
web_files_back() {
    local now
    now=$(host_files_of_web)
    echo "$now"
    [ "$now" = "$web_files" ]
}

check "update --rebase to a version that exits 3 at once fails, saying so" \
    update_fails "systemctl restart failed|the unit was '[a-z-]+' after 5 s|the unit became active, then" --timeout 5
check "the broken version did run (journal: 'broken version: exiting with status 3')" \
    journal_has web '^broken version: exiting with status 3$'
old_is_back "at once"
old_after_broken() {
    g journalctl -b -u web -o cat --no-pager |
        awk '/^broken version/ { b = 1 } b && /^Hello Stable from web \(version 1\)/ { ok = 1 } { print } END { exit !ok }'
}
check "journal: 'Hello Stable from web (version 1)' after the broken run" old_after_broken
check "web was restarted (a new container since the update)" not same_ident web "$id0"
check "not failed: Result=success" prop_is web Result success
listed_running() {
    local j
    j=$(sc containers list --json) || return 1
    echo "$j"
    echo "$j" | jq -e '.[] | select(.name=="web") | .state == "running"' >/dev/null
}
check "containers list shows web running" listed_running

# ---- a version that becomes active, then crashes 2 s later (and again, in a
# loop, under Restart=on-failure): within --settle 5, a failed update.
id1=$(ident web)
n_broken=$(g journalctl -b -u web -o cat --no-pager | grep -c '^broken version')
t=$(_now)
check "update to a version that crashes 2 s after it became active fails (--settle 5), saying so" \
    update_fails "became active, then (left 'active'|restarted) after [0-9.]+ s .*--settle 5 s" \
    --set BROKEN_DELAY=2 --timeout 8 --settle 5
ms=$(ms_since "$t")
check "... and found out within the settle time ($ms ms, < 10 s)" test "$ms" -lt 10000
check "the late-crashing version did run and crash once more" \
    sh -c 'n=$(grep -c "^broken version" "$1"); echo "$n lines, $2 before"; [ "$n" -gt "$2" ]' sh \
    <(g journalctl -b -u web -o cat --no-pager) "$n_broken"
old_is_back "late crash"
check "web restarted since" not same_ident web "$id1"

# ---- a good update passes, once it has stayed up for its settle time
t=$(_now)
check "a later good update works (--set RECEIVER=Next --settle 2)" \
    sc containers update --set RECEIVER=Next --timeout 20 --settle 2 web
ms=$(ms_since "$t")
check "... after waiting the settle time ($ms ms >= 2000)" test "$ms" -ge 2000
check "... and runs" wait_for 5 env_has web '^RECEIVER=Next$'
check "clean poweroff" shutdown_guest
