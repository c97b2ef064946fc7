#!/usr/bin/env bash
# Set up (first run) and start ComfyStudio Desktop. Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
exec .venv/bin/comfystudio-desktop "$@"
