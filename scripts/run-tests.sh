#!/usr/bin/env bash
# Set up (first run) and run the whole suite: ruff, mypy, the import layers (lint-imports), then pytest (offscreen Qt, real redis-server,
# the fake ComfyUI on loopback). Fails when pytest ran no test.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh --dev || exit 1
export QT_QPA_PLATFORM=offscreen

echo "== ruff"
.venv/bin/ruff check . || exit 1
echo "== mypy"
.venv/bin/mypy || exit 1
echo "== import layers"
.venv/bin/lint-imports --no-logo || exit 1
echo "== pytest"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
