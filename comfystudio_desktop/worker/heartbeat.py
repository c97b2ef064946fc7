"""A thread that keeps the leases of in-flight jobs alive and notices cancels and lost leases."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue, LeaseState
from comfystudio_desktop.worker.error_log import ErrorLog
from comfystudio_desktop.worker.job_run import WorkerRun

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls `queue.heartbeat` for every run `runs()` returns, every `interval` seconds."""

    def __init__(self, queue: JobQueue, runs: Callable[[], list[WorkerRun]], interval: float,
                 on_change: Callable[[], None] | None = None) -> None:
        self._queue = queue
        self._runs = runs
        self._interval = interval
        self._on_change = on_change or (lambda: None)
        self._stop = threading.Event()
        self._errors = ErrorLog(log, "Lease heartbeat")
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and join the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def beat_once(self) -> None:
        """One round over all runs (the thread calls this; the worker calls it too before a long step)."""
        for run in self._runs():
            try:
                state = self._queue.heartbeat(run.lease)
            except RedisUnavailable as exc:
                log.warning("Heartbeat for job %r failed: %s", run.job_id, exc)
                continue
            if state is LeaseState.CANCELLED and not run.flags.cancel_requested.is_set():
                run.flags.cancel_requested.set()
                self._on_change()
            elif state is LeaseState.LOST and not run.flags.lease_lost.is_set():
                run.flags.lease_lost.set()
                self._on_change()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat_once()
            except Exception as exc:  # noqa: BLE001 - a Redis error or a bug must not end the thread: leases would expire
                self._errors.report(exc)
