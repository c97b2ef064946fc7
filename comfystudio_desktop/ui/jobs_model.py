"""`JobsTableModel`: one row per job, updated from `JobEvent`s and `JobRecord`s; `JobsFilterProxy` on top.

Updates touch only the cells that changed, in one row. Progress arrives far faster than anyone can read
it, so progress-only changes are collected and flushed about ten times a second; a change of status is
shown at once (and takes any pending progress for that row with it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QImage

from comfystudio_desktop.jobs import JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.job_columns import (
    HEADERS,
    Column,
    JobIdRole,
    ProgressRole,
    RecordRole,
    SortRole,
    StatusRole,
    ThumbnailRole,
    cell_sort_key,
    cell_text,
    cell_tooltip,
)
from comfystudio_desktop.ui.thumbnail_cache import ThumbnailCache

__all__ = [
    "Column",
    "JobIdRole",
    "JobsFilterProxy",
    "JobsTableModel",
    "ProgressRole",
    "RecordRole",
    "SortRole",
    "StatusRole",
    "ThumbnailRole",
]

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
_RIGHT_ALIGNED = {Column.SEED, Column.WAIT, Column.RUN}


@dataclass(slots=True)
class _Row:
    record: JobRecord
    preview: bytes | None = None  # the latest preview frame of a running job
    preview_image: QImage | None = None  # `preview`, decoded when first shown


class JobsTableModel(QAbstractTableModel):
    """Jobs keyed by id; new jobs are appended (sort with `JobsFilterProxy`)."""

    def __init__(self, resolve_image: Callable[[str], Path | None] | None = None, *, thumbnail_size: int = 64,
                 flush_interval_ms: int = 100, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._row_of: dict[str, int] = {}
        self._resolve_image = resolve_image
        self._thumb_size = thumbnail_size
        self._thumbnails = ThumbnailCache(thumbnail_size, parent=self)
        self._thumbnails.loaded.connect(self._on_thumbnails_loaded)
        self._dirty: dict[str, set[Column]] = {}
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(flush_interval_ms)
        self._flush_timer.timeout.connect(self._on_flush_timer_timeout)

    # --- Qt model interface -----------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """Number of jobs (0 under any parent: this is a flat table)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """Number of columns."""
        return 0 if parent.isValid() else len(Column)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        """Selectable, read-only cells."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        horizontal = orientation == Qt.Orientation.Horizontal and 0 <= section < len(Column)
        return HEADERS[Column(section)] if horizontal and role == Qt.ItemDataRole.DisplayRole else None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell data for the standard roles and `JobIdRole` … `SortRole`."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        record = row.record
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(record, column) if column != Column.THUMBNAIL else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return cell_tooltip(record, column) or None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if column in _RIGHT_ALIGNED else _LEFT
        if role in (ThumbnailRole, Qt.ItemDataRole.DecorationRole):
            return self._thumbnail(row) if role == ThumbnailRole or column == Column.THUMBNAIL else None
        return self._custom_data(record, column, role)

    @staticmethod
    def _custom_data(record: JobRecord, column: Column, role: int) -> Any:
        if role == JobIdRole:
            return record.job_id
        if role == StatusRole:
            return record.status
        if role == ProgressRole:
            return record.progress
        if role == RecordRole:
            return record
        if role == SortRole:
            return cell_sort_key(record, column)
        return None

    # --- updates ----------------------------------------------------------------------------------------

    def upsert_record(self, record: JobRecord) -> None:
        """Add or replace a job's full state (e.g. from the queue at start-up); older snapshots are ignored."""
        row = self._row_of.get(record.job_id)
        if row is None:
            self._append(_Row(record))
            return
        current = self._rows[row].record
        if record.updated_at and current.updated_at and record.updated_at < current.updated_at:
            if record.job is not None and current.job is None:  # an old snapshot still knows the parameters
                self._update(row, replace(current, job=record.job), immediate=True)
            return
        merged = record if record.job is not None else replace(record, job=current.job)
        self._update(row, merged, immediate=True)

    def upsert_records(self, records: Iterable[JobRecord]) -> None:
        """`upsert_record` for many at once: new jobs are inserted in one block (one re-sort for a proxy)."""
        fresh: dict[str, JobRecord] = {}
        for record in records:
            if record.job_id in self._row_of:
                self.upsert_record(record)
            else:
                fresh[record.job_id] = record  # a later snapshot of the same job in the batch wins
        if not fresh:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        for offset, record in enumerate(fresh.values()):
            self._rows.append(_Row(record))
            self._row_of[record.job_id] = first + offset
        self.endInsertRows()

    def apply_event(self, event: JobEvent) -> None:
        """Apply one change; unknown jobs get a row of their own until their record arrives."""
        row = self._row_of.get(event.job_id)
        if row is None:
            record = JobRecord(job_id=event.job_id, status=event.status, progress=event.progress,
                               updated_at=event.updated_at)
            self._append(_Row(_merge_event(record, event), preview=event.preview))
            return
        current = self._rows[row].record
        if current.status.is_terminal and event.status == JobStatus.PROCESSING:
            log.debug("Job %s: ignoring a late %s event after %s", event.job_id, event.status, current.status)
            return
        if event.updated_at and current.updated_at and event.updated_at < current.updated_at:
            log.debug("Job %s: ignoring an out-of-date event", event.job_id)
            return
        extra: set[Column] = set()
        if event.preview:
            self._rows[row].preview, self._rows[row].preview_image = event.preview, None
            extra.add(Column.THUMBNAIL)
        new = _merge_event(current, event)
        self._update(row, new, immediate=new.status != current.status, extra=extra)

    def remove_finished(self) -> int:
        """Drop finished, failed and cancelled jobs; return how many were removed."""
        return self._remove_rows(i for i, r in enumerate(self._rows) if r.record.status.is_terminal)

    def remove_jobs(self, job_ids: Iterable[str]) -> int:
        """Drop the given jobs; return how many were removed."""
        return self._remove_rows(self._row_of[j] for j in set(job_ids) if j in self._row_of)

    def record(self, job_id: str) -> JobRecord | None:
        """The job's current state, or None if it is not in the table."""
        row = self._row_of.get(job_id)
        return self._rows[row].record if row is not None else None

    def row_of(self, job_id: str) -> int:
        """The row of `job_id`, or -1."""
        return self._row_of.get(job_id, -1)

    def job_ids(self) -> list[str]:
        """All job ids, in row order."""
        return [r.record.job_id for r in self._rows]

    def flush(self) -> None:
        """Show pending progress changes now."""
        self._flush_timer.stop()
        dirty, self._dirty = self._dirty, {}
        for job_id, columns in dirty.items():
            row = self._row_of.get(job_id)
            if row is not None:
                self._emit_changed(row, columns)

    # --- internals --------------------------------------------------------------------------------------

    def _append(self, row: _Row) -> None:
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(row)
        self._row_of[row.record.job_id] = position
        self.endInsertRows()

    def _update(self, row: int, new: JobRecord, *, immediate: bool, extra: set[Column] | None = None) -> None:
        old = self._rows[row].record
        self._rows[row].record = new
        changed = {c for c in Column if _cell_state(old, c) != _cell_state(new, c)} | (extra or set())
        if not changed:
            return
        job_id = new.job_id
        if immediate:
            self._emit_changed(row, changed | self._dirty.pop(job_id, set()))
            return
        self._dirty.setdefault(job_id, set()).update(changed)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _emit_changed(self, row: int, columns: set[Column]) -> None:
        self.dataChanged.emit(self.index(row, min(columns)), self.index(row, max(columns)))

    def _remove_rows(self, rows: Iterable[int]) -> int:
        doomed = sorted(set(rows), reverse=True)
        # Remove runs of adjacent rows from the bottom up, so the indices of the rest stay valid meanwhile.
        runs: list[list[int]] = []
        for row in doomed:
            if runs and runs[-1][0] == row + 1:
                runs[-1][0] = row
            else:
                runs.append([row, row])
        for first, last in runs:
            self.beginRemoveRows(QModelIndex(), first, last)
            for row in range(last, first - 1, -1):
                self._dirty.pop(self._rows[row].record.job_id, None)
            del self._rows[first:last + 1]
            self._row_of = {r.record.job_id: i for i, r in enumerate(self._rows)}
            self.endRemoveRows()
        return len(doomed)

    def _thumbnail(self, row: _Row) -> QImage | None:
        record = row.record
        if record.image_url and record.status == JobStatus.FINISHED and self._resolve_image is not None:
            url = record.image_url
            image = self._thumbnails.get(url, lambda: self._locate(url))
            if image is not None:
                return image
        if row.preview and row.preview_image is None:
            decoded = QImage.fromData(row.preview)  # previews are small frames: cheap enough on the GUI thread
            if not decoded.isNull():
                row.preview_image = decoded.scaled(self._thumb_size, self._thumb_size,
                                                   Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation)
        return row.preview_image

    def _locate(self, image_url: str) -> Path | None:
        """The output file of `image_url`, or None if the resolver refuses it (e.g. a path outside storage)."""
        if self._resolve_image is None:
            return None
        try:
            return self._resolve_image(image_url)
        except (ValueError, OSError) as exc:
            log.warning("No thumbnail for %s: %s", image_url, exc)
            return None

    def _on_thumbnails_loaded(self, image_url: str) -> None:
        for i, row in enumerate(self._rows):
            if row.record.image_url == image_url:
                self._emit_changed(i, {Column.THUMBNAIL})

    def _on_flush_timer_timeout(self) -> None:
        self.flush()


def _merge_event(record: JobRecord, event: JobEvent) -> JobRecord:
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
        started_at=started, finished_at=finished)


def _cell_state(record: JobRecord, column: Column) -> tuple[object, ...]:
    """Everything a cell's data depends on; cells whose state is unchanged are not repainted."""
    if column == Column.THUMBNAIL:
        return record.image_url, record.status == JobStatus.FINISHED, record.outputs
    if column == Column.PROGRESS:
        return record.progress, record.status, record.message
    return cell_text(record, column), cell_tooltip(record, column)


class JobsFilterProxy(QSortFilterProxyModel):
    """Shows the jobs whose status is in a set and whose prompt, model, id or error contain a text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._statuses: frozenset[JobStatus] | None = None
        self._text = ""
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)

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
        record = self.sourceModel().index(source_row, 0, source_parent).data(RecordRole)
        if not isinstance(record, JobRecord):
            return False
        if self._statuses is not None and record.status not in self._statuses:
            return False
        if not self._text:
            return True
        job = record.job
        haystack = [record.job_id, record.error, record.message]
        if job is not None:
            haystack += [job.prompt, job.negative_prompt, job.model, job.workflow]
        return any(self._text in part.casefold() for part in haystack)
