"""What the UI and the CLI see of a supervised service: a state and an immutable snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Remedy", "ServiceState", "State", "describe_duration"]


class State(StrEnum):
    """Where a supervised service stands."""

    STOPPED = "stopped"
    STARTING = "starting"  # spawned, waiting for its first passing health check
    RUNNING = "running"
    RESTARTING = "restarting"  # exited or hung; a restart is due at `restart_at`
    HUNG = "hung"  # alive but failing health checks; about to be killed and restarted
    FATAL = "fatal"  # crash loop (or cannot be started at all); waits for the user
    EXTERNAL = "external"  # someone else's process: watched, never started or killed


class Remedy(StrEnum):
    """What the user can do about a FATAL service besides "restart" (the UI offers it as a button)."""

    NONE = ""
    REPAIR_AOF = "repair_aof"  # redis-server refused its damaged append-only file: repair it, then restart


@dataclass(frozen=True, slots=True)
class ServiceState:
    """A snapshot of one service, safe to hand to another thread."""

    name: str
    state: State
    pid: int | None = None
    restarts: int = 0
    #: Of the last process that ended (kept across a restart); negative: killed by that signal (POSIX); None: unknown.
    last_exit_code: int | None = None
    uptime_s: float | None = None
    restart_in_s: float | None = None
    healthy: bool | None = None  # result of the last health check; None before the first
    message: str = ""
    last_log_lines: tuple[str, ...] = ()
    remedy: Remedy = Remedy.NONE


def describe_duration(seconds: float) -> str:
    """A short human duration for uptimes and countdowns: '45 s', '3 min 12 s', '2 h 05 min', '3 d 4 h'."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
