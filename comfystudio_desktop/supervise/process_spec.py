"""What to run (or only watch) as a supervised service: a frozen spec the watchdog and the owners share."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfystudio_desktop.supervise.pidfile import Identity
from comfystudio_desktop.supervise.service_state import Remedy

__all__ = ["ExitDiagnosis", "ExitDiagnostic", "HealthCheck", "PrepareHook", "ProcessSpec", "StartLock", "StopHook"]

HealthCheck = Callable[[], bool]
StopHook = Callable[[], None]
#: Runs before every spawn (not before an adoption); returns fields for the pid file's `extra` (e.g. the port).
PrepareHook = Callable[[], Mapping[str, Any]]
#: A lock held around "adopt a leftover or spawn", shared with other programs that may start the service.
StartLock = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class ExitDiagnosis:
    """Why a process exited, when restarting it cannot help: the watchdog goes FATAL with this message."""

    message: str
    remedy: Remedy = Remedy.NONE


#: Reads the output of the run that just ended (oldest line first); None means "an ordinary crash: restart".
ExitDiagnostic = Callable[[Sequence[str]], ExitDiagnosis | None]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # becomes a log file name


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to run one service. An empty `argv` makes it external: watched by `health_check`, never started."""

    name: str
    argv: tuple[str, ...] = ()
    cwd: Path | None = None
    #: Added to (overriding) the app's own environment.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Returns True when the service answers; None means "alive is healthy". Must not hang: use a timeout.
    health_check: HealthCheck | None = None
    readiness_timeout_s: float = 30.0
    stop_grace_s: float = 10.0
    pidfile: Path | None = None
    #: Kept in the pid file's `extra` beside the name and argv (e.g. the port a leftover listens on).
    pid_extra: Mapping[str, Any] = field(default_factory=dict)
    #: Asks the service to stop gracefully (e.g. Redis SHUTDOWN); raising skips the grace wait.
    stop_hook: StopHook | None = None
    #: The child appends to its log file itself instead of writing into a pipe we read, so it keeps running
    #: cleanly when the app dies; the file is then rotated only at start. Use it for services that may be adopted.
    output_to_file: bool = False
    #: A leftover process of ours from an earlier run may be kept if it passes the health check. Without
    #: `output_to_file` only for services that survive losing their stdout pipe (redis-server ignores SIGPIPE).
    adopt: bool = False
    #: Before every spawn: e.g. choose a port and write a config; its answer is added to the pid file's `extra`.
    prepare: PrepareHook | None = None
    #: Held around "adopt a leftover or spawn" (e.g. the lock a CLI also takes before starting the service).
    start_lock: StartLock | None = None
    #: After an exit: recognise failures a restart cannot fix (e.g. a damaged data file) to go FATAL at once.
    diagnose_exit: ExitDiagnostic | None = None
    #: Proves that a process a pid file names is this service before it is adopted or signalled; None means
    #: "started as `argv` (in `cwd`)" (`pidfile.started_as`).
    identity: Identity | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"service name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not self.argv and self.health_check is None:
            raise ValueError(f"external service {self.name!r} needs a health check")
        if self.readiness_timeout_s <= 0 or self.stop_grace_s < 0:
            raise ValueError("readiness_timeout_s must be > 0 and stop_grace_s >= 0")

    @property
    def external(self) -> bool:
        """True for a service we only watch."""
        return not self.argv
