#!/usr/bin/env bash
# CI stage: the Windows path, under Wine with Windows CPython 3.11 (../shared/wine/README.md: setup and traps).
#   (a) the test suite under Windows CPython (tests that need what Wine lacks are excluded with their reason, in
#       the table in tests/conftest.py; pytest lists every one of them)
#   (b) the CLI story: submit, status, kill redis-server.exe hard, the queued job still there after a restart,
#       `redis stop`, `self-test`
#   (c) the PyInstaller build from build.spec, then the frozen self-test of both executables and a frozen
#       submit/status.
# Any failure fails the stage. Works on a copy of the checkout (resources/bin gets the Windows Redis, build/ and
# dist/ land there) and on a hard-linked copy of the Windows Python (its .pth names that copy), so neither this
# checkout nor the machine's shared /tmp/wine-py311 is changed.
#   bash scripts/ci-windows.sh [a|b|c ...] [-- pytest args for (a), e.g. test files]   (default: all three parts)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
shared=${CS_SHARED:-$repo/../shared}
parts=""
while [ $# -gt 0 ] && [ "$1" != -- ]; do parts+=" $1"; shift; done
[ $# -gt 0 ] && shift   # the rest goes to pytest
parts=${parts:-a b c}
wpy_shared=/tmp/wine-py311
cache=${CS_CI_CACHE:-/tmp/comfystudio-ci-cache}   # kept between runs: win_amd64 wheels, the Windows Python with them
wheels=$cache/wine-wheels-cp311
redis_dir=/tmp/wine-redis   # setup.sh copies the Windows Redis 8.8.0 binaries there (README: why not 5.0.14.1)
export WINEPREFIX=/tmp/wine-prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# redis-server.exe calls SymInitialize (for its crash report) at start, and Wine's dbghelp then reads the debug
# information of every Wine DLL and Unix library in the process: ~1 s of each server start, and the suite starts
# hundreds. DBGHELP_NOLIVE makes Wine's dbghelp skip the live process (start 1.3 s -> 0.4 s); a crash report then
# lacks symbols. Windows' own dbghelp loads symbols lazily and needs no such help.
export DBGHELP_NOLIVE=1
t0=$(date +%s)
say() { echo "[windows $(( $(date +%s) - t0 ))s] $*"; }
wpath() { local p; p=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); echo "Z:${p//\//\\}"; }

say "setting up Wine ($shared/wine/setup.sh)"
bash "$shared/wine/setup.sh"

work=$(mktemp -d /tmp/comfystudio-ci-windows.XXXXXX)
cleanup() {
  # A failed step may leave a detached redis-server.exe of ours: stop the servers of our homes, by their pid files.
  for pidfile in "$work"/home*/redis/redis-server.pid.json; do
    [ -f "$pidfile" ] || continue
    pid=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["pid"]))' "$pidfile" 2>/dev/null) || continue
    python3 "$shared/wine/wrun.py" 30 /dev/null -- wine taskkill /F /PID "$pid" >/dev/null 2>&1 || true
  done
  # And any redis-server.exe run from our own copies (a self-test's server lives in a temporary home): its command
  # line names this stage's folder, so it is provably ours.
  for pid in $(pgrep -f "$(basename "$work").*redis-server\.exe" || true); do
    echo "stopping a redis-server.exe this stage left running: pid $pid" >&2
    kill -9 "$pid" 2>/dev/null || true
  done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
log=$work/wine.log
wrun() { local timeout=$1; shift; python3 "$shared/wine/wrun.py" "$timeout" "$log" -- "$@"; }

# The Windows Python: a hard-linked copy of setup.sh's plus the project's own requirements (pyproject's
# dependencies and the dev extras used here, markers evaluated for win32), so a dependency added to pyproject is
# tested here without touching this script. `pip download` evaluates the dependencies' own markers for this Linux
# machine, so the win32-only ones of pytest, click and PyInstaller are named as well. That Python is kept in the
# cache, keyed by the requirements and setup.sh's Python (installing them under Wine takes 1-2 min), and each
# run works on a hard-linked copy of it: its files are never modified in place (pip and Python write new files,
# and the .pth below is our own).
mapfile -t reqs < <("$repo/.venv/bin/python" "$repo/scripts/ci-windows-reqs.py" "$repo/pyproject.toml" 3.11)
reqs+=(colorama "pefile>=2022.5.30,!=2024.8.26" "pywin32-ctypes>=0.2.1")
# numpy (pyqtgraph's, for the Monitor dock's charts) from 2.1 on calls ucrtbase's crealf, which Wine 8 lacks: the
# import aborts the interpreter ("unimplemented function ucrtbase.dll.crealf"). Real Windows has it, so pyproject
# does not pin numpy; here 2.0.x (still within pyqtgraph's numpy>=1.25) runs the same code paths.
reqs+=("numpy<2.1")
key=$( { printf '%s\n' "${reqs[@]}"; stat -c '%i %Y' "$wpy_shared/python.exe"; } | sha256sum | cut -c1-16)
wpy=$cache/wine-py311-$key
if [ ! -f "$wpy/.complete" ]; then
  say "installing the project's requirements into a Windows Python ($wpy)"
  rm -rf "$wpy.tmp" && mkdir -p "$cache" && cp -al "$wpy_shared" "$wpy.tmp"
  mkdir -p "$wheels"
  pip download -q --platform win_amd64 --python-version 3.11 --implementation cp --only-binary=:all: \
      -d "$wheels" "${reqs[@]}" 2>&1 | grep -v '^WARNING: Location' || true
  wrun 900 wine "$wpy.tmp/python.exe" -m pip install -q --no-index --isolated --no-warn-script-location \
      --find-links "$(wpath "$wheels")" "${reqs[@]}"
  touch "$wpy.tmp/.complete" && rm -rf "$wpy" && mv "$wpy.tmp" "$wpy"
fi
say "Windows Python in $work/py"
cp -al "$wpy" "$work/py"

say "copy of the checkout in $work/src"
mkdir -p "$work/src"
tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist --exclude=./resources/bin \
    --exclude='__pycache__' -cf - . | tar -C "$work/src" -xf -
ln -s "$shared" "$work/shared"   # the tests read ../shared/comfyui (ComfyUI's recorded exchanges)
mkdir -p "$work/src/resources/bin"
cp "$redis_dir/redis-server.exe" "$redis_dir/redis-check-aof.exe" "$work/src/resources/bin/"
printf '%s\r\n' "$(wpath "$work/src")" > "$work/py/Lib/site-packages/comfystudio-ci-checkout.pth"
# No help for psutil here: under Wine its Process.name()/exe() fail (WinError 87), as they can with AccessDenied on
# Windows, and the app must prove its redis-server without them, as the frozen app does.
cd "$work/src"
py="$work/py/python.exe"
export WINEQT_QPA_PLATFORM=offscreen   # Wine passes WINE<name> on as <name>; it drops QT_* itself
# The prefix has no Windows fonts: Qt's offscreen platform reads this folder instead (the DejaVu fonts the Linux run
# uses), rather than warning that it finds none and measuring widgets with a fallback.
fonts=/usr/share/fonts/truetype/dejavu
[ -d "$fonts" ] || { apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null; fonts=/usr/share/fonts/truetype/dejavu; }
export WINEQT_QPA_FONTDIR="$(wpath "$fonts")"
export PYTHONUTF8=1

timings=()
stage_start=0
begin() { stage_start=$(date +%s); say "== $1"; }
end() { timings+=("$1 $(( $(date +%s) - stage_start ))s"); say "$1 done in $(( $(date +%s) - stage_start ))s"; }

# -- (a) the test suite -------------------------------------------------------------------------------------------
if [[ " $parts " == *" a "* ]]; then
  begin "pytest under Wine"
  # -m "not build": (c) below builds and checks the frozen app under Wine with the Windows executables' own names.
  # The suite runs as $shares pytest processes side by side, each on every n-th test (`--share K/N`, tests/conftest.py)
  # with its own temporary folder: under Wine much of a test's time is spent waiting on process start-up, so two
  # processes on two cores nearly halve the wall time. Given pytest arguments run as one process.
  shares=${CS_WINE_SHARES:-2}
  pids=()
  run_share() {  # $1: its number, then its pytest arguments; in the background
    local i=$1; shift
    python3 "$shared/wine/wrun.py" 1800 "$work/pytest-$i.log" -- wine "$py" -m pytest -q -p no:cacheprovider \
        -m "not build" -o junit_family=xunit2 --junitxml="$(wpath "$work/junit-$i.xml")" \
        --progress-log="$(wpath "$work/progress-$i.log")" --basetemp="$(wpath "$work/pytest-tmp-$i")" "$@" \
        > /dev/null &
    pids+=($!)
  }
  # A process Wine kills on a page fault may still exit 0, and writes no results: what it ran and failed is read
  # from its progress log, and the tests it did not get to run once more in a process of their own.
  after_crash() {  # $1: the share's number
    local i=$1
    python3 - "$work/progress-$i.log" "$work/rerun-$i.txt" <<'EOF2'
import sys
lines = [line.rstrip("\r\n").split("\t") for line in open(sys.argv[1], encoding="utf-8")] if len(sys.argv) > 1 else []
collected = [f[1] for f in lines if f[0] == "collected"]
ran = {f[1] for f in lines if f[0] == "ran"}
failures = [f[1:] for f in lines if f[0] == "failed"]  # when, test id, why
failed = sorted({f[1] for f in failures})
rest = [t for t in collected if t not in ran]
open(sys.argv[2], "w", encoding="utf-8").write("".join(t + "\n" for t in rest))
print(f"it ran {len(ran)} of {len(collected)} tests before it died; {len(failed)} failed: {failed}; "
      f"the crash came in or after: {rest[0] if rest else '(none)'}")
for when, test, *why in failures:
    print(f"  failed ({when}) {test}: {why[0] if why else '?'}")
sys.exit(1 if failed or not collected else 0)
EOF2
  }
  if [ $# -gt 0 ]; then
    run_share 1 "$@"
  else
    for i in $(seq 1 "$shares"); do run_share "$i" --share "$i/$shares"; done
  fi
  rc=0
  for i in "${!pids[@]}"; do
    code=0; wait "${pids[$i]}" || code=$?
    n=$((i + 1))
    echo "-- pytest share $n of ${#pids[@]} (exit code $code):"
    cat "$work/pytest-$n.log"
    [ "$code" -eq 0 ] || rc=$code
    if [ ! -s "$work/junit-$n.xml" ]; then
      echo "-- pytest share $n ended without its results (a crash):"
      after_crash "$n" || rc=1
      if [ -s "$work/rerun-$n.txt" ]; then
        echo "-- the $(wc -l < "$work/rerun-$n.txt") tests share $n did not get to, once more:"
        code=0
        python3 "$shared/wine/wrun.py" 1800 "$work/pytest-$n-rerun.log" -- wine "$py" -m pytest -q \
            -p no:cacheprovider -m "not build" -o junit_family=xunit2 --junitxml="$(wpath "$work/junit-$n-rerun.xml")" \
            --only-ids="$(wpath "$work/rerun-$n.txt")" --basetemp="$(wpath "$work/pytest-tmp-$n-rerun")" \
            > /dev/null || code=$?
        cat "$work/pytest-$n-rerun.log"
        [ "$code" -eq 0 ] && [ -s "$work/junit-$n-rerun.xml" ] || rc=1
      fi
    fi
  done
  python3 - "$work"/junit-*.xml <<'EOF'
import sys, xml.etree.ElementTree as ET
total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
for name in sys.argv[1:]:
    suite = ET.parse(name).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    for key in total:
        total[key] += float(suite.attrib[key]) if key == "time" else int(suite.attrib[key])
print("windows pytest: {tests} tests, {failures} failed, {errors} errors, {skipped} skipped, {time:.0f} s of test "
      "time in {n} processes".format(n=len(sys.argv) - 1, **total))
EOF
  [ "$rc" -eq 0 ] || { echo "the test suite failed under Wine (exit code $rc)" >&2; exit "$rc"; }
  end "pytest"
fi

# -- (b) the CLI story --------------------------------------------------------------------------------------------
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }
redis_pid() { python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["pid"]))' "$1/redis/redis-server.pid.json"; }
cli_story() {  # $1: name, $2: home, then the command (python -m comfystudio_desktop, or the frozen cli)
  local name=$1 home=$2; shift 2
  local whome; mkdir -p "$home"; whome=$(wpath "$home")
  say "$name: submit"
  job=$(wrun 180 "$@" --home "$whome" submit --prompt "a lighthouse at dusk, Jérôme's test" --json | tr -d '\r' \
        | json_field job_id)
  say "$name: status of $job"
  status=$(wrun 120 "$@" --home "$whome" status "$job" --json | tr -d '\r' | json_field status)
  [ "$status" = queued ] || { echo "$name: expected status queued, got $status" >&2; return 1; }
  pid=$(redis_pid "$home")
  say "$name: taskkill /F redis-server.exe pid $pid"
  wrun 60 wine taskkill /F /PID "$pid"
  # The next command finds the server gone, starts a new one on the same append-only file.
  status=$(wrun 180 "$@" --home "$whome" status "$job" --json | tr -d '\r' | json_field status)
  [ "$status" = queued ] || { echo "$name: after the kill, expected queued, got $status" >&2; return 1; }
  [ "$(redis_pid "$home")" != "$pid" ] || { echo "$name: redis-server was not restarted" >&2; return 1; }
  pid=$(redis_pid "$home")
  say "$name: the job survived the kill; redis stop (pid $pid)"
  wrun 120 "$@" --home "$whome" redis stop
  running=$(wrun 120 "$@" --home "$whome" redis status --json | tr -d '\r' | json_field running)
  [ "$running" = False ] || { echo "$name: redis-server still running after 'redis stop'" >&2; return 1; }
  # Not only "not running" by the app's own account: the process is gone.
  wrun 60 wine "$py" -c "import psutil, sys; sys.exit(psutil.pid_exists($pid))" \
      || { echo "$name: redis-server.exe pid $pid still exists after 'redis stop'" >&2; return 1; }
}

if [[ " $parts " == *" b "* ]]; then
  begin "CLI story under Wine"
  # A home under a user name with accents and spaces, as `C:\Users\Jérôme Müller\...` is on Windows.
  cli_story "cli" "$work/home-cli/Jérôme Müller/AppData/Local/ComfyStudio" wine "$py" -m comfystudio_desktop
  say "cli: self-test"
  wrun 300 wine "$py" -m comfystudio_desktop self-test
  end "cli"
fi

# -- (c) the PyInstaller build and the frozen executables ---------------------------------------------------------
if [[ " $parts " == *" c "* ]]; then
  begin "PyInstaller build under Wine"
  wrun 1200 wine "$py" -m PyInstaller --noconfirm --clean --log-level WARN \
      --distpath "$(wpath "$work/src/dist")" --workpath "$(wpath "$work/src/build")" build.spec \
      | grep -v 'api-ms-win-\|ucrtbase' || true   # README: ~300 harmless warnings about Wine's CRT stubs
  dist=$work/src/dist/ComfyStudio
  [ -f "$dist/comfystudio-cli.exe" ] && [ -f "$dist/ComfyStudio.exe" ] || { echo "the build made no executables" >&2; exit 1; }
  [ -f "$dist/_internal/resources/bin/redis-server.exe" ] && [ -f "$dist/_internal/resources/bin/redis-check-aof.exe" ] \
      || { echo "the build bundles no redis-server.exe / redis-check-aof.exe" >&2; exit 1; }
  end "build"
  echo "one-folder size: $(du -sm "$dist" | cut -f1) MB ($(find "$dist" -type f | wc -l) files)"

  begin "frozen executables under Wine"
  start=$(date +%s%N)
  wrun 120 wine "$dist/comfystudio-cli.exe" --version
  echo "frozen start (comfystudio-cli.exe --version, warm): $(( ($(date +%s%N) - start) / 1000000 )) ms"
  wrun 300 wine "$dist/comfystudio-cli.exe" self-test
  # The windowed executable has no console: only its exit code tells.
  wrun 300 wine "$dist/ComfyStudio.exe" --self-test
  say "ComfyStudio.exe --self-test: exit code 0"
  cli_story "frozen" "$work/home-frozen" wine "$dist/comfystudio-cli.exe"
  end "frozen"
fi

say "Windows stage passed: ${timings[*]}"
