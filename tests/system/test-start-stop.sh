#!/bin/bash
# Issue 5, scenario 2: `systemctl start/stop/restart NAME` of a real system
# container (the `hello` image, run by runc under the guest's systemd).
#  - start returns with the container running (runc state `running`), its
#    process in the unit's cgroup;
#  - stop delivers SIGTERM (the container prints `got TERM`), and afterwards no
#    process, no runc state and no cgroup remain;
#  - restart gives a new container (new pid), with the same data dir.
# Also: `systemctl stop syscontainers.target` stops every system container
# (units are PartOf= it).
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello"
sc_setup
check "boot reaches 'running'" boot
check "install hello (--no-enable, not started)" sc_install hello hello --no-enable --set RECEIVER=StartStop
check "hello.service exists, inactive after install" is_inactive hello
check "no runc state before start" not g runc state hello

check "systemctl start hello" g systemctl start hello
# Type=exec: start has returned, so runc has created the container already
check "right after start: runc state running" runc_running hello
check "hello active" is_active hello
check "container runs in hello.service's cgroup" in_unit_cgroup hello
check "MainPID is runc (exec'd by syscontainer-exec, nothing in between)" \
    gsh 'p=$(systemctl show -P MainPID hello); echo "MainPID=$p: $(cat /proc/$p/comm)"; [ "$(cat /proc/$p/comm)" = runc ]'
check "the container printed its greeting" wait_for 5 journal_has hello '^Hello StartStop from hello \(version 1\)'
check "the container wrote its environment to /data" wait_for 5 env_has hello '^RECEIVER=StartStop$'
pid1=$(container_pid hello)

check "systemctl stop hello" g systemctl stop hello
check "stop delivered SIGTERM: journal 'got TERM'" journal_has hello '^got TERM$'
check "data log: 'got TERM version=1'" g grep -x 'got TERM version=1' /var/lib/hello/log
check "hello inactive (not failed) after stop" is_inactive hello
check "after stop: no process, no runc state, no cgroup" nothing_left hello

check "systemctl start hello again" g systemctl start hello
check "runc state running again" runc_running hello
check "systemctl restart hello" g systemctl restart hello
check "after restart: runc state running" runc_running hello
new_pid() {
    local p
    p=$(container_pid hello)
    echo "container pid before restart $1, now $p"
    [[ $p =~ ^[1-9][0-9]*$ ]] && [ "$p" != "$1" ]
}
term_count() {
    local n
    n=$(g grep -c 'got TERM' /var/lib/hello/log)
    echo "'got TERM' lines in /var/lib/hello/log: $n (want $1)"
    [ "$n" = "$1" ]
}
check "after restart: a new container process" new_pid "$pid1"
check "restart delivered SIGTERM to the old one (2 x 'got TERM' in the data log)" term_count 2
check "after restart: in the unit's cgroup" in_unit_cgroup hello

# --------------------------------------------------------------------- syscontainers.target
check "install and start a second container, bye" sc_install bye hello --no-enable --now --set RECEIVER=Bye
check "bye running" runc_running bye
part_of_target() {
    local u v
    for u; do
        v=$(prop "$u" PartOf)
        echo "$u PartOf=$v"
        [[ " $v " == *" syscontainers.target "* ]] || return 1
    done
}
check "hello and bye are PartOf=syscontainers.target" part_of_target hello bye
check "systemctl start syscontainers.target (so that stopping it propagates)" g systemctl start syscontainers.target
check "systemctl stop syscontainers.target" g systemctl stop syscontainers.target
# The stop jobs are queued with the target's; the containers are not ordered
# against the target, so they may still be deactivating when systemctl returns.
check "hello stopped by the target" wait_for 10 is_inactive hello
check "bye stopped by the target" wait_for 10 is_inactive bye
check "bye got SIGTERM" journal_has bye '^got TERM$'
check "nothing left of hello" nothing_left hello
check "nothing left of bye" nothing_left bye
check "clean poweroff" shutdown_guest
