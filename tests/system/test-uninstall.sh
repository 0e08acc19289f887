#!/bin/bash
# Issue 5, scenario 6: uninstall of a running, enabled container that has two
# deployments. Afterwards the unit is gone (after the reload), and nothing of
# the container remains: record, deployments, symlink, bundle, runc state,
# processes, cgroup, boot activation link, and the contents of the tmpfiles
# `D` dir (${RUN_DIRECTORY}/NAME). The image stays (images prune frees it), the
# `d` state dir stays (tmpfiles --remove leaves `d` dirs alone), and a second
# container from the same image is untouched.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello"
sc_setup
check "boot reaches 'running'" boot
check "install doomed (--now)" sc_install doomed hello --now --set RECEIVER=Doomed
check "install keeper (--now)" sc_install keeper hello --now --set RECEIVER=Keeper
check "update doomed: a second deployment (doomed.1)" sc containers update --set PORT=9999 --timeout 20 --settle 1 doomed
check "doomed running on doomed.1" prop_is doomed WorkingDirectory "$CHECKOUTS/doomed.1"
check "the tmpfiles D dir /run/doomed exists" g test -d /run/doomed
check "put a file into /run/doomed (its contents go with tmpfiles --remove)" g touch /run/doomed/leftover
check "multi-user.target wants doomed" boot_wanted multi-user.target doomed.service
keeper_id=$(ident keeper)

check "syscontainer uninstall doomed" sc uninstall doomed
check "the container got SIGTERM on the way out" journal_has doomed '^got TERM$'
check "doomed.service is gone (LoadState not-found)" prop_is doomed LoadState not-found
check "no generated unit file" not g test -e $GENDIR/doomed.service
check "multi-user.target no longer wants doomed" not_boot_wanted multi-user.target doomed.service
check "syscontainers.target no longer wants doomed" not_boot_wanted syscontainers.target doomed.service
check "no record" not g test -e $RECDIR/doomed.json
check "no state" not g test -e $STATEDIR/doomed.json
check "no deployments, no symlink" \
    gsh "! ls -d $CHECKOUTS/doomed $CHECKOUTS/doomed.0 $CHECKOUTS/doomed.1 2>/dev/null | grep ."
check "no rendered bundle" not g test -e /run/syscontainer/bundle/doomed
check "no process, no runc state, no cgroup" nothing_left doomed
# tmpfiles.d(5): --remove empties a `D` dir (the directory itself may stay)
# and leaves a `d` dir (the container's data) alone.
check "tmpfiles --remove applied: the D dir /run/doomed is gone or empty" \
    gsh '! test -e /run/doomed || { ls -A /run/doomed; test -z "$(ls -A /run/doomed)"; }'
check "the data dir (d line) /var/lib/doomed is kept" g test -f /var/lib/doomed/log
check "containers list --all does not list doomed" \
    gsh "! syscontainer containers list --all --json | jq -e '.[] | select(.name == \"doomed\")'"
check "the image is still there (images list)" \
    gsh "syscontainer images list --json | jq -e 'length > 0'"
check "keeper untouched: still running, not restarted" same_ident keeper "$keeper_id"
check "keeper's runc container running" runc_running keeper
# 4: "image or deployment missing" (README, exit codes)
check "uninstall again: exit 4, not installed" \
    exits_with 4 "container 'doomed' is not installed" sc uninstall doomed
check "doomed can be installed again under the same name" sc_install doomed hello --now
check "... and runs" runc_running doomed
check "clean poweroff" shutdown_guest
