"""`RemoteOutputs`: finished jobs' images that are not in this home, fetched off the GUI thread.

A job run by a worker on another machine has its images there; the window asks for them here and learns the
outcome through one typed signal (`fetched`). While the job shown in the viewer stays unavailable (its machine
is off), it is asked for again every `retry_s` seconds, so the image appears once the machine is back. Rows
loaded in bulk (the window's start) are fetched one at a time, and a backend found unavailable is skipped for the
rest of that batch, so a machine that is off does not hold the thumbnail decoders for a timeout per row.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobRecord
from comfystudio_desktop.outputs.fetch import Available, FetchResult, OutputFetcher, Unavailable
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.ui.background_tasks import run_in_background

__all__ = ["OutputFetched", "RemoteOutputs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutputFetched:
    """The outcome of fetching one job's images."""

    job_id: str
    result: FetchResult


class RemoteOutputs(QObject):
    """Fetches a finished job's images into this home; `fetched` tells every outcome (on the GUI thread)."""

    fetched = Signal(OutputFetched)

    def __init__(self, queue: Callable[[], JobQueue | None], home: Home, settings: Settings, *,
                 retry_s: float = 10.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue = queue
        self._fetcher = OutputFetcher(home, settings)
        self._in_flight: set[str] = set()
        self._backlog: deque[tuple[str, str]] = deque()  # (job id, backend) to fetch one after another
        self._turn = ""  # the backlog's job being fetched now
        self._turn_backend = ""
        self._skipped: set[str] = set()  # backends found unavailable during this backlog
        self.waiting_for = ""  # the job asked for again on the timer while it is unavailable
        self._retry = QTimer(self)
        self._retry.setInterval(int(retry_s * 1000))
        self._retry.timeout.connect(self._on_retry_timeout)

    def request(self, job_id: str, *, keep_trying: bool = False) -> None:
        """Fetch `job_id`'s images unless that is under way; with `keep_trying`, until they are had."""
        if keep_trying:
            self.waiting_for = job_id
        if job_id in self._in_flight:
            return
        self._in_flight.add(job_id)
        run_in_background(lambda: self._fetch(job_id), self._on_fetch_done)

    def fetch_in_turn(self, records: Iterable[JobRecord]) -> None:
        """Fetch these finished jobs' images one after another (for their thumbnails)."""
        if not self._backlog and not self._turn:
            self._skipped.clear()
        self._backlog.extend((r.job_id, r.backend) for r in records if r.output_location)
        self._next_in_turn()

    def _next_in_turn(self) -> None:
        while self._backlog and not self._turn:
            job_id, backend = self._backlog.popleft()
            if backend in self._skipped or job_id in self._in_flight:
                continue
            self._turn, self._turn_backend = job_id, backend
            self.request(job_id)

    def set_retry_seconds(self, seconds: float) -> None:
        """How long to wait between two tries of an unavailable job."""
        self._retry.setInterval(max(1, int(seconds * 1000)))

    def stop_trying(self) -> None:
        """The viewer moved on: no more retries."""
        self.waiting_for = ""
        self._retry.stop()

    def _fetch(self, job_id: str) -> OutputFetched:  # on a pool thread
        queue = self._queue()
        try:
            record = queue.status(job_id) if queue is not None else None
        except RedisUnavailable as exc:
            return OutputFetched(job_id, Unavailable("the queue is unreachable", str(exc)))
        if record is None:
            return OutputFetched(job_id, Unavailable("the queue does not know this job now"))
        return OutputFetched(job_id, self._fetcher.fetch(record))

    def _on_fetch_done(self, outcome: OutputFetched | Exception) -> None:
        if isinstance(outcome, Exception):  # the queue is unreachable, or a bug: the retry asks again
            log.error("Output fetch failed", exc_info=outcome)
            self._in_flight.clear()
            if self.waiting_for and not self._retry.isActive():
                self._retry.start()
            self._turn = ""
            self._next_in_turn()
            return
        self._in_flight.discard(outcome.job_id)
        if outcome.job_id == self._turn:
            if isinstance(outcome.result, Unavailable):
                self._skipped.add(self._turn_backend)
            self._turn = ""
            self._next_in_turn()
        if outcome.job_id == self.waiting_for:
            if isinstance(outcome.result, Available):
                self.stop_trying()
            elif not self._retry.isActive():
                self._retry.start()
        self.fetched.emit(outcome)

    def _on_retry_timeout(self) -> None:
        if self.waiting_for:
            self.request(self.waiting_for)
        else:
            self._retry.stop()
