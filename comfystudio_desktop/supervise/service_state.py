"""What the UI and the CLI see of a supervised service: a state and an immutable snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ServiceState", "State"]


class State(StrEnum):
    """Where a supervised service stands."""

    STOPPED = "stopped"
    STARTING = "starting"  # spawned, waiting for its first passing health check
    RUNNING = "running"
    RESTARTING = "restarting"  # exited or hung; a restart is due at `restart_at`
    HUNG = "hung"  # alive but failing health checks; about to be killed and restarted
    FATAL = "fatal"  # crash loop (or cannot be started at all); waits for the user
    EXTERNAL = "external"  # someone else's process: watched, never started or killed


@dataclass(frozen=True, slots=True)
class ServiceState:
    """A snapshot of one service, safe to hand to another thread."""

    name: str
    state: State
    pid: int | None = None
    restarts: int = 0
    last_exit_code: int | None = None  # negative: killed by that signal (POSIX); None: unknown
    uptime_s: float | None = None
    restart_in_s: float | None = None
    healthy: bool | None = None  # result of the last health check; None before the first
    message: str = ""
    last_log_lines: tuple[str, ...] = ()
