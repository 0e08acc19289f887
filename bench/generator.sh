#!/bin/bash
# Generator benchmark: syscontainer-generator on 0, 10 and 1000 records (each
# a declarative intent file and its state, as `syscontainer install` and
# `apply` leave them, and the generator's cache that syscontainer keeps,
# written here by `syscontainer reconcile`; "cold": the same records without
# the cache, as after an upgrade of syscontainer), side
# by side with systemd-fstab-generator on an fstab of 1000 entries (and an
# empty one), on the same tmpfs, in one run. Prints wall and CPU time per
# entry and the ratios, the no-records time, peak RSS against the issue 11
# targets (1000 records <= 0.3x fstab-generator, no records < 2.5 ms, RSS <
# 4 MiB), the load average, and the generator's shared libraries (no
# libostree, no TLS).
#
# Wall time: hyperfine without a shell (-N); the output directory is emptied
# before each run, untimed (--prepare), so removing the previous run's 2000
# files is counted for neither generator. The floors (built with cc when there
# is one) make the same tree with the fewest system calls and no parsing, the
# kernel's share that no generator working in one thread can avoid (the
# generator writes with a second thread; its CPU time counts both):
# bench/generator-floor-cache.c
# with the cache (list both directories, read the cache, two fstatat per
# container, write its units), bench/generator-floor.c without (read each
# state).
# CPU time (and a second wall time) comes from rounds that run every command
# once, in turn, so that load from others on a shared machine falls on all of
# them alike: prefer those figures there.
#
# Usage: bench/generator.sh [GENERATOR [SYSCONTAINER]]
#   (default target/release/syscontainer-generator and target/release/syscontainer)
set -euo pipefail
cd "$(dirname "$0")/.."
GEN=$(realpath "${1:-target/release/syscontainer-generator}")
SC=$(realpath "${2:-target/release/syscontainer}")
FSTAB_GEN=/lib/systemd/system-generators/systemd-fstab-generator
for c in hyperfine /usr/bin/time; do command -v $c >/dev/null || { apt-get install -y -qq hyperfine time >/dev/null; break; }; done
[ -x "$GEN" ] && [ -x "$SC" ] && [ -x "$FSTAB_GEN" ] || { echo "missing $GEN, $SC or $FSTAB_GEN" >&2; exit 1; }

B=$(mktemp -d /tmp/scbench.XXXXXX)
cleanup() { umount "$B" 2>/dev/null || true; rmdir "$B"; }
trap cleanup EXIT
mount -t tmpfs -o size=256m tmpfs "$B"

mkroot() {  # mkroot DIR N: N deployed declarative containers, each an intent file and its state
  local d=$1/etc/syscontainer; mkdir -p "$d/containers" "$d/state"
  python3 - "$d" "$2" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
tpl = "[Unit]\nDescription=Etcd Server\nAfter=network.target\n\n[Service]\nExecStart=$EXEC_START\nExecStop=$EXEC_STOP\nRestart=on-failure\nWorkingDirectory=$DESTDIR\nRuntimeDirectory=${NAME}\n\n[Install]\nWantedBy=multi-user.target\n"
for i in range(n):
    name = "svc%04d" % i
    intent = {"version": 1, "image": "registry.example/etcd:latest", "values": {"ETCD_NAME": name},
              "enabled": i % 2 == 0}
    r = {"version": 1, "name": name, "image": "registry.example/etcd:latest", "image_id": "sha256:" + "ab"*32,
         "deployment": "/var/lib/containers/atomic/%s.0" % name, "values": {"ETCD_NAME": name},
         "default_values": {"ETCD_DATA_DIR": "/var/lib/etcd", "ETCD_INITIAL_CLUSTER_STATE": "new"},
         "enabled": i % 2 == 0, "service_template": tpl, "uuid": "00000000-0000-4000-8000-%012d" % i}
    state = {"version": 1, "record": r, "applied": intent, "intentOwner": "admin"}
    ipath = "%s/containers/%s.json" % (d, name)
    open(ipath, "w").write(json.dumps(intent, indent=2))
    # The identity of the intent file it applied, as syscontainer records it
    # (install at once; an admin's file once it settled): the generator then
    # does not read the intent file while it is unchanged.
    st = os.stat(ipath)
    state["intentFile"] = {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                           "ctime": st.st_ctime_ns // 10**9, "ctimeNsec": st.st_ctime_ns % 10**9}
    open("%s/state/%s.json" % (d, name), "w").write(json.dumps(state, indent=2))
PY
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
mkroot "$B/r10" 10
mkroot "$B/r1000" 1000
cp -a "$B/r1000" "$B/cold1000"   # no cache
CACHE=etc/syscontainer/state/generator.cache
for r in r10 r1000; do
    SYSCONTAINER_ROOT=$B/$r "$SC" reconcile >/dev/null   # writes the cache
    [ -s "$B/$r/$CACHE" ] || { echo "syscontainer reconcile wrote no $B/$r/$CACHE" >&2; exit 1; }
done
mkdir -p "$B/r0/etc/syscontainer/containers"   # no records: an empty directory
for i in $(seq 1 1000); do echo "tmpfs /mnt/m$i tmpfs defaults,size=1m 0 0"; done >"$B/fstab"
: >"$B/fstab0"
mkdir -p "$B/out"
printf '#!/bin/sh\nrm -rf %s/out && mkdir %s/out\n' "$B" "$B" >"$B/reset"; chmod +x "$B/reset"
FLOOR="" FLOORC=""
if command -v cc >/dev/null && cc -O2 -o "$B/floor" bench/generator-floor.c && cc -O2 -o "$B/floorc" bench/generator-floor-cache.c; then
    FLOOR=$B/floor FLOORC=$B/floorc
fi

# hf NAME RUNS CMD...: one hyperfine benchmark, in the caller's environment.
hf() {
  local name=$1 runs=$2; shift 2
  hyperfine -N --style none --warmup 3 --runs "$runs" --prepare "$B/reset" \
    --export-json "$B/h-$name.json" -n "$name" "$*" >/dev/null 2>"$B/hf.err" \
    || { cat "$B/hf.err" >&2; exit 1; }
}
SYSCONTAINER_ROOT=$B/r10 hf ours-10 30 "$GEN" "$B/out"
SYSCONTAINER_ROOT=$B/r1000 hf ours-1000 30 "$GEN" "$B/out"
SYSCONTAINER_ROOT=$B/cold1000 hf cold-1000 30 "$GEN" "$B/out"
SYSTEMD_FSTAB=$B/fstab SYSTEMD_PROC_CMDLINE= hf fstab-1000 30 "$FSTAB_GEN" "$B/out" "$B/out" "$B/out"
if [ -n "$FLOOR" ]; then
    hf floor-1000 30 "$FLOORC" "$B/r1000/etc/syscontainer/containers" "$B/r1000/etc/syscontainer/state" "$B/r1000/$CACHE" "$B/out"
    hf floorcold-1000 30 "$FLOOR" "$B/r1000/etc/syscontainer/containers" "$B/r1000/etc/syscontainer/state" "$B/out"
fi
SYSCONTAINER_ROOT=$B/r0 hf ours-0 200 "$GEN" "$B/out"
SYSCONTAINER_ROOT=$B/missing hf ours-missing 200 "$GEN" "$B/out"
SYSTEMD_FSTAB=$B/fstab0 SYSTEMD_PROC_CMDLINE= hf fstab-0 200 "$FSTAB_GEN" "$B/out" "$B/out" "$B/out"
hf true 200 /bin/true

# CPU time (user+sys, from wait4's rusage) and wall time, interleaved: each
# round runs every command once, in turn, so that other load on the machine
# falls on all of them alike; medians of 30 rounds.
inter() {  # inter NAME ENV-ASSIGNMENT... -- CMD... [; NAME ...]: one JSON line per command
  python3 - "$B/out" "$@" <<'PY'
import json, os, shutil, statistics, sys, time
out, args = sys.argv[1], sys.argv[2:]
cmds = []
while args:
    j = args.index(";") if ";" in args else len(args)
    one, args = args[:j], args[j+1:]
    i = one.index("--")
    cmds.append((one[0], dict(a.split("=", 1) for a in one[1:i]), one[i+1:]))
wall = {n: [] for n, _, _ in cmds}; cpu = {n: [] for n, _, _ in cmds}
for _ in range(30):
    for name, env, argv in cmds:
        shutil.rmtree(out, ignore_errors=True); os.mkdir(out)
        t = time.perf_counter()
        with open(os.devnull, "w") as null:
            pid = os.posix_spawn(argv[0], argv, dict(os.environ, **env),
                                 file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1), (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
            _, _, ru = os.wait4(pid, 0)
        wall[name].append(time.perf_counter() - t); cpu[name].append(ru.ru_utime + ru.ru_stime)
print(json.dumps({n: {"wall": statistics.median(wall[n]), "cpu": statistics.median(cpu[n])} for n, _, _ in cmds}))
PY
}
FLOOR_CMD=()
[ -z "$FLOOR" ] || FLOOR_CMD=(";" floor -- "$FLOORC" "$B/r1000/etc/syscontainer/containers" "$B/r1000/etc/syscontainer/state" "$B/r1000/$CACHE" "$B/out"
                              ";" floorcold -- "$FLOOR" "$B/r1000/etc/syscontainer/containers" "$B/r1000/etc/syscontainer/state" "$B/out")
inter ours-0 SYSCONTAINER_ROOT=$B/r0 -- "$GEN" "$B/out" \; \
  ours-10 SYSCONTAINER_ROOT=$B/r10 -- "$GEN" "$B/out" \; \
  ours-1000 SYSCONTAINER_ROOT=$B/r1000 -- "$GEN" "$B/out" \; \
  cold-1000 SYSCONTAINER_ROOT=$B/cold1000 -- "$GEN" "$B/out" \; \
  fstab-1000 SYSTEMD_FSTAB=$B/fstab SYSTEMD_PROC_CMDLINE= -- "$FSTAB_GEN" "$B/out" "$B/out" "$B/out" \; \
  fstab-0 SYSTEMD_FSTAB=$B/fstab0 SYSTEMD_PROC_CMDLINE= -- "$FSTAB_GEN" "$B/out" "$B/out" "$B/out" \
  "${FLOOR_CMD[@]}" >"$B/inter.json"

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rm -rf "$B/out"; mkdir "$B/out"
RSS_OURS_0=$(SYSCONTAINER_ROOT=$B/r0 rss "$GEN" "$B/out")
rm -rf "$B/out"; mkdir "$B/out"
RSS_OURS=$(SYSCONTAINER_ROOT=$B/r1000 rss "$GEN" "$B/out")
rm -rf "$B/out"; mkdir "$B/out"
RSS_FSTAB=$(SYSTEMD_FSTAB=$B/fstab rss "$FSTAB_GEN" "$B/out" "$B/out" "$B/out")
rm -rf "$B/out"; mkdir "$B/out"
SYSCONTAINER_ROOT=$B/r1000 "$GEN" "$B/out"
UNITS=$(ls "$B/out" | wc -l)
[ "$UNITS" = 1002 ] || { echo "expected 1000 units and 2 drop-in directories, found $UNITS entries" >&2; exit 1; }
rm -rf "$B/out2"; mkdir "$B/out2"
SYSCONTAINER_ROOT=$B/cold1000 "$GEN" "$B/out2"
diff -r "$B/out" "$B/out2" >/dev/null || { echo "the units with the cache differ from those without" >&2; exit 1; }

python3 - "$B" "$RSS_OURS" "$RSS_FSTAB" "$RSS_OURS_0" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, os, sys
b = sys.argv[1]
def mean(k):
    p = "%s/h-%s.json" % (b, k)
    return json.load(open(p))["results"][0]["mean"] if os.path.exists(p) else None
rss, rss_f, rss0 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
load0, load1 = sys.argv[5], sys.argv[6]
m = json.load(open(b + "/inter.json"))
ms = lambda k, what: m[k][what] * 1e3 if k in m else 0.0
c0, c10, c1000, cc1000, cf, cf0, cfl, cflc = (ms(k, "cpu") for k in ("ours-0", "ours-10", "ours-1000", "cold-1000", "fstab-1000", "fstab-0", "floor", "floorcold"))
o10, o1000, oc1000, f1000, fl, flc = mean("ours-10"), mean("ours-1000"), mean("cold-1000"), mean("fstab-1000"), mean("floor-1000"), mean("floorcold-1000")
o0, om, f0, tr = mean("ours-0"), mean("ours-missing"), mean("fstab-0"), mean("true")
def ok(good): return "met" if good else "NOT met"
print("generator benchmark (tmpfs; hyperfine -N, the output directory emptied before each run, untimed; load average %s at the start, %s at the end)" % (load0, load1))
print("  syscontainer-generator,   10 records: %7.2f ms  (%.1f us/entry)" % (o10*1e3, o10*1e6/10))
print("  syscontainer-generator, 1000 records: %7.2f ms  (%.1f us/entry)" % (o1000*1e3, o1000*1e6/1000))
print("  syscontainer-generator, 1000 records, cold (no cache): %7.2f ms  (%.1f us/entry)" % (oc1000*1e3, oc1000*1e6/1000))
print("  systemd-fstab-generator, 1000 entries: %7.2f ms  (%.1f us/entry)" % (f1000*1e3, f1000*1e6/1000))
if fl: print("  floor (generator-floor-cache.c, same tree, one thread), 1000: %7.2f ms  (%.1f us/entry); without the cache (generator-floor.c): %.2f ms" % (fl*1e3, fl*1e6/1000, flc*1e3))
print("  ratio per entry (ours / fstab-generator), 1000: %.2fx  (target <= 0.30x: %s%s); cold %.2fx" % (o1000 / f1000, ok(o1000 / f1000 <= 0.3),
      "; floor / fstab-generator %.2fx, ours / floor %.2fx" % (fl / f1000, o1000 / fl) if fl else "", oc1000 / f1000))
print("  no records: %.2f ms (empty directory), %.2f ms (no directory)  (target < 2.5 ms: %s); fstab-generator, empty fstab: %.2f ms; ratio %.2fx; /bin/true %.2f ms"
      % (o0*1e3, om*1e3, ok(max(o0, om) < 2.5e-3), f0*1e3, o0 / f0, tr*1e3))
print("  peak RSS: ours %d KiB with 1000 records, %d KiB with none (target < 4096 KiB: %s), fstab-generator %d KiB" % (rss, rss0, ok(max(rss, rss0) < 4096), rss_f))
print("CPU time (user+sys of all threads, rusage; each round runs every command once, interleaved; median of 30 rounds; load average %s at the end):" % load1)
print("  syscontainer-generator,    0 records: %7.2f ms" % c0)
print("  syscontainer-generator,   10 records: %7.2f ms" % c10)
print("  syscontainer-generator, 1000 records: %7.2f ms  (%.1f us/entry)" % (c1000, c1000 * 1e3 / 1000))
print("  syscontainer-generator, 1000 records, cold: %7.2f ms  (%.1f us/entry)" % (cc1000, cc1000 * 1e3 / 1000))
print("  systemd-fstab-generator, 1000 entries: %7.2f ms  (%.1f us/entry)" % (cf, cf * 1e3 / 1000))
print("  systemd-fstab-generator, empty fstab:  %7.2f ms" % cf0)
if cfl: print("  floor (generator-floor-cache.c), 1000: %7.2f ms  (%.1f us/entry); without the cache %.2f ms" % (cfl, cfl * 1e3 / 1000, cflc))
print("  ratio per entry (ours / fstab-generator), 1000: %.2fx%s; cold %.2fx" % (c1000 / cf, "  (floor / fstab-generator %.2fx, ours / floor %.2fx)" % (cfl / cf, c1000 / cfl) if cfl else "", cc1000 / cf))
print("  ratio, no records (ours / fstab-generator, empty fstab): %.2fx" % (c0 / cf0))
w = lambda k: ms(k, "wall")
print("wall time, interleaved (median of 30 rounds, including the spawn from Python):")
print("  1000 records: ours %.2f ms, fstab-generator %.2f ms, ratio %.2fx%s; cold %.2f ms, %.2fx" % (w("ours-1000"), w("fstab-1000"), w("ours-1000") / w("fstab-1000"),
      "; floor %.2f ms, floor / fstab-generator %.2fx" % (w("floor"), w("floor") / w("fstab-1000")) if "floor" in m else "",
      w("cold-1000"), w("cold-1000") / w("fstab-1000")))
print("  no records: ours %.2f ms (target < 2.5 ms: %s), fstab-generator, empty fstab %.2f ms, ratio %.2fx" % (w("ours-0"), ok(w("ours-0") < 2.5), w("fstab-0"), w("ours-0") / w("fstab-0")))
PY
echo "  ldd $GEN:"; ldd "$GEN" | sed 's/^/    /'
tests/generator-links.sh "$GEN" | sed "s/^/  /"
