#!/bin/bash
# Podman benchmark: syscontainer against the engine behind Quadlet, side by
# side in one run, on the same filesystem, with the ratios of issue 11:
#
#   pull   `syscontainer pull` of the 3-layer `medium` image from a real
#          registry on 127.0.0.1, against `podman pull` into fresh overlay
#          storage, and against `podman pull` + `sync -f` (our pull is
#          durable, podman's is not). Interleaved reps, medians; peak RSS.
#   start  `syscontainer-exec run` of a busybox container running /bin/true
#          with a one-line tmpfiles.template, against `podman run --rm` of
#          the same rootfs (imported) and a bare `runc run` of our bundle,
#          in one hyperfine run.
#   disk   the medium and etcd images with two containers each: our root
#          (repo + 4 deployments + records) against podman's storage (2
#          images + 4 created containers), by `du` (hardlinks counted once).
#   near   a second, near-identical image (medium + one 4 KiB layer) pulled
#          after medium: how much each store grows, as a share of its size.
#   gen    bench/generator.sh: the generator on 1000 records against
#          systemd-fstab-generator on 1000 entries, and with no records
#          (Debian 12's podman 4.3 has no Quadlet generator to compare with).
#
#   bench/podman.sh [-n REPS] [-r RUNS] [-f FS]
#     -n REPS   pull repetitions per side (default 5)
#     -r RUNS   start runs per command (default 100)
#     -f FS     root (a directory under /var/tmp, default), ext4 (a fresh
#               loop-mounted ext4) or tmpfs
#
# Podman runs as root with `--storage-driver overlay --cgroup-manager
# cgroupfs --runtime /usr/sbin/runc --events-backend none`, each store fresh.
# Where the sandbox refuses podman's default rlimits (runc: "error setting
# rlimits"), explicit --ulimit values equal to the current ones are passed;
# the script prints which. Needs root, podman, skopeo, docker-registry,
# hyperfine, python3, busybox (tests/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=5
RUNS=100
FS=root
while getopts n:r:f: o; do
	case $o in
	n) REPS=$OPTARG ;;
	r) RUNS=$OPTARG ;;
	f) FS=$OPTARG ;;
	*) sed -n '2,30p' "$0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "podman.sh: must run as root" >&2; exit 1; }
for c in podman skopeo python3 docker-registry hyperfine busybox /usr/sbin/runc; do
	command -v $c >/dev/null || { echo "podman.sh: $c is missing (tests/deps.sh installs it)" >&2; exit 1; }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p syscontainer-cli -p syscontainer-exec
cargo build -q --release -p syscontainer-generator
SC=$(realpath "$CARGO_TARGET_DIR/release/syscontainer")
HELPER=$(realpath "$CARGO_TARGET_DIR/release/syscontainer-exec")
tests/fixtures/make-images.sh medium etcd >/dev/null
F=$(tests/fixtures/make-images.sh path)

W=$(mktemp -d /var/tmp/syscontainer-podbench.XXXXXX)
. bench/lib.sh
NAME=podbench$$
cleanup() {
	set +e
	/usr/sbin/runc delete -f "$NAME" >/dev/null 2>&1
	/usr/sbin/runc delete -f "${NAME}bare" >/dev/null 2>&1
	[ -n "${T:-}" ] && start_fixture_cleanup "$T"
	for p in $(find "${D:-$W}" -maxdepth 3 -type d -name pod 2>/dev/null); do
		pod "$p" system reset -f >/dev/null 2>&1
	done
	bench_unmount
	tests/fixtures/registry.sh stop "$W/reg" >/dev/null 2>&1
	rm -rf "$W" "/run/podbench$$"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pod STORE ARGS...: podman on its own store under STORE (its runroot in
# /run: podman refuses one longer than 50 characters).
ULIMITS=()
rr() { echo "/run/podbench$$/$(echo "$1" | md5sum | cut -c1-8)"; }
pod() {
	local s=$1
	shift
	podman --root "$s/root" --runroot "$(rr "$s")" --storage-driver overlay \
		--cgroup-manager cgroupfs --runtime /usr/sbin/runc --events-backend none "$@"
}

now() { echo "$EPOCHREALTIME"; }
# timed NAME CMD...: append "NAME seconds peak-KiB" to $RES; a failing
# command stops the benchmark with its output.
timed() {
	local name=$1 t0 t1 rss
	shift
	t0=$(now)
	if ! /usr/bin/time -o "$W/time.out" -f %M "$@" >"$W/cmd.out" 2>&1; then
		echo "podman.sh: $name failed: $*" >&2
		cat "$W/cmd.out" >&2
		exit 1
	fi
	t1=$(now)
	rss=$(tail -1 "$W/time.out")
	echo "$name $(python3 -c "print($t1-$t0)") $rss" >>"$RES"
}

# quiet CMD...: run it, its output shown only when it fails.
quiet() {
	"$@" >"$W/cmd.out" 2>&1 || { echo "podman.sh: failed: $*" >&2; cat "$W/cmd.out" >&2; exit 1; }
}

mkdir -p "$W/reg"
eval "$(tests/fixtures/registry.sh start "$W/reg" plain)"
MEDIUM=$(tests/fixtures/registry.sh push "$W/reg" medium | tail -1)
ETCD=$(tests/fixtures/registry.sh push "$W/reg" etcd | tail -1)

# medium-plus: medium and one small layer (a 4 KiB file), as an OCI layout.
skopeo copy -q "oci:$F/oci:medium" "oci:$W/oci:medium"
python3 - "$W/oci" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
d = sys.argv[1]
def blob(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(d, "blobs/sha256", h), "wb").write(data)
    return "sha256:" + h
def read(dg):
    return open(os.path.join(d, "blobs/sha256", dg.split(":")[1]), "rb").read()
idx = json.load(open(os.path.join(d, "index.json")))
m = [x for x in idx["manifests"] if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == "medium"][0]
man = json.loads(read(m["digest"]))
cfg = json.loads(read(man["config"]["digest"]))
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("etc/medium-plus"); ti.size = 4096; ti.mtime = 1700000000
    t.addfile(ti, io.BytesIO(b"p" * 4096))
layer = gzip.compress(raw.getvalue(), mtime=0)
cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
cfg.setdefault("history", []).append({"created_by": "bench/podman.sh: one small layer"})
c = json.dumps(cfg).encode()
man["config"] = {"mediaType": man["config"]["mediaType"], "digest": blob(c), "size": len(c)}
man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(layer), "size": len(layer)})
mb = json.dumps(man).encode()
idx["manifests"].append({"mediaType": m["mediaType"], "digest": blob(mb), "size": len(mb),
                         "annotations": {"org.opencontainers.image.ref.name": "medium-plus"}})
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
PY
PLUS=$REGISTRY/sctest/medium-plus:latest
skopeo copy -q --dest-tls-verify=false "oci:$W/oci:medium-plus" "docker://$PLUS"

bench_mount "$FS"
D=$BENCH_DIR
mkdir -p "$D"
echo "$(nproc) CPUs; $(df -T "$(dirname "$D")" | awk 'NR==2 {print $2" on "$7}'); load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# ---------------------------------------------------------------- pull
RES=$W/pull.res
: >"$RES"
ours_pull() { timed ours env SYSCONTAINER_ROOT="$1/ours" "$SC" pull -q "http:$MEDIUM"; }
podman_pull() {
	local s=$1/pod
	timed podman podman --root "$s/root" --runroot "$(rr "$s")" --storage-driver overlay \
		--cgroup-manager cgroupfs --runtime /usr/sbin/runc --events-backend none \
		pull -q --tls-verify=false "$MEDIUM"
	timed sync sync -f "$1/pod/root"
}
for i in $(seq 1 "$REPS"); do
	r=$D/pull$i
	mkdir -p "$r"
	sync
	if [ $((i % 2)) = 1 ]; then ours_pull "$r"; podman_pull "$r"; else podman_pull "$r"; ours_pull "$r"; fi
	pod "$r/pod" system reset -f >/dev/null 2>&1 || true
	rm -rf "$r"
	printf '  pull rep %d done (load %s)\n' "$i" "$(cut -d' ' -f1 /proc/loadavg)" >&2
done

# ---------------------------------------------------------------- start
T=$D/start
start_fixture "$T" "$NAME"
mkdir -p "$T/bare"
SYSCONTAINER_ROOT=$T "$HELPER" run "$NAME"
cp "$T/run/syscontainer/bundle/$NAME/config.json" "$T/bare/config.json"
P=$T/pod
tar -C "$T/var/lib/containers/atomic/$NAME.0/rootfs" -c . | pod "$P" import -q - localhost/podbench-true >/dev/null
if ! pod "$P" run --rm localhost/podbench-true /bin/true >/dev/null 2>"$W/podman.err"; then
	grep -q rlimit "$W/podman.err" || { cat "$W/podman.err" >&2; exit 1; }
	# The sandbox may hold podman's conmon to a lower NPROC than ours: try
	# the current limits, then the lower one seen on these machines.
	for np in "$(ulimit -Hu)" 32768 4096; do
		ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$np:$np")
		pod "$P" run --rm "${ULIMITS[@]}" localhost/podbench-true /bin/true >/dev/null 2>&1 && break
		ULIMITS=()
	done
	[ ${#ULIMITS[@]} -gt 0 ] || { echo "podman run fails here:" >&2; cat "$W/podman.err" >&2; exit 1; }
	echo "  (podman's default rlimits are refused here: passing ${ULIMITS[*]})" >&2
fi
export SYSCONTAINER_ROOT=$T
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$W/start.json" \
	-n "bare runc run" "/usr/sbin/runc run --bundle $T/bare ${NAME}bare" \
	-n "syscontainer-exec run" "$HELPER run $NAME" \
	-n "podman run --rm" "podman --root $P/root --runroot $(rr "$P") --storage-driver overlay --cgroup-manager cgroupfs --runtime /usr/sbin/runc --events-backend none run --rm ${ULIMITS[*]} localhost/podbench-true /bin/true" \
	>/dev/null
unset SYSCONTAINER_ROOT
pod "$P" system reset -f >/dev/null 2>&1 || true

# ---------------------------------------------------------------- disk and near-identical
du_b() { du -sxB1 "$@" | awk '{s += $1} END {print s}'; }
S=$D/disk
mkdir -p "$S"
export SYSCONTAINER_ROOT=$S/ours
quiet "$SC" pull -q "http:$MEDIUM"
OURS_MEDIUM=$(du_b "$S/ours")
quiet "$SC" pull -q "http:$PLUS"
OURS_PLUS=$(du_b "$S/ours")
quiet "$SC" pull -q "http:$ETCD"
quiet "$SC" images delete "$PLUS"
quiet "$SC" images prune
OURS_REPO=$(du_b "$S/ours")
for i in 1 2; do
	quiet "$SC" install --no-enable --name "m$i" "$MEDIUM"
	quiet "$SC" install --no-enable --name "e$i" --set "ETCD_NAME=e$i" "$ETCD"
	eval "OURS_DISK$i=\$(du_b \"\$S/ours\")"
done
unset SYSCONTAINER_ROOT
pod "$S/pod" pull -q --tls-verify=false "$MEDIUM" >/dev/null
POD_MEDIUM=$(du_b "$S/pod/root")
pod "$S/pod" pull -q --tls-verify=false "$PLUS" >/dev/null
POD_PLUS=$(du_b "$S/pod/root")
pod "$S/pod" rmi "$PLUS" >/dev/null
pod "$S/pod" pull -q --tls-verify=false "$ETCD" >/dev/null
POD_IMAGES=$(du_b "$S/pod/root")
for i in 1 2; do
	pod "$S/pod" create -q --name "m$i" "$MEDIUM" /bin/true >/dev/null
	pod "$S/pod" create -q --name "e$i" "$ETCD" /bin/true >/dev/null
	eval "POD_DISK$i=\$(du_b \"\$S/pod/root\")"
done
pod "$S/pod" system reset -f >/dev/null 2>&1 || true

python3 - "$W/pull.res" "$W/start.json" "$OURS_DISK1" "$POD_DISK1" "$OURS_DISK2" "$POD_DISK2" \
	"$OURS_MEDIUM" "$OURS_PLUS" "$POD_MEDIUM" "$POD_PLUS" "$OURS_REPO" "$POD_IMAGES" \
	"$FS" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, statistics as st, sys
res, start = sys.argv[1], sys.argv[2]
od1, pd1, od2, pd2, om, op, pm, pp, orepo, pimg = map(int, sys.argv[3:13])
fs, load = sys.argv[13], sys.argv[14]
t, m = {}, {}
for name, secs, rss in (l.split() for l in open(res)):
    t.setdefault(name, []).append(float(secs)); m.setdefault(name, []).append(int(rss))
o, p = st.median(t["ours"]), st.median(t["podman"])
ps = st.median([a + b for a, b in zip(t["podman"], t["sync"])])
print(f"syscontainer against podman ({fs}; load after: {load})")
print(f"pull of medium, medians of {len(t['ours'])} interleaved reps")
print(f"  syscontainer pull          {o:7.3f} s   (runs {' '.join('%.2f' % x for x in t['ours'])})")
print(f"  podman pull                {p:7.3f} s   (runs {' '.join('%.2f' % x for x in t['podman'])})")
print(f"  podman pull + sync -f      {ps:7.3f} s")
print(f"  ratio ours / podman        {o / p:7.2f}x  (target <= 1.0x, aim 0.65x)")
print(f"  ratio ours / podman+sync   {o / ps:7.2f}x")
print(f"  peak RSS of our pull       {max(m['ours']) / 1024:7.1f} MiB (target < 64 MiB; podman {max(m['podman']) / 1024:.0f} MiB)")
r = {x["command"]: x["median"] for x in json.load(open(start))["results"]}
b, h, pr = r["bare runc run"], r["syscontainer-exec run"], r["podman run --rm"]
print("start of /bin/true (hyperfine medians: robust to the other load on the machine)")
print(f"  bare runc run              {b * 1e3:7.2f} ms")
print(f"  syscontainer-exec run      {h * 1e3:7.2f} ms  (our own: {(h - b) * 1e3:+.2f} ms)")
print(f"  podman run --rm            {pr * 1e3:7.2f} ms")
print(f"  ratio ours / bare runc     {h / b:7.3f}x  (target <= 1.15x)")
print(f"  ratio ours / podman        {h / pr:7.3f}x  (target <= 0.25x; bare runc / podman {b / pr:.3f}x)")
print("disk: medium + etcd, the images alone")
print(f"  syscontainer repo          {orepo / 1e6:7.1f} MB")
print(f"  podman images              {pimg / 1e6:7.1f} MB")
print(f"  ratio ours / podman        {orepo / pimg:7.3f}x")
for n, od, pd in ((1, od1, pd1), (2, od2, pd2)):
    print(f"disk: medium + etcd, {n} container(s) of each")
    print(f"  syscontainer root          {od / 1e6:7.1f} MB (repo, {2 * n} deployments, records)")
    print(f"  podman storage             {pd / 1e6:7.1f} MB (2 images, {2 * n} containers)")
    print(f"  ratio ours / podman        {od / pd:7.3f}x  (target <= 1.0x)")
print(f"  a deployment costs         {(od2 - od1) / 2e6:7.2f} MB (its directories: ext4 gives each a 4 KiB block; files are hardlinks)")
print(f"  a podman container costs   {(pd2 - pd1) / 2e6:7.2f} MB (an empty overlay upper layer)")
print("near-identical image: medium + one 4 KiB layer, pulled after medium")
print(f"  syscontainer grows         {(op - om) / 1e3:7.1f} kB = {(op - om) / om * 100:.3f}% of {om / 1e6:.1f} MB (target <= 1%)")
print(f"  podman grows               {(pp - pm) / 1e3:7.1f} kB = {(pp - pm) / pm * 100:.3f}% of {pm / 1e6:.1f} MB")
PY
echo
bench/generator.sh "$CARGO_TARGET_DIR/release/syscontainer-generator" "$SC"
