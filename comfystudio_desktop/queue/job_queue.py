"""The crash-safe job queue: at-least-once delivery with exactly-once effect.

Layout in Redis (all keys but the seed's two carry the `cs:` prefix):

- `job:status:{id}` (hash): the seed's fields `job_id status progress image_url error updated_at`, plus `spec`
  (the job's JSON), `attempts`, `message`, `lease_token`, `score`, timestamps. A 24 h TTL is set only once the
  job is terminal.
- `cs:pending` (sorted set): queued ids by (priority, FIFO). `cs:leases` (sorted set): claimed ids by lease
  deadline. `cs:lease_tokens` (hash): token → id, which makes a repeated claim return the same job.
- `cs:wake` (list): wake-up tokens that workers BLPOP instead of polling.
- `cs:events` (capped stream): every status change, for the window to follow jobs by push.
- `cs:jobs` (sorted set): every job id by creation time, for listings.
- `comfy_jobs` (list): the seed's queue; entries other tools push are taken in atomically; bad ones go to
  `cs:dead` with their error.

A worker claims a job with a random lease token, keeps it alive by heartbeat, and must present the token to
finish, fail or requeue it: a stale worker can never overwrite a newer attempt. Expired leases are reaped back
to pending with `attempts + 1`; after `max_attempts` the job is failed as quarantined.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus, JobValidationError, now_iso
from comfystudio_desktop.queue import lua_scripts
from comfystudio_desktop.queue.connection import RedisUnavailable, ResilientRedis
from comfystudio_desktop.queue.outbox import Outbox

__all__ = [
    "EVENTS_KEY",
    "SEED_QUEUE_KEY",
    "CancelOutcome",
    "JobQueue",
    "Lease",
    "LeaseState",
    "SubmitOutcome",
    "event_from_fields",
    "record_from_hash",
]

log = logging.getLogger(__name__)

STATUS_PREFIX = "job:status:"
SEED_QUEUE_KEY = "comfy_jobs"
PENDING_KEY = "cs:pending"
LEASES_KEY = "cs:leases"
TOKENS_KEY = "cs:lease_tokens"
WAKE_KEY = "cs:wake"
EVENTS_KEY = "cs:events"
INDEX_KEY = "cs:jobs"
SEQ_KEY = "cs:seq"
INTAKE_PROCESSING_KEY = "cs:intake:processing"
INTAKE_SEQ_KEY = "cs:intake:seq"
DEAD_KEY = "cs:dead"

TERMINAL_TTL_S = 86_400
EVENTS_MAXLEN = 10_000
_INTAKE_NAMESPACE = uuid.UUID("6f1c2a52-3c1b-4d7e-9a55-0c0ffee0da7a")


class SubmitOutcome(StrEnum):
    """What happened to a submitted job."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"  # a job with this id exists already: nothing changed
    OUTBOX = "outbox"  # Redis was unreachable: kept on disk, delivered when Redis is back


class LeaseState(StrEnum):
    """A worker's standing on a job it claimed."""

    OK = "ok"
    CANCELLED = "cancelled"  # the user cancelled: stop ComfyUI and drop the job
    LOST = "lost"  # the lease expired or a newer attempt owns the job: stop touching it


class CancelOutcome(StrEnum):
    """The result of a cancel request."""

    CANCELLED = "cancelled"  # was queued: will never start
    CANCELLING = "cancelling"  # was running: marked cancelled, its worker stops it
    NOT_FOUND = "not_found"
    ALREADY_FINISHED = "already_finished"
    ALREADY_FAILED = "already_failed"
    ALREADY_CANCELLED = "already_cancelled"


@dataclass(frozen=True, slots=True)
class Lease:
    """A claimed job and the token that proves the claim."""

    job: Job
    token: str
    worker_id: str
    attempts: int

    @property
    def job_id(self) -> str:
        """The claimed job's id."""
        return self.job.job_id


def _ms() -> int:
    return int(time.time() * 1000)


class JobQueue:
    """Submit, claim, report on and cancel jobs. Safe to share between threads."""

    def __init__(
        self,
        conn: ResilientRedis,
        *,
        outbox: Outbox | None = None,
        max_attempts: int = 3,
        lease_seconds: float = 30.0,
    ) -> None:
        self.conn = conn
        self.outbox = outbox
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        client = conn.client
        self._scripts = {name: client.register_script(getattr(lua_scripts, name)) for name in lua_scripts.__all__}

    def _run(self, name: str, keys: list[str], args: list[Any], *, reconnect: bool = True) -> Any:
        # Script objects are bound to the client they were registered with; run them on the current client so a
        # reconnect (new client, maybe a restarted server without the script cache) is transparent.
        script = self._scripts[name]
        return self.conn.call(lambda c: script(keys=keys, args=args, client=c), reconnect=reconnect)

    # -- submitting ------------------------------------------------------------------------------------------
    def submit(self, job: Job, *, wait_for_redis: bool = True) -> SubmitOutcome:
        """Validate and enqueue `job`; idempotent by job id.

        If Redis cannot be reached the job goes to the on-disk outbox (when one is configured) and is delivered
        later by `deliver_outbox()`; without an outbox RedisUnavailable is raised.
        """
        job.validate()
        try:
            added = self._enqueue(job, reconnect=wait_for_redis)
        except RedisUnavailable:
            if self.outbox is None:
                raise
            self.outbox.put(job)
            log.warning("Job %s kept in the outbox: Redis is unreachable", job.job_id)
            return SubmitOutcome.OUTBOX
        if added:
            log.info("Job %s queued (workflow %s, model %s)", job.job_id, job.workflow, job.model or "-")
            return SubmitOutcome.QUEUED
        return SubmitOutcome.DUPLICATE

    def _enqueue(self, job: Job, *, intake_entry: str = "", reconnect: bool = True) -> bool:
        keys = [STATUS_PREFIX + job.job_id, PENDING_KEY, INDEX_KEY, WAKE_KEY, EVENTS_KEY, SEQ_KEY,
                INTAKE_PROCESSING_KEY]
        args = [job.job_id, job.to_json(), job.priority, now_iso(), _ms(), EVENTS_MAXLEN, intake_entry]
        return bool(self._run("ENQUEUE", keys, args, reconnect=reconnect))

    def deliver_outbox(self) -> int:
        """Enqueue every job waiting in the outbox (each exactly once); return how many were new."""
        if self.outbox is None:
            return 0
        delivered = 0
        for job, path in self.outbox.pending():
            if self._enqueue(job):
                delivered += 1
                log.info("Job %s delivered from the outbox", job.job_id)
            self.outbox.remove(path)
        return delivered

    def pump_intake(self, limit: int = 100) -> int:
        """Take seed-format entries pushed onto `comfy_jobs` into the queue; return how many were taken."""
        taken = 0
        # Entries left in the processing list by a process that died mid-way come first.
        stranded = cast(list[str], self.conn.call(lambda c: c.lrange(INTAKE_PROCESSING_KEY, 0, limit - 1)))
        for entry in stranded:
            taken += self._take_intake_entry(entry)
        for _ in range(limit):
            entry = self._run("INTAKE_MOVE", [SEED_QUEUE_KEY, INTAKE_PROCESSING_KEY, INTAKE_SEQ_KEY], [])
            if not entry:
                break
            taken += self._take_intake_entry(entry)
        return taken

    def _take_intake_entry(self, entry: str) -> int:
        seq, _, raw = entry.partition("\n")
        try:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise JobValidationError("job", f"not valid JSON: {exc}") from exc
            if isinstance(data, dict) and not data.get("job_id"):
                data["job_id"] = str(uuid.uuid5(_INTAKE_NAMESPACE, f"intake-{seq}"))
            job = Job.from_dict(data).validate()
        except (ValueError, JobValidationError) as exc:
            dead = json.dumps({"raw": raw, "error": str(exc), "at": now_iso()})
            if self._run("DEAD_LETTER", [INTAKE_PROCESSING_KEY, DEAD_KEY], [entry, dead]):
                log.error("Rejected an entry of %s (moved to %s): %s", SEED_QUEUE_KEY, DEAD_KEY, exc)
            return 0
        if self._enqueue(job, intake_entry=entry):
            log.info("Job %s taken from %s", job.job_id, SEED_QUEUE_KEY)
            return 1
        return 0

    def dead_letters(self) -> list[dict[str, str]]:
        """Rejected seed-format entries with their errors."""
        return [json.loads(item) for item in self.conn.call(lambda c: c.lrange(DEAD_KEY, 0, -1))]

    # -- working ---------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, *, block_s: float = 0.0) -> Lease | None:
        """Claim the next job; with `block_s`, wait up to that long for a wake-up when none is pending."""
        token = secrets.token_hex(16)
        lease = self._claim_once(worker_id, token)
        if lease is not None or block_s <= 0:
            return lease
        block = min(block_s, self.conn.max_block_s)
        self.conn.call(lambda c: c.blpop([WAKE_KEY], timeout=block), blocking=True)
        return self._claim_once(worker_id, token)

    def _claim_once(self, worker_id: str, token: str) -> Lease | None:
        deadline = _ms() + int(self.lease_seconds * 1000)
        reply = self._run("CLAIM", [PENDING_KEY, LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                          [token, deadline, now_iso(), worker_id, EVENTS_MAXLEN])
        if not reply:
            return None
        job_id, spec, attempts = reply
        job = Job.from_json(spec)
        log.info("Job %s claimed by %s (attempt %d)", job_id, worker_id, int(attempts or 0) + 1)
        return Lease(job=job, token=token, worker_id=worker_id, attempts=int(attempts or 0))

    def heartbeat(self, lease: Lease) -> LeaseState:
        """Extend the lease; the answer says whether to go on."""
        deadline = _ms() + int(self.lease_seconds * 1000)
        return LeaseState(self._run("HEARTBEAT", [LEASES_KEY], [lease.job_id, lease.token, deadline]))

    def progress(self, lease: Lease, progress: int, message: str = "", **fields: str | int) -> LeaseState:
        """Record progress (never backwards) and a short message; extra fields are stored on the job."""
        pairs: list[Any] = []
        for name, value in fields.items():
            pairs.extend((name, value))
        return LeaseState(self._run("PROGRESS", [EVENTS_KEY], [lease.job_id, lease.token, int(progress), message,
                                                               now_iso(), EVENTS_MAXLEN, *pairs]))

    def finish(self, lease: Lease, image_url: str, outputs: Iterable[str] = ()) -> LeaseState:
        """Mark finished (progress 100) with the output's URL; idempotent for the same lease."""
        state = LeaseState(self._run("FINISH", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                     [lease.job_id, lease.token, image_url, json.dumps(list(outputs)), now_iso(),
                                      EVENTS_MAXLEN, TERMINAL_TTL_S]))
        if state is LeaseState.OK:
            log.info("Job %s finished: %s", lease.job_id, image_url)
        return state

    def finish_and_claim(self, lease: Lease, image_url: str, outputs: Iterable[str] = ()) -> tuple[
            LeaseState, Lease | None]:
        """Finish `lease` and claim the next job for the same worker in one atomic round trip."""
        token = secrets.token_hex(16)
        deadline = _ms() + int(self.lease_seconds * 1000)
        state, job_id, spec, attempts = self._run(
            "FINISH_AND_CLAIM", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY, PENDING_KEY],
            [lease.job_id, lease.token, image_url, json.dumps(list(outputs)), now_iso(), EVENTS_MAXLEN,
             TERMINAL_TTL_S, token, deadline, lease.worker_id])
        if LeaseState(state) is LeaseState.OK:
            log.info("Job %s finished: %s", lease.job_id, image_url)
        if not job_id:
            return LeaseState(state), None
        log.info("Job %s claimed by %s (attempt %d)", job_id, lease.worker_id, int(attempts or 0) + 1)
        return LeaseState(state), Lease(job=Job.from_json(spec), token=token, worker_id=lease.worker_id,
                                        attempts=int(attempts or 0))

    def fail(self, lease: Lease, error: str, node_errors: str = "") -> LeaseState:
        """Mark failed with a message for the user; idempotent for the same lease."""
        state = LeaseState(self._run("FAIL", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                     [lease.job_id, lease.token, error, node_errors, now_iso(), EVENTS_MAXLEN,
                                      TERMINAL_TTL_S]))
        if state is LeaseState.OK:
            log.error("Job %s failed: %s", lease.job_id, error)
        return state

    def requeue(self, lease: Lease, reason: str, *, count_attempt: bool = True) -> str:
        """Give the job back to pending ('requeued'), or quarantine it after too many attempts ('quarantined').

        With `count_attempt=False` (a clean shutdown) the attempt does not count. Returns 'lost' or 'cancelled'
        when the lease no longer holds.
        """
        outcome = str(self._run("REQUEUE", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY, PENDING_KEY, WAKE_KEY],
                                [lease.job_id, lease.token, reason, 1 if count_attempt else 0, self.max_attempts,
                                 now_iso(), EVENTS_MAXLEN, TERMINAL_TTL_S]))
        log.warning("Job %s %s: %s", lease.job_id, outcome, reason)
        return outcome

    def release(self, lease: Lease) -> str:
        """Hand a job back at once on a clean stop, without counting an attempt."""
        return self.requeue(lease, "released by a stopping worker", count_attempt=False)

    def reap_expired(self) -> list[tuple[str, str]]:
        """Return jobs whose lease expired to pending (or quarantine them); list of (job_id, outcome)."""
        reply = self._run("REAP", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY, PENDING_KEY, WAKE_KEY],
                          [_ms(), self.max_attempts, now_iso(), EVENTS_MAXLEN, TERMINAL_TTL_S])
        pairs = [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]
        for job_id, outcome in pairs:
            log.warning("Job %s lease expired: %s", job_id, outcome)
        return pairs

    # -- user actions ----------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel: a queued job never starts; a running one is marked cancelled and its worker told."""
        outcome = CancelOutcome(self._run("CANCEL", [PENDING_KEY, LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                          [job_id, now_iso(), EVENTS_MAXLEN, TERMINAL_TTL_S]))
        log.info("Cancel job %s: %s", job_id, outcome)
        return outcome

    def retry(self, job_id: str) -> bool:
        """Queue a failed or cancelled job again (same id, attempts reset). False if it is not retryable."""
        ok = bool(self._run("RETRY", [PENDING_KEY, WAKE_KEY, EVENTS_KEY, SEQ_KEY], [job_id, now_iso(),
                                                                                   EVENTS_MAXLEN]))
        if ok:
            log.info("Job %s queued again (retry)", job_id)
        return ok

    # -- reading ---------------------------------------------------------------------------------------------
    def status(self, job_id: str) -> JobRecord | None:
        """The job's current record, or None if unknown (or expired)."""
        data = cast(dict[str, str], self.conn.call(lambda c: c.hgetall(STATUS_PREFIX + job_id)))
        return record_from_hash(data) if data else None

    def jobs(self, status: JobStatus | None = None, *, since_s: float | None = None) -> list[JobRecord]:
        """Known jobs, oldest first; expired ids are dropped from the index on the way."""
        low = (_ms() - since_s * 1000) if since_s is not None else "-inf"
        ids = cast(list[str], self.conn.call(lambda c: c.zrangebyscore(INDEX_KEY, low, "+inf")))
        if since_s is not None:  # non-terminal jobs older than the window still belong in the listing
            ids = sorted(self._active_ids() | set(ids))
        records: list[JobRecord] = []
        missing: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]

            def fetch(c: redis.Redis, chunk: list[str] = chunk) -> list[dict[str, str]]:
                pipe = c.pipeline(transaction=False)
                for job_id in chunk:
                    pipe.hgetall(STATUS_PREFIX + job_id)
                return pipe.execute()

            for job_id, data in zip(chunk, self.conn.call(fetch), strict=True):
                if data:
                    records.append(record_from_hash(data))
                else:
                    missing.append(job_id)
        if missing:
            self.conn.call(lambda c: c.zrem(INDEX_KEY, *missing))
        if status is not None:
            records = [r for r in records if r.status == status]
        records.sort(key=lambda r: r.created_at)
        return records

    def _active_ids(self) -> set[str]:
        def fetch(c: redis.Redis) -> list[list[str]]:
            pipe = c.pipeline(transaction=False)
            pipe.zrange(PENDING_KEY, 0, -1)
            pipe.zrange(LEASES_KEY, 0, -1)
            return pipe.execute()

        pending, leased = self.conn.call(fetch)
        return set(pending) | set(leased)

    def counts(self) -> dict[str, int]:
        """Queued and running counts (cheap: two ZCARDs), for status bars and the tray."""
        def fetch(c: redis.Redis) -> list[int]:
            pipe = c.pipeline(transaction=False)
            pipe.zcard(PENDING_KEY)
            pipe.zcard(LEASES_KEY)
            pipe.llen(SEED_QUEUE_KEY)
            return pipe.execute()

        queued, running, seed = self.conn.call(fetch)
        return {"queued": int(queued) + int(seed), "running": int(running)}

    def read_events(self, last_id: str = "$", *, block_ms: int = 1000, count: int = 500) -> list[tuple[str, JobEvent]]:
        """Events after `last_id` from the stream (blocking up to `block_ms`); `$` means only new ones."""
        block_ms = min(block_ms, int(self.conn.max_block_s * 1000))
        reply = cast(list[Any], self.conn.call(lambda c: c.xread({EVENTS_KEY: last_id}, count=count,
                                                                 block=block_ms), blocking=True))
        events: list[tuple[str, JobEvent]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                events.append((entry_id, event_from_fields(fields)))
        return events

    def last_event_id(self) -> str:
        """The newest event id ('0-0' when the stream is empty): start following from here after a resync."""
        info = self.conn.call(lambda c: c.xrevrange(EVENTS_KEY, count=1))
        return str(info[0][0]) if info else "0-0"


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def record_from_hash(data: dict[str, str]) -> JobRecord:
    """Turn a `job:status:{id}` hash into a JobRecord (tolerant of fields other tools left out)."""
    spec = data.get("spec")
    job: Job | None = None
    if spec:
        try:
            job = Job.from_json(spec)
        except JobValidationError:
            job = None
    try:
        outputs = tuple(json.loads(data.get("outputs") or "[]"))
    except ValueError:
        outputs = ()
    seed_used = data.get("seed_used")
    return JobRecord(
        job_id=data.get("job_id", ""),
        status=JobStatus(data.get("status", "queued")),
        progress=_int(data.get("progress")),
        image_url=data.get("image_url", ""),
        error=data.get("error", ""),
        updated_at=data.get("updated_at", ""),
        message=data.get("message", ""),
        attempts=_int(data.get("attempts")),
        seed_used=int(seed_used) if seed_used else None,
        created_at=data.get("created_at", ""),
        started_at=data.get("started_at", ""),
        finished_at=data.get("finished_at", ""),
        outputs=outputs,
        node_errors=data.get("node_errors", ""),
        job=job,
        rerun_required=data.get("rerun_required") == "1",
        comfy_prompt_id=data.get("comfy_prompt_id", ""),
    )


def event_from_fields(fields: dict[str, str]) -> JobEvent:
    """Turn one event-stream entry into a JobEvent."""
    seed_used = fields.get("seed_used")
    return JobEvent(
        job_id=fields.get("job_id", ""),
        status=JobStatus(fields.get("status") or "queued"),
        progress=_int(fields.get("progress")),
        updated_at=fields.get("updated_at", ""),
        message=fields.get("message", ""),
        image_url=fields.get("image_url", ""),
        error=fields.get("error", ""),
        seed_used=int(seed_used) if seed_used else None,
    )
