"""One ended job as the history keeps it: a compact, typed `HistoryEntry`, its JSON form and its search words.

Stored entries are outside data like any other (another tool, an older version, a damaged AOF may have written
them): `parse_entry` turns any bytes into an entry or `None`, logging one line for what it skips.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from comfystudio_desktop.jobs import Job, JobRecord, JobStatus, JobValidationError, parse_json

__all__ = ["ENTRY_VERSION", "HistoryEntry", "entry_from_record", "parse_entry", "search_words", "time_ms"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ENTRY_VERSION = 1
MAX_WORDS = 64  # words of one prompt that are indexed (a 20,000-character prompt does not make 3,000 keys)
MAX_WORD_CHARS = 40
_WORD_RE = re.compile(r"\w+")
_MAX_TEXT = 100_000
_MAX_OUTPUTS = 64
_MS_LIMIT = 10**15  # year 33658: anything larger is garbage


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """An ended job: what was asked (`job`), how it ended, when, and where its images are."""

    job: Job
    status: JobStatus
    ended_ms: int  # milliseconds since the epoch, UTC
    seed_used: int | None = None
    image_url: str = ""
    outputs: tuple[str, ...] = ()
    error: str = ""
    favourite: bool = False  # read from the favourites set, not stored in the entry
    output_location: str = ""  # where the outputs live (outputs/location.py's JSON), kept for `fetch` after the TTL

    @property
    def job_id(self) -> str:
        """The job's id (the history's key)."""
        return self.job.job_id

    @property
    def ended_at(self) -> datetime:
        """When the job ended, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ended_ms / 1000, UTC)

    def with_favourite(self, favourite: bool) -> HistoryEntry:
        """The same entry, starred or not."""
        return replace(self, favourite=favourite)

    def to_json(self) -> str:
        """The compact stored form (favourite excluded: it lives in its own set)."""
        data = {"v": ENTRY_VERSION, "status": self.status.value, "ended_ms": self.ended_ms,
                "seed_used": self.seed_used, "image_url": self.image_url, "outputs": list(self.outputs),
                "error": self.error, "job": _compact(self.job)}
        if self.output_location:
            data["output_location"] = self.output_location
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, for `history --json`."""
        return {"job_id": self.job_id, "status": self.status.value, "ended_at": self.ended_at.isoformat(),
                "favourite": self.favourite, "prompt": self.job.prompt, "model": self.job.model,
                "seed": self.seed_used if self.seed_used is not None else self.job.seed,
                "image_url": self.image_url, "outputs": list(self.outputs), "error": self.error,
                "job": self.job.to_dict()}


def _compact(job: Job) -> dict[str, object]:
    """The job's fields without those at their default (`Job.from_dict` reads a missing field as its default)."""
    return {k: v for k, v in job.to_dict().items() if k in _ALWAYS or v != _DEFAULTS.get(k, v)}


_ALWAYS = frozenset({"prompt", "job_id", "created_at"})
_DEFAULTS = Job(prompt="-").to_dict()


def search_words(text: str) -> list[str]:
    """The distinct lower-case words of `text` that search looks up, in order of first appearance.

    One-character words ("a", "x") are left out: they would be in most prompts and narrow nothing.
    """
    words: dict[str, None] = {}
    for word in _WORD_RE.findall(text.casefold()):
        if 2 <= len(word) <= MAX_WORD_CHARS:
            words.setdefault(word, None)
            if len(words) >= MAX_WORDS:
                break
    return list(words)


def time_ms(iso: str) -> int | None:
    """An ISO 8601 time as epoch milliseconds (naive times are UTC), or None if it is not one."""
    try:
        moment = datetime.fromisoformat(iso)
    except (ValueError, TypeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def entry_from_record(record: JobRecord, *, fallback_ms: int) -> HistoryEntry | None:
    """The history entry for an ended job's record; None (and one log line) if it is not an ended, parseable job."""
    if not record.status.is_terminal or record.job is None:
        log.warning("History skips job %r: %s", record.job_id,
                    "its stored job does not parse" if record.job is None else f"it is {record.status.value}")
        return None
    ended = time_ms(record.finished_at or record.updated_at)
    return HistoryEntry(job=record.job, status=record.status, ended_ms=ended if ended is not None else fallback_ms,
                        seed_used=record.seed_used, image_url=record.image_url, outputs=record.outputs,
                        error=record.error, output_location=record.output_location)


def parse_entry(raw: object, job_id: str = "") -> HistoryEntry | None:
    """A stored entry (bytes or text) as a `HistoryEntry`, or None with one log line naming what is wrong."""
    try:
        return _parse(raw, job_id)
    except (JobValidationError, ValueError, TypeError, RecursionError) as exc:
        log.warning("History entry %r skipped: %s", job_id, str(exc)[:200])
        return None


def _parse(raw: object, job_id: str) -> HistoryEntry:
    if not isinstance(raw, bytes | str):
        raise TypeError(f"not text but {type(raw).__name__}")
    if len(raw) > _MAX_TEXT:
        raise ValueError(f"{len(raw)} bytes, more than an entry can hold")
    data = parse_json(raw)
    if not isinstance(data, dict) or data.get("v") != ENTRY_VERSION:
        raise ValueError(f"not a version {ENTRY_VERSION} entry")
    status = data.get("status")
    if not isinstance(status, str) or status not in {s.value for s in JobStatus} or not JobStatus(status).is_terminal:
        raise ValueError("no ended status")
    ended = _exact(data, "ended_ms", int)
    if isinstance(ended, bool) or not 0 <= ended < _MS_LIMIT:
        raise ValueError("bad ended_ms")
    seed = data.get("seed_used")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError("bad seed_used")
    outputs = _exact(data, "outputs", list)
    if len(outputs) > _MAX_OUTPUTS or not all(isinstance(o, str) for o in outputs):
        raise ValueError("bad outputs")
    location = data.get("output_location", "")
    if not isinstance(location, str):
        raise ValueError("bad output_location")
    job = Job.from_dict(data.get("job"))
    if job_id and job.job_id != job_id:
        raise ValueError(f"holds job {job.job_id!r}")
    return HistoryEntry(job=job, status=JobStatus(status), ended_ms=ended, seed_used=seed,
                        image_url=_exact(data, "image_url", str), outputs=tuple(outputs),
                        error=_exact(data, "error", str), output_location=location)


def _exact(data: dict[str, object], key: str, kind: type[T]) -> T:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"{key} is not {kind.__name__}")
    return value
