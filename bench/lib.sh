# Sourced by the benchmarks: the filesystem a run happens on.
#
#   bench_mount FS     FS is root (the root ext4, under $W), ext4 (a fresh
#                      4 GiB loop-mounted ext4) or tmpfs; sets BENCH_DIR to
#                      a directory on it, and MNT to what must be unmounted.
#   bench_unmount      undo bench_mount (also safe from an EXIT trap).
#   start_fixture T NAME
#                      a busybox container NAME running /bin/true, with a
#                      one-line tmpfiles.template, installed under the root
#                      T as `syscontainer install` leaves it (deployment,
#                      link, record), for `SYSCONTAINER_ROOT=T
#                      syscontainer-exec run NAME`. T/run is a tmpfs, as
#                      /run is on a host (start_fixture_cleanup T unmounts).
# Needs $W (the benchmark's work dir).

MNT=""

bench_mount() {
	case $1 in
	root) BENCH_DIR=$W/run ;;
	ext4)
		MNT=$(mktemp -d /tmp/syscontainer-bench-mnt.XXXXXX)
		truncate -s 4G "$W/ext4.img"
		mkfs.ext4 -q -F "$W/ext4.img"
		mount -o loop "$W/ext4.img" "$MNT"
		BENCH_DIR=$MNT/run ;;
	tmpfs)
		MNT=$(mktemp -d /tmp/syscontainer-bench-mnt.XXXXXX)
		mount -t tmpfs -o size=3g tmpfs "$MNT"
		BENCH_DIR=$MNT/run ;;
	*) echo "$(basename "$0"): unknown FS '$1' (root|ext4|tmpfs)" >&2; exit 2 ;;
	esac
}

bench_unmount() {
	if [ -n "$MNT" ]; then umount "$MNT"; rmdir "$MNT"; MNT=""; rm -f "$W/ext4.img"; fi
}

start_fixture() {
	local T=$1 NAME=$2 DEP
	DEP=$T/var/lib/containers/atomic/$NAME.0
	mkdir -p "$T/run"
	mount -t tmpfs -o mode=755,size=16m tmpfs "$T/run"
	mkdir -p "$DEP/rootfs/bin" "$DEP/rootfs/exports" "$DEP/rootfs/proc" "$DEP/rootfs/dev" \
		"$DEP/rootfs/sys" "$T/etc/syscontainer/containers"
	cp "$(command -v busybox)" "$DEP/rootfs/bin/busybox"
	ln -s busybox "$DEP/rootfs/bin/true"
	ln -s busybox "$DEP/rootfs/bin/sh"
	ln -s "$NAME.0" "$T/var/lib/containers/atomic/$NAME"
	cat >"$DEP/rootfs/exports/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
   "env": ["PATH=/bin"], "cwd": "/"},
 "root": {"path": "rootfs", "readonly": true},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]}}
JSON
	# shellcheck disable=SC2016 # a template: the helper expands it
	echo 'D ${RUN_DIRECTORY}/${NAME} 0700 - - - -' >"$DEP/rootfs/exports/tmpfiles.template"
	echo '{"image": "bench", "image_id": "sha256:00", "image_config": {}}' >"$DEP/info.json"
	cat >"$T/etc/syscontainer/containers/$NAME.json" <<JSON
{"version": 1, "name": "$NAME", "image": "bench", "image_id": "sha256:00",
 "deployment": "/var/lib/containers/atomic/$NAME.0"}
JSON
}

start_fixture_cleanup() {
	umount "$1/run" 2>/dev/null || true
}
