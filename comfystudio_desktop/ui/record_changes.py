"""How a job's row changes: an event merged into its record, which cells that changes, retries by user or crash.

Pure functions over `JobRecord`s, used by `JobsTableModel` to update only the cells that changed.
"""

from __future__ import annotations

from dataclasses import replace

from comfystudio_desktop.jobs import JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.job_columns import Column, cell_text, cell_tooltip, failure_reason

__all__ = ["cell_state", "changed_columns", "merge_event", "retried_by_user", "retry_attempt", "retry_text"]

# Fields that change while a job runs and the only columns that show them: an event that changes nothing else
# needs no comparison of every cell's text.
_PROGRESS_FIELDS = frozenset({"progress", "updated_at"})
_MESSAGE_FIELDS = frozenset({"progress", "updated_at", "message"})
_FIELDS = tuple(JobRecord.__dataclass_fields__)


def retry_text(attempt: int) -> str:
    """What a requeued job's row says while it waits to run again."""
    return f"retrying (attempt {attempt})"


def merge_event(record: JobRecord, event: JobEvent) -> JobRecord:
    """`record` updated by `event`: status, progress and texts from the event; times stamped on transitions."""
    status = event.status
    same = status == record.status
    started = record.started_at or (event.updated_at if status == JobStatus.PROCESSING else "")
    finished = record.finished_at or (event.updated_at if status.is_terminal else "")
    if status == JobStatus.QUEUED:  # queued again (retry, recovery): the previous attempt's times no longer apply
        started = finished = ""
    return replace(
        record, status=status, progress=event.progress, updated_at=event.updated_at or record.updated_at,
        message=event.message, image_url=event.image_url or record.image_url,
        error=event.error or (record.error if same else ""),
        node_errors=event.node_errors or (record.node_errors if same else ""),
        seed_used=event.seed_used if event.seed_used is not None else record.seed_used,
        attempts=event.attempts, started_at=started, finished_at=finished)


def retried_by_user(current: JobRecord, new: JobRecord) -> bool:
    """A retry by the user starts a new attempt sequence (progress and attempts from zero).

    Only a retry brings a failed or cancelled job back, and only a retry lowers the queue's attempt count.
    """
    return (current.status in (JobStatus.FAILED, JobStatus.CANCELLED) and not new.status.is_terminal) \
        or new.attempts < current.attempts


def retry_attempt(record: JobRecord) -> int | None:
    """The attempt a requeued job waits for (2 for its first retry), or None (not queued, or never run before)."""
    attempt = record.attempts + 1
    return attempt if record.status == JobStatus.QUEUED and attempt >= 2 else None


def changed_columns(old: JobRecord, new: JobRecord) -> set[Column]:
    """The columns whose cells differ between `old` and `new`."""
    fields = {name for name in _FIELDS if getattr(old, name) != getattr(new, name)}
    if fields <= _PROGRESS_FIELDS:  # most events: a running job's progress
        return {Column.PROGRESS} if "progress" in fields else set()
    if fields <= _MESSAGE_FIELDS:
        return {Column.STATUS, Column.PROGRESS}
    return {c for c in Column if cell_state(old, c) != cell_state(new, c)}


def cell_state(record: JobRecord, column: Column) -> tuple[object, ...]:
    """Everything a cell's data depends on; cells whose state is unchanged are not repainted."""
    if column == Column.THUMBNAIL:
        return record.image_url, record.status == JobStatus.FINISHED, record.outputs
    if column == Column.PROGRESS:
        return record.progress, record.status, record.message
    if column == Column.PROMPT:  # a failed row's reason is painted under its prompt
        return cell_text(record, column), cell_tooltip(record, column), failure_reason(record)
    return cell_text(record, column), cell_tooltip(record, column)
