"""Pid files that name a process by pid *and* start time, so a reused pid is never mistaken for ours.

A pid file is outside data (anyone may edit it, a crash may truncate it): it is parsed with exact types, and what
it names is signalled only when the process can be proven ours — same start time *and* an identity check of the
running program (`Identity`), because a pid plus its real start time can be copied from any process.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from comfystudio_desktop.file_replace import replace_file

__all__ = [
    "Identity",
    "PidRecord",
    "PidfileError",
    "is_ours",
    "load_pidfile",
    "read_pidfile",
    "remove_pidfile",
    "same_path",
    "started_as",
    "write_pidfile",
]

log = logging.getLogger(__name__)

# psutil's create_time is a float derived from clock ticks; allow for rounding between reads.
_START_TIME_TOLERANCE_S = 0.05
_MAX_PID = 2**32 - 1  # Windows pids are DWORDs; Linux stops at 2**22
_MAX_PIDFILE_BYTES = 64 * 1024  # ours are ~200 bytes; anything huge is not ours

#: Says whether a live process (pid and start time already checked) is the program we started. Raising
#: `psutil.Error` counts as "cannot prove it": not ours.
Identity = Callable[[psutil.Process], bool]


class PidfileError(ValueError):
    """The pid file exists but is not a record we wrote (wrong types, truncated, junk)."""


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
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(record), fh)
            fh.flush()
            os.fsync(fh.fileno())
        replace_file(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_pidfile(path: Path) -> PidRecord | None:
    """The record, None when there is no file; raises PidfileError for a file that is not a valid record."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_PIDFILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidfileError(f"cannot read it: {exc}") from exc
    if len(raw) > _MAX_PIDFILE_BYTES:
        raise PidfileError(f"larger than {_MAX_PIDFILE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise PidfileError(f"not JSON: {type(exc).__name__}") from None
    return _record_from(data)


def _record_from(data: object) -> PidRecord:
    if not isinstance(data, dict):
        raise PidfileError("not a JSON object")
    pid, create_time, extra = data.get("pid"), data.get("create_time"), data.get("extra", {})
    if type(pid) is not int or not 1 < pid <= _MAX_PID:
        raise PidfileError(f"'pid' must be an integer from 2 to {_MAX_PID}")
    # `type(...) in` rather than isinstance: True is no start time.
    if not (type(create_time) in (int, float) and isinstance(create_time, (int, float))
            and 0 < create_time < math.inf):
        raise PidfileError("'create_time' must be a positive number")
    if not isinstance(extra, dict):
        raise PidfileError("'extra' must be an object")
    return PidRecord(pid=pid, create_time=float(create_time), extra=extra)


def read_pidfile(path: Path) -> PidRecord | None:
    """The record, or None when the file is missing or not a valid record (logged once, never fatal)."""
    try:
        return load_pidfile(path)
    except PidfileError as exc:
        log.warning("Ignoring pid file %r: %s", str(path), exc)
        return None


def remove_pidfile(path: Path, record: PidRecord | None = None) -> None:
    """Remove the file; with `record`, only if it still names that process."""
    if record is not None and read_pidfile(path) != record:
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # e.g. a read-only home: the record is stale either way
        log.warning("Cannot remove pid file %r: %s", str(path), exc)


def is_ours(record: PidRecord, identity: Identity | None = None) -> bool:
    """True if the record's process is alive, is the same process (same start time) and passes `identity`.

    Never true for pid 0 or 1 (the kernel's and init's), nor for this very process. "Cannot tell" (access
    denied, exited meanwhile) is False: a process we cannot prove ours is never signalled.
    """
    if not 1 < record.pid <= _MAX_PID or record.pid == os.getpid():
        return False
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if abs(proc.create_time() - record.create_time) > _START_TIME_TOLERANCE_S:
            return False
        return identity is None or bool(identity(proc))
    except (psutil.Error, OSError):
        return False


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True if both name the same file or folder (resolved; case-insensitive where the OS is)."""
    try:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))
    except (OSError, ValueError):
        return False


def started_as(argv: Sequence[str], cwd: Path | None = None) -> Identity:
    """Identity of a program we start with `argv` (in `cwd`): its command line begins with our program and
    script (`argv[:2]`). Where the command line cannot be read (Windows, another session), its executable and
    working folder must both match, and without a `cwd` that cannot be proven.
    """
    head = list(argv[:2])

    def check(proc: psutil.Process) -> bool:
        try:
            cmdline = proc.cmdline()
        except psutil.AccessDenied:
            cmdline = []
        if cmdline:
            return len(cmdline) >= len(head) and _same_program(cmdline[0], head[0]) and cmdline[1:len(head)] == head[1:]
        return cwd is not None and same_path(proc.exe(), head[0]) and same_path(proc.cwd(), cwd)

    return check


def _same_program(seen: str, ours: str) -> bool:
    return seen == ours or same_path(seen, ours)
