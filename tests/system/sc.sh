# shellcheck shell=bash
# tests/system/sc.sh: helpers for the system-container scenarios (issue 5),
# sourced by tests/system/test-*.sh after lib.sh. Real runc, real systemd,
# the real binaries: nothing here skips, a step that cannot run FAILs.
#
#   sc_setup [make|deb]   setup_guest + install the project with make install
#                         (deb: later, install_deb_into_guest after boot) +
#                         the test images as docker-archives in the guest's $GIMG
#   sc ARGS...            `syscontainer ARGS...` inside the guest
#   sc_install NAME IMAGE [ARGS...]   install dockertar:$GIMG/IMAGE.tar as NAME
#   prop UNIT PROP, prop_is UNIT PROP VALUE, ident UNIT, same_ident UNIT IDENT
#   runc_status NAME      runc's status of NAME in the guest ('' when none)
#   container_pid NAME    the container's init pid (host pid namespace of the guest)
#   in_unit_cgroup NAME   the container runs in NAME.service's cgroup (/proc/PID/cgroup)
#   journal_has UNIT REGEX, env_has NAME REGEX (the container's /data/env)
#   nothing_left NAME     no process, no runc state, no bundle
#   exits_with CODE TEXT CMD...   CMD exits with exactly CODE and its output
#                         contains TEXT (a fixed string)

# shellcheck source=tests/system/lib.sh
[ -n "${SYSTEST_DIR:-}" ] || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# `make install` (install_into_guest) asks cargo for its target dir twice
# (make -n, make): seconds on a busy machine. Tell it, unless a caller did.
export TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$PROJECT_DIR/target}}
SC_FIXTURES=${SYSCONTAINER_FIXTURES:-/var/tmp/syscontainer-fixtures}
SC_IMAGES=${SC_IMAGES:-hello hello-v2}   # images a test needs in the guest
GIMG=/var/tmp/images                     # where they are in the guest
RECDIR=/etc/syscontainer/containers
STATEDIR=/etc/syscontainer/state         # syscontainer's state: .record is the deployed record
CHECKOUTS=/var/lib/containers/atomic
GENDIR=/run/systemd/generator

# Build (or find cached) the test images; broken and slowstop are tiny + the
# /exports in tests/system/images/NAME (see the README there).
sc_images() {
    local t need=() i
    t=$(_now)
    for i in $SC_IMAGES; do
        case $i in
        broken | slowstop) need+=("$i=$SYSTEST_DIR/images/$i") ;;
        *) need+=("$i") ;;
        esac
    done
    timeout 600 "$PROJECT_DIR/tests/fixtures/make-images.sh" "${need[@]}" >"$RESULTS/make-images.log" 2>&1 ||
        die "tests/fixtures/make-images.sh ${need[*]} failed: $(tail -n 3 "$RESULTS/make-images.log" | tr '\n' ' ')"
    mkdir -p "$ROOT$GIMG"
    for i in $SC_IMAGES; do
        [ -s "$SC_FIXTURES/$i.tar" ] || die "test image $SC_FIXTURES/$i.tar is missing after make-images.sh"
        cp "$SC_FIXTURES/$i.tar" "$ROOT$GIMG/" || die "cannot copy $i.tar into the guest"
    done
    log "test images ($SC_IMAGES) in the guest's $GIMG in $(ms_since "$t") ms"
}

# sc_setup [make|deb]: with `deb`, the project is NOT installed here: boot,
# then install_deb_into_guest (dpkg -i runs in the running guest).
sc_setup() {
    setup_guest
    case ${1:-make} in
    make)
        install_into_guest
        local b
        for b in /usr/bin/syscontainer /usr/libexec/syscontainer-exec "$GUEST_GENERATOR_DIR/syscontainer-generator"; do
            [ -x "$(guest_file "$b")" ] || die "$b is not installed in the guest"
        done ;;
    deb) ;;
    *) die "sc_setup: unknown install method '$1'" ;;
    esac
    sc_images
}

sc() { g syscontainer "$@"; }
sc_install() {   # sc_install NAME IMAGE [ARGS...]
    local name=$1 img=$2
    shift 2
    sc install --name "$name" "$@" "dockertar:$GIMG/$img.tar"
}

prop() { g systemctl show -P "$2" "$1"; }
prop_is() {
    local v
    v=$(prop "$1" "$2")
    echo "$1 $2=$v (want $3)"
    [ "$v" = "$3" ]
}
is_active() { prop_is "$1" ActiveState active; }
is_inactive() { prop_is "$1" ActiveState inactive; }
# The identity of a running service: main pid and when it became active.
ident() { echo "$(prop "$1" MainPID)/$(prop "$1" ActiveEnterTimestampMonotonic)"; }
same_ident() {
    local now
    now=$(ident "$1")
    echo "$1: before $2, now $now"
    [ "$now" = "$2" ] && [[ $2 =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]]
}

runc_status() { g runc state "$1" 2>/dev/null | jq -r .status 2>/dev/null; }
runc_running() {
    local s
    s=$(runc_status "$1")
    echo "runc state $1: '$s'"
    [ "$s" = running ]
}
container_pid() { g runc state "$1" 2>/dev/null | jq -r .pid; }

# in_unit_cgroup NAME: the container's init (runc state .pid) and every
# process of the unit are in NAME.service's cgroup or below it.
in_unit_cgroup() {
    local name=$1 pid cg ucg
    pid=$(container_pid "$name")
    [[ $pid =~ ^[1-9][0-9]*$ ]] || { echo "no container pid for $name (runc state)"; return 1; }
    ucg=$(prop "$name" ControlGroup)
    # the guest has the unified hierarchy: its 0:: line (the host kernel's v1
    # hierarchies are listed too, at "/")
    cg=$(g cat "/proc/$pid/cgroup" | grep '^0::') || return 1
    echo "unit ControlGroup=$ucg; container pid $pid: /proc/$pid/cgroup has $cg"
    [ -n "$ucg" ] || { echo "the unit has no ControlGroup"; return 1; }
    case $cg in
    "0::$ucg/"*) ;;
    *) echo "the container is NOT in its unit's cgroup"; return 1 ;;
    esac
    # systemd sees it as the unit's: `systemctl status` lists the pid
    local st
    st=$(g systemctl status --no-pager -l "$name") 
    echo "$st"
    echo "$st" | grep -Eq "^ +[│├└─ ]*$pid " || { echo "systemctl status $name does not list pid $pid"; return 1; }
}

journal_has() {  # journal_has UNIT REGEX
    g journalctl -b -u "$1" -o cat --no-pager | grep -E -- "$2"
}
# The container's environment as it wrote it to /data (= /var/lib/NAME).
env_has() {      # env_has NAME REGEX
    g cat "/var/lib/$1/env" | grep -E -- "$2"
}

# No process, runc state or bundle of NAME left (after a stop).
nothing_left() {
    local name=$1 st procs
    st=$(g runc state "$name" 2>&1) && { echo "runc still has state for $name: $st"; return 1; }
    echo "runc state $name: $st"
    g test -e "/run/runc/$name" && { echo "/run/runc/$name still exists"; return 1; }
    procs=$(prop "$name" ControlGroup)
    [ -n "$procs" ] && { echo "the unit still has a cgroup: $procs"; return 1; }
    # no run.sh of this container anywhere in the guest
    procs=$(g sh -c 'for p in /proc/[0-9]*; do e=$(tr "\0" "\n" <$p/environ 2>/dev/null | grep -x "NAME='"$name"'") && echo "${p#/proc/} $(cat $p/cmdline | tr "\0" " ")"; done')
    [ -n "$procs" ] && { echo "processes of $name left: $procs"; return 1; }
    echo "no process, no runc state, no cgroup"
}

sc_list_json() { sc containers list --all --json; }

# exits_with CODE TEXT CMD...: CMD's exit status is exactly CODE (the
# documented one, not just "non-zero") and its stdout+stderr contain TEXT.
exits_with() {
    local want=$1 text=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    echo "exit status $rc (want $want)"
    [ "$rc" -eq "$want" ] || { echo "exit status $rc, not $want"; return 1; }
    grep -qF -- "$text" <<<"$out" || { echo "the output does not say: $text"; return 1; }
}
