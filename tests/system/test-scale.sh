#!/bin/bash
# Many containers (issue 11: "hundreds of containers, not three"): N installs
# of hello (default 200), each enabled with its own value, not started. One
# drop-in makes multi-user.target want them all; after a reboot the
# generator takes every unit from the cache that the installs wrote, and
# systemd brings all N up by itself.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello"
N=${SCALE_N:-200}
sc_setup
# ===================================================================== boot 1
check "boot 1 reaches 'running'" boot
check "pull hello once" sc pull "dockertar:$GIMG/hello.tar"
install_all() {   # in batches of 25: each guest command stays well inside G_TIMEOUT
    local from
    for from in $(seq 1 25 "$N"); do
        gsh "for i in \$(seq $from $((from + 24 < N ? from + 24 : N))); do
                 n=\$(printf '%0${#N}d' \$i)
                 syscontainer install --name h\$n --set RECEIVER=R\$n dockertar:$GIMG/hello.tar >/dev/null || exit 1
             done" || return 1
    done
}
check "install $N containers h$(printf '%0*d' ${#N} 1)..h$N (enabled, not started)" install_all
count_wants() {   # the h* units that TARGET wants, per systemd
    g systemctl show -p Wants --value "$1" | tr ' ' '\n' | grep -c '^h[0-9]*\.service$'
}
check "one drop-in lists all $N: multi-user.target.d/syscontainer.conf" \
    gsh "test \$(grep -c '^Wants=h[0-9]*\.service$' $GENDIR/multi-user.target.d/syscontainer.conf) = $N"
check "no .wants/ symlinks for them" not g test -e "$GENDIR/multi-user.target.wants"
check "systemd: multi-user.target wants all $N" test "$(count_wants multi-user.target)" = "$N"
check "none running yet (no --now)" test "$(g systemctl list-units --state=active --no-legend 'h*.service' | wc -l)" = 0
check "clean poweroff after boot 1" shutdown_guest
# ===================================================================== boot 2
check "boot 2 reaches 'running'" boot
check "the generator took all $N units from its cache" \
    gsh "SYSCONTAINER_LOG=stderr,debug $GUEST_GENERATOR_DIR/syscontainer-generator --dry-run 2>&1 >/dev/null | grep '$N of $N containers from the generator.s cache'"
all_active() { test "$(g systemctl list-units --state=active --no-legend 'h*.service' | wc -l)" = "$N"; }
check "all $N active after boot 2, by themselves" wait_for 90 all_active
first=$(printf 'h%0*d' ${#N} 1) last=$(printf 'h%0*d' ${#N} "$N")
own_values() {
    wait_for 10 journal_has "$first" "^Hello R0*1 from $first" &&
        wait_for 10 journal_has "$last" "^Hello R$N from $last"
}
check "$first and $last run with their own values" own_values
check "systemd-analyze verify $last.service" g systemd-analyze verify --man=no --generators=yes "$last.service"
check "clean poweroff after boot 2 (stops all $N)" shutdown_guest
