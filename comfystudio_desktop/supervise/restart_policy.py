"""When to restart a supervised process, how long to back off, and when to give up.

Pure functions over explicit monotonic `now` values, so every decision is a table test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from comfystudio_desktop.backoff import Backoff

__all__ = [
    "RestartDecision",
    "RestartHistory",
    "RestartPolicy",
    "Verdict",
    "backoff_s",
    "decide_restart",
    "is_hung",
    "readiness_expired",
]

@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Thresholds of the restart decision; the defaults suit a desktop app, tests use short values."""

    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    #: A process that stayed healthy this long starts again from `initial_backoff_s`.
    healthy_reset_s: float = 300.0
    #: More than this many restarts within `crash_loop_window_s` is a crash loop: FATAL.
    max_restarts: int = 5
    crash_loop_window_s: float = 600.0
    #: Alive but failing this many health checks in a row: HUNG, killed and restarted.
    hung_after_failures: int = 3

    def __post_init__(self) -> None:
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("need 0 <= initial_backoff_s <= max_backoff_s")
        if self.max_restarts < 0 or self.hung_after_failures < 1:
            raise ValueError("need max_restarts >= 0 and hung_after_failures >= 1")


@dataclass(frozen=True, slots=True)
class RestartHistory:
    """What the policy remembers about one process between decisions."""

    #: Monotonic times of the unplanned restarts still inside the crash-loop window.
    recent: tuple[float, ...] = ()
    #: Consecutive restarts without a healthy stretch; the backoff exponent.
    step: int = 0


class Verdict(StrEnum):
    """What to do about a process that exited or hung."""

    RESTART = "restart"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """A verdict, the delay before restarting (0 when FATAL) and the history to keep."""

    verdict: Verdict
    delay_s: float
    history: RestartHistory


def backoff_s(policy: RestartPolicy, step: int) -> float:
    """Delay before restart number `step` (0-based) of a streak: initial * 2**step, capped."""
    return Backoff(policy.initial_backoff_s, 2.0, policy.max_backoff_s).delay(step + 1)


def decide_restart(policy: RestartPolicy, history: RestartHistory, *, now: float,
                   healthy_for_s: float) -> RestartDecision:
    """Decide about a process that just exited (or was killed as hung).

    Args:
        now: monotonic seconds.
        healthy_for_s: how long the process had been running healthy before this failure (0 if never ready).
    """
    step = 0 if healthy_for_s >= policy.healthy_reset_s else history.step
    recent = tuple(t for t in history.recent if now - t < policy.crash_loop_window_s)
    if len(recent) >= policy.max_restarts:
        return RestartDecision(Verdict.FATAL, 0.0, RestartHistory(recent, step))
    return RestartDecision(Verdict.RESTART, backoff_s(policy, step), RestartHistory((*recent, now), step + 1))


def is_hung(policy: RestartPolicy, consecutive_failures: int) -> bool:
    """True once an alive process has failed enough health checks in a row."""
    return consecutive_failures >= policy.hung_after_failures


def readiness_expired(started_at: float, timeout_s: float, now: float) -> bool:
    """True when a starting process has had its whole readiness timeout without passing a health check."""
    return now - started_at > timeout_s
