#!/bin/bash
# Issue 12, section 2: `syscontainer auto-update` under real systemd, with
# the registry on the guest's loopback (guest-registry.sh, plain HTTP).
#  - web is installed from REGISTRY/sctest/web:latest with --auto-update
#    registry; with nothing new, auto-update says `unchanged` and restarts
#    nothing;
#  - the tag moves to hello-v2: `updated`, web runs version 2 on web.1;
#  - the tag moves to `broken`, whose process crashes (exit 3) 3 s after
#    its start (BROKEN_DELAY=3, set at install and kept, under
#    Restart=on-failure): the unit became active, then left it within the
#    settle time, so the health gate fails, `rolled back`, exit 1,
#    version 2 runs again, the digest is recorded as failed; the next run
#    says `skipped`, exit 0, and restarts nothing;
#  - syscontainer-auto-update.timer is installed, loads, and is disabled.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"
# shellcheck source=tests/system/guest-registry.sh
. "$(dirname "$0")/guest-registry.sh"

SC_IMAGES="broken"
guest_registry_prepare plain
sc_setup
check "boot reaches 'running'" boot
check "docker-registry (plain HTTP) runs in the guest on $GREG_ADDR" guest_registry_start
REF=$GREG_ADDR/sctest/web:latest
check "push hello as $REF" guest_registry_push hello sctest/web:latest
check "install web --auto-update registry --set BROKEN_DELAY=3 --now (pulled from the registry)" \
    sc install --name web --auto-update registry --set BROKEN_DELAY=3 --now "http:$REF"
check "the record opts in" gsh "jq -e '.autoUpdate == \"registry\"' $RECDIR/web.json && jq -e '.record.auto_update == \"registry\"' $STATEDIR/web.json"
check "web running" wait_for 10 is_active web

check "the timer unit is installed" g test -f /lib/systemd/system/syscontainer-auto-update.timer
check "the timer and its service load" \
    gsh 'for u in syscontainer-auto-update.timer syscontainer-auto-update.service; do
        s=$(systemctl show -p LoadState --value "$u"); echo "$u: $s"; [ "$s" = loaded ] || exit 1; done'
check "the auto-update timer is disabled by default" not g systemctl is-enabled syscontainer-auto-update.timer
check "the auto-update timer is not active" not g systemctl is-active syscontainer-auto-update.timer

# auto_update_says EXIT RESULT: one line for web.service with RESULT, and exit status EXIT
auto_update_says() {
    local want_rc=$1 want=$2 out rc
    out=$(sc auto-update --tls-verify=false --timeout 20 --settle 6 2>&1)
    rc=$?
    echo "$out"
    echo "$out" >"$RESULTS/auto-update-last.txt"
    echo "exit status $rc"
    [ "$rc" -eq "$want_rc" ] || { echo "exit status $rc, not $want_rc"; return 1; }
    echo "$out" | grep -E "^web\.service +$REF +$want +[0-9a-f]{12} -> [0-9a-f]{12}\$"
}
id0=$(ident web)
check "nothing new: unchanged" auto_update_says 0 unchanged
check "... and web was not restarted" same_ident web "$id0"

check "push hello-v2 under the same tag" guest_registry_push hello-v2 sctest/web:latest
check "auto-update: updated" auto_update_says 0 updated
check "web active on web.1" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.1"
check "web runs version 2" wait_for 5 journal_has web 'from web \(version 2\)'
check "the record still opts in" gsh "jq -e '.autoUpdate == \"registry\"' $RECDIR/web.json && jq -e '.record.auto_update == \"registry\"' $STATEDIR/web.json"
id1=$(ident web)

push_broken() {
    nsenter -t "$PID1" -n skopeo copy -q --dest-tls-verify=false \
        "docker-archive:$SC_FIXTURES/broken.tar" "docker://$REF"
}
check "push broken (crashes 3 s after its start) under the same tag" push_broken
check "auto-update: rolled back, exit 1" auto_update_says 1 "rolled back"
check "... because web became active, then crashed within the settle time" \
    grep -E "became active, then (left 'active' after [3-5]\.[0-9] s|restarted after [3-5]\.[0-9] s)" "$RESULTS/auto-update-last.txt"
check "web is active again" wait_for 10 is_active web
check "web is back on web.1 (version 2)" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.1"
check "the record is version 2's" gsh "jq -e '.record.deployment == \"$CHECKOUTS/web.1\"' $STATEDIR/web.json"
check "the failed digest is recorded" \
    gsh "jq -e '.containers.web.failed.digest | startswith(\"sha256:\")' /var/lib/syscontainer/auto-update.json"
id2=$(ident web)
check "the next run does not retry it: skipped, exit 0" auto_update_says 0 skipped
check "... and web was not restarted" same_ident web "$id2"
check "web runs version 2 still" journal_has web 'from web \(version 2\)'
check "clean poweroff" shutdown_guest
