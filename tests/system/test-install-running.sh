#!/bin/bash
# Issue 5, scenario 3: install inside the running guest, then
# `systemctl start`. The install reloads systemd (the generator makes the new
# unit), the new container starts, and no other running container is
# restarted by the install, the reload or the start (same MainPID and
# ActiveEnterTimestampMonotonic before and after).
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello hello-v2"
sc_setup
check "boot reaches 'running'" boot
check "install first (--now)" sc_install first hello --now --set RECEIVER=First
check "first running" runc_running first
check "install second (--now)" sc_install second hello-v2 --now --set RECEIVER=Second
check "second running" runc_running second
first_id=$(ident first)
second_id=$(ident second)
first_pid=$(container_pid first)
# recreated DIR OLD: DIR's inode is a number now, OLD was one, and they differ
# (an empty or failed stat never counts as "recreated").
recreated() {
    local now
    now=$(g stat -c %i "$1") || { echo "stat $1 failed"; return 1; }
    echo "$1: inode before '$2', now '$now'"
    [[ $2 =~ ^[0-9]+$ ]] || { echo "no inode before the install"; return 1; }
    [[ $now =~ ^[0-9]+$ ]] || { echo "stat printed no inode"; return 1; }
    [ "$now" != "$2" ]
}
gen_inode=$(g stat -c %i $GENDIR)

check "no unit 'third' before the install" prop_is third LoadState not-found
check "syscontainer install third (running guest)" sc_install third hello --set RECEIVER=Third
check "the install reloaded systemd: $GENDIR was recreated" recreated $GENDIR "$gen_inode"
check "third.service is generated and loaded" prop_is third LoadState loaded
check "third.service comes from the generator" prop_is third UnitFileState generated
check "third is not started by the install (no --now)" is_inactive third
check "first not restarted by the install" same_ident first "$first_id"
check "second not restarted by the install" same_ident second "$second_id"

check "systemctl start third" g systemctl start third
check "third running (runc) right after start" runc_running third
check "third active" is_active third
check "third in its unit's cgroup" in_unit_cgroup third
check "third has its values" wait_for 5 env_has third '^RECEIVER=Third$'
check "first not restarted by starting third" same_ident first "$first_id"
check "second not restarted by starting third" same_ident second "$second_id"
# same_pid NAME PID: NAME's container init is PID, a pid (never two empty strings).
same_pid() {
    local now
    now=$(container_pid "$1")
    echo "$1: container pid before '$2', now '$now'"
    [[ $2 =~ ^[1-9][0-9]*$ ]] && [ "$now" = "$2" ]
}
check "first's container is the same process" same_pid first "$first_pid"
check "first, second, third all active" g systemctl is-active first second third
check "first and second each started once (one 'start' line in their data logs)" \
    g sh -c 'test "$(grep -c ^start /var/lib/first/log)" = 1 && test "$(grep -c ^start /var/lib/second/log)" = 1'
check "clean poweroff" shutdown_guest
