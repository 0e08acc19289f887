# shellcheck shell=bash
# tests/system/lib.sh: boot real systemd as PID 1 in systemd-nspawn and drive it.
#
# Sourced by tests/system/test-*.sh. The guest is a tiny root directory (a
# minimal /etc copied from the host, empty /var) with the host's /usr mounted
# as an overlay; the overlay's upper dir is private to the test, so installing
# the project into the guest's /usr never touches the host. A boot reaches
# `running` in well under a second.
#
# Usage in a test script:
#
#   . "$(dirname "$0")/lib.sh"
#   setup_guest                 # build the root (and the overlay upper dir)
#   install_into_guest          # the project, see below
#   boot                        # boot 1; FAILs (never skips) if it cannot
#   check "unit is active"  g systemctl is-active foo
#   check "unit is stopped" not g systemctl is-active bar
#   shutdown_guest              # clean poweroff (SIGRTMIN+4), journal saved
#   # the EXIT trap tears everything down and exits 1 if any check failed.
#
# Functions:
#   g CMD...            run CMD in the booted guest (nsenter into all its
#                       namespaces, clean environment, bounded by $G_TIMEOUT)
#   gsh 'SCRIPT'        g sh -c 'SCRIPT'
#   gput SRC DEST [MODE]  copy a host file into the running guest
#   wait_for SECS CMD...  retry CMD every 0.1 s until it succeeds or SECS pass
#   check NAME CMD...   run CMD, record PASS/FAIL (output in checks.log)
#   fail MSG / pass MSG record a result directly
#   not CMD...          invert CMD's exit status (for use with check)
#   boot / shutdown_guest / kill_guest
#   kmsg_mark / kmsg_since  the kernel log from a point on (see below)
#   install_into_guest  install the project, see the comment above it
#   install_deb_into_guest [DEB]  or install the Debian package with dpkg -i
#                       into the running guest
#   systest_report      if the script defines it, the EXIT trap calls it after
#                       the cleanup instead of printing the PASS/FAIL summary
#                       (FAILS, PASSES, RESULTS are set; the exit status stays
#                       1 if any check failed)
#
# Environment (all optional):
#   GENERATOR, EXEC_HELPER, SYSCONTAINER  binaries to install (see install_into_guest)
#   SYSTEST_WORKDIR     parent of the per-test work dir   (default: ${TMPDIR:-/tmp})
#   SYSTEST_RESULTS     parent of the per-test results dir (default: the work dir);
#                       the results dir is kept, everything else is removed
#   SYSTEST_KEEP=1      keep the guest root and overlay after the test
#   BOOT_TIMEOUT (60) SHUTDOWN_TIMEOUT (30) G_TIMEOUT (60)   seconds
#   SYSTEST_NO_APT=1    never run apt-get, fail if a dependency is missing
#   SYSTEST_VERBOSE=1   also print each check's output on the console
#   GUEST_KMSG=0        do not give the guest the host's /dev/kmsg (see boot)

set -uo pipefail
shopt -s nullglob

SYSTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$SYSTEST_DIR/../.." && pwd)
TEST_NAME=${TEST_NAME:-$(basename "${0%.sh}")}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-30}
G_TIMEOUT=${G_TIMEOUT:-60}
GUEST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

NS_PID=        # the host pid of systemd-nspawn's wrapper (unshare, exec'd into nspawn)
PID1=          # the host pid of the guest's systemd
BOOTN=0        # boots so far
FAILS=0
PASSES=0
CG_DIRS=()
_T0=$(date +%s%N)

_now() { date +%s%N; }
ms_since() { echo $((($(_now) - $1) / 1000000)); }
# log lines go to the test's own stdout even from inside `check` (whose
# command's output is captured) and from traps.
exec {SYSTEST_OUT}>&1
log() { printf '[%s] %s\n' "$(date +%T.%3N)" "$*" | tee -a "$RESULTS/summary.txt" >&"$SYSTEST_OUT"; }
pass() { PASSES=$((PASSES + 1)); log "PASS: $*"; }
fail() { FAILS=$((FAILS + 1)); log "FAIL: $*"; }
die() { fail "$*"; exit 1; }   # the EXIT trap cleans up and reports
# not CMD: succeeds if CMD fails, but not if it could not run at all (no guest:
# 125, timeout: 124, not found: 126/127).
not() {
    "$@"
    case $? in 0) return 1 ;; 124 | 125 | 126 | 127) echo "not $*: could not run" >&2; return 2 ;; esac
}

# --------------------------------------------------------------------- work dirs
# Unique per run, so that two suites (or two copies of one) never collide.
WORK=$(mktemp -d "${SYSTEST_WORKDIR:-${TMPDIR:-/tmp}}/sc-systest-$TEST_NAME.XXXXXX") || {
    echo "FAIL: cannot create a work dir" >&2; exit 1; }
ROOT=$WORK/root          # the guest's / (minus /usr)
UPPER=$WORK/usr-upper    # overlay upper dir: the guest's /usr = host /usr + this
STAGE=$WORK/stage        # DESTDIR for `make install`
RUN_ID=${WORK##*.}
MACHINE=sct-$RUN_ID-$$   # also the guest's hostname
if [ -n "${SYSTEST_RESULTS:-}" ]; then
    RESULTS=$SYSTEST_RESULTS/$TEST_NAME
    rm -rf "$RESULTS"
else
    RESULTS=$WORK/results
fi
mkdir -p "$RESULTS" || { echo "FAIL: cannot create $RESULTS" >&2; exit 1; }
: >"$RESULTS/summary.txt"
: >"$RESULTS/checks.log"

# --------------------------------------------------------------------- checks
# check NAME CMD...: CMD's stdout+stderr go to checks.log; on failure the
# last lines are also shown, so a CI log is readable on its own.
check() {
    local name=$1 t rc out
    shift
    t=$(_now)
    # not in a subshell: `check "boot" boot` must keep the guest's pids
    "$@" >"$WORK/check.out" 2>&1
    rc=$?
    out=$(cat "$WORK/check.out")
    { printf '=== %s\n$ %s\n' "$name" "$*"; [ -n "$out" ] && printf '%s\n' "$out"
      printf -- '--- rc=%s\n' "$rc"; } >>"$RESULTS/checks.log"
    if [ $rc -eq 0 ]; then
        pass "$name ($(ms_since "$t") ms)"
        [ -n "${SYSTEST_VERBOSE:-}" ] && [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    | /'
    else
        fail "$name (rc=$rc)"
        [ -n "$out" ] && printf '%s\n' "$out" | tail -n 15 | sed 's/^/    | /' | tee -a "$RESULTS/summary.txt" >&"$SYSTEST_OUT"
    fi
    return $rc
}

wait_for() {
    local secs=$1 end
    shift
    end=$(($(_now) + secs * 1000000000))
    until "$@" >/dev/null 2>&1; do
        [ "$(_now)" -ge $end ] && { "$@"; return 1; }   # last try, with its output
        sleep 0.1
    done
}

guest_running() { [ -n "$PID1" ] && [ -n "$NS_PID" ] && kill -0 "$PID1" 2>/dev/null; }

# g CMD...: run CMD inside the booted guest. Note: processes started this way
# are outside the guest's cgroups and seccomp filter; start anything whose
# behaviour matters with systemctl or systemd-run inside the guest.
g() {
    guest_running || { echo "g $*: no guest is running" >&2; return 125; }
    timeout -k 5 "$G_TIMEOUT" nsenter -t "$PID1" -a \
        env -i PATH="$GUEST_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 SYSTEMD_LESS= "$@"
}
gsh() { g sh -c "$1"; }
# boot_wanted TARGET UNIT: the generator's drop-in TARGET.d/syscontainer.conf
# has Wants=UNIT (how it makes multi-user.target and syscontainers.target want
# the enabled containers), and systemd has loaded it: TARGET's Wants= lists UNIT.
boot_wanted() {
    g grep -qx "Wants=$2" "/run/systemd/generator/$1.d/syscontainer.conf" &&
        g systemctl show -p Wants --value "$1" | tr ' ' '\n' | grep -qx "$2"
}
# not_boot_wanted TARGET UNIT: neither that line, nor a TARGET.wants/UNIT link,
# nor the dependency in systemd.
not_boot_wanted() {
    ! g grep -qx "Wants=$2" "/run/systemd/generator/$1.d/syscontainer.conf" &&
        ! g test -e "/run/systemd/generator/$1.wants/$2" &&
        ! { g systemctl show -p Wants --value "$1" | tr ' ' '\n' | grep -qx "$2"; }
}
gput() {   # gput SRC DEST [MODE]
    # shellcheck disable=SC2016
    g sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' sh "$2" "${3:-644}" <"$1"
}

# --------------------------------------------------------------------- host dependencies
# command:package. Installed with apt-get when missing (a fresh CI VM).
SYSTEST_DEPS=${SYSTEST_DEPS:-systemd-nspawn:systemd-container nsenter:util-linux unshare:util-linux
    pgrep:procps systemd-analyze:systemd systemd-id128:systemd timeout:coreutils
    busybox:busybox-static runc:runc make:make jq:jq dbus-daemon:dbus}
ensure_deps() {
    local need=() c
    for c in $SYSTEST_DEPS; do
        command -v "${c%%:*}" >/dev/null 2>&1 || need+=("${c#*:}")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    if [ -n "${SYSTEST_NO_APT:-}" ] || ! command -v apt-get >/dev/null; then
        die "missing host packages: ${need[*]} (install them; SYSTEST_NO_APT is set or there is no apt-get)"
    fi
    log "installing host packages: ${need[*]}"
    { timeout 300 apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >"$RESULTS/apt.log" 2>&1 || die "apt-get install ${need[*]} failed (see $RESULTS/apt.log)"
}

preflight() {
    [ "$(id -u)" = 0 ] || die "system tests need root (systemd-nspawn, mounts, cgroups)"
    ensure_deps
    [ -r /usr/lib/os-release ] || die "/usr/lib/os-release is missing on the host"
    [ -x /usr/lib/systemd/systemd ] || die "the host has no /usr/lib/systemd/systemd to boot"
}

# --------------------------------------------------------------------- teardown
_save_guest_logs() {   # while the guest is still up
    guest_running || return 0
    local n=$BOOTN
    g journalctl -b --no-pager -o short-monotonic >"$RESULTS/journal-boot$n.txt" 2>&1
    g journalctl -k -b --no-pager -o short-monotonic >"$RESULTS/kmsg-boot$n.txt" 2>&1
    g systemctl list-units --all --no-pager >"$RESULTS/units-boot$n.txt" 2>&1
    g systemctl --failed --no-pager >>"$RESULTS/units-boot$n.txt" 2>&1
}

# Kill whatever is left in our cgroups (a guest that was SIGKILLed may leave
# processes behind), then remove the cgroups, deepest first.
_cgroup_cleanup() {
    local d p f
    for _ in 1 2 3 4 5; do
        p=
        for d in "${CG_DIRS[@]}"; do
            [ -d "$d" ] || continue
            while IFS= read -r f; do
                p+=" $(cat "$f" 2>/dev/null)"
            done < <(find "$d" -name cgroup.procs 2>/dev/null)
        done
        read -r -a p <<<"$p"
        [ ${#p[@]} -eq 0 ] && break
        kill -KILL "${p[@]}" 2>/dev/null
        sleep 0.2
    done
    for d in "${CG_DIRS[@]}"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$d" ] && log "warning: could not remove cgroup $d"
    done
}

kill_guest() {   # hard stop: the guest did not power off by itself
    if [ -n "$NS_PID" ] && kill -0 "$NS_PID" 2>/dev/null; then
        _save_guest_logs
        kill -TERM "$NS_PID" 2>/dev/null   # nspawn forwards it as SIGRTMIN+3: halt
        for _ in $(seq 100); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NS_PID" 2>/dev/null
        wait "$NS_PID" 2>/dev/null
    fi
    NS_PID='' PID1=''
}

_teardown() {
    local rc=$?
    trap - EXIT INT TERM
    kill_guest
    _cgroup_cleanup
    # overlayfs work dirs that nspawn creates beside the upper dir
    rm -rf "$WORK"/.#usr-upper* 2>/dev/null
    if [ -n "${SYSTEST_KEEP:-}" ]; then
        log "kept guest root $ROOT and overlay $UPPER"
    else
        rm -rf "$ROOT" "$UPPER" "$STAGE"
    fi
    rm -f "$WORK/check.out"
    rmdir "$WORK" 2>/dev/null   # empty unless the results or a kept root are in it
    [ $FAILS -eq 0 ] && [ $PASSES -eq 0 ] && [ $rc -eq 0 ] && fail "no check ran"
    [ $rc -ne 0 ] && [ $FAILS -eq 0 ] && fail "test script exited with status $rc"
    if declare -F systest_report >/dev/null; then
        systest_report   # a script's own final report (demo.sh), after the cleanup
    else
        log "$TEST_NAME: $PASSES passed, $FAILS failed, $(ms_since "$_T0") ms; logs in $RESULTS"
        if [ $FAILS -eq 0 ]; then echo "RESULT $TEST_NAME: PASS"; else echo "RESULT $TEST_NAME: FAIL"; fi |
            tee -a "$RESULTS/summary.txt" >&"$SYSTEST_OUT"
    fi
    exit $((FAILS > 0))
}
trap _teardown EXIT
trap 'fail "interrupted"; exit 130' INT TERM

# --------------------------------------------------------------------- the guest root
# A real etc/os-release (nspawn checks it before mounting /usr), bin/sbin/lib
# symlinks into usr/, and a minimal /etc copied from the host.
setup_guest() {
    preflight
    local t f
    t=$(_now)
    mkdir -p "$ROOT"/{usr,etc,var/tmp,var/lib,var/log/journal,root,tmp,run,proc,sys,dev,home,srv,opt,mnt} "$UPPER" ||
        die "cannot create the guest root in $ROOT"
    chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
    chmod 700 "$ROOT/root"
    ln -s usr/bin "$ROOT/bin"; ln -s usr/sbin "$ROOT/sbin"
    ln -s usr/lib "$ROOT/lib"; ln -s usr/lib64 "$ROOT/lib64"
    for f in passwd group shadow gshadow nsswitch.conf ld.so.cache ld.so.conf ld.so.conf.d alternatives \
        pam.d pam.conf security login.defs environment default profile bash.bashrc shells hosts \
        localtime timezone debian_version; do
        [ -e "/etc/$f" ] && cp -a "/etc/$f" "$ROOT/etc/"
    done
    cp /usr/lib/os-release "$ROOT/etc/os-release"
    echo "$MACHINE" >"$ROOT/etc/hostname"
    : >"$ROOT/etc/fstab"
    systemd-id128 new >"$ROOT/etc/machine-id" || die "systemd-id128 new failed"
    mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/systemd/journald.conf.d"
    ln -sf /usr/lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
    # A persistent journal, so that a later boot can still read an earlier one.
    printf '[Journal]\nStorage=persistent\n' >"$ROOT/etc/systemd/journald.conf.d/systest.conf"
    log "guest root built in $(ms_since "$t") ms: $ROOT (machine $MACHINE)"
}

# --------------------------------------------------------------------- installing the project
# Installs syscontainer into the guest the way a package would.
#  * If any of GENERATOR / EXEC_HELPER / SYSCONTAINER is set, exactly those
#    binaries are installed:
#      GENERATOR    -> /usr/lib/systemd/system-generators/syscontainer-generator
#      EXEC_HELPER  -> /usr/libexec/syscontainer-exec
#      SYSCONTAINER -> /usr/bin/syscontainer
#  * Otherwise, if the project has a Makefile with an `install` target:
#      make -C $PROJECT_DIR -o build install DESTDIR=$STAGE PREFIX=/usr $SYSTEST_MAKE_ARGS
#    (-o build: nothing is built here; run `make build` first)
#    and the staged tree is merged into the guest: usr/ (and bin, sbin, lib,
#    which are usr/ in the guest) into the overlay, everything else (etc/,
#    var/) into the root.
#  * Otherwise the binaries cargo built in ${CARGO_TARGET_DIR:-target}/release
#    (or debug), if the generator is there.
#  * Otherwise it FAILs.
# Must run before boot.
GUEST_GENERATOR_DIR=/usr/lib/systemd/system-generators
install_into_guest() {
    local any=
    if [ -n "${GENERATOR:-}${EXEC_HELPER:-}${SYSCONTAINER:-}" ]; then
        _install_bin GENERATOR "${GENERATOR:-}" "$GUEST_GENERATOR_DIR/syscontainer-generator" || any=bad
        _install_bin EXEC_HELPER "${EXEC_HELPER:-}" /usr/libexec/syscontainer-exec || any=bad
        _install_bin SYSCONTAINER "${SYSCONTAINER:-}" /usr/bin/syscontainer || any=bad
        [ -z "$any" ] || die "install_into_guest: a given binary is missing (see above)"
        return 0
    fi
    if [ -f "$PROJECT_DIR/Makefile" ] && make -C "$PROJECT_DIR" -n install >/dev/null 2>&1; then
        local t
        t=$(_now)
        rm -rf "$STAGE"
        mkdir -p "$STAGE/usr/bin" "$STAGE/usr/sbin" "$STAGE/usr/lib"
        ln -s usr/bin "$STAGE/bin"; ln -s usr/sbin "$STAGE/sbin"; ln -s usr/lib "$STAGE/lib"
        # shellcheck disable=SC2086
        # -o build: the tests build nothing; build first (make build, or tests/run.sh)
        timeout 600 make -C "$PROJECT_DIR" -o build install DESTDIR="$STAGE" PREFIX=/usr ${SYSTEST_MAKE_ARGS:-} \
            >"$RESULTS/make-install.log" 2>&1 ||
            die "make install DESTDIR=$STAGE failed; were the binaries built (make build)? $(tail -n 3 "$RESULTS/make-install.log" | tr '\n' ' ')(log: $RESULTS/make-install.log)"
        cp -a "$STAGE/usr/." "$UPPER/" || die "cannot copy the staged /usr into the overlay"
        local e
        for e in "$STAGE"/*; do
            case ${e##*/} in usr | bin | sbin | lib | lib64) ;; *) cp -a "$e" "$ROOT/" ;; esac
        done
        log "installed with make install in $(ms_since "$t") ms"
        return 0
    fi
    # Last resort: binaries already built by cargo in this checkout.
    local tdir=${CARGO_TARGET_DIR:-$PROJECT_DIR/target} prof b found=
    for prof in release debug; do
        [ -x "$tdir/$prof/syscontainer-generator" ] || continue
        for b in GENERATOR:syscontainer-generator:$GUEST_GENERATOR_DIR EXEC_HELPER:syscontainer-exec:/usr/libexec \
            SYSCONTAINER:syscontainer:/usr/bin; do
            IFS=: read -r v f d <<<"$b"
            [ -x "$tdir/$prof/$f" ] && { _install_bin "$v" "$tdir/$prof/$f" "$d/$f" || return 1; found=1; }
        done
        [ -n "$found" ] && return 0
    done
    die "install_into_guest: nothing to install. Set GENERATOR=/path/to/syscontainer-generator (and/or EXEC_HELPER=, SYSCONTAINER=), or provide a Makefile with an install target"
}
# install_deb_into_guest [DEB]: install the project's Debian package into the
# RUNNING guest with `dpkg -i`, as an admin would (maintainer scripts, systemd
# reload, syscontainers.target enabled). DEB defaults to $SYSTEST_DEB, else the
# newest $PROJECT_DIR/target/deb/syscontainer_*.deb (packaging/build-deb.sh;
# the tests build nothing). The guest's /usr is the host's, so the host's dpkg
# database is copied into the guest first: dpkg then knows that the package's
# dependencies are installed. (Without /var/lib/man-db/auto-update, man-db's
# trigger does not rebuild the whole man index.) FAILs if anything is missing.
install_deb_into_guest() {
    local deb=${1:-${SYSTEST_DEB:-}} t out
    if [ -z "$deb" ]; then
        # shellcheck disable=SC2012
        deb=$(ls -t "$PROJECT_DIR"/target/deb/syscontainer_*.deb 2>/dev/null | head -n1)
    fi
    [ -n "$deb" ] && [ -f "$deb" ] ||
        die "install_deb_into_guest: no Debian package (${deb:-$PROJECT_DIR/target/deb/syscontainer_*.deb}); build it with packaging/build-deb.sh or set SYSTEST_DEB"
    guest_running || die "install_deb_into_guest: boot the guest first (dpkg -i runs inside it)"
    t=$(_now)
    if [ ! -f "$ROOT/var/lib/dpkg/status" ]; then
        mkdir -p "$ROOT/var/lib" "$ROOT/etc" &&
            cp -a /var/lib/dpkg "$ROOT/var/lib/" && { [ ! -d /etc/dpkg ] || cp -a /etc/dpkg "$ROOT/etc/"; } ||
            die "install_deb_into_guest: cannot copy the host's dpkg database into the guest"
    fi
    cp "$deb" "$ROOT/var/tmp/${deb##*/}" || die "install_deb_into_guest: cannot copy $deb into the guest"
    out=$(g env DEBIAN_FRONTEND=noninteractive dpkg -i "/var/tmp/${deb##*/}" 2>&1)
    local rc=$?
    printf '%s\n' "$out" >"$RESULTS/dpkg-install.log"
    [ $rc -eq 0 ] || die "dpkg -i ${deb##*/} in the guest failed ($rc): $(tail -n 5 "$RESULTS/dpkg-install.log" | tr '\n' ' ')"
    log "installed ${deb##*/} with dpkg -i in the guest in $(ms_since "$t") ms"
}
_install_bin() {   # VAR PATH GUEST_PATH
    [ -z "$2" ] && return 0
    if [ ! -f "$2" ] || [ ! -x "$2" ]; then
        fail "$1=$2: not an executable file"
        return 1
    fi
    install -D -m 755 "$2" "$UPPER/${3#/usr/}" || { fail "cannot install $2 into the guest"; return 1; }
    log "installed $1=$2 as $3"
}
# guest_file PATH: where a guest path lives on the host, before boot
guest_file() {
    case $1 in /usr/*) echo "$UPPER/${1#/usr/}" ;; *) echo "$ROOT$1" ;; esac
}

# --------------------------------------------------------------------- boot / shutdown
# The dedicated cgroups nspawn is started in (so that its payload/ and
# supervisor/ cgroups do not litter the top level). Known from the start, so
# that teardown finds them whatever happened.
_cgroup_dirs() {
    local base=sc-systest-$RUN_ID-$$
    CG_DIRS=()
    if [ -d /sys/fs/cgroup/unified ] && [ -f /sys/fs/cgroup/unified/cgroup.procs ]; then   # hybrid
        CG_DIRS=("/sys/fs/cgroup/unified/$base")
        [ -d /sys/fs/cgroup/systemd ] && CG_DIRS+=("/sys/fs/cgroup/systemd/$base")
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then   # pure v2
        CG_DIRS=("/sys/fs/cgroup/$base")
    elif [ -d /sys/fs/cgroup/systemd ]; then              # pure v1
        CG_DIRS=("/sys/fs/cgroup/systemd/$base")
    fi
}
_cgroup_dirs
_setup_cgroups() {
    local d
    for d in "${CG_DIRS[@]}"; do mkdir -p "$d" || die "cannot create cgroup $d"; done
}

# boot [NSPAWN_ARGS...]: boot the guest and wait until `systemctl
# is-system-running --wait` returns. Returns 0 only for "running"; with any
# other state the guest is left up (so a test can look at it) and the failed
# units are logged. Use it as `check "boot" boot`.
boot() {
    guest_running && { echo "boot: a guest is already running" >&2; return 1; }
    [ -d "$ROOT/etc" ] || { echo "boot: no guest root, call setup_guest first" >&2; return 1; }
    _setup_cgroups
    BOOTN=$((BOOTN + 1))
    local t end st
    t=$(_now)
    # A private mount namespace with a tmpfs /run: host /run is not a tmpfs here
    # and nspawn refuses to clean up on a disk file system.
    local kmsg=()
    # nspawn hides /dev/kmsg from the guest, so a generator's kmsg log (and
    # `journalctl -k`) would go nowhere. Bind the host's, as on a real host;
    # CAP_SYSLOG lets the guest's journald read it (it then also imports the
    # host's older kernel messages: use kmsg_mark/kmsg_since for freshness).
    [ "${GUEST_KMSG:-1}" = 1 ] && [ -c /dev/kmsg ] && kmsg=(--bind=/dev/kmsg --capability=CAP_SYSLOG)
    # shellcheck disable=SC2016
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_LOG_COLOR=0 SC_CGROUPS="${CG_DIRS[*]}" \
        unshare -m --propagation private sh -c '
            for c in $SC_CGROUPS; do echo $$ >"$c/cgroup.procs" || exit 97; done
            unset SC_CGROUPS
            mount -t tmpfs -o mode=755 tmpfs /run || exit 98
            exec systemd-nspawn "$@"' sh \
        --boot --register=no --keep-unit --machine="$MACHINE" -D "$ROOT" \
        --overlay="/usr:$UPPER:/usr" --private-network --system-call-filter="@keyring bpf" \
        --console=read-only "${kmsg[@]}" "$@" \
        >"$RESULTS/console-boot$BOOTN.log" 2>&1 </dev/null &
    NS_PID=$!
    PID1=
    end=$((SECONDS + BOOT_TIMEOUT))
    until PID1=$(pgrep -P "$NS_PID" 2>/dev/null | head -n1) && [ -n "$PID1" ] &&
        [ "$(cat "/proc/$PID1/comm" 2>/dev/null)" = systemd ] &&
        nsenter -t "$PID1" -a test -S /run/systemd/private 2>/dev/null; do
        if ! kill -0 "$NS_PID" 2>/dev/null; then
            wait "$NS_PID"
            echo "boot $BOOTN: systemd-nspawn exited with $? before systemd came up; console:" >&2
            tail -n 20 "$RESULTS/console-boot$BOOTN.log" >&2
            NS_PID='' PID1=''
            return 1
        fi
        if [ $SECONDS -ge $end ]; then
            echo "boot $BOOTN: no systemd in the guest after ${BOOT_TIMEOUT}s; console:" >&2
            tail -n 20 "$RESULTS/console-boot$BOOTN.log" >&2
            kill_guest
            return 1
        fi
        sleep 0.05
    done
    st=$(timeout -k 5 "$BOOT_TIMEOUT" nsenter -t "$PID1" -a systemctl is-system-running --wait 2>&1)
    log "boot $BOOTN: state '$st' after $(ms_since "$t") ms (nspawn pid $NS_PID, guest PID1 = host pid $PID1)"
    if [ "$st" != running ]; then
        echo "boot $BOOTN: system state is '$st', not 'running'" >&2
        g systemctl --failed --no-pager >&2
        return 1
    fi
}

# shutdown_guest: clean poweroff (SIGRTMIN+4 = systemctl poweroff, without the
# D-Bus race of calling systemctl through nsenter). Returns 0 if nspawn exited 0
# in time. The journal and kernel log of the boot are saved first.
shutdown_guest() {
    guest_running || { echo "shutdown_guest: no guest is running" >&2; return 1; }
    local t rc
    t=$(_now)
    _save_guest_logs
    kill -s RTMIN+4 "$PID1"
    for _ in $(seq $((SHUTDOWN_TIMEOUT * 10))); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$NS_PID" 2>/dev/null; then
        echo "poweroff did not finish within ${SHUTDOWN_TIMEOUT}s, killing nspawn" >&2
        kill -KILL "$NS_PID"
    fi
    wait "$NS_PID"
    rc=$?
    log "boot $BOOTN: poweroff took $(ms_since "$t") ms, nspawn exit status $rc"
    NS_PID='' PID1=''
    [ $rc -eq 0 ]
}

# --------------------------------------------------------------------- the kernel log
# The kernel log is the host's, shared by every guest and suite. kmsg_mark
# writes a unique marker line into it and prints the marker; kmsg_since MARK
# prints the kernel log after the marker.
kmsg_mark() {   # unique even when called in a subshell, as in m=$(kmsg_mark)
    local m
    m="sc-systest-mark $MACHINE $(_now)"
    echo "<6>$m" >/dev/kmsg || return 1
    echo "$m"
}
kmsg_since() {
    dmesg --notime 2>/dev/null | awk -v m="$1" 'found { print } index($0, m) { found = 1 }'
}
