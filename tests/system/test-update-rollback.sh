#!/bin/bash
# Issue 5, scenario 4: update a running container, then roll back.
#  - `containers update --set RECEIVER=...` checks out NAME.1, switches the
#    symlink, restarts the unit on it: the container sees the new value;
#  - `containers update --rebase` to hello-v2 (a new image) the same way;
#  - `containers rollback` brings the previous deployment and its values back,
#    restarted; the unit is never left stopped;
#  - issue 9 (6): rollback after `update --rebase` to an image whose hostfs/
#    differs (hello-hostfs -> hello-hostfs-v2) puts the old host files back
#    and removes the new-only ones, but leaves (and names) files the admin
#    changed.
# shellcheck source=tests/system/sc.sh
. "$(dirname "$0")/sc.sh"

SC_IMAGES="hello hello-v2 hello-hostfs hello-hostfs-v2"
sc_setup
check "boot reaches 'running'" boot
check "install web (--now, RECEIVER=Old)" sc_install web hello --now --set RECEIVER=Old
check "web running" runc_running web
check "web sees RECEIVER=Old" wait_for 5 env_has web '^RECEIVER=Old$'
check "deployment web.0 active (symlink)" gsh "test \"\$(readlink $CHECKOUTS/web)\" = web.0"
uuid=$(g sed -n 's/^UUID=//p' /var/lib/web/env)
id0=$(ident web)

deployment_is() {   # deployment_is NAME SLOT: symlink, record, and the running unit
    local l d
    l=$(g readlink "$CHECKOUTS/$1")
    d=$(g jq -r .record.deployment "$STATEDIR/$1.json")
    echo "symlink -> $l, record deployment $d"
    [ "$l" = "$1.$2" ] && [ "$d" = "$CHECKOUTS/$1.$2" ] || return 1
    # the running unit was generated from this record: DESTDIR is the slot
    prop_is "$1" WorkingDirectory "$CHECKOUTS/$1.$2"
}
restarted_since() {  # restarted_since NAME IDENT
    local now
    now=$(ident "$1")
    echo "$1: before $2, now $now"
    [ "$now" != "$2" ] && [[ $now =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]]
}
uuid_kept() {
    local u
    u=$(g sed -n 's/^UUID=//p' /var/lib/web/env)
    echo "UUID now '$u', at install '$uuid'"
    [ -n "$u" ] && [ "$u" = "$uuid" ]
}

# --------------------------------------------------------------------- update --set
check "containers update --set RECEIVER=New web" sc containers update --set RECEIVER=New --timeout 20 --settle 1 web
check "web active after the update" is_active web
check "web runs on web.1" deployment_is web 1
check "web was restarted by the update" restarted_since web "$id0"
check "the container sees RECEIVER=New" wait_for 5 env_has web '^RECEIVER=New$'
check "journal: 'Hello New from web (version 1)'" wait_for 5 journal_has web '^Hello New from web \(version 1\)'
check "the old container got SIGTERM (data log)" g grep -x 'got TERM version=1' /var/lib/web/log
check "UUID kept across the update" uuid_kept
check "web.0 is still there for a rollback" g test -d $CHECKOUTS/web.0/rootfs
check "in the unit's cgroup after the update" in_unit_cgroup web
listed_running() {
    local j
    j=$(sc containers list --json) || return 1
    echo "$j"
    echo "$j" | jq -e '.[] | select(.name=="web") | .state == "running"' >/dev/null
}
check "containers list: web running" listed_running
id1=$(ident web)

# --------------------------------------------------------------------- rollback
check "containers rollback web" sc containers rollback web
check "web active after the rollback" is_active web
check "web runs on web.0 again" deployment_is web 0
check "web was restarted by the rollback" restarted_since web "$id1"
check "the container sees RECEIVER=Old again" wait_for 5 env_has web '^RECEIVER=Old$'
check "UUID kept across the rollback" uuid_kept
id2=$(ident web)

# --------------------------------------------------------------------- update --rebase (new image)
check "containers update --rebase hello-v2 web" \
    sc containers update --rebase "dockertar:$GIMG/hello-v2.tar" --timeout 20 --settle 1 web
check "web runs on web.1 (hello-v2)" deployment_is web 1
check "web was restarted by the rebase" restarted_since web "$id2"
check "the container is version 2, values kept (RECEIVER=Old)" \
    wait_for 5 journal_has web '^Hello Old from web \(version 2\)'
id3=$(ident web)
up_to_date() {
    local out
    out=$(sc containers update web 2>&1) || { echo "$out"; return 1; }
    echo "$out"
    echo "$out" | grep -q "Latest version already installed"
}
check "update with nothing new: 'Latest version already installed.'" up_to_date
check "... and web was not restarted" same_ident web "$id3"
check "containers rollback web (to hello, web.0)" sc containers rollback web
check "web runs on web.0, version 1 again" deployment_is web 0
check "the container is version 1 again, RECEIVER=Old (last line of its data log)" \
    wait_for 5 sh -c "tail -n 1 '$ROOT/var/lib/web/log' | grep -x 'start version=1 receiver=Old port=8081'"
check "web was restarted by the second rollback" restarted_since web "$id3"

# --------------------------------------------------------------------- host files
# hello-hostfs installs renamed-NAME, secret-message, secret-message-template
# in /usr/local/lib; hello-hostfs-v2 changes secret-message, keeps the
# template, adds v2-only-file and has no renamed-NAME.
LIB=/usr/local/lib
host_files() {   # the container's host files as "NAME: CONTENT" lines
    g sh -c "cd $LIB && for f in renamed-files secret-message secret-message-template v2-only-file; do [ -e \$f ] && echo \"\$f: \$(cat \$f)\"; done; true"
}
host_files_are() {   # host_files_are EXPECTED
    local now
    now=$(host_files)
    printf 'now:\n%s\nwant:\n%s\n' "$now" "$1"
    [ "$now" = "$1" ]
}
check "install files (hello-hostfs, --now)" sc_install files hello-hostfs --now --set RECEIVER=Files
v1="renamed-files: placeholder for \$NAME (not a template: copied verbatim)
secret-message: Hello unknown \$RECEIVER
secret-message-template: hello Files"
v2="secret-message: Hello v2 \$RECEIVER
secret-message-template: hello Files
v2-only-file: only in version 2 of \$NAME"
check "files' host files are version 1's" host_files_are "$v1"
rebase_files() {
    sc containers update --rebase "dockertar:$GIMG/hello-hostfs-v2.tar" --timeout 20 --settle 1 files
}
check "update --rebase hello-hostfs-v2 files" rebase_files
check "host files are version 2's (secret-message changed, v2-only-file new, renamed-files gone)" host_files_are "$v2"
check "files runs version 2" wait_for 5 journal_has files '^Hello Files from files \(version 2\)'
check "containers rollback files" sc containers rollback files
check "host files are version 1's again (v2-only-file removed)" host_files_are "$v1"
check "files runs on files.0" deployment_is files 0
check "update --rebase hello-hostfs-v2 files again" rebase_files
check "host files are version 2's again" host_files_are "$v2"
check "the admin edits v2-only-file and secret-message" \
    gsh "echo mine > $LIB/v2-only-file && echo edited > $LIB/secret-message"
rollback_says() {
    local out rc
    out=$(sc containers rollback files 2>&1)
    rc=$?
    echo "$out"
    [ $rc -eq 0 ] || return 1
    echo "$out" | grep -Fx "$LIB/v2-only-file was modified since it was installed; left in place" &&
        echo "$out" | grep -Fx "$LIB/secret-message was modified on the host; left in place, not restored"
}
check "rollback leaves the admin's files, naming them" rollback_says
check "the admin's files kept, the others are version 1's" host_files_are "renamed-files: placeholder for \$NAME (not a template: copied verbatim)
secret-message: edited
secret-message-template: hello Files
v2-only-file: mine"
check "files runs on files.0, version 1" deployment_is files 0
check "files active after the rollback" is_active files
check "clean poweroff" shutdown_guest
