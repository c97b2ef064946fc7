"""`HistoryPages`: the lasting history read newest first, one page at a time, as table records.

The jobs table shows tens of thousands of ended jobs; it asks for them a page at a time as the view scrolls
(`JobsTableModel.attach_history`) instead of holding every one as a Python object from the start. Qt-free: the
model calls `page` from a background thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from comfystudio_desktop.jobs import JobRecord
from comfystudio_desktop.queue.history import History, HistoryQuery
from comfystudio_desktop.queue.history_entry import HistoryEntry

__all__ = ["HistoryPages", "PageSource", "record_from_entry"]


class PageSource(Protocol):
    """Records newest first: how many there are, and a slice of them."""

    def total(self) -> int:
        """How many records there are."""
        ...

    def page(self, offset: int, limit: int) -> tuple[JobRecord, ...]:
        """Up to `limit` records from `offset` on (fewer at the end)."""
        ...


class HistoryPages:
    """A `PageSource` over `History` (safe to call from any thread: History is)."""

    def __init__(self, history: History) -> None:
        self._history = history

    def total(self) -> int:
        """How many entries the history holds."""
        return self._history.count()

    def page(self, offset: int, limit: int) -> tuple[JobRecord, ...]:
        """Entries `offset` … `offset + limit - 1`, newest first, as records."""
        found = self._history.search(HistoryQuery(offset=offset, limit=limit))
        return tuple(record_from_entry(e) for e in found.entries)


def record_from_entry(entry: HistoryEntry) -> JobRecord:
    """The table record of an ended job from its history entry."""
    ended = datetime.fromtimestamp(entry.ended_ms / 1000, UTC).isoformat(timespec="milliseconds")
    job = entry.job
    return JobRecord(job_id=job.job_id, status=entry.status, progress=100 if entry.image_url else 0,
                     image_url=entry.image_url, error=entry.error, updated_at=ended, seed_used=entry.seed_used,
                     created_at=job.created_at, finished_at=ended, outputs=entry.outputs, job=job)
