"""`JobsFilterProxy`: the jobs table filtered by status and text, with folded batches shown as one row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel

from comfystudio_desktop.jobs import JobRecord, JobStatus
from comfystudio_desktop.ui.job_columns import RecordRole, SortRole
from comfystudio_desktop.ui.jobs_model import JobsTableModel

__all__ = ["JobsFilterProxy"]

_Index = QModelIndex | QPersistentModelIndex


class JobsFilterProxy(QSortFilterProxyModel):
    """Shows the jobs whose status is in a set and whose prompt, model, id or error contain a text; a folded
    batch shows as its lead's row alone."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._statuses: frozenset[JobStatus] | None = None
        self._text = ""
        self._hidden: set[str] = set()  # the source's folded-away rows (its `folds.hidden`, the same set)
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)

    def setSourceModel(self, source: Any) -> None:
        """Follow the source's folded batches, when it is a `JobsTableModel`."""
        old = self.sourceModel()
        if isinstance(old, JobsTableModel):
            old.folds_changed.disconnect(self._on_source_folds_changed)
        super().setSourceModel(source)
        self._hidden = set()
        if isinstance(source, JobsTableModel):
            self._hidden = source.folds.hidden
            source.folds_changed.connect(self._on_source_folds_changed)

    def _on_source_folds_changed(self) -> None:
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_statuses(self, statuses: Iterable[JobStatus] | None) -> None:
        """Show only these statuses (None: all)."""
        self.beginFilterChange()
        self._statuses = frozenset(statuses) if statuses is not None else None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        """Show only jobs mentioning `text` (case-insensitive; "" for all)."""
        self.beginFilterChange()
        self._text = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        """Match status set and text."""
        hidden = self._hidden
        if self._statuses is None and not self._text and not hidden:
            return True  # asked for every changed row while the table updates: no filter, no lookup
        source = self.sourceModel()
        record = source.record_at(source_row) if isinstance(source, JobsTableModel) else \
            source.index(source_row, 0, source_parent).data(RecordRole)
        if not isinstance(record, JobRecord):
            return False
        if record.job_id in hidden:
            return False
        if self._statuses is not None and record.status not in self._statuses:
            return False
        if not self._text:
            return True
        job = record.job
        haystack = [record.job_id, record.error, record.message]
        if job is not None:
            haystack += [job.prompt, job.negative_prompt, job.model, job.workflow, job.batch_id]
        return any(self._text in part.casefold() for part in haystack)
