#!/bin/bash
# Issue 13: image trust under real systemd. The guest's own
# /etc/containers/policy.json (no --signature-policy) requires a sigstore
# signature by the test key for every docker image, with
# use-sigstore-attachments set in /etc/containers/registries.d; the
# registry runs on the guest's loopback (guest-registry.sh, plain HTTP).
#  - an unsigned image cannot be installed: exit 3, the error names the
#    image, the policy, the scope and "no signature found", and nothing is
#    stored (no image, no record, no unit);
#  - a docker-archive falls under the same default and is refused too (the
#    transport carries no signatures);
#  - a signed image installs, starts under systemd and runs;
#  - `images verify` re-checks its stored signatures offline, and a stored
#    image whose signature no longer satisfies the policy cannot be
#    installed again.
# The key pair is made by tests/sigstore-keygen.py (cosign's encrypted
# format) and the signature attached by tests/sigstore-sign.py, on the host,
# in the guest's network namespace: Debian's skopeo has sigstore disabled.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"
# shellcheck source=tests/system/guest-registry.sh
. "$(dirname "$0")/guest-registry.sh"

SC_IMAGES="hello"
guest_registry_prepare plain
sc_setup
KEYS=$WORK/keys
mkdir -p "$KEYS" "$ROOT/etc/containers/keys" "$ROOT/etc/containers/registries.d"
echo "system test passphrase" >"$KEYS/pass"
/usr/bin/python3 "$PROJECT_DIR/tests/sigstore-keygen.py" "$KEYS/sctest" "$KEYS/pass" ||
    die "tests/sigstore-keygen.py failed (apt-get install python3-cryptography python3-nacl)"
/usr/bin/python3 "$PROJECT_DIR/tests/sigstore-keygen.py" "$KEYS/other" "$KEYS/pass" || die "keygen failed"
cp "$KEYS/sctest.pub" "$ROOT/etc/containers/keys/sctest.pub"
cat >"$ROOT/etc/containers/policy.json" <<JSON
{
  "default": [{"type": "sigstoreSigned", "keyPath": "/etc/containers/keys/sctest.pub",
               "signedIdentity": {"type": "matchRepoDigestOrExact"}}],
  "transports": {"docker": {"$GREG_ADDR/sctest/other": [{"type": "reject"}]}}
}
JSON
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$GREG_ADDR" \
    >"$ROOT/etc/containers/registries.d/sctest.yaml"

check "boot reaches 'running'" boot
check "docker-registry (plain HTTP) runs in the guest on $GREG_ADDR" guest_registry_start
UNSIGNED=$GREG_ADDR/sctest/unsigned:1
SIGNED=$GREG_ADDR/sctest/signed:1
check "push hello as $UNSIGNED" guest_registry_push hello sctest/unsigned:1
check "push hello as $SIGNED" guest_registry_push hello sctest/signed:1

# sign KEY REPO:TAG: attach a sigstore signature naming REPO:TAG
sign() {
    local key=$1 ref=$2 digest
    digest=$(nsenter -t "$PID1" -n skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$GREG_ADDR/$ref") || return 1
    echo "$ref is $digest"
    nsenter -t "$PID1" -n /usr/bin/python3 "$PROJECT_DIR/tests/sigstore-sign.py" "$KEYS/$key.key" "$KEYS/pass" \
        "http://$GREG_ADDR" "${ref%%:*}" "$digest" "$GREG_ADDR/$ref"
}
check "sign $SIGNED with the test key (a sigstore attachment)" sign sctest "sctest/signed:1"

nothing_stored() {
    local imgs recs
    imgs=$(g syscontainer images list --all --json) || return 1
    recs=$(g sh -c "ls $RECDIR 2>/dev/null")
    echo "images: $imgs; records: $recs"
    [ "$(echo "$imgs" | jq length)" = 0 ] && [ -z "$recs" ] && ! g systemctl cat unsigned.service >/dev/null 2>&1
}
check "install of the unsigned image is refused (exit 3, image, policy, scope, reason)" \
    exits_with 3 "http:$UNSIGNED is rejected by the signature policy /etc/containers/policy.json (transport docker, scope default): no signature found" \
    sc install --name unsigned --now "http:$UNSIGNED"
check "... and nothing is stored" nothing_stored
check "install of a docker-archive is refused too (it carries no signatures)" \
    exits_with 3 "the docker-archive transport carries no signatures" \
    sc install --name archive "dockertar:$GIMG/hello.tar"
check "... and nothing is stored" nothing_stored

check "install of the signed image (sigstoreSigned, /etc/containers/policy.json) --now" \
    sc install --name web --now "http:$SIGNED"
check "web running under systemd" wait_for 10 is_active web
check "web's process runs in the container" wait_for 5 journal_has web 'from web'
check "its signatures were kept with the image" \
    gsh "ls /var/lib/containers/atomic/.storage/ostree/extensions/syscontainer/signatures/ /ostree/repo/extensions/syscontainer/signatures/ 2>/dev/null | grep -F .json"
check "images verify re-checks them against the policy, offline" \
    exits_with 0 "$SIGNED: signatures accepted by the policy" sc images verify "$SIGNED"

# Another policy in force: the other key only.
other_policy() {
    cp "$KEYS/other.pub" "$ROOT/etc/containers/keys/sctest.pub"
}
check "the policy now trusts another key" other_policy
check "images verify refuses the stored image (exit 3)" \
    exits_with 3 "not signed by any key of /etc/containers/keys/sctest.pub" sc images verify "$SIGNED"
check "install of the stored image (no pull) is refused, naming image, scope and reason" \
    exits_with 3 "$SIGNED is rejected by the signature policy /etc/containers/policy.json (transport docker, scope default): signature 1: not signed by any key" \
    sc install --name web2 "$SIGNED"
check "... and web2 was not installed" not g test -e "$RECDIR/web2.json"
check "web still runs" is_active web
check "clean poweroff" shutdown_guest
