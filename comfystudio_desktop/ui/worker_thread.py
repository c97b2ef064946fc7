"""The in-process worker: a QThread that runs the Qt-free Consumer and passes on its preview frames.

Job state is not passed on: the Consumer writes every change to the queue, and the window reads it from the
queue's event stream like any other window. Only what Redis does not carry (preview frames) crosses here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, Signal

from comfystudio_desktop.jobs import JobEvent

if TYPE_CHECKING:  # the worker's code loads when the first worker starts, after the window is shown
    from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["PreviewFrame", "WorkerThread"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreviewFrame:
    """A live preview of a running job (JPEG or PNG bytes), never stored in Redis."""

    job_id: str
    progress: int
    image: bytes


class WorkerThread(QThread):
    """Runs `consumer.run` until `stop()`; `preview_frame` carries each preview to the GUI thread (queued).

    If `consumer.run` raises, the thread ends and keeps the exception in `error` (its `finished` signal tells the
    supervisor, which restarts the worker).
    """

    preview_frame = Signal(PreviewFrame)

    def __init__(self, consumer: Consumer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.consumer = consumer
        self.error: Exception | None = None
        self._stop = threading.Event()
        self.setObjectName("comfystudio-worker")

    @property
    def stop_requested(self) -> bool:
        """True once `stop()` was called: the thread's end is then expected, not a crash."""
        return self._stop.is_set()

    def run(self) -> None:
        """Thread body (Qt calls it)."""
        try:
            self.consumer.run(self._stop, self._on_consumer_event)
        except Exception as exc:  # the thread must end cleanly for the supervisor to see it and restart
            self.error = exc
            log.exception("The worker stopped with an error")

    def _on_consumer_event(self, event: JobEvent) -> None:
        if event.preview is not None:  # everything else is in the queue's event stream already
            self.preview_frame.emit(PreviewFrame(event.job_id, event.progress, event.preview))

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Ask the worker to stop, hand back its jobs, and wait; True if the thread ended."""
        self._stop.set()
        return self.wait(timeout_ms)
