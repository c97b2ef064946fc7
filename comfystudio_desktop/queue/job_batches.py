"""Batches: jobs submitted together under one batch id, and the queue operations on a batch as a whole.

`cs:batch:{id}` (a sorted set of job ids, scored by their place in the batch) is written before the jobs are
queued, so a crash in between leaves at most ids of jobs that never came to be (skipped when read), never a job
missing from its batch. The set is kept `BATCH_TTL_S` after it was last written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from comfystudio_desktop.jobs import Job, JobRecord, JobStatus
from comfystudio_desktop.queue.job_queue import CancelOutcome, JobQueue, SubmitOutcome

__all__ = ["BATCH_PREFIX", "BatchStatus", "JobBatches"]

log = logging.getLogger(__name__)

BATCH_PREFIX = "cs:batch:"
BATCH_TTL_S = 30 * 86_400


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A batch at a glance: its jobs' records (in batch order) and how many are in each state."""

    batch_id: str
    records: tuple[JobRecord, ...]
    counts: dict[JobStatus, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Jobs the batch still knows (ended ones expire with their records)."""
        return len(self.records)

    @property
    def progress(self) -> int:
        """0-100 over the whole batch: each job's progress, ended ones counting as done."""
        if not self.records:
            return 0
        done = sum(100 if r.status.is_terminal else r.progress for r in self.records)
        return done // len(self.records)


class JobBatches:
    """Batch membership and whole-batch operations on a queue."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def submit(self, batch_id: str, jobs: list[Job]) -> list[SubmitOutcome]:
        """Record the members, then queue the jobs in one round trip (as `JobQueue.submit_many`)."""
        self._add(batch_id, [job.job_id for job in jobs])
        return self.queue.submit_many(jobs)

    def _add(self, batch_id: str, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)

        def write(c: redis.Redis) -> Any:
            pipe = c.pipeline(transaction=True)
            offset = c.zcard(BATCH_PREFIX + batch_id)
            pipe.zadd(BATCH_PREFIX + batch_id, {job_id: offset + i for i, job_id in enumerate(ids)}, nx=True)
            pipe.expire(BATCH_PREFIX + batch_id, BATCH_TTL_S)
            return pipe.execute()

        if ids:
            self.queue.conn.call(write)

    def member_ids(self, batch_id: str) -> list[str]:
        """The ids recorded for the batch in batch order (some may have expired)."""
        ids = cast(list[str], self.queue.conn.call(lambda c: c.zrange(BATCH_PREFIX + batch_id, 0, -1)))
        return [str(job_id) for job_id in ids]

    def status(self, batch_id: str) -> BatchStatus | None:
        """The batch's jobs and counts; None if no job of it is known."""
        records = [r for r in (self.queue.status(job_id) for job_id in self.member_ids(batch_id)) if r is not None]
        if not records:
            return None
        return BatchStatus(batch_id, tuple(records), dict(Counter(r.status for r in records)))

    def cancel(self, batch_id: str) -> dict[CancelOutcome, int]:
        """Cancel every job of the batch that has not ended; how many of each outcome."""
        outcomes: Counter[CancelOutcome] = Counter()
        for job_id in self.member_ids(batch_id):
            outcomes[self.queue.cancel(job_id)] += 1
        log.info("Batch %r cancelled: %s", batch_id, dict(outcomes))
        return dict(outcomes)

    def retry(self, batch_id: str) -> int:
        """Queue every failed or cancelled job of the batch again (same ids); how many were."""
        count = sum(1 for job_id in self.member_ids(batch_id) if self.queue.retry(job_id))
        log.info("Batch %r: %d job(s) queued again", batch_id, count)
        return count

    def rerun(self, batch_id: str, new_batch_id: str) -> list[Job]:
        """Run the whole batch again as new jobs (new ids) under `new_batch_id`, in the original order."""
        status = self.status(batch_id)
        if status is None:
            return []
        jobs = [Job.from_dict({**r.job.rerun().to_dict(), "batch_id": new_batch_id})
                for r in status.records if r.job is not None]
        self.submit(new_batch_id, jobs)
        return jobs
