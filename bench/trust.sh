#!/bin/bash
# Signature-policy benchmark (issue 13): `syscontainer pull` of the medium
# test image (~160 MB uncompressed, 3 layers) from a real registry on
# 127.0.0.1, in one run, under three policies:
#   accept    insecureAcceptAnything (no signature is read)
#   signedBy  GPGKeys, a simple signature from a file:// lookaside
#             (gpg --quick-gen-key, skopeo copy --sign-by)
#   sigstore  sigstoreSigned, an ECDSA P-256 key (tests/sigstore-keygen.py),
#             the signature in the sha256-<hex>.sig attachment
#             (tests/sigstore-sign.py: Debian's skopeo has sigstore disabled)
# Each rep pulls into a fresh root under each policy, in an order that
# rotates; medians are printed with the overhead of each signed policy over
# accept (target: under 5% or under 20 ms, whichever is larger). Then the
# re-pull of the unchanged signed image (target < 50 ms), many times: its
# difference from a re-pull under accept is the cost of the check itself
# (fetching and verifying the signature), without the noise of the layers.
#
#   bench/trust.sh [-n REPS] [-r REPULLS]
#     -n REPS     full pulls per policy (default 5)
#     -r REPULLS  re-pulls per policy (default 20)
#   SC=PATH       the syscontainer binary (default: build the release CLI)
#
# Needs root, docker-registry, skopeo, gpg, python3 with python3-cryptography
# and python3-nacl (tests/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=5
REPULLS=20
while getopts n:r: o; do
	case $o in
	n) REPS=$OPTARG ;;
	r) REPULLS=$OPTARG ;;
	*) sed -n '2,26p' "$0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "trust.sh: must run as root" >&2; exit 1; }
for c in skopeo gpg python3 docker-registry; do
	command -v $c >/dev/null || { echo "trust.sh: $c is missing" >&2; exit 1; }
done
/usr/bin/python3 -c 'import nacl.secret, cryptography' 2>/dev/null ||
	{ echo "trust.sh: python3-cryptography and python3-nacl are missing (tests/deps.sh)" >&2; exit 1; }

if [ -z "${SC:-}" ]; then
	export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
	cargo build -q --release -p syscontainer-cli
	SC=$(realpath "$CARGO_TARGET_DIR/release/syscontainer")
fi
tests/fixtures/make-images.sh medium >/dev/null

W=$(mktemp -d /var/tmp/syscontainer-trustbench.XXXXXX)
cleanup() {
	set +e
	tests/fixtures/registry.sh stop "$W/reg" >/dev/null 2>&1
	gpgconf --homedir "$W/gnupg" --kill all >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$W/reg" "$W/rd" "$W/sigs"
eval "$(tests/fixtures/registry.sh start "$W/reg" plain)"
IMG=$(tests/fixtures/registry.sh push "$W/reg" medium sctest/medium:1 | tail -1)
SRC="http:$IMG"
cat >"$W/rd/bench.yaml" <<YAML
docker:
  $REGISTRY:
    lookaside: file://$W/sigs
    lookaside-staging: file://$W/sigs
    use-sigstore-attachments: true
YAML

# GPG: a key, and skopeo's simple signature of the image, in the lookaside.
export GNUPGHOME=$W/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg -q --batch --passphrase '' --quick-gen-key 'bench <bench@example.invalid>' ed25519 sign never 2>/dev/null
FPR=$(gpg --batch --with-colons --list-keys bench@example.invalid 2>/dev/null | awk -F: '/^fpr:/ {print $10; exit}')
gpg --batch --export "$FPR" >"$W/gpg.pub"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --registries.d "$W/rd" \
	--sign-by "$FPR" "docker://$IMG" "docker://$IMG"
# Sigstore: a key pair, and the attachment.
echo "bench passphrase" >"$W/pass"
/usr/bin/python3 tests/sigstore-keygen.py "$W/sig" "$W/pass"
DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$IMG")
REPO=${IMG#*/}; REPO=${REPO%:*}
/usr/bin/python3 tests/sigstore-sign.py "$W/sig.key" "$W/pass" "http://$REGISTRY" \
	"$REPO" "$DIGEST" "$IMG"

echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$W/accept.json"
cat >"$W/signedBy.json" <<JSON
{"default": [{"type": "reject"}], "transports": {"docker": {"$REGISTRY/$REPO":
  [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "$W/gpg.pub"}]}}}
JSON
cat >"$W/sigstore.json" <<JSON
{"default": [{"type": "reject"}], "transports": {"docker": {"$REGISTRY/$REPO":
  [{"type": "sigstoreSigned", "keyPath": "$W/sig.pub"}]}}}
JSON
POLICIES=(accept signedBy sigstore)

now() { echo "$EPOCHREALTIME"; }
RES=$W/results
: >"$RES"
# pull KIND POLICY ROOT: append "KIND POLICY seconds" to $RES
pull() {
	local t0 t1
	t0=$(now)
	SYSCONTAINER_ROOT=$3 "$SC" pull -q --signature-policy "$W/$2.json" --registries.d "$W/rd" "$SRC" \
		>/dev/null 2>"$W/err" || { cat "$W/err" >&2; echo "trust.sh: the pull under $2 failed" >&2; exit 1; }
	t1=$(now)
	echo "$1 $2 $(python3 -c "print($t1-$t0)")" >>"$RES"
}

echo "$(nproc) CPUs; $(uptime)" >&2
echo "== $REPS pulls per policy into fresh roots (order rotates), load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for i in $(seq 1 "$REPS"); do
	for j in 0 1 2; do
		p=${POLICIES[$(((i + j) % 3))]}
		rm -rf "$W/root-$p"; mkdir -p "$W/root-$p"; sync
		pull pull "$p" "$W/root-$p"
	done
	printf '  rep %d done (load %s)\n' "$i" "$(cut -d' ' -f1 /proc/loadavg)" >&2
done
echo "== $REPULLS re-pulls of the unchanged image per policy (interleaved)" >&2
for i in $(seq 1 "$REPULLS"); do
	for p in "${POLICIES[@]}"; do pull repull "$p" "$W/root-$p"; done
done
for p in "${POLICIES[@]}"; do rm -rf "$W/root-$p"; done

python3 - "$RES" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics as st, sys
t = {}
for kind, pol, secs in (l.split() for l in open(sys.argv[1])):
    t.setdefault((kind, pol), []).append(float(secs))
med = {k: st.median(v) for k, v in t.items()}
n = len(t[("pull", "accept")])
print(f"pull of medium under a signature policy (medians of {n} rotated reps; load after: {sys.argv[2]})")
base = med[("pull", "accept")]
print(f"  insecureAcceptAnything       {base:7.3f} s   (runs: {' '.join('%.2f' % x for x in t[('pull', 'accept')])})")
ok = True
for pol, label in (("signedBy", "signedBy (GPG)"), ("sigstore", "sigstoreSigned")):
    m = med[("pull", pol)]
    over = m - base
    limit = max(0.05 * base, 0.020)
    ok &= over < limit
    print(f"  {label:28} {m:7.3f} s   overhead {over * 1e3:+7.1f} ms = {m / base:.3f}x  "
          f"(target < {limit * 1e3:.0f} ms: {'met' if over < limit else 'NOT met'}; "
          f"runs: {' '.join('%.2f' % x for x in t[('pull', pol)])})")
r = len(t[("repull", "accept")])
rb = med[("repull", "accept")]
print(f"re-pull of the unchanged image (medians of {r} interleaved runs)")
print(f"  insecureAcceptAnything       {rb * 1e3:7.1f} ms")
for pol, label in (("signedBy", "signedBy (GPG)"), ("sigstore", "sigstoreSigned")):
    m = med[("repull", pol)]
    print(f"  {label:28} {m * 1e3:7.1f} ms  (target < 50 ms: {'met' if m < 0.050 else 'NOT met'}; "
          f"the check itself: {(m - rb) * 1e3:+.1f} ms; min {min(t[('repull', pol)]) * 1e3:.1f} ms)")
PY
