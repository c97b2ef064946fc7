"""Reading what Redis holds about a job: a status hash into a `JobRecord`, a stream entry into a `JobEvent`.

Both are tolerant: fields that other tools left out or garbled (a non-numeric progress, an unknown status, a spec
that no longer parses) give defaults, never an exception in a listing or in the window's event follower.
"""

from __future__ import annotations

import json

from comfystudio_desktop.jobs import Job, JobEvent, JobRecord, JobStatus, JobValidationError

__all__ = ["STATUS_PREFIX", "decode_hash", "event_from_fields", "int_field", "record_from_hash", "reply_text"]

#: A job's record is the hash at this prefix + its id.
STATUS_PREFIX = "job:status:"


def reply_text(value: object) -> str:
    """A reply field read undecoded: text, with invalid UTF-8 kept visible as escapes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return "" if value is None else str(value)


def decode_hash(raw: object) -> dict[str, str]:
    """An undecoded HGETALL reply as text; invalid UTF-8 (written by another tool) kept visible as escapes."""
    if not isinstance(raw, dict):
        return {}
    return {reply_text(key): reply_text(value) for key, value in raw.items()}


def int_field(text: str | None, default: int = 0) -> int:
    """A numeric field of a hash, or `default` when it is missing or not a number."""
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _status(text: str | None) -> JobStatus:
    try:
        return JobStatus(text or "queued")
    except ValueError:
        return JobStatus.FAILED  # written by another tool: shown as failed rather than breaking a listing


def _outputs(text: str | None) -> tuple[str, ...]:
    try:
        value = json.loads(text or "[]")
    except (ValueError, RecursionError):
        return ()
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _seed_used(text: str | None) -> int | None:
    """The seed a run used, None when not recorded (or garbled)."""
    seed = int_field(text, -1)
    return seed if seed >= 0 else None


def record_from_hash(data: dict[str, str]) -> JobRecord:
    """Turn a `job:status:{id}` hash into a JobRecord (tolerant of fields other tools left out or garbled)."""
    spec = data.get("spec")
    job: Job | None = None
    if spec:
        try:
            job = Job.from_json(spec)
        except JobValidationError:
            job = None
    return JobRecord(
        job_id=data.get("job_id", ""),
        status=_status(data.get("status")),
        progress=int_field(data.get("progress")),
        image_url=data.get("image_url", ""),
        error=data.get("error", ""),
        updated_at=data.get("updated_at", ""),
        message=data.get("message", ""),
        attempts=int_field(data.get("attempts")),
        seed_used=_seed_used(data.get("seed_used")),
        created_at=data.get("created_at", ""),
        started_at=data.get("started_at", ""),
        finished_at=data.get("finished_at", ""),
        outputs=_outputs(data.get("outputs")),
        node_errors=data.get("node_errors", ""),
        job=job,
        rerun_required=data.get("rerun_required") == "1",
        comfy_prompt_id=data.get("comfy_prompt_id", ""),
        backend=data.get("backend", ""),
        from_cache=data.get("from_cache") == "1",
        output_location=data.get("output_location", ""),
    )


def event_from_fields(fields: dict[str, str]) -> JobEvent:
    """Turn one event-stream entry into a JobEvent."""
    return JobEvent(
        job_id=fields.get("job_id", ""),
        status=_status(fields.get("status")),
        progress=int_field(fields.get("progress")),
        updated_at=fields.get("updated_at", ""),
        message=fields.get("message", ""),
        image_url=fields.get("image_url", ""),
        error=fields.get("error", ""),
        node_errors=fields.get("node_errors", ""),
        seed_used=_seed_used(fields.get("seed_used")),
        attempts=max(0, int_field(fields.get("attempts"))),
        backend=fields.get("backend", ""),
    )
