#!/bin/bash
# systemd-analyze verify on every unit the generator makes from the golden
# cases and from every service template of the corpus (rendered with its
# manifest defaults plus values for variables without one). The static
# units in units/ name /usr/bin/syscontainer, so they are verified inside the
# system-test guest, where the package is installed.
#
# systemd is not PID 1 on the CI machines: verify runs in a private mount
# namespace with a tmpfs on /run (it writes /run/systemd/...), and the exec
# helper is bind-mounted at the path the units name.
#
# The CLI that declarative units run (ExecStartPre=.../syscontainer apply)
# is put at its path the same way, over an overlay of its directory.
#
# Usage: tests/verify-units.sh [GENERATOR [EXEC_HELPER [CLI]]]
set -euo pipefail
cd "$(dirname "$0")/.."
GEN=$(realpath "${1:-target/release/syscontainer-generator}")
HELPER=$(realpath "${2:-target/release/syscontainer-exec}")
CLI=$(realpath "${3:-$(dirname "$GEN")/syscontainer}")
for f in "$GEN" "$HELPER" "$CLI"; do [ -x "$f" ] || { echo "FAIL: $f is not built" >&2; exit 1; }; done
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze missing" >&2; exit 1; }
# The helper's path as the generator writes it (set at build time), from its
# own output: grepping the binary's strings breaks when literals are packed.
HELPER_PATH=$(SYSCONTAINER_ROOT=tests/golden/minimal/input SYSCONTAINER_LOG=stderr "$GEN" --dry-run 2>/dev/null |
  sed -n 's/^ExecStart=\(\/[^ ]*\/syscontainer-exec\) .*/\1/p' | head -1)
HELPER_PATH=${HELPER_PATH:-/usr/libexec/syscontainer-exec}
CLI_PATH=$(SYSCONTAINER_ROOT=tests/golden/declarative/input SYSCONTAINER_LOG=stderr "$GEN" --dry-run 2>/dev/null |
  sed -n 's/^ExecStartPre=\(\/[^ ]*\/syscontainer\) apply .*/\1/p' | head -1)
CLI_PATH=${CLI_PATH:-/usr/bin/syscontainer}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT

# 1. golden cases
for case in tests/golden/*/; do
  c=$(basename "$case"); mkdir -p "$W/units/$c"
  SYSCONTAINER_ROOT="$case/input" SYSCONTAINER_LOG=stderr "$GEN" "$W/units/$c" 2>/dev/null || true
done
# 2. the corpus: one record per service.template
python3 - "$W/corpus-root" <<'PY'
import json, os, re, sys, glob
root = sys.argv[1]
d = os.path.join(root, "etc/syscontainer/containers"); os.makedirs(d)
var = re.compile(r'\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))')
fixed = {"DESTDIR","NAME","EXEC_START","EXEC_STOP","EXEC_STARTPRE","EXEC_STOPPOST","HOST_UID","HOST_GID","IMAGE_ID","IMAGE_NAME",
         "RUN_DIRECTORY","STATE_DIRECTORY","CONF_DIRECTORY","PIDFILE","UUID","ALL_PROCESS_CAPABILITIES","RUNTIME"}
for tpl in sorted(glob.glob("tests/corpus/*/*/service.template") + glob.glob("tests/corpus/*/*/exports/service.template")):
    img = tpl.split("/")[3]
    name = re.sub(r'[^A-Za-z0-9_.:-]', '-', img)
    text = open(tpl).read()
    mf = os.path.join(os.path.dirname(tpl), "manifest.json")
    defaults = json.load(open(mf)).get("defaultValues", {}) if os.path.exists(mf) else {}
    used = {a or b for a, b in var.findall(text.replace("$$", ""))}
    values = {v: "set-" + v.lower() for v in used if v not in defaults and v not in fixed}
    rec = {"version": 1, "name": name, "image": "corpus/" + img, "image_id": "sha256:" + "0"*64,
           "deployment": "/var/lib/containers/atomic/%s.0" % name, "values": values,
           "default_values": defaults, "service_template": text}
    json.dump(rec, open(os.path.join(d, name + ".json"), "w"))
PY
mkdir -p "$W/units/corpus"
SYSCONTAINER_ROOT="$W/corpus-root" SYSCONTAINER_LOG=stderr "$GEN" "$W/units/corpus"

# Known defects of corpus images, accepted only with exactly this message:
#  - azure runs the host's /usr/bin/python, which Debian 12 does not have;
#  - atomic's own test image uses Restart=on-crash, which systemd never had.
KNOWN='azure.service: Command /usr/bin/python is not executable|system-container-files.service:[0-9]*: Failed to parse service restart specifier, ignoring: on-crash'

export W HELPER HELPER_PATH CLI CLI_PATH KNOWN
unshare -m --propagation private bash -c '
  set -u
  mount -t tmpfs tmpfs /run
  d=$(dirname "$HELPER_PATH")
  if [ ! -d "$d" ]; then echo "FAIL: $d does not exist on this host"; exit 1; fi
  mount -t tmpfs tmpfs "$d"; cp "$HELPER" "$HELPER_PATH"
  d=$(dirname "$CLI_PATH")
  if [ ! -x "$CLI_PATH" ]; then
    mkdir -p "$W/cli-upper" "$W/cli-work"
    mount -t overlay -o "lowerdir=$d,upperdir=$W/cli-upper,workdir=$W/cli-work" overlay "$d" || { echo "FAIL: cannot overlay $d"; exit 1; }
    cp "$CLI" "$CLI_PATH"
  fi
  fails=0; n=0
  for u in $(find "$W/units" -type f \( -name "*.service" -o -name "*.target" -o -name "*.timer" \) | sort); do
    n=$((n+1))
    out=$(systemd-analyze verify --man=no "$u" 2>&1); rc=$?
    # Only messages about this unit matter; systemd also checks the host.
    mine=$(printf "%s\n" "$out" | grep -F "$(basename "$u")" || true)
    if [ $rc -ne 0 ] || [ -n "$mine" ]; then
      case "$u" in */corpus/*)
        if [ -z "$(printf "%s\n" "$mine" | grep -Ev "$KNOWN")" ]; then echo "KNOWN: $mine"; continue; fi;;
      esac
      echo "FAIL: $u (rc=$rc)"; printf "%s\n" "$out" | sed "s/^/    /"; fails=$((fails+1))
    fi
  done
  echo "verified $n units, $fails failed"
  [ $fails -eq 0 ]
'
