"""Replacing a file atomically, also on Windows while another process is reading it."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["REPLACE_PATIENCE_S", "replace_file"]

#: How long a replace waits for readers of the target to close it (Windows only).
REPLACE_PATIENCE_S = 2.0


def replace_file(source: str | Path, target: str | Path, *, patience_s: float = REPLACE_PATIENCE_S) -> None:
    """`os.replace(source, target)`; on Windows retried while the target is open in another process.

    Windows refuses to replace a file that someone holds open without delete sharing (every file Python's `open`
    opens) with "Access denied". The readers here (a worker polling `config.json`, a command reading a pid file, a
    window showing an output) hold a file for moments, so waiting briefly is enough; after `patience_s` the last
    error is raised. Elsewhere a replace never fails that way and errors are raised at once.
    """
    deadline = time.monotonic() + patience_s
    pause = 0.005
    while True:
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if os.name != "nt" or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # a reader's open file, not a race in our code: nothing to wait on but time
        pause = min(pause * 2, 0.1)
