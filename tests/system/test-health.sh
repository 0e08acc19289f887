#!/bin/bash
# Issue 12 section 3: health checks and readiness, under the guest's systemd,
# with real runc. The `hello` image with a check given in the record
# (`install --health-*`); the check runs in the container (runc exec) and
# reads /dev, a tmpfs of the container's own, so that a new container starts
# healthy again:
#   healthy   unless /dev/sick exists; the very first check fails (it
#             creates /dev/started), so `systemctl start` must wait for a
#             second one (readiness).
#  - `systemctl start web` returns with the state `healthy` and
#    `containers list` (and --json) says so; web-health.timer runs with it;
#  - /dev/sick made with runc exec: after `retries` (2) failures in a row
#    the container is killed (onFailure kill), Restart= restarts the unit
#    (NRestarts grows), the journal of web.service says why, and the new
#    container is healthy again;
#  - `containers update --health-on-failure none` (through the update's
#    gate, which runs the check): the same failure is only reported: the
#    state is `unhealthy` in the list and in `systemctl status web`, and the
#    container keeps running (same pid, NRestarts unchanged);
#  - an update whose check never passes is rolled back (the update gate);
#  - a check that never passes fails `systemctl start` after the start
#    period + retries x interval, with the reason in the journal;
#  - stopping the unit stops its timer.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello"
sc_setup
HSTATE=/run/syscontainer/health
# shellcheck disable=SC2016
HC='if [ -e /dev/started ]; then test ! -e /dev/sick; else touch /dev/started; echo first check; exit 1; fi'

state_is() {   # state_is NAME STATUS
    local s
    s=$(g jq -r .status "$HSTATE/$1.json" 2>&1)
    echo "$HSTATE/$1.json: status '$s' (want '$2')"
    g cat "$HSTATE/$1.json"
    [ "$s" = "$2" ]
}
list_health() {   # list_health NAME HEALTH: in the table and in --json
    local t j
    t=$(sc containers list --all) || return 1
    echo "$t"
    j=$(sc containers list --all --json | jq -r ".[] | select(.name == \"$1\") | .health")
    echo "--json: health '$j' (want '$2')"
    [ "$(echo "$t" | awk -v n="$1" '$1 == n { h = $6; if (h == "-") h = ""; print h }')" = "$2" ] && [ "$j" = "$2" ]
}
nrestarts_above() {
    local n
    n=$(prop "$1" NRestarts)
    echo "$1 NRestarts=$n (want > $2)"
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt "$2" ]
}
status_has() {   # status_has UNIT REGEX: in `systemctl status` (its journal lines)
    local out
    out=$(g systemctl status --no-pager -l -n 30 "$1")
    echo "$out"
    echo "$out" | grep -E -- "$2"
}
last_time() { g jq -r .last_time "$HSTATE/$1.json"; }
advances() {   # advances NAME T0: a check ran after T0
    local t
    t=$(last_time "$1")
    echo "last_time $t (was $2)"
    [ "$t" -gt "$2" ]
}

check "boot reaches 'running'" boot
check "install web with a health check (--health-cmd ... --health-on-failure kill)" \
    sc_install web hello --no-enable --set RECEIVER=Health --health-cmd "$HC" \
    --health-interval 1s --health-retries 2 --health-timeout 2s --health-start-period 3s --health-on-failure kill
check "the record keeps the check" gsh "jq -e '.health.onFailure == \"kill\" and .health.retries == 2 and .health.interval == \"1s\"' $RECDIR/web.json"
check "the generator made web-health.timer, wanted by web.service" \
    g test -L "$GENDIR/web.service.wants/web-health.timer"
check "web.service waits for the check (ExecStartPost=... wait-healthy web)" \
    gsh "systemctl cat web | grep -x 'ExecStartPost=/usr/libexec/syscontainer-exec wait-healthy web'"

# ------------------------------------------------------------------ readiness
check "systemctl start web" g systemctl start web
check "right after start: the state is healthy (start waited for a passing check)" state_is web healthy
check "the first check had failed, and start waited for the next one" \
    journal_has web 'waiting for web to become healthy .*the first check exited with status 1: first check'
check "containers list: healthy (table and --json)" list_health web healthy
check "web-health.timer is active with web" prop_is web-health.timer ActiveState active
t0=$(last_time web)
check "the timer runs the check every second (last_time advances)" wait_for 5 advances web "$t0"
check "still healthy" state_is web healthy
# A check every second is 10 starts of web-health.service in 10 s: more than
# systemd's default start limit (5 in 10 s), which would refuse the rest.
sleep 11
t0=$(last_time web)
check "after 11 s of checks every second they still run (no start limit)" wait_for 3 advances web "$t0"
check "... and systemd never refused a start of web-health.service" \
    not gsh "journalctl -b -u web-health.service -o cat --no-pager | grep -F 'Start request repeated too quickly'"

# ------------------------------------------------------------------ kill after retries failures
n0=$(prop web NRestarts)
pid0=$(container_pid web)
check "make the check fail: runc exec web touch /dev/sick" g runc exec web touch /dev/sick
check "after 2 failures the container is killed, Restart= restarts web (NRestarts grows)" \
    wait_for 20 nrestarts_above web "$n0"
check "journal of web.service: the failures, unhealthy, killing" gsh \
    "journalctl -b -u web -o cat --no-pager | grep -E 'health check of web failed \(2 of 2 in a row\)' &&
     journalctl -b -u web -o cat --no-pager | grep -E '^web is unhealthy: 2 health checks failed in a row \(onFailure: kill\)' &&
     journalctl -b -u web -o cat --no-pager | grep -E '^killing web \(onFailure: kill\)'"
new_container() {
    local p
    p=$(container_pid web)
    echo "container pid before $pid0, now $p"
    [[ $p =~ ^[1-9][0-9]*$ ]] && [ "$p" != "$pid0" ]
}
check "a new container runs" wait_for 10 new_container
check "web is active again" wait_for 10 is_active web
check "the new container (fresh /dev) is healthy again" wait_for 10 state_is web healthy
check "containers list: healthy" list_health web healthy
check "web-health.timer runs again after the automatic restart" prop_is web-health.timer ActiveState active
t1=$(last_time web)
check "and the checks go on (last_time advances)" wait_for 5 advances web "$t1"

# ------------------------------------------------------------------ onFailure none: only report
check "containers update web --health-on-failure none (through the gate: the check must pass)" \
    sc containers update web --health-on-failure none --settle 2
check "the record now says onFailure none, other fields kept" \
    gsh "jq -e '.health.onFailure == \"none\" and .health.retries == 2' $RECDIR/web.json"
check "web healthy after the update" wait_for 10 state_is web healthy
n1=$(prop web NRestarts)
pid1=$(container_pid web)
check "make the check fail again" g runc exec web touch /dev/sick
check "after 2 failures: unhealthy" wait_for 15 state_is web unhealthy
check "containers list: unhealthy" list_health web unhealthy
check "systemctl status web shows it" status_has web 'web is unhealthy: 2 health checks failed in a row \(onFailure: none\)'
sleep 3
same_container() {
    local p n
    p=$(container_pid web); n=$(prop web NRestarts)
    echo "pid $p (was $pid1), NRestarts $n (was $n1)"
    [ "$p" = "$pid1" ] && [ "$n" = "$n1" ]
}
check "only reported: 3 s later, the same container, no restart" same_container
check "and still active" is_active web
check "the check passes again once /dev/sick is gone" g runc exec web rm /dev/sick
check "healthy again" wait_for 10 state_is web healthy
check "the journal says so" journal_has web '^web is healthy$'

# ------------------------------------------------------------------ the update gate
check "an update to a check that never passes fails and is rolled back" \
    exits_with 1 "rolled back" sc containers update web --health-cmd 'exit 1' --health-start-period 0 --health-retries 1 --timeout 20 --settle 1
check "the record keeps the previous check" \
    gsh "jq -e '.health.command[2] | startswith(\"if [ -e /dev/started ]\")' $RECDIR/web.json"
check "web runs again, healthy" wait_for 10 state_is web healthy
check "and active" is_active web

# ------------------------------------------------------------------ stop
check "systemctl stop web" g systemctl stop web
check "web-health.timer stopped with it" prop_is web-health.timer ActiveState inactive
check "containers list: no health for a stopped container" list_health web ""

# ------------------------------------------------------------------ a check that never passes
check "install never with a check that always fails" \
    sc_install never hello --no-enable --health-cmd 'echo nope; exit 3' --health-interval 1s \
    --health-retries 2 --health-start-period 1s
never_fails() {
    local out rc t0 t1
    t0=$(date +%s)
    out=$(g systemctl start never 2>&1); rc=$?
    t1=$(date +%s)
    echo "$out"; echo "systemctl start never: exit $rc after $((t1 - t0)) s"
    [ "$rc" -ne 0 ] && [ $((t1 - t0)) -ge 2 ] && [ $((t1 - t0)) -le 20 ]
}
check "systemctl start never fails after about 3 s (start period 1 s + 2 x 1 s)" never_fails
check "its journal says why" journal_has never 'did not become healthy within 3 s .*the last check exited with status 3: nope'
check "stop never" g systemctl stop never
check "clean poweroff" shutdown_guest
