#!/bin/bash
# Issue 5, scenario 2: `systemctl start/stop/restart NAME` of a real system
# container (the `hello` image, run by runc under the guest's systemd).
#  - start returns with the container running (runc state `running`), its
#    process in the unit's cgroup;
#  - stop delivers SIGTERM (the container prints `got TERM`), and afterwards no
#    process, no runc state and no cgroup remain;
#  - restart gives a new container (new pid), with the same data dir.
# Also: `systemctl stop syscontainers.target` stops every system container
# (units are PartOf= it), and returns only once they have all stopped (they
# are After= it, so they stop before it): two of them (slowstop) take 2 s
# to stop.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello slowstop"
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
start_slow() { sc_install slow1 slowstop --no-enable --now && sc_install slow2 slowstop --no-enable --now; }
check "install and start slow1 and slow2 (slowstop: 2 s to stop)" start_slow
slow_running() { runc_running slow1 && runc_running slow2; }
check "slow1 and slow2 running" slow_running
after_target() {
    local u v
    part_of_target "$@" || return 1
    for u; do
        v=$(prop "$u" After)
        echo "$u After=$v"
        [[ " $v " == *" syscontainers.target "* ]] || return 1
    done
}
check "hello, bye, slow1, slow2 are PartOf= and After=syscontainers.target" after_target hello bye slow1 slow2
check "systemctl start syscontainers.target (so that stopping it propagates)" g systemctl start syscontainers.target
# The stop, timed, and every container's state right after it returns, in
# one command in the guest (nothing in between).
stop_target() {
    local out ms
    # shellcheck disable=SC2016
    out=$(gsh 't0=$(date +%s%N); systemctl stop syscontainers.target || exit 1; t1=$(date +%s%N)
        echo "stop took $(((t1 - t0) / 1000000)) ms"
        for u in hello bye slow1 slow2; do echo "$u: $(systemctl is-active $u)"; done') || { echo "$out"; return 1; }
    echo "$out"
    ms=$(echo "$out" | sed -n 's/^stop took \([0-9]*\) ms$/\1/p')
    [ -n "$ms" ] && [ "$ms" -ge 1800 ] || { echo "it returned before slow1 and slow2 could have stopped (2 s)"; return 1; }
    [ "$ms" -lt 10000 ] || { echo "too slow: the containers were not stopped in parallel"; return 1; }
    [ "$(echo "$out" | grep -c ': inactive$')" = 4 ] || { echo "a container was not inactive when the stop returned"; return 1; }
}
check "systemctl stop syscontainers.target returns after every container has stopped (2-10 s), all inactive" stop_target
slow_handlers() { journal_has slow1 '^stopped$' && journal_has slow2 '^stopped$'; }
check "slow1 and slow2 ran their TERM handler to the end" slow_handlers
check "bye got SIGTERM" journal_has bye '^got TERM$'
check "nothing left of hello" nothing_left hello
check "nothing left of bye" nothing_left bye
check "clean poweroff" shutdown_guest
