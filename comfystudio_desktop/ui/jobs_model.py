"""`JobsTableModel`: one row per job, updated from `JobEvent`s and `JobRecord`s (`JobsFilterProxy` goes on top).

Updates touch only the cells that changed. Progress arrives far faster than a screen refreshes, so changes
within a status are collected per row and flushed once a frame (16 ms), the last state of each row winning, as
one `dataChanged` per run of adjacent rows; a change of status is shown at once (and takes any pending change for
that row with it).

The lasting history can stand behind the live jobs (`attach_history`): its records are read a page at a time, off
the GUI thread, as the view scrolls to the end (`canFetchMore` / `fetchMore`), never all up front.

A row's progress never goes backwards while the job runs again after a requeue (a crashed worker or ComfyUI):
the row shows "retrying (attempt N)" with the furthest progress reached. Only a retry by the user starts over.

A batch can be folded into one row (`fold_batch`): its lead's row shows the whole batch (see `batch_folds`) and
`JobsFilterProxy` hides the other members.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage

from comfystudio_desktop.jobs import JobEvent, JobRecord, JobStatus
from comfystudio_desktop.ui.background_tasks import run_in_background
from comfystudio_desktop.ui.batch_folds import BatchFolds, BatchSummary, batch_summary
from comfystudio_desktop.ui.history_pages import PageSource
from comfystudio_desktop.ui.job_columns import (
    HEADERS,
    Column,
    JobIdRole,
    ProgressRole,
    ReasonRole,
    RecordRole,
    SortRole,
    StatusRole,
    ThumbnailRole,
    cell_sort_key,
    cell_text,
    cell_tooltip,
    failure_reason,
)
from comfystudio_desktop.ui.record_changes import (
    changed_columns,
    merge_event,
    retried_by_user,
    retry_attempt,
    retry_text,
)
from comfystudio_desktop.ui.thumbnail_cache import ThumbnailCache

__all__ = [
    "RIGHT_ALIGNED",
    "Column",
    "JobIdRole",
    "JobsTableModel",
    "ProgressRole",
    "QueuePositionRole",
    "ReasonRole",
    "RecordRole",
    "RetryAttemptRole",
    "SortRole",
    "StatusRole",
    "ThumbnailRole",
]

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_LEFT = int((Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter).value)
RIGHT_ALIGNED = frozenset({Column.SEED, Column.WAIT, Column.RUN})
_RETRY_COLUMNS = {Column.STATUS, Column.PROGRESS}
#: int | None: the attempt a requeued job waits for (2 for its first retry); None when it is not waiting to retry.
RetryAttemptRole = Qt.ItemDataRole.UserRole + 20
#: int | None: a queued job's place in the run order (1 runs next), from `set_run_order`.
QueuePositionRole = Qt.ItemDataRole.UserRole + 21
_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.TextAlignmentRole,
                    Qt.ItemDataRole.DecorationRole, RetryAttemptRole, QueuePositionRole, ThumbnailRole, JobIdRole,
                    StatusRole, ProgressRole, RecordRole, ReasonRole, SortRole})
#: History records read per `fetchMore` (a few screens of rows; one Redis round trip).
HISTORY_PAGE = 200
_COLUMNS = tuple(Column)
# The statuses whose Status cell shows the place in the run order, and the start or time left.
_SHOWS_PLACE = frozenset({JobStatus.QUEUED})
_SHOWS_ETA = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})
# Every cell: enabled, selectable, no children, and dragged out as the row's image files (JobsView).
# The cells of a folded batch's row that show the whole batch, and the roles they answer for it.
_FOLD_COLUMNS = frozenset({Column.PROMPT, Column.STATUS, Column.PROGRESS})
_FOLD_ROLES = frozenset({Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, StatusRole, ProgressRole,
                         RetryAttemptRole})
_FOLD_REPAINT = {Column.PROMPT, Column.STATUS, Column.PROGRESS}
_CELL_FLAGS = (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
               | Qt.ItemFlag.ItemIsDragEnabled)


@dataclass(slots=True)
class _Row:
    record: JobRecord
    preview: bytes | None = None  # the latest preview frame of a running job
    preview_image: QImage | None = None  # `preview`, decoded when first shown
    texts: dict[Column, str] | None = None  # cell texts as shown, computed when first painted

    def text(self, column: Column) -> str:
        """The cell's text, cached until the record changes (a repaint asks for every visible cell)."""
        if column == Column.CREATED:  # "HH:MM:SS" today, a date from tomorrow on: not fixed by the record alone
            return cell_text(self.record, column)
        if self.texts is None:
            self.texts = {}
        text = self.texts.get(column)
        if text is None:
            text = self.texts[column] = cell_text(self.record, column)
        return text

    def retry_attempt(self) -> int | None:
        """The attempt a requeued job waits for, or None (not queued, or never run before)."""
        return retry_attempt(self.record)


class JobsTableModel(QAbstractTableModel):
    """Jobs keyed by id; new jobs are appended (sort with `JobsFilterProxy`)."""

    folds_changed = Signal()  # a batch was folded or unfolded: the rows a filter hides changed

    def __init__(self, resolve_image: Callable[[str], Path | None] | None = None, *, thumbnail_size: int = 64,
                 flush_interval_ms: int = 16, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._row_of: dict[str, int] = {}
        self._resolve_image = resolve_image
        self._thumb_size = thumbnail_size
        self._thumbnails = ThumbnailCache(thumbnail_size, parent=self)
        self._thumbnails.loaded.connect(self._on_thumbnails_loaded)
        self._rows_of_image: dict[str, set[str]] = {}  # image_url → job ids, to repaint a loaded thumbnail
        self._dirty: dict[str, set[Column]] = {}
        self._history: PageSource | None = None
        self._history_read = 0  # history records asked for so far (the next page starts here)
        self._history_total = 0
        self._history_pending = False
        self._queue_places: dict[str, tuple[int, str]] = {}  # queued job → (position, priority word or "")
        self._etas: dict[str, str] = {}  # queued or running job → "starts ≈ 14:32" / "≈ 2 min left"
        self.folds = BatchFolds()
        self._fold_summaries: dict[str, BatchSummary] = {}  # folded batch → its summary, until a member changes
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
        """Selectable, read-only cells that drag out as their row's image files."""
        # Called for every painted cell and every selected cell of `selectedRows`: one test, a constant.
        return _CELL_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def canFetchMore(self, parent: _Index) -> bool:
        """True while history records remain unread (and no page is on its way)."""
        return (not parent.isValid() and self._history is not None and not self._history_pending
                and self._history_read < self._history_total)

    def fetchMore(self, parent: _Index) -> None:
        """Read the next history page in the background; its rows are appended when it arrives."""
        if self.canFetchMore(parent):
            self._request_history_page()

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        horizontal = orientation == Qt.Orientation.Horizontal and 0 <= section < len(Column)
        return HEADERS[Column(section)] if horizontal and role == Qt.ItemDataRole.DisplayRole else None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell data for the standard roles and `JobIdRole` … `SortRole`."""
        if role not in _ROLES or not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None  # a paint asks for fonts, colours, check state … of every cell: answer those fast
        row = self._rows[index.row()]
        record = row.record
        column = _COLUMNS[index.column()]
        # `hidden` is a set: no Python call per cell while nothing is folded.
        if self.folds.hidden and column in _FOLD_COLUMNS and role in _FOLD_ROLES \
                and (batch_id := self.folds.led_by(record.job_id)) is not None:
            return self._folded_data(batch_id, row, column, role)
        if role == QueuePositionRole or (column == Column.STATUS and role in (Qt.ItemDataRole.DisplayRole, SortRole)):
            return self._queue_data(row, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text(column) if column != Column.THUMBNAIL else None
        if role == Qt.ItemDataRole.ToolTipRole:
            attempt = row.retry_attempt() if column in _RETRY_COLUMNS else None
            if attempt is not None:
                label = retry_text(attempt)
                return label if record.message in ("", label) else f"{label}: {record.message}"
            return cell_tooltip(record, column) or None
        if role == RetryAttemptRole:
            return row.retry_attempt()
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if column in RIGHT_ALIGNED else _LEFT
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
        if role == ReasonRole:
            return failure_reason(record)
        if role == SortRole:
            return cell_sort_key(record, column)
        return None

    def _folded_data(self, batch_id: str, row: _Row, column: Column, role: int) -> Any:
        """The lead's cells of a folded batch: the batch's size, status and progress."""
        summary = self.fold_summary(batch_id)
        count = len(summary.job_ids)
        if role == StatusRole:
            return summary.status
        if role == ProgressRole:
            return summary.progress
        if role == RetryAttemptRole:
            return None
        if column == Column.PROMPT:
            if role == Qt.ItemDataRole.DisplayRole:
                return f"▸ {count} jobs · {row.text(column)}"
            return f"A batch of {count} jobs in one row (Batch → Show its rows)\n{cell_tooltip(row.record, column)}"
        if column == Column.STATUS:
            return summary.status_text if role == Qt.ItemDataRole.DisplayRole else summary.title
        return f"{summary.progress} %" if role == Qt.ItemDataRole.DisplayRole else summary.title

    def _queue_data(self, row: _Row, role: int) -> Any:
        """A queued job's place: "Queued #3 · high" in the Status column, sorted by it; its position."""
        record = row.record
        place = self._queue_places.get(record.job_id) if record.status in _SHOWS_PLACE else None
        if role == QueuePositionRole:
            return place[0] if place is not None else None
        if role == SortRole:
            key = cell_sort_key(record, Column.STATUS)
            return float(key) + place[0] / 1e9 if place is not None and isinstance(key, int) else key
        text = row.text(Column.STATUS)  # the record's part, cached; the place and ETA are added to it
        if place is not None:
            text = f"{text} #{place[0]}" + (f" · {place[1]}" if place[1] else "")
        eta = self._etas.get(record.job_id) if record.status in _SHOWS_ETA else None
        return f"{text} · {eta}" if eta else text

    # --- updates ----------------------------------------------------------------------------------------

    def set_run_order(self, order: Iterable[tuple[str, str]]) -> None:
        """The queued jobs in run order, each with its priority word ("" for normal): shown in the Status column."""
        places = {job_id: (position, word) for position, (job_id, word) in enumerate(order, start=1)}
        old, self._queue_places = self._queue_places, places
        self._repaint_statuses(old, places, _SHOWS_PLACE)

    def set_eta_texts(self, etas: dict[str, str]) -> None:
        """Each queued job's start and each running job's time left, shown in the Status column."""
        old, self._etas = self._etas, dict(etas)
        self._repaint_statuses(old, self._etas, _SHOWS_ETA)

    def _repaint_statuses(self, old: Mapping[str, object], new: Mapping[str, object],
                             shown_for: frozenset[JobStatus]) -> None:
        """Repaint, with the next flush, the Status cells whose value changed, of rows in a status that shows it
        (a job that just left the queue drops out of the run order with nothing to see)."""
        for job_id in old.keys() | new.keys():
            row = self._row_of.get(job_id)
            if row is not None and old.get(job_id) != new.get(job_id) and self._rows[row].record.status in shown_for:
                self._defer(job_id, {Column.STATUS})

    # --- folded batches -----------------------------------------------------------------------------------

    def fold_batch(self, batch_id: str) -> bool:
        """Show a batch as one row (its first row here); False when fewer than two of its rows are here."""
        members = [r.record.job_id for r in self._rows
                   if r.record.job is not None and r.record.job.batch_id == batch_id]
        if not self.folds.fold(batch_id, members):
            return False
        self.folds_changed.emit()
        self._repaint_lead(batch_id)
        return True

    def unfold_batch(self, batch_id: str) -> bool:
        """Show a folded batch's rows again; False if it was not folded."""
        lead = self.folds.lead(batch_id)
        if lead is None:
            return False
        self.folds.unfold(batch_id)
        self._fold_summaries.pop(batch_id, None)
        self.folds_changed.emit()
        if (row := self._row_of.get(lead)) is not None:
            self._emit_changed(row, _FOLD_REPAINT)
        return True

    def is_folded(self, batch_id: str) -> bool:
        """True while the batch is shown as one row."""
        return self.folds.lead(batch_id) is not None

    def folded_lead(self, batch_id: str) -> str | None:
        """The job whose row shows the folded batch, or None."""
        return self.folds.lead(batch_id)

    def expand_folded(self, job_ids: Iterable[str]) -> list[str]:
        """`job_ids` with every folded batch's row standing for all its jobs."""
        return self.folds.expand(job_ids) if self.folds else list(job_ids)

    def fold_summary(self, batch_id: str) -> BatchSummary:
        """A folded batch's size, ended count, progress and status (cached until one of its jobs changes)."""
        summary = self._fold_summaries.get(batch_id)
        if summary is None:
            members = (r for j in self.folds.members(batch_id) if (r := self.record(j)) is not None)
            summary = self._fold_summaries[batch_id] = batch_summary(batch_id, members)
        return summary

    def _repaint_lead(self, batch_id: str) -> None:
        self._fold_summaries.pop(batch_id, None)
        lead = self.folds.lead(batch_id)
        if lead is not None:
            self._defer(lead, _FOLD_REPAINT)

    def _joined_fold(self, record: JobRecord) -> None:
        """A row that arrived (or learnt its batch) after its batch was folded joins the fold, hidden."""
        job = record.job
        if job is not None and job.batch_id and self.folds.add(job.batch_id, record.job_id):
            self.folds_changed.emit()
            self._repaint_lead(job.batch_id)

    def upsert_record(self, record: JobRecord) -> None:
        """Add or replace a job's full state (e.g. from the queue at start-up); older snapshots are ignored."""
        row = self._row_of.get(record.job_id)
        if row is None:
            self._append(_Row(record))
            return
        state = self._rows[row]
        current = state.record
        if record.updated_at and current.updated_at and record.updated_at < current.updated_at:
            if record.job is not None and current.job is None:  # an old snapshot still knows the parameters
                self._update(row, replace(current, job=record.job), immediate=True)
            return
        merged = record if record.job is not None else replace(record, job=current.job)
        if not retried_by_user(current, merged):
            merged = replace(merged, progress=max(merged.progress, current.progress))
        attempt_before = state.retry_attempt()
        self._update(row, merged, immediate=True, retry_changed=attempt_before != retry_attempt(merged))

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
            self._track_image(record)
        self.endInsertRows()
        if self.folds:
            for record in fresh.values():
                self._joined_fold(record)

    def apply_event(self, event: JobEvent) -> None:
        """Apply one change from the queue's event stream; unknown jobs get a row until their record arrives."""
        row = self._row_of.get(event.job_id)
        if row is None:
            record = JobRecord(job_id=event.job_id, status=event.status, progress=event.progress,
                               updated_at=event.updated_at)
            self._append(_Row(merge_event(record, event)))
            return
        current = self._rows[row].record
        if current.status.is_terminal and event.status == JobStatus.PROCESSING:
            log.debug("Job %s: ignoring a late %s event after %s", event.job_id, event.status, current.status)
            return
        # The stream's order is the queue's order; timestamps come from several clocks and threads (a cancel stamped
        # just before a worker's progress can land just after it), so they never hold back an ending.
        ends_it = event.status.is_terminal and not current.status.is_terminal
        if not ends_it and event.updated_at and current.updated_at and event.updated_at < current.updated_at:
            log.debug("Job %s: ignoring an out-of-date event", event.job_id)
            return
        new = merge_event(current, event)
        if not retried_by_user(current, new):
            new = replace(new, progress=max(new.progress, current.progress))
        self._update(row, new, immediate=new.status != current.status,
                     retry_changed=retry_attempt(current) != retry_attempt(new))

    def attach_history(self, source: PageSource) -> None:
        """Show `source`'s records (ended jobs, newest first) after the live ones, read a page at a time as the
        view asks for more; the first page is read at once, in the background."""
        self._history, self._history_read, self._history_total = source, 0, HISTORY_PAGE
        self._request_history_page()

    def set_preview(self, job_id: str, image: bytes) -> None:
        """Show a running job's latest preview frame as its thumbnail (frames of unknown or ended jobs are dropped)."""
        row = self._row_of.get(job_id)
        if row is None or self._rows[row].record.status.is_terminal:
            return
        state = self._rows[row]
        state.preview, state.preview_image = image, None
        self._emit_changed(row, {Column.THUMBNAIL})

    def output_arrived(self, job_id: str) -> None:
        """The job's image is in this home now (fetched from another machine): draw its thumbnail."""
        row = self._row_of.get(job_id)
        if row is None:
            return
        self._thumbnails.forget_failure(self._rows[row].record.image_url)
        self._emit_changed(row, {Column.THUMBNAIL})

    def needs_record(self, job_id: str) -> bool:
        """True when the job's full record should be read: its parameters are unknown (a job this window did
        not submit). The attempt count needs no read: the event stream carries it."""
        row = self._row_of.get(job_id)
        return row is not None and self._rows[row].record.job is None

    def remove_finished(self) -> int:
        """Drop finished, failed and cancelled jobs; return how many were removed."""
        return self._remove_rows(i for i, r in enumerate(self._rows) if r.record.status.is_terminal)

    def record(self, job_id: str) -> JobRecord | None:
        """The job's current state, or None if it is not in the table."""
        row = self._row_of.get(job_id)
        return self._rows[row].record if row is not None else None

    def record_at(self, row: int) -> JobRecord | None:
        """The record shown in `row`, or None outside the table."""
        return self._rows[row].record if 0 <= row < len(self._rows) else None

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
        changed = sorted((row, columns) for job_id, columns in dirty.items()
                         if (row := self._row_of.get(job_id)) is not None)
        # One signal per run of adjacent rows (the running jobs are usually together), spanning their columns.
        start = 0
        for i in range(1, len(changed) + 1):
            if i == len(changed) or changed[i][0] != changed[i - 1][0] + 1:
                run = changed[start:i]
                columns = set().union(*(c for _, c in run))
                self.dataChanged.emit(self.index(run[0][0], min(columns)), self.index(run[-1][0], max(columns)))
                start = i

    # --- internals --------------------------------------------------------------------------------------

    def _append(self, row: _Row) -> None:
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(row)
        self._row_of[row.record.job_id] = position
        self._track_image(row.record)
        self.endInsertRows()
        if self.folds:
            self._joined_fold(row.record)

    def _track_image(self, record: JobRecord) -> None:
        if record.image_url:
            self._rows_of_image.setdefault(record.image_url, set()).add(record.job_id)

    def _update(self, row: int, new: JobRecord, *, immediate: bool, extra: set[Column] | None = None,
                retry_changed: bool = False) -> None:
        old = self._rows[row].record
        self._rows[row].record = new
        self._rows[row].texts = None
        if new.image_url != old.image_url:
            self._track_image(new)
        if self.folds:
            if old.job is None:
                self._joined_fold(new)
            if (batch_id := self.folds.batch_of(new.job_id)) is not None:
                self._repaint_lead(batch_id)
        changed = changed_columns(old, new) | (extra or set())
        if retry_changed:
            changed |= _RETRY_COLUMNS
        if not changed:
            return
        job_id = new.job_id
        if immediate:
            self._emit_changed(row, changed | self._dirty.pop(job_id, set()))
            return
        self._defer(job_id, changed)

    def _defer(self, job_id: str, columns: set[Column]) -> None:
        """Repaint the row's `columns` with the next flush (within a frame), with its other pending changes."""
        self._dirty.setdefault(job_id, set()).update(columns)
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
        if doomed and self.folds:
            self.folds.keep_only(self._row_of)
            self._fold_summaries.clear()
            self.folds_changed.emit()
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
        for job_id in self._rows_of_image.get(image_url, ()):
            row = self._row_of.get(job_id)
            if row is not None and self._rows[row].record.image_url == image_url:
                self._emit_changed(row, {Column.THUMBNAIL})

    def _request_history_page(self) -> None:
        source, offset = self._history, self._history_read
        if source is None:
            return
        self._history_pending = True

        def read() -> tuple[PageSource, int, int, tuple[JobRecord, ...]]:
            return source, offset, source.total(), source.page(offset, HISTORY_PAGE)

        run_in_background(read, self._on_history_page_read)

    def _on_history_page_read(self, outcome: tuple[PageSource, int, int, tuple[JobRecord, ...]] | Exception) -> None:
        self._history_pending = False
        if isinstance(outcome, Exception):
            log.warning("Could not read the job history: %s", outcome)
            self._history_total = self._history_read  # nothing more to fetch until the history is attached again
            return
        source, offset, total, records = outcome
        if source is not self._history or offset != self._history_read:
            return  # a page of a history attached before, or one already served
        self._history_read = offset + len(records)
        self._history_total = total if records else self._history_read
        fresh = [r for r in records if r.job_id not in self._row_of]  # a live row knows more than the history
        if fresh:
            self.upsert_records(fresh)

    def _on_flush_timer_timeout(self) -> None:
        self.flush()
