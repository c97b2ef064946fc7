"""The learned run times behind the ETA, in Redis, and the forecast of the queue as it stands.

Keys (capped lists, newest first, kept `RUN_TIMES_TTL_S` after the last sample):
`cs:eta:k:{model|workflow|size|steps}` seconds per run; `cs:eta:m:{model}` seconds per step of that model;
`cs:eta:all` seconds per step of any model.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

import redis

from comfystudio_desktop.jobs import Job, JobStatus, JobValidationError
from comfystudio_desktop.queue.forecast import QueueForecast, RunningJob, RunTimeStats, forecast, run_key, steps_of
from comfystudio_desktop.queue.job_queue import LEASES_KEY, PENDING_KEY, STATUS_PREFIX, JobQueue
from comfystudio_desktop.queue.job_records import int_field

__all__ = ["MAX_SAMPLES", "RunTimes"]

log = logging.getLogger(__name__)

MAX_SAMPLES = 20
RUN_TIMES_TTL_S = 90 * 86_400
_EXACT, _MODEL, _ALL = "cs:eta:k:", "cs:eta:m:", "cs:eta:all"
_MAX_RUN_S = 7 * 86_400.0


class RunTimes:
    """Records finished runs' times and forecasts the queue from them."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def record(self, job: Job, seconds: float) -> None:
        """Learn that `job` took `seconds` on ComfyUI (one pipelined round trip)."""
        if not (math.isfinite(seconds) and 0.0 < seconds < _MAX_RUN_S):
            return
        rate = seconds / steps_of(job)

        def write(c: redis.Redis) -> Any:
            pipe = c.pipeline(transaction=False)
            for key, value in ((_EXACT + run_key(job).text(), seconds), (_MODEL + job.model, rate), (_ALL, rate)):
                pipe.lpush(key, f"{value:.4f}")
                pipe.ltrim(key, 0, MAX_SAMPLES - 1)
                pipe.expire(key, RUN_TIMES_TTL_S)
            return pipe.execute()

        self.queue.conn.call(write)

    def stats_for(self, jobs: list[Job]) -> RunTimeStats:
        """The samples the forecast of `jobs` needs, read in one round trip."""
        keys = sorted({run_key(job).text() for job in jobs})
        models = sorted({job.model for job in jobs})

        def read(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for key in keys:
                pipe.lrange(_EXACT + key, 0, -1)
            for model in models:
                pipe.lrange(_MODEL + model, 0, -1)
            pipe.lrange(_ALL, 0, -1)
            return pipe.execute()

        reply = self.queue.conn.call(read)
        exact = {key: _floats(values) for key, values in zip(keys, reply[:len(keys)], strict=True)}
        rates = {model: _floats(values) for model, values in zip(models, reply[len(keys):-1], strict=True)}
        return RunTimeStats(exact=exact, model_rates=rates, global_rates=_floats(reply[-1]))

    def forecast(self, now: datetime, *, workers: int = 0, not_before: datetime | None = None) -> QueueForecast:
        """The queue's forecast now: running jobs from the leases, queued ones in the order they will be claimed."""
        def read_ids(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            pipe.zrange(LEASES_KEY, 0, -1)
            pipe.zrange(PENDING_KEY, 0, -1)
            return pipe.execute()

        leased, pending = self.queue.conn.call(read_ids)
        running = [RunningJob(job=job, worker=worker, progress=progress)
                   for job, worker, progress in self._jobs([str(i) for i in leased], JobStatus.PROCESSING)]
        queued = [job for job, _, _ in self._jobs([str(i) for i in pending], JobStatus.QUEUED)]
        stats = self.stats_for([*queued, *(r.job for r in running)])
        return forecast(now, running, queued, stats, workers=workers, not_before=not_before)

    def _jobs(self, job_ids: list[str], status: JobStatus) -> list[tuple[Job, str, int]]:
        """(job, worker, progress) of each id whose record has `status`, in the order given (one round trip)."""
        def read(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hmget(STATUS_PREFIX + job_id, "status", "spec", "worker", "progress")
            return pipe.execute()

        found: list[tuple[Job, str, int]] = []
        for stored_status, spec, worker, progress in self.queue.conn.call(read):
            if stored_status != status.value or not spec:
                continue
            try:
                job = Job.from_json(spec)
            except JobValidationError:
                continue  # a spec that no longer parses is failed when claimed; it takes no time
            found.append((job, str(worker or ""), int_field(progress)))
        return found


def _floats(values: object) -> list[float]:
    """Samples as stored; anything another tool wrote that is not a positive finite number is skipped."""
    found: list[float] = []
    for value in values if isinstance(values, list) else []:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number) and number > 0:
            found.append(number)
    return found
