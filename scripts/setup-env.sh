#!/usr/bin/env bash
# Creates .venv with the app (and, with --dev, the test tools) and, on Debian/Ubuntu as root, the few system
# libraries Qt needs on a bare machine. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON=$candidate
      break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "Python 3.11 or newer is needed" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
  touch "$stamp"
fi
# pip compiles the dependencies it installs, but not an editable install's own code: without this, the first
# start compiles every module of the app (over a second on a slow machine). Quick when nothing changed.
.venv/bin/python -m compileall -q -j 0 comfystudio_desktop >/dev/null

# Qt's libraries load libEGL, libGL, fontconfig and xkbcommon even offscreen, and its X11 plugin needs the xcb
# libraries for a real window; a bare Debian lacks them.
needs_libs=0
.venv/bin/python -c 'import PySide6.QtGui' >/dev/null 2>&1 || needs_libs=1
if [ "${1:-}" != "--dev" ] && command -v ldconfig >/dev/null 2>&1 && ! ldconfig -p | grep -q 'libxcb-cursor.so.0'; then
  needs_libs=1
fi
if [ "$needs_libs" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libegl1 libgl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3 libglib2.0-0 \
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 \
      libxcb-render-util0 libxcb-image0 >/dev/null
  else
    echo "Qt needs system libraries (libEGL, libGL, fontconfig, xkbcommon); install them with your package manager" >&2
  fi
fi
