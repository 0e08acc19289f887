#!/bin/bash
# Issue 5, scenario 1: boot activation, with the project installed from its
# Debian package (`dpkg -i` in the guest: maintainer scripts, systemd reload,
# syscontainers.target enabled).
#  boot 1: dpkg -i the .deb; install two enabled containers and one with
#          --no-enable; start none of them; power off.
#  boot 2: the enabled ones are active, their runc containers run inside their
#          units' cgroups (/proc/PID/cgroup, systemctl status), the disabled
#          one is installed (unit loaded, record present) but not started.
# The .deb comes from packaging/build-deb.sh (target/deb/) or $SYSTEST_DEB.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello hello-v2"
sc_setup deb

# ===================================================================== boot 1
check "boot 1 reaches 'running'" boot
install_deb_into_guest
deb_installed() {
    local st
    st=$(g dpkg-query -W -f '${Status} ${Version}' syscontainer)
    echo "dpkg-query: $st"
    [[ $st == "install ok installed "* ]]
}
check "dpkg: syscontainer is installed" deb_installed
check "the package installed the generator, exec helper and CLI" \
    g test -x /lib/systemd/system-generators/syscontainer-generator -a -x /usr/libexec/syscontainer-exec -a -x /usr/bin/syscontainer
check "the package enabled syscontainers.target" g systemctl is-enabled syscontainers.target
check "the package's tmpfiles created $CHECKOUTS" g test -d $CHECKOUTS
check "install alpha (enabled, hello)" sc_install alpha hello --set RECEIVER=Alpha
check "install beta (enabled, hello-v2)" sc_install beta hello-v2 --set RECEIVER=Beta
check "install gamma --no-enable" sc_install gamma hello --no-enable --set RECEIVER=Gamma
all_inactive() {
    local u
    for u; do is_inactive "$u" || return 1; done
}
check "install started nothing (no --now)" all_inactive alpha beta gamma
wants_alpha_beta() {   # wants_alpha_beta TARGET: it wants alpha and beta, not gamma
    boot_wanted "$1" alpha.service && boot_wanted "$1" beta.service && not_boot_wanted "$1" gamma.service
}
check "multi-user.target wants alpha and beta (the generator's drop-in), not gamma" \
    wants_alpha_beta multi-user.target
check "syscontainers.target wants alpha and beta, not gamma" wants_alpha_beta syscontainers.target
check "clean poweroff after boot 1" shutdown_guest

# ===================================================================== boot 2
check "boot 2 reaches 'running'" boot
check "alpha active after boot" is_active alpha
check "beta active after boot" is_active beta
check "alpha's runc container is running" runc_running alpha
check "beta's runc container is running" runc_running beta
check "alpha's container runs inside alpha.service's cgroup" in_unit_cgroup alpha
check "beta's container runs inside beta.service's cgroup" in_unit_cgroup beta
check "alpha started at boot with its values (version 1)" wait_for 5 journal_has alpha '^Hello Alpha from alpha \(version 1\)'
check "beta started at boot with its values (version 2)" wait_for 5 journal_has beta '^Hello Beta from beta \(version 2\)'
check "alpha and beta were started by the boot transaction (syscontainers.target active)" \
    g systemctl is-active syscontainers.target
check "disabled gamma: installed (record present)" g test -f $RECDIR/gamma.json
check "disabled gamma: unit loaded" prop_is gamma LoadState loaded
check "disabled gamma: not started" is_inactive gamma
check "disabled gamma: no runc state" not g runc state gamma
list_states() {
    local j
    j=$(sc containers list --all --json) || return 1
    echo "$j"
    echo "$j" | jq -e '[.[] | select(.name=="alpha" or .name=="beta") | .state] == ["running","running"] and
        ([.[] | select(.name=="gamma") | .state] == ["inactive"])' >/dev/null
}
check "syscontainer containers list shows alpha/beta running, gamma inactive" list_states
check "gamma starts on demand" g systemctl start gamma
check "gamma running in its cgroup" in_unit_cgroup gamma
check "clean poweroff after boot 2" shutdown_guest
