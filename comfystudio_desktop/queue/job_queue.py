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
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis
from redis.client import NEVER_DECODE

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus, JobValidationError, now_iso
from comfystudio_desktop.queue import lua_scripts
from comfystudio_desktop.queue.connection import RedisUnavailable, ResilientRedis
from comfystudio_desktop.queue.dead_letters import MAX_DEAD_LETTERS, DeadLetter, describe_error
from comfystudio_desktop.queue.intake import (
    DEAD_KEY,
    INTAKE_PROCESSING_KEY,
    INTAKE_SEQ_KEY,
    SEED_QUEUE_KEY,
    Intake,
)
from comfystudio_desktop.queue.job_records import (
    STATUS_PREFIX,
    decode_hash,
    event_from_fields,
    int_field,
    record_from_hash,
    reply_text,
)
from comfystudio_desktop.queue.outbox import Outbox

__all__ = [
    "DEAD_KEY",
    "EVENTS_KEY",
    "INTAKE_PROCESSING_KEY",
    "INTAKE_SEQ_KEY",
    "SEED_QUEUE_KEY",
    "STATUS_PREFIX",
    "CancelOutcome",
    "JobQueue",
    "Lease",
    "LeaseState",
    "SubmitOutcome",
    "decode_hash",
    "event_from_fields",
    "record_from_hash",
]

log = logging.getLogger(__name__)

PENDING_KEY = "cs:pending"
LEASES_KEY = "cs:leases"
TOKENS_KEY = "cs:lease_tokens"
WAKE_KEY = "cs:wake"
EVENTS_KEY = "cs:events"
INDEX_KEY = "cs:jobs"
SEQ_KEY = "cs:seq"

TERMINAL_TTL_S = 86_400
EVENTS_MAXLEN = 10_000
_MAX_BAD_CLAIMS = 20  # specs that no longer parse, failed in one claim call before it gives up for now
_LOG_VALUE_CHARS = 200


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
    progress: int = 0  # where an earlier attempt got to: the new run's progress shows once it passes this

    @property
    def job_id(self) -> str:
        """The claimed job's id."""
        return self.job.job_id


def _enqueue_call(job: Job) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ENQUEUE script for a job that comes from no list (window, CLI, outbox)."""
    keys = [STATUS_PREFIX + job.job_id, PENDING_KEY, INDEX_KEY, WAKE_KEY, EVENTS_KEY, SEQ_KEY, INTAKE_PROCESSING_KEY,
            DEAD_KEY]
    return keys, [job.job_id, job.to_json(), job.priority, now_iso(), _ms(), EVENTS_MAXLEN, "", "", MAX_DEAD_LETTERS]


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
        self._intake = Intake(self)

    def _run(self, name: str, keys: list[str], args: list[Any], *, reconnect: bool = True) -> Any:
        # Script objects are bound to the client they were registered with; run them on the current client so a
        # reconnect (new client, maybe a restarted server without the script cache) is transparent.
        script = self._scripts[name]
        return self.conn.call(lambda c: script(keys=keys, args=args, client=c), reconnect=reconnect)

    def run_raw(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script and return its reply undecoded (bytes): for data other tools wrote, maybe not UTF-8."""
        script = self._scripts[name]

        def run(c: redis.Redis) -> Any:
            try:
                return _undecoded(c, "EVALSHA", script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:  # a restarted server has an empty script cache
                return _undecoded(c, "EVAL", script.script, len(keys), *keys, *args)

        return self.conn.call(run)

    def read_raw(self, *command: Any) -> Any:
        """Run a read command and return its reply undecoded (bytes)."""
        return self.conn.call(lambda c: _undecoded(c, *command))

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
            log.warning("Job %r kept in the outbox: Redis is unreachable", job.job_id)
            return SubmitOutcome.OUTBOX
        if added:
            log.info("Job %r queued (workflow %r, model %r)", job.job_id, job.workflow, job.model or "-")
            return SubmitOutcome.QUEUED
        return SubmitOutcome.DUPLICATE

    def submit_many(self, jobs: list[Job]) -> list[SubmitOutcome]:
        """Validate all, then enqueue all in one pipelined round trip (idempotent by job id, so a resend after a
        reconnect is harmless); the whole batch goes to the outbox if Redis cannot be reached."""
        for job in jobs:
            job.validate()
        script = self._scripts["ENQUEUE"]

        def enqueue_all(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for job in jobs:
                keys, args = _enqueue_call(job)
                script(keys=keys, args=args, client=pipe)
            return pipe.execute()

        try:
            added = self.conn.call(enqueue_all)
        except RedisUnavailable:
            if self.outbox is None:
                raise
            for job in jobs:
                self.outbox.put(job)
            log.warning("%d job(s) kept in the outbox: Redis is unreachable", len(jobs))
            return [SubmitOutcome.OUTBOX] * len(jobs)
        log.info("%d job(s) submitted, %d new", len(jobs), sum(int(a) == 1 for a in added))
        return [SubmitOutcome.QUEUED if int(a) == 1 else SubmitOutcome.DUPLICATE for a in added]

    def _enqueue(self, job: Job, *, reconnect: bool = True) -> bool:
        keys, args = _enqueue_call(job)
        return int(self._run("ENQUEUE", keys, args, reconnect=reconnect)) == 1

    def enqueue_from(self, job: Job, source_key: str, entry: bytes, duplicate: DeadLetter) -> int:
        """Enqueue `job` and remove `entry` from the list `source_key` in one step.

        1: queued; 0: the job id exists, the entry became the dead letter `duplicate`; -1: the entry was no longer
        there (another process handled it), nothing changed.
        """
        keys = [STATUS_PREFIX + job.job_id, PENDING_KEY, INDEX_KEY, WAKE_KEY, EVENTS_KEY, SEQ_KEY, source_key,
                DEAD_KEY]
        args = [job.job_id, job.to_json(), job.priority, now_iso(), _ms(), EVENTS_MAXLEN, entry, duplicate.to_json(),
                MAX_DEAD_LETTERS]
        return int(self.run_raw("ENQUEUE", keys, args))

    def deliver_outbox(self) -> int:
        """Enqueue every job waiting in the outbox (each exactly once); return how many were new.

        A file that is not a valid job is moved to `outbox/rejected/` by the outbox; one that Redis refuses for
        a reason of its own (not an outage) stays for the next round. Raises only RedisUnavailable.
        """
        if self.outbox is None:
            return 0
        delivered = 0
        for job, path in self.outbox.pending():
            try:
                added = self._enqueue(job)
            except RedisUnavailable:
                raise
            except redis.exceptions.RedisError as exc:
                log.error("Outbox job %r not delivered (kept for later): %s", job.job_id, exc)
                return delivered
            if added:
                delivered += 1
                log.info("Job %r delivered from the outbox", job.job_id)
            self.outbox.remove(path)
        return delivered

    # -- the seed's queue and dead letters --------------------------------------------------------------------
    def pump_intake(self, limit: int = 100) -> int:
        """Take seed-format entries pushed onto `comfy_jobs` into the queue; return how many became jobs.

        Every other entry becomes a dead letter with its reason; only RedisUnavailable escapes.
        """
        return self._intake.pump(limit)

    def dead_letters(self) -> list[DeadLetter]:
        """Rejected entries with their reasons, oldest first."""
        return self._intake.dead_letters()

    def dead_count(self) -> int:
        """How many dead letters there are (cheap)."""
        return self._intake.dead_count()

    def requeue_dead(self, index: int) -> Job:
        """Queue dead letter `index` again after validating it anew (see `Intake.requeue_dead`)."""
        return self._intake.requeue_dead(index)

    def clear_dead(self) -> int:
        """Drop every dead letter; return how many there were."""
        return self._intake.clear_dead()

    # -- working ---------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, *, block_s: float = 0.0,
              still_wanted: Callable[[], bool] | None = None) -> Lease | None:
        """Claim the next job; with `block_s`, wait that long (whole seconds, at least 1) for a wake-up when none is
        pending. `still_wanted` is asked after that wait: a worker paused meanwhile takes nothing."""
        token = secrets.token_hex(16)
        lease = self._claim_once(worker_id, token)
        if lease is not None or block_s <= 0:
            return lease
        # Whole seconds: Redis before 6.0 (the Windows ports) rejects a fractional BLPOP timeout.
        block = max(1, math.ceil(min(block_s, self.conn.max_block_s)))
        self.conn.call(lambda c: c.blpop([WAKE_KEY], timeout=block), blocking=True)
        if still_wanted is not None and not still_wanted():
            return None
        return self._claim_once(worker_id, token)

    def _claim_once(self, worker_id: str, token: str) -> Lease | None:
        for _ in range(_MAX_BAD_CLAIMS):
            deadline = _ms() + int(self.lease_seconds * 1000)
            reply = self.run_raw("CLAIM", [PENDING_KEY, LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                 [token, deadline, now_iso(), worker_id, EVENTS_MAXLEN])
            if not reply:
                return None
            lease = self._lease_from_reply(reply, token, worker_id)
            if lease is not None:
                return lease
            token = secrets.token_hex(16)  # the bad job was failed under the old token: claim afresh
        return None

    def _lease_from_reply(self, reply: list[Any], token: str, worker_id: str) -> Lease | None:
        """A lease for a claimed job; a job whose stored spec no longer parses is failed instead (None)."""
        raw_id, spec, attempts_raw, progress_raw = reply
        job_id = raw_id.decode("utf-8", "backslashreplace")
        attempts, progress = int_field(reply_text(attempts_raw)), int_field(reply_text(progress_raw))
        try:
            job = Job.from_json(spec or b"")
            if job.job_id != job_id:
                raise JobValidationError("job_id", f"the stored job is {job.job_id!r}, not {job_id!r}")
        except Exception as exc:  # noqa: BLE001 - hostile or outdated data in Redis: fail this job, never the worker
            reason = f"the stored job is not valid any more: {describe_error(exc)}"
            self.run_raw("FAIL", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                         [raw_id, token, reason, "", now_iso(), EVENTS_MAXLEN, TERMINAL_TTL_S, "1"])
            log.error("Job %s failed at claim: %s", _loggable(job_id), reason)
            return None
        log.info("Job %r claimed by %r (attempt %d)", job_id, worker_id, attempts + 1)
        return Lease(job=job, token=token, worker_id=worker_id, attempts=attempts, progress=progress)

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

    def finish(self, lease: Lease, image_url: str, outputs: Iterable[str] = (), *,
               from_cache: bool = False, location: str = "") -> LeaseState:
        """Mark finished (progress 100) with the output's URL; idempotent for the same lease.

        `from_cache`: the outputs are a copy of an identical job's (the record and its message say so).
        `location`: where the outputs live (`OutputLocation.to_json()`), kept as the record's `output_location`.
        """
        state = LeaseState(self._run("FINISH", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                     [lease.job_id, lease.token, image_url, json.dumps(list(outputs)), now_iso(),
                                      EVENTS_MAXLEN, TERMINAL_TTL_S, "1" if from_cache else "0", location]))
        if state is LeaseState.OK:
            log.info("Job %r finished: %r", lease.job_id, image_url)
        return state

    def finish_and_claim(self, lease: Lease, image_url: str, outputs: Iterable[str] = ()) -> tuple[
            LeaseState, Lease | None]:
        """Finish `lease` and claim the next job for the same worker in one atomic round trip."""
        token = secrets.token_hex(16)
        deadline = _ms() + int(self.lease_seconds * 1000)
        state_raw, *claimed = self.run_raw(
            "FINISH_AND_CLAIM", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY, PENDING_KEY],
            [lease.job_id, lease.token, image_url, json.dumps(list(outputs)), now_iso(), EVENTS_MAXLEN,
             TERMINAL_TTL_S, token, deadline, lease.worker_id])
        state = LeaseState(reply_text(state_raw))
        if state is LeaseState.OK:
            log.info("Job %r finished: %r", lease.job_id, image_url)
        if not claimed[0]:
            return state, None
        following = self._lease_from_reply(claimed, token, lease.worker_id)
        return state, following if following is not None else self._claim_once(lease.worker_id,
                                                                                 secrets.token_hex(16))

    def fail(self, lease: Lease, error: str, node_errors: str = "", *, count_attempt: bool = False) -> LeaseState:
        """Mark failed with a message for the user; idempotent for the same lease.

        `count_attempt` adds the failed run to the job's attempts (a worker error, not ComfyUI's verdict).
        """
        state = LeaseState(self._run("FAIL", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                     [lease.job_id, lease.token, error, node_errors, now_iso(), EVENTS_MAXLEN,
                                      TERMINAL_TTL_S, "1" if count_attempt else "0"]))
        if state is LeaseState.OK:
            log.error("Job %r failed: %s", lease.job_id, _loggable(error))
        return state

    def requeue(self, lease: Lease, reason: str, *, count_attempt: bool = True) -> str:
        """Give the job back to pending ('requeued'), or quarantine it after too many attempts ('quarantined').

        With `count_attempt=False` (a clean shutdown) the attempt does not count. Returns 'lost' or 'cancelled'
        when the lease no longer holds.
        """
        outcome = str(self._run("REQUEUE", [LEASES_KEY, TOKENS_KEY, EVENTS_KEY, PENDING_KEY, WAKE_KEY],
                                [lease.job_id, lease.token, reason, 1 if count_attempt else 0, self.max_attempts,
                                 now_iso(), EVENTS_MAXLEN, TERMINAL_TTL_S]))
        log.warning("Job %r %s: %s", lease.job_id, outcome, _loggable(reason))
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
            log.warning("Job %r lease expired: %s", job_id, outcome)
        return pairs

    # -- user actions ----------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel: a queued job never starts; a running one is marked cancelled and its worker told."""
        outcome = CancelOutcome(self._run("CANCEL", [PENDING_KEY, LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                          [job_id, now_iso(), EVENTS_MAXLEN, TERMINAL_TTL_S]))
        log.info("Cancel job %s: %s", _loggable(job_id), outcome)
        return outcome

    def retry(self, job_id: str) -> bool:
        """Queue a failed or cancelled job again (same id, attempts reset). False if it is not retryable."""
        ok = bool(self._run("RETRY", [PENDING_KEY, WAKE_KEY, EVENTS_KEY, SEQ_KEY], [job_id, now_iso(),
                                                                                   EVENTS_MAXLEN]))
        if ok:
            log.info("Job %s queued again (retry)", _loggable(job_id))
        return ok

    # -- reading ---------------------------------------------------------------------------------------------
    def status(self, job_id: str) -> JobRecord | None:
        """The job's current record, or None if unknown (or expired)."""
        data = decode_hash(self.read_raw("HGETALL", STATUS_PREFIX + job_id))
        return record_from_hash(data) if data else None

    def jobs(self, status: JobStatus | None = None, *, since_s: float | None = None) -> list[JobRecord]:
        """Known jobs, oldest first; expired ids are dropped from the index on the way.

        Read undecoded, so an entry another tool wrote in another encoding shows escaped instead of failing the
        whole listing.
        """
        low = (_ms() - since_s * 1000) if since_s is not None else "-inf"
        ids = cast(list[bytes], self.read_raw("ZRANGEBYSCORE", INDEX_KEY, low, "+inf"))
        if since_s is not None:  # non-terminal jobs older than the window still belong in the listing
            ids = sorted(self._active_ids() | set(ids))
        records: list[JobRecord] = []
        missing: list[bytes] = []
        prefix = STATUS_PREFIX.encode()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]

            def fetch(c: redis.Redis, chunk: list[bytes] = chunk) -> list[Any]:
                pipe = c.pipeline(transaction=False)
                for job_id in chunk:
                    _undecoded(pipe, "HGETALL", prefix + job_id)
                return pipe.execute()

            for job_id, raw in zip(chunk, self.conn.call(fetch), strict=True):
                data = decode_hash(raw)
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

    def _active_ids(self) -> set[bytes]:
        def fetch(c: redis.Redis) -> list[list[bytes]]:
            pipe = c.pipeline(transaction=False)
            _undecoded(pipe, "ZRANGE", PENDING_KEY, 0, -1)
            _undecoded(pipe, "ZRANGE", LEASES_KEY, 0, -1)
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


def _undecoded(client: redis.Redis, *command: Any) -> Any:
    return client.execute_command(*command, **{NEVER_DECODE: True})  # type: ignore[no-untyped-call]


def _loggable(value: str) -> str:
    """User text for a log line: repr (a newline cannot split the line), cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _LOG_VALUE_CHARS else f"{text[:_LOG_VALUE_CHARS]}… ({len(value)} characters)"
