"""Job figures kept up to date incrementally from the queue's event stream, never by scanning every job.

Each sample reads only the events since the last one (`cs:mon:cursor`), looks up the times of the jobs that
reached an end state, and applies them in one Lua script (Redis 5.0 commands): cumulative counts by end state,
and the jobs finished in the last hour with their waiting and processing times. The script moves the cursor
only from the value the reader started at, so two samplers can never count an event twice.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.monitor.snapshot import DurationStats

__all__ = ["CURSOR_KEY", "JobAggregates", "JobFigures", "duration_stats", "iso_ms"]

log = logging.getLogger(__name__)

CURSOR_KEY = "cs:mon:cursor"
COUNTS_KEY = "cs:mon:counts"
TERMINAL_KEY = "cs:mon:terminal"  # (job, end state, time) already counted, for 24 h: a repeated event counts once
RECENT_KEY = "cs:mon:recent"  # jobs finished in the last hour: "id|wait_ms|proc_ms|images" by finish time
EVENTS_KEY = "cs:events"
STATUS_PREFIX = "job:status:"
RECENT_WINDOW_MS = 3_600_000
RECENT_CAP = 10_000
_TERMINAL_KEEP_MS = 86_400_000
_READ_BATCH = 2000
_ENDS = {JobStatus.FINISHED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}

# KEYS: cursor, counts, terminal, recent
# ARGV: expected cursor ('' = none yet), new cursor, terminal cutoff ms, recent cutoff ms, recent cap,
#       then per job: status, dedupe member, finished ms, recent entry ('' unless finished), images
_APPLY = """
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
for i = 6, #ARGV, 5 do
  if redis.call('ZADD', KEYS[3], 'NX', ARGV[i + 2], ARGV[i + 1]) == 1 then
    redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
    if ARGV[i + 3] ~= '' then
      redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i + 3])
      redis.call('HINCRBY', KEYS[2], 'images', ARGV[i + 4])
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[5]) + 1))
return 1
"""


@dataclass(frozen=True, slots=True)
class JobFigures:
    """What the aggregates say at one moment."""

    finished: int
    failed: int
    cancelled: int
    images_total: int
    images_last_hour: int
    processing: DurationStats | None
    waiting: DurationStats | None


def iso_ms(text: object) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time with timezone, or None."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return round(moment.timestamp() * 1000)


def duration_stats(values_ms: list[int]) -> DurationStats | None:
    """Mean, median and p90 (inclusive quantiles) in seconds; None for no values."""
    if not values_ms:
        return None
    seconds = [v / 1000 for v in values_ms]
    p90 = statistics.quantiles(seconds, n=10, method="inclusive")[-1] if len(seconds) > 1 else seconds[0]
    return DurationStats(len(seconds), statistics.fmean(seconds), statistics.median(seconds), p90)


def _next_id(stream_id: str) -> str:
    """The smallest id after `stream_id` (XRANGE has no exclusive start before Redis 6.2)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class JobAggregates:
    """Reads and advances the incremental job figures on one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self._apply = client.register_script(_APPLY)

    def advance(self, client: redis.Redis, now_ms: int) -> int:
        """Apply the events since the cursor; return how many were read."""
        read = 0
        for _ in range(10_000 // _READ_BATCH + 1):  # the stream is capped near 10,000 entries
            cursor = client.get(CURSOR_KEY)
            start = _next_id(cursor) if isinstance(cursor, str) and cursor else "-"
            events = cast(list[tuple[str, dict[str, str]]], client.xrange(EVENTS_KEY, start, "+", count=_READ_BATCH))
            if not events:
                break
            ends = [fields for _, fields in events if fields.get("status") in _ENDS and fields.get("job_id")]
            args = self._job_args(client, ends)
            applied = self._apply(keys=[CURSOR_KEY, COUNTS_KEY, TERMINAL_KEY, RECENT_KEY],
                                  args=[cursor or "", events[-1][0], now_ms - _TERMINAL_KEEP_MS,
                                        now_ms - RECENT_WINDOW_MS, RECENT_CAP, *args], client=client)
            if not applied:  # another sampler moved the cursor meanwhile: read again from where it left it
                continue
            read += len(events)
            if len(events) < _READ_BATCH:
                break
        return read

    @staticmethod
    def _job_args(client: redis.Redis, ends: list[dict[str, str]]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for fields in ends:
            pipe.hmget(STATUS_PREFIX + fields["job_id"], "created_at", "started_at", "finished_at", "outputs")
        rows: list[list[str | None]] = pipe.execute() if ends else []
        args: list[Any] = []
        for fields, (created, started, finished, outputs) in zip(ends, rows, strict=True):
            status, job_id = fields["status"], fields["job_id"]
            finished_text = finished or fields.get("updated_at", "")
            finished_ms = iso_ms(finished_text)
            if finished_ms is None:
                log.debug("Job %r ended without a readable time: not counted", job_id)
                continue
            entry, images = "", 0
            if status == JobStatus.FINISHED.value:
                images = _image_count(outputs)
                created_ms, started_ms = iso_ms(created), iso_ms(started)
                wait = "" if created_ms is None or started_ms is None else str(max(0, started_ms - created_ms))
                proc = "" if started_ms is None else str(max(0, finished_ms - started_ms))
                entry = f"{job_id}|{wait}|{proc}|{images}"
            args += [status, f"{job_id}|{status}|{finished_text}", finished_ms, entry, images]
        return args

    @staticmethod
    def read(client: redis.Redis, now_ms: int) -> JobFigures:
        """The counts and the last hour's durations as stored."""
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(COUNTS_KEY)
        pipe.zrangebyscore(RECENT_KEY, now_ms - RECENT_WINDOW_MS, "+inf")
        counts, recent = pipe.execute()
        waits: list[int] = []
        procs: list[int] = []
        images_hour = 0
        for entry in recent:
            parts = entry.split("|")
            if len(parts) != 4:
                continue
            _, wait, proc, images = parts
            if wait.isdigit():
                waits.append(int(wait))
            if proc.isdigit():
                procs.append(int(proc))
            if images.isdigit():
                images_hour += int(images)
        return JobFigures(_int(counts, "finished"), _int(counts, "failed"), _int(counts, "cancelled"),
                          _int(counts, "images"), images_hour, duration_stats(procs), duration_stats(waits))


def _int(counts: dict[str, str], name: str) -> int:
    value = counts.get(name, "0")
    return int(value) if value.isdigit() else 0


def _image_count(outputs: str | None) -> int:
    """How many images a finished job stored (its `outputs` JSON list); at least 1 for a finished job."""
    try:
        data = json.loads(outputs or "[]")
    except ValueError:
        return 1
    return max(1, len(data)) if isinstance(data, list) else 1
