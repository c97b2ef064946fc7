"""The seed's queue `comfy_jobs`: entries other tools push become jobs, or dead letters with their reason.

An entry is moved atomically to `cs:intake:processing` (tagged with a sequence number), parsed with the strict job
parser, and then, in one atomic step each, either enqueued or moved to `cs:dead`. Nothing about an entry can stop
the pump: any exception while turning it into a job makes it a dead letter. Entries are read as bytes, so invalid
UTF-8 is a reason like any other rather than a decoding error in the client.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, cast

import redis

from comfystudio_desktop.jobs import Job, JobValidationError, parse_json
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.dead_letters import (
    MAX_DEAD_LETTERS,
    DeadLetter,
    DeadLetterNotFound,
    describe_error,
)

if TYPE_CHECKING:
    from comfystudio_desktop.queue.job_queue import JobQueue

__all__ = ["DEAD_KEY", "INTAKE_PROCESSING_KEY", "INTAKE_SEQ_KEY", "MAX_ENTRY_BYTES", "SEED_QUEUE_KEY", "Intake"]

log = logging.getLogger(__name__)

SEED_QUEUE_KEY = "comfy_jobs"
INTAKE_PROCESSING_KEY = "cs:intake:processing"
INTAKE_SEQ_KEY = "cs:intake:seq"
DEAD_KEY = "cs:dead"
#: A job's JSON is at most a few dozen KiB (prompts are capped at 20,000 characters); larger entries are junk.
MAX_ENTRY_BYTES = 256 * 1024
_INTAKE_NAMESPACE = uuid.UUID("6f1c2a52-3c1b-4d7e-9a55-0c0ffee0da7a")
_SEQ_RE = re.compile(rb"[0-9]{1,20}")


def intake_job_id(entry_id: str) -> str:
    """The job id of an intake entry that names none: the same for the same entry, however often it is handled."""
    return str(uuid.uuid5(_INTAKE_NAMESPACE, f"intake-{entry_id}"))


def parse_entry(raw: bytes, entry_id: str) -> Job:
    """The strict parser applied to one pushed entry; `JobValidationError` (or any exception) means rejected."""
    if len(raw) > MAX_ENTRY_BYTES:
        raise JobValidationError("job", f"entry of {len(raw)} bytes is larger than {MAX_ENTRY_BYTES}")
    return Job.from_dict(parse_json(raw), default_job_id=intake_job_id(entry_id))


class Intake:
    """Takes `comfy_jobs` in and manages `cs:dead` for one JobQueue."""

    def __init__(self, queue: JobQueue) -> None:
        self._q = queue

    def pump(self, limit: int = 100) -> int:
        """Take up to `limit` entries (stranded ones first); return how many became jobs.

        Every other entry becomes a dead letter; only RedisUnavailable escapes.
        """
        taken = 0
        # Entries left in the processing list by a process that died mid-way come first.
        stranded = cast(list[bytes], self._q.read_raw("LRANGE", INTAKE_PROCESSING_KEY, 0, limit - 1))
        for entry in stranded:
            taken += self._take_guarded(entry)
        for _ in range(limit):
            entry = self._q.run_raw("INTAKE_MOVE", [SEED_QUEUE_KEY, INTAKE_PROCESSING_KEY, INTAKE_SEQ_KEY], [])
            if not entry:
                break
            taken += self._take_guarded(cast(bytes, entry))
        return taken

    def _take_guarded(self, entry: bytes) -> int:
        try:
            return self._take(entry)
        except RedisUnavailable:
            raise
        except Exception:  # the entry stays in the processing list and is tried again on the next pump
            log.exception("Could not move an entry of %s to a job or a dead letter", SEED_QUEUE_KEY)
            return 0

    def _take(self, entry: bytes) -> int:
        seq, sep, raw = entry.partition(b"\n")
        entry_id = seq.decode("ascii") if sep and _SEQ_RE.fullmatch(seq) else ""
        if not entry_id:
            raw = entry
        try:
            if not entry_id:
                raise JobValidationError("entry", "not tagged with an intake sequence number")
            job = parse_entry(raw, entry_id)
        except Exception as exc:  # whatever went wrong, this entry cannot be a job: a dead letter with the reason
            reason = describe_error(exc)
            if not isinstance(exc, JobValidationError):
                log.error("Unexpected %s while parsing an entry of %s", type(exc).__name__, SEED_QUEUE_KEY,
                          exc_info=exc)
            letter = DeadLetter.of(raw, reason, entry_id=entry_id)
            if self._q.run_raw("DEAD_LETTER", [INTAKE_PROCESSING_KEY, DEAD_KEY],
                               [entry, letter.to_json(), MAX_DEAD_LETTERS]):
                log.error("Rejected an entry of %s (moved to %s): %r", SEED_QUEUE_KEY, DEAD_KEY, reason)
            return 0
        duplicate = DeadLetter.of(raw, f"job_id: duplicate job id {job.job_id!r}: a job with this id exists",
                                  entry_id=entry_id)
        outcome = self._q.enqueue_from(job, INTAKE_PROCESSING_KEY, entry, duplicate)
        if outcome == 1:
            log.info("Job %r taken from %s", job.job_id, SEED_QUEUE_KEY)
            return 1
        if outcome == 0:
            log.error("Rejected an entry of %s (moved to %s): duplicate job id %r", SEED_QUEUE_KEY, DEAD_KEY,
                      job.job_id)
        return 0

    # -- dead letters ----------------------------------------------------------------------------------------
    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first (index 0)."""
        stored = cast(list[bytes], self._q.read_raw("LRANGE", DEAD_KEY, 0, -1))
        return [DeadLetter.from_stored(item) for item in stored]

    def dead_count(self) -> int:
        """How many dead letters there are."""
        return int(self._q.conn.call(lambda c: c.llen(DEAD_KEY)))

    def requeue_dead(self, index: int) -> Job:
        """Validate dead letter `index` again and queue it as a job; it leaves the list.

        If it is still bad (or a duplicate) it stays dead with the new reason, moved to the end of the list, and
        `JobValidationError` says why. `DeadLetterNotFound` if there is no such dead letter.
        """
        if index < 0:
            raise DeadLetterNotFound(f"no dead letter #{index}")
        stored = cast(bytes | None, self._q.read_raw("LINDEX", DEAD_KEY, index))
        if stored is None:
            raise DeadLetterNotFound(f"no dead letter #{index}")
        letter = DeadLetter.from_stored(stored)
        try:
            if letter.truncated:
                raise JobValidationError("job", f"only the first bytes of this {letter.size}-byte entry were kept; "
                                                "it cannot be queued again")
            job = parse_entry(letter.raw.encode("utf-8"), letter.entry_id or f"dead-{hash_id(stored)}")
        except Exception as exc:
            reason = describe_error(exc)
            self._q.run_raw("DEAD_LETTER", [DEAD_KEY, DEAD_KEY],
                            [stored, letter.with_reason(reason).to_json(), MAX_DEAD_LETTERS])
            if isinstance(exc, JobValidationError):
                raise
            raise JobValidationError("job", reason) from exc
        duplicate = letter.with_reason(f"job_id: duplicate job id {job.job_id!r}: a job with this id exists")
        outcome = self._q.enqueue_from(job, DEAD_KEY, stored, duplicate)
        if outcome == -1:
            raise DeadLetterNotFound(f"dead letter #{index} was handled by another process meanwhile")
        if outcome == 0:
            raise JobValidationError("job_id", f"duplicate job id {job.job_id!r}: a job with this id exists")
        log.info("Job %r queued again from a dead letter", job.job_id)
        return job

    def clear_dead(self) -> int:
        """Drop every dead letter; return how many there were."""
        def clear(c: redis.Redis) -> list[int]:
            pipe = c.pipeline(transaction=True)
            pipe.llen(DEAD_KEY)
            pipe.delete(DEAD_KEY)
            return cast(list[int], pipe.execute())

        count = int(self._q.conn.call(clear)[0])
        log.info("Cleared %d dead letter(s)", count)
        return count


def hash_id(data: bytes) -> str:
    """A short stable id for a dead letter that has no intake sequence number."""
    return uuid.uuid5(_INTAKE_NAMESPACE, data.hex()).hex[:16]
