#!/bin/bash
# Issue 5, scenario 9: reboot. Boot 1 sets up a mix, all running:
#   a: enabled, started with --now
#   b: enabled, updated (runs on b.1 with RECEIVER=Updated)
#   c: --no-enable, started by hand
#   d: enabled at install, then `syscontainer disable d`
#   e: --no-enable at install, then `syscontainer enable e`
# The poweroff stops every container cleanly (SIGTERM, data logs). After the
# second boot, everything enabled (a, b, e) comes back by itself, b on its
# updated deployment with its new value, and c and d stay down.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello hello-v2"
sc_setup
# ===================================================================== boot 1
check "boot 1 reaches 'running'" boot
check "install a (--now)" sc_install a hello --now --set RECEIVER=A
check "install b (--now)" sc_install b hello --now --set RECEIVER=B
check "update b --rebase hello-v2 --set RECEIVER=Updated" \
    sc containers update --rebase "dockertar:$GIMG/hello-v2.tar" --set RECEIVER=Updated --timeout 20 --settle 1 b
check "install c (--no-enable)" sc_install c hello --no-enable --set RECEIVER=C
check "systemctl start c" g systemctl start c
check "install d (enabled, --now)" sc_install d hello --now --set RECEIVER=D
check "syscontainer disable d" sc disable d
check "install e (--no-enable)" sc_install e hello --no-enable --set RECEIVER=E
check "syscontainer enable e" sc enable e
check "systemctl start e" g systemctl start e
check "all five running in boot 1" g systemctl is-active a b c d e
wants_abe() {   # multi-user.target wants a b e, not c d
    local u
    for u in a b e; do boot_wanted multi-user.target $u.service || return 1; done
    for u in c d; do not_boot_wanted multi-user.target $u.service || return 1; done
}
check "multi-user.target wants a b e, not c d" wants_abe
check "clean poweroff after boot 1 (stops every container)" shutdown_guest
stopped_cleanly() {   # the data log of NAME ends with 'got TERM'
    local last
    last=$(tail -n 1 "$ROOT/var/lib/$1/log")
    echo "$1: last data log line: $last"
    [[ $last == "got TERM version="* ]]
}
for n in a b c d e; do
    check "$n got SIGTERM at poweroff (data log)" stopped_cleanly $n
done

# ===================================================================== boot 2
check "boot 2 reaches 'running'" boot
for n in a b e; do
    check "enabled $n is active after the reboot" is_active $n
    check "enabled $n: runc container running" runc_running $n
    check "enabled $n: in its unit's cgroup" in_unit_cgroup $n
done
for n in c d; do
    check "not enabled $n is inactive after the reboot" is_inactive $n
    check "not enabled $n: no runc state" not g runc state $n
done
check "b came back on its updated deployment b.1" prop_is b WorkingDirectory "$CHECKOUTS/b.1"
check "b came back as version 2 with RECEIVER=Updated" wait_for 5 journal_has b '^Hello Updated from b \(version 2\)'
# The units of this boot came from the generator's cache that boot 1's
# commands wrote (every container unchanged since): the generator says so.
check "the generator takes all five containers from its cache" \
    gsh "SYSCONTAINER_LOG=stderr,debug $GUEST_GENERATOR_DIR/syscontainer-generator --dry-run 2>&1 >/dev/null | grep '5 of 5 containers from the generator.s cache'"
check "a came back with RECEIVER=A" wait_for 5 journal_has a '^Hello A from a \(version 1\)'
check "e came back with RECEIVER=E" wait_for 5 journal_has e '^Hello E from e \(version 1\)'
check "a's data survived the reboot (two starts in its data log)" \
    test "$(grep -c '^start ' "$ROOT/var/lib/a/log")" = 2
check "the boot activation came from the generator (a.service generated)" prop_is a UnitFileState generated
check "clean poweroff after boot 2" shutdown_guest
