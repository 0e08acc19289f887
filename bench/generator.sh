#!/bin/bash
# Generator benchmark: syscontainer-generator on 10 and 1000 records, side by
# side with systemd-fstab-generator on an fstab of 1000 entries, on the same
# tmpfs, in one run. Prints time per entry and the ratio, peak RSS, and the
# generator's shared libraries (no libostree, no TLS).
#
# Usage: bench/generator.sh [GENERATOR]   (default target/release/syscontainer-generator)
set -euo pipefail
cd "$(dirname "$0")/.."
GEN=$(realpath "${1:-target/release/syscontainer-generator}")
FSTAB_GEN=/lib/systemd/system-generators/systemd-fstab-generator
for c in hyperfine /usr/bin/time; do command -v $c >/dev/null || { apt-get install -y -qq hyperfine time >/dev/null; break; }; done
[ -x "$GEN" ] && [ -x "$FSTAB_GEN" ] || { echo "missing $GEN or $FSTAB_GEN" >&2; exit 1; }

B=$(mktemp -d /tmp/scbench.XXXXXX)
cleanup() { umount "$B" 2>/dev/null || true; rmdir "$B"; }
trap cleanup EXIT
mount -t tmpfs -o size=256m tmpfs "$B"

mkroot() {  # mkroot DIR N
  local d=$1/etc/syscontainer/containers; mkdir -p "$d"
  python3 - "$d" "$2" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
tpl = "[Unit]\nDescription=Etcd Server\nAfter=network.target\n\n[Service]\nExecStart=$EXEC_START\nExecStop=$EXEC_STOP\nRestart=on-failure\nWorkingDirectory=$DESTDIR\nRuntimeDirectory=${NAME}\n\n[Install]\nWantedBy=multi-user.target\n"
for i in range(n):
    name = "svc%04d" % i
    r = {"version": 1, "name": name, "image": "registry.example/etcd:latest", "image_id": "sha256:" + "ab"*32,
         "deployment": "/var/lib/containers/atomic/%s.0" % name, "values": {"ETCD_NAME": name},
         "default_values": {"ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_INITIAL_CLUSTER_STATE": "new"},
         "enabled": i % 2 == 0, "service_template": tpl, "uuid": "00000000-0000-4000-8000-%012d" % i}
    open("%s/%s.json" % (d, name), "w").write(json.dumps(r, indent=2))
PY
}
mkroot "$B/r10" 10
mkroot "$B/r1000" 1000
for i in $(seq 1 1000); do echo "tmpfs /mnt/m$i tmpfs defaults,size=1m 0 0"; done >"$B/fstab"
mkdir -p "$B/out"

hyperfine --warmup 3 --runs 30 --export-json "$B/h.json" \
  -n ours-10   "rm -rf $B/out; mkdir $B/out; SYSCONTAINER_ROOT=$B/r10 $GEN $B/out" \
  -n ours-1000 "rm -rf $B/out; mkdir $B/out; SYSCONTAINER_ROOT=$B/r1000 $GEN $B/out" \
  -n fstab-1000 "rm -rf $B/out; mkdir $B/out; SYSTEMD_FSTAB=$B/fstab SYSTEMD_PROC_CMDLINE= $FSTAB_GEN $B/out $B/out $B/out" \
  -n shell-baseline "rm -rf $B/out; mkdir $B/out" >/dev/null

# CPU time (user+sys) per run, from getrusage: much less sensitive than wall
# time to other load on the machine.
cpu() {  # cpu ENV-ASSIGNMENT... -- CMD...
  python3 - "$B/out" "$@" <<'PY'
import os, resource, shutil, subprocess, sys
out, args = sys.argv[1], sys.argv[2:]
i = args.index("--"); env = dict(os.environ, **dict(a.split("=", 1) for a in args[:i])); cmd = args[i+1:]
runs = 30
t = 0.0
for _ in range(runs):
    shutil.rmtree(out, ignore_errors=True); os.mkdir(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    t += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print("%.3f" % (t / runs * 1e3))
PY
}
CPU_OURS_10=$(cpu SYSCONTAINER_ROOT=$B/r10 -- "$GEN" "$B/out")
CPU_OURS=$(cpu SYSCONTAINER_ROOT=$B/r1000 -- "$GEN" "$B/out")
CPU_FSTAB=$(cpu SYSTEMD_FSTAB=$B/fstab SYSTEMD_PROC_CMDLINE= -- "$FSTAB_GEN" "$B/out" "$B/out" "$B/out")

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rm -rf "$B/out"; mkdir "$B/out"
RSS_OURS=$(SYSCONTAINER_ROOT=$B/r1000 rss "$GEN" "$B/out")
rm -rf "$B/out"; mkdir "$B/out"
RSS_FSTAB=$(SYSTEMD_FSTAB=$B/fstab rss "$FSTAB_GEN" "$B/out" "$B/out" "$B/out")
UNITS=$(ls "$B/out" | wc -l)

python3 - "$B/h.json" "$RSS_OURS" "$RSS_FSTAB" "$CPU_OURS_10" "$CPU_OURS" "$CPU_FSTAB" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["shell-baseline"]["mean"]
def net(k): return max(r[k]["mean"] - base, 1e-9)
o10, o1000, f1000 = net("ours-10"), net("ours-1000"), net("fstab-1000")
print("generator benchmark (tmpfs, mean of 30 runs, minus the sh+rm+mkdir baseline of %.2f ms)" % (base*1e3))
print("  syscontainer-generator,   10 records: %7.2f ms  (%.1f us/entry)" % (o10*1e3, o10*1e6/10))
print("  syscontainer-generator, 1000 records: %7.2f ms  (%.1f us/entry)" % (o1000*1e3, o1000*1e6/1000))
print("  systemd-fstab-generator, 1000 entries: %7.2f ms  (%.1f us/entry)" % (f1000*1e3, f1000*1e6/1000))
print("  ratio per entry (ours / fstab-generator), 1000: %.2fx" % (o1000 / f1000))
print("  peak RSS: ours %s KiB, fstab-generator %s KiB" % (sys.argv[2], sys.argv[3]))
c10, c1000, cf = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
print("CPU time (user+sys, getrusage, mean of 30 runs; load average %s):" % sys.argv[7])
print("  syscontainer-generator,   10 records: %7.2f ms" % c10)
print("  syscontainer-generator, 1000 records: %7.2f ms  (%.1f us/entry)" % (c1000, c1000 * 1e3 / 1000))
print("  systemd-fstab-generator, 1000 entries: %7.2f ms  (%.1f us/entry)" % (cf, cf * 1e3 / 1000))
print("  ratio per entry (ours / fstab-generator), 1000: %.2fx" % (c1000 / cf))
PY
echo "  ldd $GEN:"; ldd "$GEN" | sed 's/^/    /'
tests/generator-links.sh "$GEN" | sed "s/^/  /"
