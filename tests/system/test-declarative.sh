#!/bin/bash
# Issue 12, section 1: declarative records under real systemd, with a
# registry on the guest's loopback (plain HTTP).
#  - boot 1 only fills the registry (sctest-registry.service, a unit of the
#    guest ordered before network-online.target) with hello as
#    sctest/web:latest; no syscontainer command runs, ever, for web;
#  - boot 2 starts with nothing but two intent files: web (registry up) and
#    late (its registry, on another port, is down). After boot web is
#    active with the declared value, deployed into web.0; its pending unit
#    waited for network-online.target, the deployed one does not; late's
#    unit failed with the reason in `systemctl status` and Restart= retries;
#  - web's file is edited (a value): daemon-reload + restart -> the new value
#    runs in web.1; the trial is confirmed;
#  - edited into invalid JSON: reload -> web keeps running, its status says
#    the edit was refused and why; a restart keeps the last good deployment;
#  - fixed: reload + restart -> applied (web.0);
#  - edited to an image whose process exits at once: the restart fails, the
#    edit is rolled back (Restart= brings the previous deployment back) and
#    recorded as refused;
#  - late's registry comes up: a restart of late succeeds;
#  - web's file is deleted: reload -> syscontainer-reconcile removes web.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"
# shellcheck source=tests/system/guest-registry.sh
. "$(dirname "$0")/guest-registry.sh"

SC_IMAGES="hello broken"
guest_registry_prepare plain
sc_setup

LATE_ADDR=127.0.0.1:5001

# The registry as units of the guest: web's first start pulls during boot.
# sctest-registry2 (late's) serves the same storage on another port, and is
# not started at boot.
reg_unit() {   # reg_unit UNIT CONFIG
    cat <<UNIT
[Unit]
Description=Test registry ($1)
Before=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart=/usr/bin/docker-registry serve $2
ExecStartPost=/bin/sh -c 'for i in \$(seq 100); do curl -s -o /dev/null --max-time 1 http://\$(sed -n "s/^  addr: //p" $2)/v2/ && exit 0; sleep 0.1; done; exit 1'
UNIT
}
sed "s/^  addr: .*/  addr: $LATE_ADDR/" "$ROOT$GREG_DIR/config.yml" >"$ROOT$GREG_DIR/config2.yml"
reg_unit sctest-registry "$GREG_DIR/config.yml" >"$ROOT/etc/systemd/system/sctest-registry.service"
reg_unit sctest-registry2 "$GREG_DIR/config2.yml" >"$ROOT/etc/systemd/system/sctest-registry2.service"
mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
ln -s ../sctest-registry.service "$ROOT/etc/systemd/system/multi-user.target.wants/"
# The reconcile units, as the packages install them (enabled), also when
# only the binaries were installed.
for u in syscontainer-reconcile.path syscontainer-reconcile.service; do
    cp "$PROJECT_DIR/units/$u" "$ROOT/etc/systemd/system/$u"
done
mkdir -p "$ROOT/etc/systemd/system/paths.target.wants"
ln -s ../syscontainer-reconcile.path "$ROOT/etc/systemd/system/paths.target.wants/"
ln -s ../syscontainer-reconcile.service "$ROOT/etc/systemd/system/multi-user.target.wants/"

# --------------------------------------------------------------------- boot 1: fill the registry
check "boot 1 reaches 'running'" boot
check "the registry unit is active" is_active sctest-registry
REF=$GREG_ADDR/sctest/web:latest
check "push hello as $REF" guest_registry_push hello sctest/web:latest
push_broken() {
    nsenter -t "$PID1" -n skopeo copy -q --dest-tls-verify=false \
        "docker-archive:$SC_FIXTURES/broken.tar" "docker://$GREG_ADDR/sctest/web:broken"
}
check "push broken (exits at once) as sctest/web:broken" push_broken
check "clean poweroff" shutdown_guest
check "no image was ever stored in the guest" \
    sh -c "! ls '$ROOT'/ostree/repo/refs/heads 2>/dev/null | grep -q . && ! ls '$ROOT$CHECKOUTS' 2>/dev/null | grep -q ."

# --------------------------------------------------------------------- boot 2: nothing but intent files
mkdir -p "$ROOT$RECDIR"
printf '{ "version": 1, "image": "http:%s", "values": { "RECEIVER": "One" }, "settle": 2 }\n' "$REF" >"$ROOT$RECDIR/web.json"
printf '{ "version": 1, "image": "http:%s/sctest/web:latest", "values": { "RECEIVER": "Late" } }\n' "$LATE_ADDR" >"$ROOT$RECDIR/late.json"
sum0=$(sha256sum <"$ROOT$RECDIR/web.json")
# The guest's own generator, on its root, before boot: web's unit is pending.
pending_unit() {
    local out
    out=$(SYSCONTAINER_ROOT=$ROOT SYSCONTAINER_LOG=stderr "$(guest_file "$GUEST_GENERATOR_DIR/syscontainer-generator")" --dry-run 2>&1)
    printf '%s\n' "$out" | sed -n '/===== web.service/,/=====/p'
    printf '%s\n' "$out" | sed -n '/===== web.service/,/=====/p' | grep -qx 'After=network-online.target' &&
        printf '%s\n' "$out" | sed -n '/===== web.service/,/=====/p' | grep -qx 'ExecStartPre=/usr/bin/syscontainer apply web'
}
check "before boot 2, web's unit is pending: network-online ordering, apply first" pending_unit
boot_any() { boot; guest_running; }   # late's failure may leave the system degraded
check "boot 2 (web.json and late.json only)" boot_any
check "web is active after boot, no CLI command run" wait_for 60 is_active web
check "web runs the declared value" wait_for 10 env_has web '^RECEIVER=One$'
check "deployed into web.0" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.0"
check "the state is ours, the intent file is the admin's, unchanged" \
    gsh "jq -e '.intentOwner == \"admin\" and .record.image_id != \"\"' $STATEDIR/web.json && test \"\$(sha256sum <$RECDIR/web.json)\" = '$sum0'"
check "state file 0600 in a 0700 directory" \
    gsh "test \"\$(stat -c %a $STATEDIR/web.json)\" = 600 && test \"\$(stat -c %a $STATEDIR)\" = 700"
net_before_start() {   # network-online.target was reached before web's start began
    local n w
    n=$(prop network-online.target ActiveEnterTimestampMonotonic)
    w=$(prop web InactiveExitTimestampMonotonic)
    echo "network-online.target active at $n, web started at $w"
    [ "$n" -gt 0 ] && [ "$w" -ge "$n" ]
}
check "web's first start waited for network-online.target" net_before_start
check "web's first start ran 'syscontainer apply web' (journal)" journal_has web 'Deployed .*sctest/web:latest as web'
check "the deployed unit has no network ordering and no apply" \
    gsh "! grep -E 'network-online|apply' $GENDIR/web.service && ! systemctl show -P After web | grep -q network-online"
check "late's pending unit waits for the network, retries every 10 s" \
    gsh "systemctl show -P After late | grep -q network-online.target && systemctl show -P Wants late | grep -q network-online.target && test \"\$(systemctl show -P RestartUSec late)\" = 10s && grep -q '^ExecStartPre=/usr/bin/syscontainer apply late$' $GENDIR/late.service"
late_failed_with_reason() {
    local st
    st=$(g systemctl status --no-pager -l -n 30 late)
    echo "$st"
    grep -q "cannot pull http:$LATE_ADDR/sctest/web:latest" <<<"$st" || { echo "status does not say why"; return 1; }
    [ "$(prop late ActiveState)" != active ]
}
check "late failed, systemctl status says why" wait_for 20 late_failed_with_reason
check "late left nothing behind (no state, no slot)" \
    gsh "! test -e $STATEDIR/late.json && ! test -e $CHECKOUTS/late.0 && ! test -e $CHECKOUTS/late"
check "containers list: web deployed, late pending" \
    gsh "syscontainer containers list --all --json | jq -e 'map({(.name): .declared}) | add == {\"web\": \"deployed\", \"late\": \"pending\"}'"

# --------------------------------------------------------------------- edit a value
printf '{ "version": 1, "image": "http:%s", "values": { "RECEIVER": "Two" }, "settle": 2 }\n' "$REF" | gput /dev/stdin "$RECDIR/web.json" 644
check "daemon-reload" g systemctl daemon-reload
check "the edited unit applies first (no network: same image)" \
    gsh "grep -q '^ExecStartPre=/usr/bin/syscontainer apply web$' $GENDIR/web.service && ! grep -q network-online $GENDIR/web.service"
check "containers list: web edited" gsh "syscontainer containers list --all --json | jq -e '.[] | select(.name == \"web\") | .declared == \"edited\"'"
check "web still runs One before the restart" env_has web '^RECEIVER=One$'
check "restart web" g systemctl restart web
check "web active" wait_for 10 is_active web
check "the new value is live" wait_for 10 env_has web '^RECEIVER=Two$'
check "in the other slot, web.1" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.1"
check "the trial is confirmed after the settle time" wait_for 20 gsh "jq -e '.trial == null and .applied.values.RECEIVER == \"Two\"' $STATEDIR/web.json"
check "the unit no longer applies or confirms" wait_for 10 gsh "! grep -q 'syscontainer apply' $GENDIR/web.service"

# --------------------------------------------------------------------- invalid JSON
id=$(ident web)
printf '{ "version": 1, "image": "http:%s", "values": { "RECEIVER": "Broken" \n' "$REF" | gput /dev/stdin "$RECDIR/web.json" 644
check "daemon-reload (invalid web.json)" g systemctl daemon-reload
check "web keeps running, not restarted" same_ident web "$id"
refused_in_status() {
    local st
    st=$(g systemctl status --no-pager -l web)
    echo "$st"
    grep -q "edit of $RECDIR/web.json refused: .*not valid JSON" <<<"$st"
}
check "systemctl status web says the edit was refused and why" refused_in_status
check "containers list: web refused" gsh "syscontainer containers list --all --json | jq -e '.[] | select(.name == \"web\") | .declared == \"refused\"'"
check "a restart keeps the last good deployment" g systemctl restart web
check "web active after the restart" wait_for 10 is_active web
check "still Two on web.1" gsh "grep -qx RECEIVER=Two /var/lib/web/env && test \"\$(readlink $CHECKOUTS/web)\" = web.1"

# --------------------------------------------------------------------- fixed
printf '{ "version": 1, "image": "http:%s", "values": { "RECEIVER": "Three" }, "settle": 2 }\n' "$REF" | gput /dev/stdin "$RECDIR/web.json" 644
check "daemon-reload (fixed)" g systemctl daemon-reload
check "restart web" g systemctl restart web
check "the fix is applied: Three" wait_for 10 env_has web '^RECEIVER=Three$'
check "in web.0" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.0"
check "confirmed" wait_for 20 gsh "jq -e '.trial == null and .refused == null' $STATEDIR/web.json"

# --------------------------------------------------------------------- an edit that fails its trial
printf '{ "version": 1, "image": "http:%s/sctest/web:broken", "values": { "RECEIVER": "Four" }, "settle": 2 }\n' "$GREG_ADDR" | gput /dev/stdin "$RECDIR/web.json" 644
check "daemon-reload (web:broken)" g systemctl daemon-reload
check "another image: the edited unit waits for the network" \
    gsh "grep -q '^After=network-online.target' $GENDIR/web.service && grep -q '^ExecStartPre=/usr/bin/syscontainer apply web$' $GENDIR/web.service"
check "restart web fails (the new version exits at once)" not g systemctl restart web
check "web is active again" wait_for 30 is_active web
check "on the previous deployment: Three in web.0" \
    wait_for 10 gsh "grep -qx RECEIVER=Three /var/lib/web/env && test \"\$(readlink $CHECKOUTS/web)\" = web.0"
check "the edit is recorded as refused, with the reason" \
    gsh "jq -e '.trial == null and (.refused.reason | length > 0) and .refused.intent.image == \"http:$GREG_ADDR/sctest/web:broken\" and .applied.values.RECEIVER == \"Three\"' $STATEDIR/web.json"
check "systemctl status web says the edit was refused" \
    gsh "systemctl status --no-pager -l web | grep -q 'edit of $RECDIR/web.json refused'"
check "the journal says it was rolled back" gsh "journalctl -b -u web -o cat --no-pager | grep -E 'rolled back'"

# --------------------------------------------------------------------- late's registry comes back
check "start late's registry" g systemctl start sctest-registry2
check "restart late" g systemctl restart late
check "late is active" wait_for 60 is_active late
check "late runs its value" wait_for 10 env_has late '^RECEIVER=Late$'

# --------------------------------------------------------------------- delete
check "delete web.json" g rm "$RECDIR/web.json"
check "daemon-reload" g systemctl daemon-reload
check "web is gone: unit stopped, state and slots removed" \
    wait_for 30 gsh "! systemctl is-active -q web && ! test -e $STATEDIR/web.json && ! test -e $CHECKOUTS/web.0 && ! test -e $CHECKOUTS/web.1"
check "syscontainer-reconcile removed it (journal)" journal_has syscontainer-reconcile 'Removed web'
check "late is untouched" is_active late
check "clean poweroff" shutdown_guest
