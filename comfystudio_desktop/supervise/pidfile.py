"""Pid files that name a process by pid *and* start time, so a reused pid is never mistaken for ours."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["PidRecord", "is_ours", "read_pidfile", "remove_pidfile", "write_pidfile"]

log = logging.getLogger(__name__)

# psutil's create_time is a float derived from clock ticks; allow for rounding between reads.
_START_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True, slots=True)
class PidRecord:
    """Who a pid file says runs: pid, its start time, and anything else the owner wants kept."""

    pid: int
    create_time: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, pid: int, **extra: Any) -> PidRecord:
        """Record a running process by pid (reads its start time now)."""
        return cls(pid=pid, create_time=psutil.Process(pid).create_time(), extra=dict(extra))


def write_pidfile(path: Path, record: PidRecord) -> None:
    """Write atomically (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(record), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_pidfile(path: Path) -> PidRecord | None:
    """The record, or None when the file is missing or unreadable (a broken file is logged, not fatal)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PidRecord(pid=int(data["pid"]), create_time=float(data["create_time"]),
                         extra=dict(data.get("extra") or {}))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("Ignoring unreadable pid file %s: %s", path, exc)
        return None


def remove_pidfile(path: Path, record: PidRecord | None = None) -> None:
    """Remove the file; with `record`, only if it still names that process."""
    if record is not None and read_pidfile(path) != record:
        return
    path.unlink(missing_ok=True)


def is_ours(record: PidRecord) -> bool:
    """True if the process the record names is alive and is the same process (same start time)."""
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - record.create_time) <= _START_TIME_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
