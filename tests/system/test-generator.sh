#!/bin/bash
# System test for syscontainer-generator (issue 2): real systemd 252 as PID 1
# in systemd-nspawn, with the generator installed and records in the guest's
# /etc/syscontainer/containers. The services are plain long-running commands
# (no runc), so this tests the generator and systemd, nothing else.
#
#   GENERATOR=target/release/syscontainer-generator tests/system/test-generator.sh
#
# Without GENERATOR (and EXEC_HELPER, SYSCONTAINER), the project is installed
# with `make install` (see install_into_guest in lib.sh).
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"

RECDIR=/etc/syscontainer/containers
GENDIR=/run/systemd/generator
ZERO_ID=sha256:0000000000000000000000000000000000000000000000000000000000000000

# record NAME ENABLED: a record whose service is `sh` printing a line and
# sleeping. The template exercises $NAME, ${NAME}, $DESTDIR and $$, and its
# [Install] section RequiredBy= and Alias= (issue 9, item 5).
record() {
    local name=$1 enabled=$2 tmpl
    tmpl="[Unit]
Description=system test container \${NAME}
[Service]
Environment=SC_LITERAL=a\$\$b SC_DEST=\$DESTDIR
ExecStart=/bin/sh -c 'echo started \$NAME; exec sleep infinity'
[Install]
WantedBy=multi-user.target
RequiredBy=sysdemo.target
Alias=\$NAME-alias.service
"
    jq -n --arg name "$name" --argjson enabled "$enabled" --arg tmpl "$tmpl" --arg id "$ZERO_ID" '{
        version: 1, name: $name, image: ("example.org/" + $name + ":latest"), image_id: $id,
        deployment: ("/var/lib/containers/atomic/" + $name + ".0"),
        enabled: $enabled, target: "multi-user.target", service_template: $tmpl }'
}
# write_record NAME ENABLED: into the guest root (visible in the running guest)
write_record() {
    mkdir -p "$ROOT$RECDIR"
    record "$1" "$2" >"$ROOT$RECDIR/$1.json.tmp" && mv "$ROOT$RECDIR/$1.json.tmp" "$ROOT$RECDIR/$1.json"
}

prop() { g systemctl show -P "$2" "$1"; }           # prop UNIT PROPERTY
is_active() { [ "$(prop "$1" ActiveState)" = active ]; }
is_inactive() { prop_is "$1" LoadState loaded && prop_is "$1" ActiveState inactive; }
# the identity of a running service: its main pid and when it became active
ident() { echo "$(prop "$1" MainPID)/$(prop "$1" ActiveEnterTimestampMonotonic)"; }
same_ident() {   # same_ident UNIT EXPECTED
    local now
    now=$(ident "$1")
    echo "$1: before $2, now $now"
    [ "$now" = "$2" ] && [[ $2 =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]]
}
restarted() {    # restarted UNIT IDENT: restart it, its identity must change
    g systemctl restart "$1" || return 1
    local now
    now=$(ident "$1")
    echo "$1: before $2, after restart $now"
    [ "$now" != "$2" ] && [[ $now =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]]
}
enable_refused() {
    local out
    out=$(g systemctl enable "$1" 2>&1) && { echo "enable succeeded: $out"; return 1; }
    echo "$out"
    echo "$out" | grep -q "generated"
}
words_are() {    # words_are UNIT PROPERTY WORDS: the same words, in any order
    local v
    v=$(prop "$1" "$2" | tr ' ' '\n' | sort | xargs)
    echo "$1 $2=$v (want $3)"
    [ "$v" = "$3" ]
}
prop_is() {      # prop_is UNIT PROPERTY VALUE
    local v
    v=$(prop "$1" "$2")
    echo "$1 $2=$v (want $3)"
    [ "$v" = "$3" ]
}
journal_has() {  # journal_has UNIT REGEX
    g journalctl -b -u "$1" -o cat --no-pager | grep -E -- "$2"
}
main_env_has() {   # main_env_has UNIT REGEX...: lines of its main process's environment
    local pid env r
    pid=$(prop "$1" MainPID)
    env=$(g cat "/proc/$pid/environ" | tr '\0' '\n') || return 1
    shift
    for r; do
        echo "$env" | grep -Ex -- "$r" || { echo "no line matching '$r' in:"; echo "$env"; return 1; }
    done
}
# The generator's line in the kernel log: as the admin sees it in the guest
# (`journalctl -k`), and fresh (after MARK, since the kernel log is the host's).
kmsg_has() {   # kmsg_has MARK REGEX
    echo "guest journalctl -k:"
    g journalctl -k -b -o short --no-pager | grep -E -- "$2" || return 1
    echo "kernel log since '$1':"
    kmsg_since "$1" | grep -E -- "$2"
}
generated_unit_ok() {   # generated_unit_ok NAME
    local f=$GENDIR/$1.service
    g test -f "$f" || { echo "$f missing"; return 1; }
    g head -n 3 "$f"
    g head -n 1 "$f" | grep -q '^#.*syscontainer-generator' || { echo "first line must be a comment naming syscontainer-generator"; return 1; }
    prop_is "$1" UnitFileState generated &&
        prop_is "$1" FragmentPath "$f" &&
        prop_is "$1" SourcePath "$RECDIR/$1.json"
}
all_generated() {
    local u
    for u; do prop_is "$u" UnitFileState generated || return 1; done
}
requires_mounts_for() {   # requires_mounts_for NAME PATH
    local v
    v=$(prop "$1" RequiresMountsFor)
    echo "RequiresMountsFor=$v"
    [[ " $v " == *" $2 "* ]]
}
delta_explains() {   # the broken unit says why, naming the file
    local out
    g systemctl start delta && { echo "starting delta succeeded"; return 1; }
    sleep 0.3
    out=$(g systemctl status --no-pager -l -n 30 delta)
    echo "$out"
    echo "$out" | grep -q "$RECDIR/delta.json"
}
gen_tree() {   # the generator's output, for comparing two runs
    gsh "cd $GENDIR && find . -path './*syscontainer*' -o -name 'alpha*' -o -name 'beta*' -o -name 'gamma*' -o -name 'delta*' |
        sort | while read -r f; do if [ -L \"\$f\" ]; then echo \"\$f -> \$(readlink \"\$f\")\"; elif [ -f \"\$f\" ]; then echo \"== \$f\"; cat \"\$f\"; fi; done"
}

# ===================================================================== setup
setup_guest
install_into_guest
check "generator is installed in the guest's generator dir" \
    test -x "$(guest_file "$GUEST_GENERATOR_DIR/syscontainer-generator")"
write_record alpha true
write_record beta false
# the unit that the records' [Install] RequiredBy= names; started at boot, so
# that it stays loaded and shows its dependencies
mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
printf '[Unit]\nDescription=RequiredBy= test target\n' >"$ROOT/etc/systemd/system/sysdemo.target"
ln -sf ../sysdemo.target "$ROOT/etc/systemd/system/multi-user.target.wants/sysdemo.target"
# alpha's and gamma's deployment dirs exist, beta's does not: RequiresMountsFor=
# on a missing path must not matter for a plain command.
mkdir -p "$ROOT/var/lib/containers/atomic/alpha.0" "$ROOT/var/lib/containers/atomic/gamma.0"

# ===================================================================== boot 1
check "boot 1 reaches 'running'" boot
check "alpha.service is generated (comment, UnitFileState, SourcePath)" generated_unit_ok alpha
check "beta.service is generated" generated_unit_ok beta
check "alpha has RequiresMountsFor= its deployment" requires_mounts_for alpha /var/lib/containers/atomic/alpha.0
check "enabled alpha: multi-user.target wants it (Wants= in $GENDIR/multi-user.target.d/syscontainer.conf)" \
    boot_wanted multi-user.target alpha.service
check "disabled beta: multi-user.target does not want it" \
    not_boot_wanted multi-user.target beta.service
check "enabled alpha is active after boot" is_active alpha
check "alpha's command ran (journal: 'started alpha')" wait_for 5 journal_has alpha '^started alpha$'
check "disabled beta is inactive after boot" is_inactive beta
check "template: \$\$ -> \$, \$DESTDIR -> the deployment (alpha's environment)" \
    main_env_has alpha 'SC_LITERAL=a[$]b' 'SC_DEST=/var/lib/containers/atomic/alpha(\.0)?'
check "systemctl enable alpha is refused (generated unit)" enable_refused alpha
check "[Install] RequiredBy=sysdemo.target: sysdemo.target Requires=alpha.service, not beta (disabled)" \
    words_are sysdemo.target Requires alpha.service
check "[Install] RequiredBy=: systemctl show -p RequiredBy alpha" words_are alpha RequiredBy sysdemo.target
check "[Install] Alias=alpha-alias.service is alpha.service" prop_is alpha-alias.service Id alpha.service
check "disabled beta has no alias" prop_is beta-alias.service LoadState not-found

check "systemctl stop alpha" g systemctl stop alpha
check "alpha inactive after stop" is_inactive alpha
check "systemctl start alpha" g systemctl start alpha
check "alpha active after start" is_active alpha
check "systemctl start beta (deployment dir missing)" g systemctl start beta
check "beta active after start" is_active beta
check "beta's command ran (journal: 'started beta')" wait_for 5 journal_has beta '^started beta$'
check "systemctl stop beta" g systemctl stop beta
check "beta inactive after stop" is_inactive beta
check "systemctl start beta again" g systemctl start beta

# --------------------------------------------------------------------- a third record, daemon-reload
alpha_id=$(ident alpha)
beta_id=$(ident beta)
write_record gamma true
check "daemon-reload with gamma.json added" g systemctl daemon-reload
check "gamma.service appears (UnitFileState=generated)" generated_unit_ok gamma
check "gamma is loaded" prop_is gamma LoadState loaded
check "after daemon-reload, sysdemo.target requires alpha and gamma" \
    words_are sysdemo.target Requires "alpha.service gamma.service"
check "alpha was not restarted by the reload" same_ident alpha "$alpha_id"
check "beta was not restarted by the reload" same_ident beta "$beta_id"
check "systemctl start gamma" g systemctl start gamma
check "gamma active" is_active gamma
gamma_id=$(ident gamma)

# --------------------------------------------------------------------- a corrupt fourth record
printf '{"version":1,"name":' >"$ROOT$RECDIR/delta.json"
mark=$(kmsg_mark)
check "daemon-reload with a corrupt delta.json" g systemctl daemon-reload
check "alpha, beta, gamma still active" g systemctl is-active alpha beta gamma
check "alpha not restarted" same_ident alpha "$alpha_id"
check "beta not restarted" same_ident beta "$beta_id"
check "gamma not restarted" same_ident gamma "$gamma_id"
check "alpha, beta, gamma still generated" all_generated alpha beta gamma
check "control: systemctl restart beta does change its MainPID/timestamp" restarted beta "$beta_id"
check "delta.service exists (not 'Unit not found')" prop_is delta LoadState loaded
check "starting delta fails; systemctl status delta names $RECDIR/delta.json" delta_explains
check "kernel log: syscontainer-generator[PID]: ... delta.json" \
    wait_for 5 kmsg_has "$mark" "syscontainer-generator\[[0-9]+\]: .*$RECDIR/delta\.json"
check "systemd-analyze verify --generators=yes alpha beta gamma" \
    g systemd-analyze verify --man=no --generators=yes alpha.service beta.service gamma.service
check "systemd-analyze verify of the generated files" \
    g systemd-analyze verify --man=no $GENDIR/alpha.service $GENDIR/beta.service $GENDIR/gamma.service
gen_tree >"$RESULTS/generated-boot1.txt" 2>&1
check "clean poweroff after boot 1" shutdown_guest

# ===================================================================== boot 2: everything enabled comes back
mark=$(kmsg_mark)
check "boot 2 (with the corrupt record) reaches 'running'" boot
check "alpha and gamma (enabled) active after boot 2" g systemctl is-active alpha gamma
check "beta (disabled) inactive after boot 2" is_inactive beta
check "delta still explains itself after boot 2" delta_explains
check "kernel log at boot 2 names delta.json" \
    wait_for 5 kmsg_has "$mark" "syscontainer-generator\[[0-9]+\]: .*$RECDIR/delta\.json"
gen_tree >"$RESULTS/generated-boot2.txt" 2>&1
check "generator output identical at boot 1 (after reloads) and boot 2" \
    diff -u "$RESULTS/generated-boot1.txt" "$RESULTS/generated-boot2.txt"
check "clean poweroff after boot 2" shutdown_guest
