"""The status bar's permanent entries (Redis, ComfyUI, counts, worker, dead letters) and the health they add up to.

A thin adapter: the controller's typed values go to labels, and the `StatusBoard` (no Qt) decides what the tray
shows; every change of that is emitted as `summary_changed(TraySummary)`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.service_state import ServiceState
from comfystudio_desktop.ui.dead_letters_dialog import DeadLetterIndicator
from comfystudio_desktop.ui.status_values import LinkStatus, WorkerStatus
from comfystudio_desktop.ui.window_summary import FaultNotice, StatusBoard, TraySummary, counts_text

__all__ = ["StatusStrip"]

_REDIS_DOWN_TIP = "The queue's Redis server is not answering; reconnecting"


class StatusStrip(QObject):
    """Owns the status bar's permanent labels; `summary_changed` says what the tray should show now."""

    summary_changed = Signal(TraySummary)

    def __init__(self, bar: QStatusBar, queue_provider: Callable[[], JobQueue | None], parent: QWidget) -> None:
        super().__init__(parent)
        self.board = StatusBoard()
        self.redis_label = QLabel("Redis: starting…")
        self.comfy_label = QLabel("ComfyUI: checking…")
        self.counts_label = QLabel(counts_text(0, 0))
        self.worker_label = QLabel("Worker: starting")
        for label in (self.redis_label, self.comfy_label, self.counts_label, self.worker_label):
            bar.addPermanentWidget(label)
        self.dead_letters = DeadLetterIndicator(queue_provider, parent)
        bar.addPermanentWidget(self.dead_letters)

    def show_redis(self, status: LinkStatus) -> None:
        """The queue's Redis answers or not."""
        self.board.redis_up = status.up
        self.redis_label.setText(status.text)
        self.redis_label.setToolTip("" if status.up else _REDIS_DOWN_TIP)
        self._changed()

    def show_comfy(self, status: LinkStatus) -> None:
        """ComfyUI answers or not."""
        self.board.comfy_up = status.up
        self.comfy_label.setText(status.text)
        self._changed()

    def show_counts(self, queued: int, running: int) -> None:
        """New queued/running counts (the dead-letter count is read again with them)."""
        self.board.queued, self.board.running = queued, running
        self.counts_label.setText(counts_text(queued, running))
        self.dead_letters.refresh()
        self._changed()

    def show_worker(self, status: WorkerStatus) -> None:
        """The worker's state."""
        self.worker_label.setText(f"Worker: {status.text}")

    def note_service(self, state: ServiceState) -> FaultNotice | None:
        """Take a service's new state into the summary; the notice to act on if it is a fault."""
        notice = self.board.service_changed(state)
        self._changed()
        return notice

    def _changed(self) -> None:
        self.summary_changed.emit(self.board.tray())
