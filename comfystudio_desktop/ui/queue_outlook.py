"""The queue's outlook in the window: ETA per row, the whole queue in the status bar and tray, pauses with Resume.

`QueueOutlook` reads the queue's gate (a stored pause, the active hours) and the forecast off the GUI thread, every
few seconds and soon after a job changes (coalesced), and emits the words to show (`OutlookWords`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from comfystudio_desktop.active_hours import parse_active_hours
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.forecast import QueueForecast
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.queue_pause import QueueGate, QueuePauseStore, queue_gate
from comfystudio_desktop.queue.run_times import RunTimes
from comfystudio_desktop.ui.app_controller import AppController
from comfystudio_desktop.ui.operations import Operation
from comfystudio_desktop.ui.outlook_words import OutlookWords, outlook_words
from comfystudio_desktop.ui.refresh_coalescer import RefreshCoalescer

__all__ = ["OutlookStrip", "QueueOutlook"]

log = logging.getLogger(__name__)
_POLL_MS = 5_000
_MIN_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class _Read:
    gate: QueueGate
    forecast: QueueForecast


class QueueOutlook(QObject):
    """Follows the queue's gate and forecast; `changed(OutlookWords)` when what to show changed."""

    changed = Signal(OutlookWords)

    def __init__(self, controller: AppController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.words: OutlookWords | None = None
        self._refresh = RefreshCoalescer(self._read, controller.spawn, min_interval_s=_MIN_INTERVAL_S)
        self._timer = QTimer(self)
        self._timer.setInterval(_POLL_MS)
        self._timer.timeout.connect(self.request)
        controller.job_event.connect(self.request)
        controller.ready.connect(self._timer.start)
        controller.ready.connect(self.request)

    def request(self) -> None:
        """Read the gate and forecast again soon."""
        if self.controller.runtime is not None:
            self._refresh.request()

    async def _read(self) -> None:
        runtime = self.controller.runtime
        if runtime is None:
            return
        try:
            read = await asyncio.to_thread(_read_outlook, runtime.queue, self.controller.settings.active_hours)
        except RedisUnavailable as exc:
            log.debug("Queue outlook unavailable: %s", exc)
            return
        words = outlook_words(read.gate, read.forecast, datetime.now().astimezone())
        if words != self.words:
            self.words = words
            self.changed.emit(words)

    def resume(self) -> None:
        """Resume: lift the queue's pause (by the user elsewhere, or after ComfyUI ran out of memory)."""
        runtime = self.controller.runtime
        if runtime is None:
            return
        store = QueuePauseStore(runtime.queue.conn)
        self.controller.spawn(Operation(store.resume, "resume the queue").success(lambda _ok: self.request()).run())


def _read_outlook(queue: JobQueue, active_hours: str) -> _Read:
    now = datetime.now().astimezone()
    gate = queue_gate(QueuePauseStore(queue.conn).current(), parse_active_hours(active_hours), now)
    forecast = RunTimes(queue).forecast(now, not_before=gate.until if not gate.open else None)
    return _Read(gate, forecast)


class OutlookStrip(QWidget):
    """The status bar's queue line and its Resume button (shown only when a click can resume)."""

    def __init__(self, outlook: QueueOutlook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(self)
        self.label.setObjectName("queueOutlook")
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setToolTip("Let workers take jobs again")
        self.resume_button.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.resume_button)
        self.resume_button.clicked.connect(outlook.resume)
        outlook.changed.connect(self.show_words)

    def show_words(self, words: OutlookWords) -> None:
        """Show the queue's line; offer Resume when it applies."""
        self.label.setText(words.summary)
        self.resume_button.setVisible(words.resumable)
