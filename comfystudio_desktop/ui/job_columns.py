"""What each column of the jobs table shows for a `JobRecord`: text, tooltip and sort key. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache

from PySide6.QtCore import Qt

from comfystudio_desktop.comfy.failure_report import FailureReport, read_failure
from comfystudio_desktop.jobs import JobRecord, JobStatus

__all__ = [
    "HEADERS",
    "Column",
    "JobIdRole",
    "ProgressRole",
    "ReasonRole",
    "RecordRole",
    "SortRole",
    "StatusRole",
    "ThumbnailRole",
    "cell_sort_key",
    "cell_text",
    "cell_tooltip",
    "failure_reason",
    "format_duration",
]

JobIdRole = Qt.ItemDataRole.UserRole + 1  # str
StatusRole = Qt.ItemDataRole.UserRole + 2  # the JobStatus *value* ("processing"): Qt turns str enums into str
ProgressRole = Qt.ItemDataRole.UserRole + 3  # int 0..100
ThumbnailRole = Qt.ItemDataRole.UserRole + 4  # QImage | None (output, or the live preview while running)
RecordRole = Qt.ItemDataRole.UserRole + 5  # JobRecord
SortRole = Qt.ItemDataRole.UserRole + 6  # a value that sorts the column sensibly
ReasonRole = Qt.ItemDataRole.UserRole + 7  # str: a failed job's short reason ("" otherwise)


class Column(IntEnum):
    """Columns of the jobs table, in display order."""

    STATUS = 0
    PROGRESS = 1
    THUMBNAIL = 2
    PROMPT = 3
    MODEL = 4
    SEED = 5
    SIZE = 6
    CREATED = 7
    WAIT = 8
    RUN = 9
    ERROR = 10


HEADERS: dict[Column, str] = {
    Column.STATUS: "Status", Column.PROGRESS: "Progress", Column.THUMBNAIL: "Output", Column.PROMPT: "Prompt",
    Column.MODEL: "Model", Column.SEED: "Seed", Column.SIZE: "Size", Column.CREATED: "Created",
    Column.WAIT: "Wait", Column.RUN: "Run time", Column.ERROR: "Error",
}
_STATUS_ORDER = {JobStatus.PROCESSING: 0, JobStatus.QUEUED: 1, JobStatus.FAILED: 2, JobStatus.CANCELLED: 3,
                 JobStatus.FINISHED: 4}
_MAX_TEXT = 300
_MAX_TOOLTIP = 2000


def cell_text(record: JobRecord, column: Column) -> str:
    """The text shown in the cell."""
    job = record.job
    match column:
        case Column.STATUS:
            return record.status.value.capitalize()
        case Column.PROGRESS:
            return f"{record.progress} %"
        case Column.THUMBNAIL:
            return ""
        case Column.PROMPT:
            return _one_line(job.prompt) if job else ""
        case Column.MODEL:
            return job.model.replace("\\", "/").rsplit("/", 1)[-1] if job else ""
        case Column.SEED:
            return _seed_text(record)
        case Column.SIZE:
            return _size_text(record)
        case Column.CREATED:
            return _created_text(_created(record))
        case Column.WAIT:
            return format_duration(_seconds_between(_created(record), record.started_at))
        case Column.RUN:
            return format_duration(_seconds_between(record.started_at, record.finished_at))
        case Column.ERROR:
            return failure_reason(record) or _one_line(record.error)


def cell_tooltip(record: JobRecord, column: Column) -> str:
    """The tooltip of the cell ("" for none)."""
    job = record.job
    match column:
        case Column.STATUS | Column.PROGRESS:
            return record.message or record.status.value.capitalize()
        case Column.THUMBNAIL:
            return "\n".join(record.outputs) or record.image_url
        case Column.PROMPT:
            if job is None:
                return ""
            text = job.prompt + (f"\n\nNegative: {job.negative_prompt}" if job.negative_prompt else "")
            return _clip(text, _MAX_TOOLTIP)
        case Column.MODEL:
            return f"{job.model}\nWorkflow: {job.workflow}" if job else ""
        case Column.CREATED:
            return _created(record)
        case Column.ERROR:
            return _clip(_report(record.error, record.node_errors).copy_text(), _MAX_TOOLTIP) if record.error else ""
    return ""


def cell_sort_key(record: JobRecord, column: Column) -> str | int | float:
    """A key that sorts the column: numbers for numbers, ISO time for times."""
    job = record.job
    match column:
        case Column.STATUS:
            return _STATUS_ORDER[record.status]
        case Column.PROGRESS:
            return record.progress
        case Column.SEED:
            seed = record.seed_used if record.seed_used is not None else job.seed if job else -1
            return float(seed)  # seeds exceed 64-bit signed; float keeps the order well enough for sorting
        case Column.CREATED:
            return _created(record)
        case Column.WAIT:
            return _seconds_between(_created(record), record.started_at) or -1.0
        case Column.RUN:
            return _seconds_between(record.started_at, record.finished_at) or -1.0
    return cell_text(record, column).lower()


def failure_reason(record: JobRecord) -> str:
    """A failed job's reason in one short line ("CLIPLoader: qwen_3_4b.safetensors not installed"); "" otherwise."""
    if record.status is not JobStatus.FAILED:
        return ""
    return _report(record.error, record.node_errors).short


@lru_cache(maxsize=1024)
def _report(error: str, node_errors: str) -> FailureReport:
    """Reports are read while painting: each distinct error is parsed once."""
    return read_failure(error, node_errors)


def format_duration(seconds: float | None) -> str:
    """"4.2 s", "1 min 05 s", "2 h 03 min"; "" for unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _created(record: JobRecord) -> str:
    return record.created_at or (record.job.created_at if record.job else "")


def _parse(iso: str) -> datetime | None:
    if not iso:
        return None
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _seconds_between(start: str, end: str) -> float | None:
    first, last = _parse(start), _parse(end)
    if first is None or last is None:
        return None
    return max(0.0, (last - first).total_seconds())


def _created_text(iso: str) -> str:
    when = _parse(iso)
    if when is None:
        return ""
    local = when.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def _seed_text(record: JobRecord) -> str:
    if record.seed_used is not None:
        return str(record.seed_used)
    if record.job is None:
        return ""
    return "random" if record.job.seed < 0 else str(record.job.seed)


def _size_text(record: JobRecord) -> str:
    job = record.job
    if job is None:
        return ""
    size = f"{job.width}×{job.height}" if job.width and job.height else job.aspect_ratio
    return f"{size} ×{job.batch_size}" if job.batch_size > 1 else size


def _one_line(text: str) -> str:
    return _clip(" ".join(text.split()), _MAX_TEXT)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
