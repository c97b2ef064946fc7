"""Logging: one rotating file in the home's `logs/`, plus stderr."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

__all__ = ["HANDLER_MARKER", "LOG_FILE_NAME", "configure_logging"]

LOG_FILE_NAME = "comfystudio.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d:%(threadName)s] %(message)s"
#: The attribute set on the handlers `configure_logging` attaches (a second call replaces them, nothing else).
HANDLER_MARKER = "_comfystudio_handler"


def configure_logging(logs_dir: Path, *, level: int = logging.INFO, stderr: bool = True,
                      stderr_level: int | None = None) -> Path:
    """Attach the app's handlers to the root logger once per process; return the log file path.

    The file gets everything from `level` up; stderr from `stderr_level` (default: the same). When the log file
    cannot be written (read-only home, full disk) this says so once on stderr and logs to stderr only, instead of a
    "--- Logging error ---" for every line.
    """
    log_file = logs_dir / LOG_FILE_NAME
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, HANDLER_MARKER, False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    problem = _unwritable(log_file)
    if problem is None:
        file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=5 * 1024 * 1024, backupCount=5,
                                                            encoding="utf-8", delay=True)
        file_handler.setLevel(level)
        handlers.append(file_handler)
    elif sys.stderr is not None:
        print(f"comfystudio-desktop: warning: cannot write the log file {str(log_file)!r} ({problem}); "
              "logging to the terminal only", file=sys.stderr)
        stderr, stderr_level = True, level if stderr_level is None else min(level, stderr_level)
    if stderr and sys.stderr is not None:  # a windowed frozen app has no stderr
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(stderr_level if stderr_level is not None else level)
        handlers.append(console)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        setattr(handler, HANDLER_MARKER, True)
        root.addHandler(handler)
    root.setLevel(min(level, stderr_level if stderr_level is not None else level))
    # Third-party chatter at INFO would drown our one-line-per-event log.
    for noisy in ("urllib3", "websocket", "PIL", "asyncio", "qasync"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file


def _unwritable(log_file: Path) -> str | None:
    """Why `log_file` cannot be appended to, or None when it can (the folder is created if missing)."""
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8"):
            pass
    except (OSError, ValueError) as exc:
        return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return None
