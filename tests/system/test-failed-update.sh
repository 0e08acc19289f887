#!/bin/bash
# Issue 5, scenario 5: an update whose new version fails to start rolls back
# by itself, and the old version runs again.
# The new version is `broken` (tiny + tests/system/images/broken as
# /exports: its process prints a line and exits 3, after $BROKEN_DELAY
# seconds, default 0, under Restart=on-failure). `containers update --rebase`
# to it must fail, naming the failure, and leave `web` running on web.0 with
# its old values.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello broken"
sc_setup
check "boot reaches 'running'" boot
check "install web (--now, RECEIVER=Stable)" sc_install web hello --now --set RECEIVER=Stable
check "web running" runc_running web
check "web sees RECEIVER=Stable" wait_for 5 env_has web '^RECEIVER=Stable$'
id0=$(ident web)

update_fails() {
    local out rc
    out=$(sc containers update --rebase "dockertar:$GIMG/broken.tar" --timeout 5 web 2>&1)
    rc=$?
    echo "$out"
    echo "exit status $rc"
    [ $rc -ne 0 ] || { echo "the update of a version that cannot start succeeded"; return 1; }
    # the error says what happened: not active, rolled back
    echo "$out" | grep -Eqi 'did not become active|roll(ed)? ?back' || { echo "the error does not say it rolled back"; return 1; }
}
check "update --rebase to a version that exits 3 fails, saying so" update_fails
check "the broken version did run (journal: 'broken version: exiting with status 3')" \
    journal_has web '^broken version: exiting with status 3$'
check "web is active again" wait_for 10 is_active web
check "runc: web running" runc_running web
check "symlink back on web.0" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.0"
check "record back on web.0 and the hello image" \
    gsh "jq -e '.deployment == \"$CHECKOUTS/web.0\" and (.image | test(\"hello:\"))' $RECDIR/web.json"
check "the unit runs web.0 (WorkingDirectory)" prop_is web WorkingDirectory "$CHECKOUTS/web.0"
check "the old version runs again: last data log line is version 1, RECEIVER=Stable" \
    wait_for 5 sh -c "tail -n 1 '$ROOT/var/lib/web/log' | grep -x 'start version=1 receiver=Stable port=8081'"
old_after_broken() {
    g journalctl -b -u web -o cat --no-pager |
        awk '/^broken version/ { b = 1 } b && /^Hello Stable from web \(version 1\)/ { ok = 1 } { print } END { exit !ok }'
}
check "journal: 'Hello Stable from web (version 1)' after the broken run" old_after_broken
check "web was restarted (a new container since the update)" not same_ident web "$id0"
check "the container is in its unit's cgroup" in_unit_cgroup web
check "not failed: Result=success" prop_is web Result success
listed_running() {
    local j
    j=$(sc containers list --json) || return 1
    echo "$j"
    echo "$j" | jq -e '.[] | select(.name=="web") | .state == "running"' >/dev/null
}
check "containers list shows web running" listed_running
check "a later good update still works (--set RECEIVER=Next)" sc containers update --set RECEIVER=Next --timeout 20 web
check "... and runs" wait_for 5 env_has web '^RECEIVER=Next$'
check "clean poweroff" shutdown_guest
