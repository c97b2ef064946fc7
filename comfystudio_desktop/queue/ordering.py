"""The order of queued jobs: move one job (top, bottom, before or after another) and set its priority.

The pending sorted set's score is `(100 - priority) * 1e12 + seq` (ENQUEUE): a priority band, then FIFO inside
it. A move gives the job a score between its new neighbours, in one Lua script, so it is atomic with respect to
workers claiming (a job claimed a moment before is simply `NOT_QUEUED`). When two neighbours have no room left
between their scores, the same script re-spaces every pending score, keeping the order, and advances `cs:seq`
past them so a job submitted later still lands at the end of its band. The job's hash keeps `score` (a worker
that hands a job back puts it where it was) and, after `set_priority`, its `priority`. Redis 5.0 commands only;
the AOF (fsync always) makes every move survive a restart. Each move appends the job's (unchanged) state to the
event stream, which is how every window learns that the order changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

import redis
from redis.client import NEVER_DECODE

from comfystudio_desktop.jobs import JobRecord, JobStatus
from comfystudio_desktop.queue.job_queue import (
    EVENTS_KEY,
    EVENTS_MAXLEN,
    PENDING_KEY,
    SEQ_KEY,
    JobQueue,
)
from comfystudio_desktop.queue.job_records import STATUS_PREFIX, decode_hash, record_from_hash

__all__ = ["MOVE", "Move", "MoveOutcome", "Priority", "QueueOrder", "QueuedJob"]

log = logging.getLogger(__name__)


class Priority(Enum):
    """The user's three priorities, on the job's numeric priority (-100..100, higher runs first)."""

    HIGH = 10
    NORMAL = 0
    LOW = -10

    @classmethod
    def of(cls, value: int) -> Priority:
        """The level a numeric priority belongs to (any positive number is high, any negative one low)."""
        if value > 0:
            return cls.HIGH
        return cls.LOW if value < 0 else cls.NORMAL

    @property
    def label(self) -> str:
        """The word users see and type: high, normal, low."""
        return self.name.lower()


class Move(StrEnum):
    """Where a move puts a queued job."""

    TOP = "top"
    BOTTOM = "bottom"
    BEFORE = "before"
    AFTER = "after"


class MoveOutcome(StrEnum):
    """The result of a move or a priority change."""

    MOVED = "moved"
    NOT_QUEUED = "not_queued"  # the job is not waiting (unknown, claimed meanwhile, finished, cancelled)
    ANCHOR_NOT_QUEUED = "anchor_not_queued"  # the job to move before/after is not waiting
    SAME_JOB = "same_job"  # before/after itself: nothing to do


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A waiting job and its place: `position` 1 runs next."""

    position: int
    priority: Priority
    record: JobRecord


# KEYS: pending, seq, events; ARGV: id, mode (top|bottom|before|after|priority), anchor id, priority value, maxlen
# A job that moved is announced on the event stream (its unchanged status), so every window re-reads the order.
MOVE = """
local pending, seq_key, events = KEYS[1], KEYS[2], KEYS[3]
local id, mode, anchor = ARGV[1], ARGV[2], ARGV[3]
local BAND, GAP = 1e12, 1024
local PREFIX = 'job:status:'
local function queued(job)
  return redis.call('ZSCORE', pending, job) and redis.call('HGET', PREFIX .. job, 'status') == 'queued'
end
local function place(score)
  local text = string.format('%.0f', score)
  redis.call('ZADD', pending, text, id)
  redis.call('HSET', PREFIX .. id, 'score', text)
  local h = redis.call('HMGET', PREFIX .. id, 'status', 'progress', 'message', 'updated_at', 'attempts')
  redis.call('XADD', events, 'MAXLEN', '~', ARGV[5], '*', 'job_id', id, 'status', h[1] or '', 'progress', h[2] or '0',
             'message', h[3] or '', 'image_url', '', 'error', '', 'updated_at', h[4] or '', 'attempts', h[5] or '0',
             'seed_used', '', 'node_errors', '')
end
local function band(score) return math.floor(score / BAND) * BAND end
local function respace()
  local all = redis.call('ZRANGE', pending, 0, -1, 'WITHSCORES')
  local n = #all / 2
  local base = redis.call('INCRBY', seq_key, (n + 1) * GAP) - (n + 1) * GAP
  for i = 1, n do
    local member, old = all[2 * i - 1], tonumber(all[2 * i])
    local text = string.format('%.0f', band(old) + base + i * GAP)
    redis.call('ZADD', pending, text, member)
    redis.call('HSET', PREFIX .. member, 'score', text)
  end
end
-- The scores of the neighbours the job goes between (false: no neighbour on that side), the job left out.
local function neighbours(target, after)
  local rank = redis.call('ZRANK', pending, target)
  local lo, hi = rank - 1, rank
  if after then lo, hi = rank, rank + 1 end
  local function at(r)
    if r < 0 then return false end
    local got = redis.call('ZRANGE', pending, r, r, 'WITHSCORES')
    if #got == 0 then return false end
    return got
  end
  local left, right = at(lo), at(hi)
  if left and left[1] == id then left = at(lo - 1) end
  if right and right[1] == id then right = at(hi + 1) end
  return left and tonumber(left[2]), right and tonumber(right[2])
end
if not queued(id) then return 'not_queued' end
if mode == 'priority' then
  local p = tonumber(ARGV[4])
  redis.call('HSET', PREFIX .. id, 'priority', ARGV[4])
  place((100 - p) * BAND + redis.call('INCR', seq_key))
  return 'moved'
end
if mode == 'top' or mode == 'bottom' then
  local ends = redis.call('ZRANGE', pending, 0, -1)
  if mode == 'top' then anchor = ends[1] else anchor = ends[#ends] end
  if anchor == id then return 'moved' end
  if mode == 'top' then mode = 'before' else mode = 'after' end
else
  if anchor == id then return 'same_job' end
  if not queued(anchor) then return 'anchor_not_queued' end
end
for _ = 1, 2 do
  local left, right = neighbours(anchor, mode == 'after')
  if not left then place(right - 1) return 'moved' end
  if not right then place(band(left) + redis.call('INCR', seq_key)) return 'moved' end
  if right - left >= 2 then place(math.floor((left + right) / 2)) return 'moved' end
  respace()
end
return redis.error_reply('no room between scores after re-spacing')
"""


class QueueOrder:
    """Reorder and re-prioritise waiting jobs of a `JobQueue`, and list them in the order they will run."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._script = queue.conn.client.register_script(MOVE)

    def _run(self, job_id: str, mode: str, anchor: str = "", priority: int = 0) -> MoveOutcome:
        def run(c: redis.Redis) -> Any:
            return self._script(keys=[PENDING_KEY, SEQ_KEY, EVENTS_KEY],
                                args=[job_id, mode, anchor, priority, EVENTS_MAXLEN], client=c)

        outcome = MoveOutcome(_text(self.queue.conn.call(run)))
        log.info("Move job %r %s %r: %s", job_id, mode, anchor, outcome)
        return outcome

    def move(self, job_id: str, where: Move, anchor: str = "") -> MoveOutcome:
        """Move a queued job to the top or bottom, or just before or after the queued job `anchor`."""
        if where in (Move.BEFORE, Move.AFTER) and not anchor:
            raise ValueError(f"moving {where.value} needs the other job's id")
        return self._run(job_id, where.value, anchor)

    def set_priority(self, job_id: str, level: Priority) -> MoveOutcome:
        """Give a queued job a priority: it goes to the end of that priority's jobs, as if submitted now."""
        return self._run(job_id, "priority", priority=level.value)

    def order(self) -> tuple[tuple[str, Priority], ...]:
        """(id, priority) of each pending job, in the order workers will claim them: one read, no job hashes.

        The priority is the score's band (`(100 - priority) * 1e12 + seq`).
        """
        raw = self.queue.read_raw("ZRANGE", PENDING_KEY, 0, -1, "WITHSCORES")
        return tuple((_text(member), Priority.of(100 - int(float(_text(score)) // _BAND)))
                     for member, score in zip(raw[::2], raw[1::2], strict=True))

    def queued(self) -> list[QueuedJob]:
        """Waiting jobs in the order workers will claim them, numbered from 1."""
        ids = self.queue.read_raw("ZRANGE", PENDING_KEY, 0, -1)

        def fetch(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for job_id in ids:
                pipe.execute_command(  # type: ignore[no-untyped-call]
                    "HGETALL", STATUS_PREFIX.encode() + job_id, **{NEVER_DECODE: True})
            return pipe.execute()

        found: list[QueuedJob] = []
        for raw in self.queue.conn.call(fetch) if ids else []:
            data = decode_hash(raw)
            if not data or data.get("status") != JobStatus.QUEUED.value:
                continue  # claimed between the two reads, or a stale entry the next claim drops
            record = record_from_hash(data)
            found.append(QueuedJob(len(found) + 1, _priority(data, record), record))
        return found


_BAND = 1e12


def _priority(data: dict[str, str], record: JobRecord) -> Priority:
    text = data.get("priority", "")
    if text.lstrip("-").isdigit() and len(text) <= 4:
        return Priority.of(int(text))
    return Priority.of(record.job.priority if record.job is not None else 0)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
