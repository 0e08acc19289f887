# shellcheck shell=bash
# tests/system/guest-registry.sh: a real registry (Debian's docker-registry,
# CNCF distribution v2) running INSIDE a booted system-test guest, on the
# guest's own loopback. Source it after lib.sh.
#
# The guest runs with --private-network, so a registry on the host's
# 127.0.0.1 is out of its reach. Instead the registry runs in the guest as a
# transient unit (systemd-run), from the host's /usr that the guest sees
# through the overlay, with its config, certificate and storage in the guest
# root. The host pushes to it with skopeo from inside the guest's network
# namespace only (nsenter -n): the image files stay where they are on the host.
# The guest's syscontainer then pulls over real HTTP(S) from 127.0.0.1:PORT,
# verifying TLS against /etc/containers/certs.d/127.0.0.1:PORT/ca.crt, as on a
# real host.
#
#   guest_registry_prepare MODE   before boot. MODE: plain | tls | auth (TLS + htpasswd)
#   guest_registry_start          after boot: start it, wait until /v2/ answers
#   guest_registry_push IMAGE [REPO[:TAG]]   push a make-images.sh image (oci:$F/oci:IMAGE);
#                                 prints the reference, GREG_ADDR/REPO:TAG
#
# Variables it sets:
#   GREG_ADDR   127.0.0.1:PORT (in the guest's network namespace)
#   GREG_MODE   the mode
#   GREG_USER / GREG_PASS   credentials (auth mode; else empty)
#   GREG_CREDS  "--creds USER:PASS" for syscontainer (auth mode; else empty)
#   GREG_DIR    the registry's directory, a guest path (/var/lib/sctest-registry)

GREG_PORT=${GREG_PORT:-5000}
GREG_ADDR=127.0.0.1:$GREG_PORT
GREG_DIR=/var/lib/sctest-registry
GREG_UNIT=sctest-registry
GREG_MODE=
GREG_USER=
GREG_PASS=
GREG_CREDS=
SYSCONTAINER_FIXTURES=${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures}

_greg_certs() {   # _greg_certs HOSTDIR: a test CA and a server cert for 127.0.0.1/localhost
    local d=$1
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 -subj "/CN=syscontainer system-test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=127.0.0.1" &&
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -out "$d/server.crt" -days 30 -extfile "$d/server.ext" &&
    rm -f "$d/server.csr" "$d/server.ext" "$d/ca.key" "$d/ca.srl" &&
    openssl verify -CAfile "$d/ca.crt" "$d/server.crt"
}

# guest_registry_prepare MODE: config, certificate and storage in the guest
# root; the CA in the guest's /etc/containers/certs.d/127.0.0.1:PORT/.
guest_registry_prepare() {
    GREG_MODE=${1:-tls}
    local d=$ROOT$GREG_DIR tls=0 auth=0 c
    case $GREG_MODE in
    plain) ;;
    tls) tls=1 ;;
    auth) tls=1 auth=1 ;;
    *) die "guest_registry_prepare: unknown mode '$GREG_MODE' (plain|tls|auth)" ;;
    esac
    for c in docker-registry skopeo openssl curl flock; do
        command -v "$c" >/dev/null || die "guest registry: '$c' is not installed (apt-get install docker-registry skopeo openssl curl util-linux)"
    done
    [ -x /usr/bin/docker-registry ] || die "guest registry: /usr/bin/docker-registry missing (the guest only sees the host's /usr)"
    mkdir -p "$d/data" || die "cannot create $d"
    if [ $tls = 1 ]; then
        _greg_certs "$d" >"$RESULTS/registry-certs.log" 2>&1 ||
            die "guest registry: cannot make the test certificates (see $RESULTS/registry-certs.log)"
        mkdir -p "$ROOT/etc/containers/certs.d/$GREG_ADDR"
        cp "$d/ca.crt" "$ROOT/etc/containers/certs.d/$GREG_ADDR/ca.crt"
    fi
    if [ $auth = 1 ]; then
        command -v htpasswd >/dev/null || die "guest registry: htpasswd missing (apt-get install apache2-utils)"
        GREG_USER=sctest GREG_PASS=sctest-pass-$RANDOM
        htpasswd -Bbc "$d/htpasswd" "$GREG_USER" "$GREG_PASS" 2>/dev/null || die "htpasswd failed"
        # shellcheck disable=SC2034  # used by the sourcing scripts
        GREG_CREDS="--creds $GREG_USER:$GREG_PASS"
    fi
    {
        echo "version: 0.1"
        echo "log:"
        echo "  level: info"
        echo "storage:"
        echo "  filesystem:"
        echo "    rootdirectory: $GREG_DIR/data"
        echo "  maintenance:"
        echo "    uploadpurging:"
        echo "      enabled: false"
        echo "http:"
        echo "  addr: $GREG_ADDR"
        echo "  secret: sctest-$RANDOM$RANDOM"
        if [ $tls = 1 ]; then
            echo "  tls:"
            echo "    certificate: $GREG_DIR/server.crt"
            echo "    key: $GREG_DIR/server.key"
        fi
        if [ $auth = 1 ]; then
            echo "auth:"
            echo "  htpasswd:"
            echo "    realm: syscontainer-system-test"
            echo "    path: $GREG_DIR/htpasswd"
        fi
    } >"$d/config.yml"
}

_greg_scheme() { case $GREG_MODE in plain) echo http ;; *) echo https ;; esac; }

# guest_registry_start: a transient unit in the guest; waits until /v2/ answers
# (200, or 401 with auth) from inside the guest.
guest_registry_start() {
    [ -n "$GREG_MODE" ] || { echo "guest_registry_start: call guest_registry_prepare before boot" >&2; return 1; }
    local want=200 code=000 url ca=()
    [ "$GREG_MODE" = auth ] && want=401
    [ "$GREG_MODE" = plain ] || ca=(--cacert "$GREG_DIR/ca.crt")
    url="$(_greg_scheme)://$GREG_ADDR/v2/"
    g systemd-run --quiet --unit="$GREG_UNIT" --property=Type=exec \
        /usr/bin/docker-registry serve "$GREG_DIR/config.yml" || return 1
    for _ in $(seq 100); do
        code=$(g curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${ca[@]}" "$url" 2>/dev/null) || code=000
        [ "$code" = "$want" ] && return 0
        g systemctl is-active --quiet "$GREG_UNIT" || break
        sleep 0.1
    done
    echo "the registry in the guest did not answer $url with $want (last: $code)" >&2
    g systemctl status --no-pager -n 20 "$GREG_UNIT" >&2
    return 1
}

# guest_registry_push IMAGE [REPO[:TAG]]: skopeo copy oci:$F/oci:IMAGE into
# the guest's registry, from the host, in the guest's network namespace.
guest_registry_push() {
    local image=$1 dest=${2:-sctest/$1:latest} args=()
    case ${dest##*/} in *:*) ;; *) dest=$dest:latest ;; esac
    guest_running || { echo "guest_registry_push: no guest is running" >&2; return 125; }
    [ -f "$SYSCONTAINER_FIXTURES/oci/index.json" ] ||
        { echo "no fixture images in $SYSCONTAINER_FIXTURES (run tests/fixtures/make-images.sh $image)" >&2; return 1; }
    case $GREG_MODE in
    plain) args+=(--dest-tls-verify=false) ;;
    *) args+=(--dest-cert-dir "$ROOT/etc/containers/certs.d/$GREG_ADDR") ;;
    esac
    [ -z "$GREG_USER" ] || args+=(--dest-creds "$GREG_USER:$GREG_PASS")
    # a shared lock: make-images.sh must not rewrite the layout while skopeo reads it
    (
        flock -s 8 || exit 1
        timeout -k 5 300 nsenter -t "$PID1" -n \
            skopeo copy -q --retry-times 2 "${args[@]}" "oci:$SYSCONTAINER_FIXTURES/oci:$image" "docker://$GREG_ADDR/$dest"
    ) 8>"$SYSCONTAINER_FIXTURES/.lock" >&2 || { echo "skopeo copy oci:$SYSCONTAINER_FIXTURES/oci:$image docker://$GREG_ADDR/$dest failed" >&2; return 1; }
    echo "$GREG_ADDR/$dest"
}
