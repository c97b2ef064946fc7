"""The Monitor dock: the live figures and charts of the last hour or day, over the Qt-free `monitor` package.

`MonitorFeed` runs the sampler every 10 s in `asyncio.to_thread` (never on the GUI thread) and emits the samples
it finds in the shared series, whoever wrote them; `MonitorDock` keeps them and, once first shown, hands them to
`monitor_charts.MonitorPanel`, whose chart updates are coalesced (at most one redraw a second, only while visible).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.monitor.sampler import SAMPLE_INTERVAL_S, Sampler
from comfystudio_desktop.monitor.series import Resolution, StatsSeries
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue

if TYPE_CHECKING:
    from comfystudio_desktop.monitor.metrics_endpoint import MetricsEndpoint
    from comfystudio_desktop.ui.monitor_charts import MonitorPanel

__all__ = ["MonitorDock", "MonitorFeed"]

log = logging.getLogger(__name__)
_QUICK_TIMEOUT_S = 2.0


class MonitorFeed(QObject):
    """Samples on a worker thread of the qasync loop and emits the stored samples as they appear."""

    history_loaded = Signal(object)  # tuple[StatsSnapshot, ...]: the last day, oldest first
    sample_added = Signal(object)  # StatsSnapshot: a newer sample (from this window or any other sampler)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.latest: StatsSnapshot | None = None
        self._comfy: ComfyClient | None = None
        self._metrics: MetricsEndpoint | None = None

    async def run(self, queue: JobQueue, outputs: Path, comfy_url: Callable[[], str], metrics_port: int) -> None:
        """Load the last day, then sample every 10 s until cancelled; serve metrics if `metrics_port`."""
        sampler = Sampler(queue, outputs, system_stats=lambda: self._client(comfy_url()).system_stats())
        try:
            self._start_metrics(metrics_port)
            while True:
                try:
                    history = await asyncio.to_thread(self.load, queue)
                    break
                except RedisUnavailable as exc:  # the watchdog brings Redis back; the charts wait for it
                    log.debug("Monitor history not loaded yet: %s", exc)
                    await asyncio.sleep(SAMPLE_INTERVAL_S)
            self.history_loaded.emit(history)
            while True:
                await asyncio.sleep(SAMPLE_INTERVAL_S / 2)  # twice per slot: a slot is never missed
                try:
                    new = await asyncio.to_thread(self.step, sampler, queue)
                except RedisUnavailable as exc:
                    log.debug("Monitor sample skipped: %s", exc)
                    continue
                for snapshot in new:
                    self.sample_added.emit(snapshot)
        finally:
            if self._metrics is not None:
                self._metrics.stop()
            if self._comfy is not None:
                self._comfy.close()

    def load(self, queue: JobQueue) -> tuple[StatsSnapshot, ...]:
        """The last day of samples (blocking: runs on a worker thread)."""
        samples = queue.conn.call(lambda c: StatsSeries.latest(c, Resolution.FINE, Resolution.FINE.cap))
        self._accept(samples)
        return tuple(samples)

    def step(self, sampler: Sampler, queue: JobQueue) -> list[StatsSnapshot]:
        """One sampling round (blocking: runs on a worker thread): the samples stored since the last one."""
        sampler.tick()
        after = self.latest.at if self.latest is not None else 0.0
        new = queue.conn.call(lambda c: StatsSeries.since(c, Resolution.FINE, after, time.time()))
        self._accept(new)
        return new

    def _accept(self, samples: list[StatsSnapshot]) -> None:
        if samples:
            self.latest = samples[-1]

    def _client(self, url: str) -> ComfyClient:
        if self._comfy is None or self._comfy.base_url != url.rstrip("/"):
            if self._comfy is not None:
                self._comfy.close()
            self._comfy = ComfyClient(url, connect_timeout=_QUICK_TIMEOUT_S, read_timeout=_QUICK_TIMEOUT_S)
        return self._comfy

    def _start_metrics(self, port: int) -> None:
        if port == 0:
            return
        from comfystudio_desktop.monitor.metrics_endpoint import MetricsEndpoint, MetricsPortError  # opt-in

        endpoint = MetricsEndpoint(port, lambda: self.latest)
        try:
            endpoint.start()
        except MetricsPortError as exc:
            log.warning("%s", exc)
            return
        self._metrics = endpoint


class MonitorDock(QDockWidget):
    """The dock; its charts are built when it is first shown, with every sample the feed gave until then."""

    def __init__(self, feed: MonitorFeed, parent: QWidget | None = None) -> None:
        super().__init__("Monitor", parent)
        self.setObjectName("monitorDock")
        self.panel: MonitorPanel | None = None
        self._samples: deque[StatsSnapshot] = deque(maxlen=Resolution.FINE.cap)
        self.setWidget(QLabel("Loading charts…", self))
        feed.history_loaded.connect(self._on_feed_history_loaded)
        feed.sample_added.connect(self._on_feed_sample_added)

    def showEvent(self, event: QShowEvent) -> None:
        """Build the charts the first time (after "Loading charts…" has been painted)."""
        super().showEvent(event)
        if self.panel is None:
            QTimer.singleShot(0, self, self._make_panel)

    def _make_panel(self) -> None:
        if self.panel is not None:
            return
        from comfystudio_desktop.ui.monitor_charts import MonitorPanel  # pyqtgraph: about 1 s, only when used

        self.panel = MonitorPanel(self)
        self.panel.set_samples(tuple(self._samples))
        self.setWidget(self.panel)

    def _on_feed_history_loaded(self, samples: tuple[StatsSnapshot, ...]) -> None:
        self._samples.clear()
        self._samples.extend(samples)
        if self.panel is not None:
            self.panel.set_samples(samples)

    def _on_feed_sample_added(self, snapshot: StatsSnapshot) -> None:
        if self._samples and snapshot.at <= self._samples[-1].at:
            return
        self._samples.append(snapshot)
        if self.panel is not None:
            self.panel.add_sample(snapshot)

    def stop(self) -> None:
        """Stop the charts' timers (on close)."""
        if self.panel is not None:
            self.panel.stop()
