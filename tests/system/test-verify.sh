#!/bin/bash
# Issue 5, scenario 7: `systemd-analyze verify` inside the booted guest
# accepts every generated unit (by name with --generators=yes, which reruns
# the generators in test mode, and by the generated file), and the static
# units that `make install` ships: syscontainers.target,
# syscontainer-prune.service, syscontainer-prune.timer,
# syscontainer-auto-update.service, syscontainer-auto-update.timer (and a
# container's health check units). A verify that prints a
# warning about one of our units fails too (verify exits 0 on warnings).
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello hello-v2 tiny"
sc_setup
# `man` in the guest (verify checks Documentation=man:...) needs its config
cp /etc/manpath.config "$ROOT/etc/" || die "cannot copy /etc/manpath.config into the guest"
check "boot reaches 'running'" boot
check "the man pages are installed and man finds them" \
    g man -w syscontainer syscontainer-generator syscontainer-exec syscontainer-record
check "install web (hello, enabled, started)" sc_install web hello --now
check "install api (hello-v2, --no-enable, a health check: api-health.service and .timer)" \
    sc_install api hello-v2 --no-enable --set RECEIVER=Api --set PORT=9090 --health-cmd 'test -d /data' --health-interval 10s
check "install plain (tiny: no /exports, built-in templates)" sc_install plain tiny --no-enable
check "update web: a deployment in slot 1" sc containers update --set RECEIVER=Verified --timeout 20 --settle 1 web

# verify_clean ARGS...: systemd-analyze verify exits 0 and warns about none of
# our units or files.
verify_clean() {
    local out rc
    out=$(g systemd-analyze verify "$@" 2>&1)
    rc=$?
    echo "$out"
    echo "exit status $rc"
    [ $rc -eq 0 ] || return 1
    if echo "$out" | grep -E 'web|api|plain|syscontainer'; then
        echo "^ warnings about our units"
        return 1
    fi
}
units=()
for n in web api plain; do units+=("$n.service"); done
units+=(api-health.service api-health.timer)
check "every container has a generated unit" \
    g test -f $GENDIR/web.service -a -f $GENDIR/api.service -a -f $GENDIR/plain.service \
    -a -f $GENDIR/api-health.service -a -f $GENDIR/api-health.timer
for u in "${units[@]}"; do
    check "verify --generators=yes $u" verify_clean --man=no --generators=yes "$u"
    check "verify $GENDIR/$u (the generated file)" verify_clean --man=no "$GENDIR/$u"
done
check "verify --generators=yes all generated units at once" verify_clean --man=no --generators=yes "${units[@]}"
static=(syscontainers.target syscontainer-prune.service syscontainer-prune.timer
    syscontainer-auto-update.service syscontainer-auto-update.timer)
for u in "${static[@]}"; do
    check "the package unit $u is installed" g test -f "/lib/systemd/system/$u"
    check "verify $u (with its man: documentation)" verify_clean "$u"
done
check "verify the generated units with their man: documentation" verify_clean --generators=yes "${units[@]}"
check "systemd loaded every unit without error" \
    gsh 'for u in web api plain api-health.service api-health.timer syscontainers.target syscontainer-prune.service syscontainer-prune.timer syscontainer-auto-update.service syscontainer-auto-update.timer; do
        s=$(systemctl show -p LoadState -p LoadError --value "$u" | tr "\n" " "); echo "$u: $s"; case $s in "loaded "*) ;; *) exit 1 ;; esac; done'
check "the prune timer is disabled by default" not g systemctl is-enabled syscontainer-prune.timer
check "the auto-update timer is disabled by default" not g systemctl is-enabled syscontainer-auto-update.timer
check "no failed units" gsh 'test -z "$(systemctl list-units --failed --plain --no-legend)" || { systemctl --failed --no-pager; exit 1; }'
check "clean poweroff" shutdown_guest
