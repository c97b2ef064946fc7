"""The in-process worker: a QThread that runs the Qt-free Consumer and re-emits its events as a signal."""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, QThread, Signal

from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["WorkerThread"]

log = logging.getLogger(__name__)


class WorkerThread(QThread):
    """Runs `consumer.run` until `stop()`; `job_event` carries each JobEvent to the GUI thread (queued)."""

    job_event = Signal(object)  # JobEvent

    def __init__(self, consumer: Consumer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.consumer = consumer
        self._stop = threading.Event()
        self.setObjectName("comfystudio-worker")

    def run(self) -> None:
        """Thread body (Qt calls it)."""
        try:
            self.consumer.run(self._stop, self.job_event.emit)
        except Exception:
            log.exception("The worker stopped with an error")

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Ask the worker to stop, hand back its jobs, and wait; True if the thread ended."""
        self._stop.set()
        return self.wait(timeout_ms)
