"""The window's workers when several backends are configured: one supervised worker thread per backend.

Each is a `WorkerSupervisor` (restarted by the watchdog's rules after a crash) running a `BackendConsumer`; a
managed backend's ComfyUI is started by a watchdog of its own first. Preview frames of every backend go out on
one signal; job state reaches the window through the queue's event stream, as for any worker.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QObject, Signal

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.backends import supervise_backend
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.watchdog import Watchdog
from comfystudio_desktop.ui.worker_supervisor import WORKER_POLICY, WorkerSupervisor
from comfystudio_desktop.ui.worker_thread import PreviewFrame
from comfystudio_desktop.worker.backend_worker import make_backend_consumer
from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["BackendWorkers"]

log = logging.getLogger(__name__)


class BackendWorkers(QObject):
    """One supervised worker per configured backend; lives on the GUI thread."""

    preview_frame = Signal(PreviewFrame)

    def __init__(self, home: Home, settings: Settings, queue: JobQueue, library: TemplateLibrary, *,
                 policy: RestartPolicy = WORKER_POLICY, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._home, self._settings, self._queue, self._library = home, settings, queue, library
        self._policy = policy
        self.supervisors: dict[str, WorkerSupervisor] = {}
        self._watchdogs: list[Watchdog] = []

    async def start(self) -> None:
        """Start each backend's ComfyUI (managed ones) and its worker."""
        for backend in self._settings.backends:
            watchdog, placed = await asyncio.to_thread(supervise_backend, self._home, self._settings, backend)
            if watchdog is not None:
                self._watchdogs.append(watchdog)

            def make_consumer(placed: Backend = placed) -> Consumer:
                return make_backend_consumer(self._home, self._settings, placed, self._queue, library=self._library,
                                             worker_id=f"{placed.name}-window")

            supervisor = WorkerSupervisor(make_consumer, policy=self._policy, parent=self)
            supervisor.preview_frame.connect(self.preview_frame)
            self.supervisors[backend.name] = supervisor
            supervisor.start()
            log.info("Worker for backend %r started", backend.name)

    def set_paused(self, paused: bool) -> None:
        """Pause or resume every backend's worker."""
        for supervisor in self.supervisors.values():
            supervisor.set_paused(paused)

    async def stop(self) -> None:
        """Stop every worker (their jobs go back to the queue at once), then the managed ComfyUIs."""
        await asyncio.gather(*(s.stop("app is shutting down") for s in self.supervisors.values()))
        for watchdog in self._watchdogs:
            await asyncio.to_thread(watchdog.stop)
