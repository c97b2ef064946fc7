"""A stand-in for ComfyUI's `main.py` in managed-mode tests: runs the fake ComfyUI with the launcher's arguments.

The app starts it as `python fake_comfy_main.py --listen 127.0.0.1 --port N [comfy_args...]`, exactly as it would
start ComfyUI, so the supervisor's real managed-mode code path runs against the fake.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    runpy.run_module("tests.fake_comfyui", run_name="__main__", alter_sys=True)
