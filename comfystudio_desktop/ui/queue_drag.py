"""Drag queued rows of the jobs table to reorder the queue.

An event filter on the table's viewport: a drag that starts on a queued row carries the selected queued job ids
(`QUEUE_MIME`, one id a line); a drop on a queued row puts them just before it (upper half) or after it (lower
half) in the run order, in the view's direction (sorted by Status descending, "above" runs later). Rows that
are not queued keep whatever drag the table itself offers (their image files). A folded batch's row carries,
and takes drops for, the whole batch. The drop only asks `QueueControl.drop`; the table moves when the queue's
event stream says so.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, QPoint, Qt
from PySide6.QtGui import QDrag, QDragMoveEvent, QDropEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QTableView

from comfystudio_desktop.jobs import JobRecord, JobStatus
from comfystudio_desktop.ui.jobs_model import Column, JobsTableModel, RecordRole
from comfystudio_desktop.ui.queue_control import QueueControl

__all__ = ["QUEUE_MIME", "QueueDrag", "queued_ids_from_mime"]

QUEUE_MIME = "application/x-comfystudio-queued-jobs"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MAX_IDS = 10_000


def queued_ids_from_mime(mime: QMimeData) -> list[str] | None:
    """The job ids a queue drag carries, or None if the data is not one (another app's drag, or garbage)."""
    if not mime.hasFormat(QUEUE_MIME):
        return None
    try:
        text = bytes(mime.data(QUEUE_MIME).data()).decode("utf-8")
    except UnicodeDecodeError:
        return None
    ids = text.split("\n")
    if not ids or len(ids) > _MAX_IDS or not all(_ID_RE.fullmatch(i) for i in ids):
        return None
    return ids


def queue_mime(job_ids: list[str]) -> QMimeData:
    """The drag data for queued jobs."""
    mime = QMimeData()
    mime.setData(QUEUE_MIME, QByteArray("\n".join(job_ids).encode("utf-8")))
    return mime


class QueueDrag(QObject):
    """Makes queued rows of `table` draggable to reorder the queue through `control`."""

    def __init__(self, table: QTableView, control: QueueControl, jobs: JobsTableModel) -> None:
        super().__init__(table)
        self.table = table
        self.control = control
        self.jobs = jobs
        self._press: QPoint | None = None
        table.viewport().setAcceptDrops(True)
        table.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Start queue drags from queued rows; accept and apply drops of them."""
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent):
            on_queued = event.button() == Qt.MouseButton.LeftButton and self._queued_at(event.position().toPoint())
            self._press = event.position().toPoint() if on_queued else None
        elif kind == QEvent.Type.MouseMove and isinstance(event, QMouseEvent) and self._press is not None:
            if (event.position().toPoint() - self._press).manhattanLength() >= QApplication.startDragDistance():
                self._press = None
                return self.start_drag()
        elif kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(event, QDragMoveEvent):
            return self._on_drag_move(event)
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            return self._on_drop(event)
        return False

    def selected_queued_ids(self) -> list[str]:
        """The selected rows that are queued, top to bottom."""
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        records = [index.data(RecordRole) for index in rows]
        return self._queued_among([r.job_id for r in records if isinstance(r, JobRecord)])

    def start_drag(self) -> bool:
        """Drag the selected queued rows (True when a drag ran)."""
        ids = self.selected_queued_ids()
        if not ids:
            return False
        drag = QDrag(self.table)
        drag.setMimeData(queue_mime(ids))
        drag.exec(Qt.DropAction.MoveAction)
        return True

    def _queued_at(self, point: QPoint) -> bool:
        index = self.table.indexAt(point)  # the table selects the pressed row itself, after this filter
        record = index.data(RecordRole) if index.isValid() else None
        return isinstance(record, JobRecord) and bool(self._queued_of(record))

    def _queued_of(self, record: JobRecord) -> list[str]:
        """The queued jobs a row stands for, in table order (a folded batch's row: its queued members)."""
        return self._queued_among([record.job_id])

    def _queued_among(self, job_ids: list[str]) -> list[str]:
        """The queued jobs these rows stand for (a folded batch's row: its members), in table order."""
        ids = self.jobs.expand_folded(job_ids)
        return [j for j in ids if (r := self.jobs.record(j)) is not None and r.status == JobStatus.QUEUED]

    def _target(self, point: QPoint) -> tuple[str, bool] | None:
        """The queued job under `point` and whether the drop goes after it in the run order."""
        index = self.table.indexAt(point)
        record = index.data(RecordRole) if index.isValid() else None
        queued = self._queued_of(record) if isinstance(record, JobRecord) else []
        if not queued:
            return None
        rect = self.table.visualRect(index)
        lower = point.y() >= rect.center().y()
        header = self.table.horizontalHeader()
        reversed_view = header.sortIndicatorSection() == Column.STATUS \
            and header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
        after = lower != reversed_view
        # A folded batch's row: before its first queued job, or after its last.
        return (queued[-1] if after else queued[0]), after

    def _on_drag_move(self, event: QDragMoveEvent) -> bool:
        if queued_ids_from_mime(event.mimeData()) is None:
            return False  # not ours: the table decides
        if self._target(event.position().toPoint()) is not None:
            event.setDropAction(Qt.DropAction.MoveAction)
            event.accept()
        else:
            event.ignore()
        return True

    def _on_drop(self, event: QDropEvent) -> bool:
        ids = queued_ids_from_mime(event.mimeData())
        if ids is None:
            return False
        target = self._target(event.position().toPoint())
        if target is None:
            event.ignore()
            return True
        event.setDropAction(Qt.DropAction.MoveAction)
        event.accept()
        self.control.drop(ids, target[0], after=target[1])
        return True
