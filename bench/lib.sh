# Sourced by the benchmarks: the filesystem a run happens on.
#
#   bench_mount FS     FS is root (the root ext4, under $W), ext4 (a fresh
#                      4 GiB loop-mounted ext4) or tmpfs; sets BENCH_DIR to
#                      a directory on it, and MNT to what must be unmounted.
#   bench_unmount      undo bench_mount (also safe from an EXIT trap).
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
