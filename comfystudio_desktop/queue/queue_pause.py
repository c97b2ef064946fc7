"""The queue-level pause: one flag in Redis that every worker honours, and the notices the window shows.

Keys: `cs:queue_pause` (hash: `reason`, `message`, `since`) is set while the queue is paused by the user or by an
out-of-memory error (the claim script itself refuses to claim while it exists, so no worker can take a job in
between); `cs:notices` (capped stream) carries queue-level notices (paused, resumed) for the window's
status bar and tray. Being outside the active hours is not stored: each worker derives it from its settings and
the clock (`queue_gate`), so the status says "paused until 22:00" without anything to clean up afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import redis

from comfystudio_desktop.active_hours import ActiveHours, is_active, next_active_change
from comfystudio_desktop.jobs import now_iso
from comfystudio_desktop.queue.connection import ResilientRedis

__all__ = [
    "NOTICES_KEY",
    "PAUSE_KEY",
    "NoticeKind",
    "PauseReason",
    "QueueGate",
    "QueueNotice",
    "QueuePause",
    "QueuePauseStore",
    "queue_gate",
]

log = logging.getLogger(__name__)

PAUSE_KEY = "cs:queue_pause"
NOTICES_KEY = "cs:notices"
WAKE_KEY = "cs:wake"  # the queue's wake-up list (see job_queue): a resume wakes blocked workers at once
NOTICES_MAXLEN = 1_000
_MAX_MESSAGE_CHARS = 500


class PauseReason(StrEnum):
    """Why the queue takes no jobs."""

    USER = "user"
    OUT_OF_MEMORY = "out_of_memory"
    OUTSIDE_ACTIVE_HOURS = "outside_active_hours"


class NoticeKind(StrEnum):
    """A queue-level change the user should hear of."""

    PAUSED = "paused"
    RESUMED = "resumed"


@dataclass(frozen=True, slots=True)
class QueuePause:
    """The stored pause: who or what paused the queue, when, and a line for the user."""

    reason: PauseReason
    message: str = ""
    since: str = ""


@dataclass(frozen=True, slots=True)
class QueueNotice:
    """One entry of `cs:notices`."""

    kind: NoticeKind
    reason: PauseReason | None
    message: str
    at: str


@dataclass(frozen=True, slots=True)
class QueueGate:
    """Whether workers may claim now, and if not why and until when (`until` only for active hours)."""

    open: bool
    reason: PauseReason | None = None
    message: str = ""
    until: datetime | None = None

    def describe(self) -> str:
        """One line for a status bar, the tray or the CLI."""
        if self.open:
            return "running"
        if self.reason is PauseReason.OUTSIDE_ACTIVE_HOURS and self.until is not None:
            return f"paused until {self.until:%H:%M}"
        if self.reason is PauseReason.OUT_OF_MEMORY:
            return f"paused: ComfyUI ran out of memory ({self.message})" if self.message else \
                "paused: ComfyUI ran out of memory"
        return "paused by the user"


def queue_gate(pause: QueuePause | None, window: ActiveHours | None, now: datetime) -> QueueGate:
    """The decision every worker makes before claiming: a stored pause wins, then the active hours."""
    if pause is not None:
        return QueueGate(open=False, reason=pause.reason, message=pause.message)
    if not is_active(now, window):
        return QueueGate(open=False, reason=PauseReason.OUTSIDE_ACTIVE_HOURS, until=next_active_change(now, window))
    return QueueGate(open=True)


class QueuePauseStore:
    """Reads and writes the pause flag and the notices on the queue's Redis."""

    def __init__(self, conn: ResilientRedis) -> None:
        self.conn = conn

    def current(self) -> QueuePause | None:
        """The stored pause, or None. A flag another tool garbled reads as a user pause (the safe side)."""
        data = cast(dict[str, str], self.conn.call(lambda c: c.hgetall(PAUSE_KEY)))
        if not data:
            return None
        try:
            reason = PauseReason(data.get("reason", ""))
        except ValueError:
            reason = PauseReason.USER
        return QueuePause(reason=reason, message=data.get("message", ""), since=data.get("since", ""))

    def pause(self, reason: PauseReason, message: str = "") -> bool:
        """Pause the queue; False if it was paused already (the first reason is kept). Sends a notice."""
        message = message[:_MAX_MESSAGE_CHARS]
        at = now_iso()

        def pause_once(c: redis.Redis) -> bool:
            script = ("if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
                      "redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'message', ARGV[2], 'since', ARGV[3]) "
                      "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'paused', 'reason', ARGV[1], "
                      "'message', ARGV[2], 'at', ARGV[3]) return 1")
            return bool(c.eval(script, 2, PAUSE_KEY, NOTICES_KEY, reason.value, message, at, NOTICES_MAXLEN))

        changed = bool(self.conn.call(pause_once))
        if changed:
            log.warning("Queue paused (%s): %r", reason.value, message)
        return changed

    def resume(self) -> bool:
        """Lift the pause; False if the queue was not paused. Wakes blocked workers and sends a notice."""
        at = now_iso()

        def resume_once(c: redis.Redis) -> bool:
            script = ("if redis.call('DEL', KEYS[1]) == 0 then return 0 end "
                      "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'kind', 'resumed', 'reason', '', "
                      "'message', '', 'at', ARGV[1]) "
                      "redis.call('RPUSH', KEYS[3], '1') redis.call('LTRIM', KEYS[3], -64, -1) return 1")
            return bool(c.eval(script, 3, PAUSE_KEY, NOTICES_KEY, WAKE_KEY, at, NOTICES_MAXLEN))

        changed = bool(self.conn.call(resume_once))
        if changed:
            log.info("Queue resumed")
        return changed

    def notices(self, last_id: str = "0-0", count: int = 100) -> list[tuple[str, QueueNotice]]:
        """Notices after `last_id` (oldest first), each with its stream id for the next call."""
        reply = cast(list[Any], self.conn.call(lambda c: c.xrange(NOTICES_KEY, f"({last_id}", "+", count=count)))
        return [(str(entry_id), notice_from_fields(fields)) for entry_id, fields in reply]


def notice_from_fields(fields: dict[str, str]) -> QueueNotice:
    """A stream entry as a notice; fields another tool garbled give a plain 'paused' notice by the user."""
    try:
        kind = NoticeKind(fields.get("kind", ""))
    except ValueError:
        kind = NoticeKind.PAUSED
    reason_text = fields.get("reason", "")
    try:
        reason = PauseReason(reason_text) if reason_text else None
    except ValueError:
        reason = PauseReason.USER
    return QueueNotice(kind=kind, reason=reason, message=fields.get("message", ""), at=fields.get("at", ""))
