#!/bin/bash
# Issue 5, scenario 8: a corrupt record among good ones.
#  boot 1: install two good containers (enabled); power off.
#  Then, as if a disk or an admin broke it: bad.json (truncated JSON) and
#  worse.json (valid JSON, not a valid record) next to them.
#  boot 2: the boot still reaches `running`, the good containers are up, the
#  kernel log (`journalctl -k`, and the host's kernel log since a mark) and the
#  journal name the bad files, and `systemctl status bad` shows the reason;
#  starting it fails (exit 6, NOTCONFIGURED) without touching the good ones.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello"
sc_setup
check "boot 1 reaches 'running'" boot
check "install good1" sc_install good1 hello --set RECEIVER=Good1
check "install good2" sc_install good2 hello --set RECEIVER=Good2
check "clean poweroff after boot 1" shutdown_guest

printf '{"version":1,"name":"bad","image":' >"$ROOT$RECDIR/bad.json"
# gone: a valid first-wave record (built-in template, disabled) whose
# deployment is missing, made from good1's deployed record (its state)
jq '.record | .name = "gone" | .enabled = false | .service_template = null
    | .deployment = "/var/lib/containers/atomic/gone.0"' "$ROOT/etc/syscontainer/state/good1.json" >"$ROOT$RECDIR/gone.json"
printf '{"version":1,"name":"worse","enabled":"yes please"}\n' >"$ROOT$RECDIR/worse.json"
mark=$(kmsg_mark)

check "boot 2 (with two corrupt records) reaches 'running'" boot
check "good1 active" is_active good1
check "good2 active" is_active good2
check "good1's container running" runc_running good1
check "good2's container running" runc_running good2
check "good1 in its cgroup" in_unit_cgroup good1
check "no failed units at boot" gsh 'test -z "$(systemctl list-units --failed --plain --no-legend)" || { systemctl --failed --no-pager; exit 1; }'

kmsg_names() {   # kmsg_names FILE: in the guest's `journalctl -k` and in the kernel log since the mark
    echo "guest journalctl -k -b:"
    g journalctl -k -b -o short --no-pager | grep -F -- "$1" || return 1
    echo "kernel log since the mark:"
    kmsg_since "$mark" | grep -F -- "$1"
}
check "kernel log names $RECDIR/bad.json" wait_for 5 kmsg_names "$RECDIR/bad.json"
check "kernel log names $RECDIR/worse.json" wait_for 5 kmsg_names "$RECDIR/worse.json"
check "the generator's kernel log line is tagged syscontainer-generator" \
    gsh "journalctl -k -b -o short --no-pager | grep -E 'syscontainer-generator\\[[0-9]+\\]: .*$RECDIR/bad\\.json'"
check "journal (journalctl -b) names bad.json" \
    gsh "journalctl -b -o cat --no-pager | grep -F '$RECDIR/bad.json'"

status_says_why() {   # status_says_why NAME
    local out
    out=$(g systemctl status --no-pager -l -n 20 "$1")
    echo "$out"
    echo "$out" | grep -qF "$RECDIR/$1.json" || { echo "status does not name $RECDIR/$1.json"; return 1; }
}
check "bad.service exists (not 'Unit not found')" prop_is bad LoadState loaded
check "bad is not started at boot" is_inactive bad
check "systemctl status bad names the file" status_says_why bad
check "systemctl status bad shows the reason before any start" \
    sh -c 'out=$(cat); echo "$out"; echo "$out" | grep -Ei "broken record: .*not valid JSON"' \
    < <(g systemctl status --no-pager -l -n 20 bad)
good1_id=$(ident good1)
check "systemctl start bad fails" not g systemctl start bad
check "bad's start exited 6 (NOTCONFIGURED)" prop_is bad ExecMainStatus 6
check "systemctl status bad shows the reason after the start" \
    sh -c 'out=$(cat); echo "$out"; echo "$out" | grep -Ei "cannot start bad: .*(json|EOF|parse|record)"' \
    < <(g systemctl status --no-pager -l -n 20 bad)
check "the journal of bad.service says why" \
    gsh "journalctl -b -u bad -o cat --no-pager | grep -E 'cannot start bad: .*$RECDIR/bad.json'"
check "worse: systemctl status names its file" status_says_why worse
check "starting worse fails too" not g systemctl start worse
# Issue 9, item 7: Restart=on-failure must not loop on a start that can never
# succeed (the exec helper exits 4: deployment missing).
never_restarted() {   # never_restarted NAME: failed with status 4, no restart after 1.5 s
    g systemctl start "$1"
    sleep 1.5
    prop_is "$1" ExecMainStatus 4 && prop_is "$1" NRestarts 0 && prop_is "$1" ActiveState failed
}
check "gone (deployment missing) fails with exit status 4 and is not restarted" never_restarted gone
check "good1 untouched by the failed starts" same_ident good1 "$good1_id"
check "good1 and good2 still active" g systemctl is-active good1 good2
check "syscontainer-generator --dry-run reports bad.json and worse.json" \
    gsh "G=$GUEST_GENERATOR_DIR/syscontainer-generator; \$G --dry-run 2>&1 | tee /dev/stderr | grep -F '$RECDIR/bad.json' && \$G --dry-run 2>&1 | grep -F '$RECDIR/worse.json'"

# ---- the admin fixes it: remove the bad records, reload
rm -f "$ROOT$RECDIR/bad.json" "$ROOT$RECDIR/worse.json"
check "daemon-reload after removing the bad records" g systemctl daemon-reload
check "bad.service is gone" prop_is bad LoadState not-found
check "good1 not restarted by the reload" same_ident good1 "$good1_id"
check "clean poweroff after boot 2" shutdown_guest
