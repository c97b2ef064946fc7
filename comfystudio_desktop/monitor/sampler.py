"""The sampler: takes a `StatsSnapshot` from the queue's Redis, ComfyUI, the outputs folder and psutil.

`tick()` is what a window or a headless worker calls every 10 s: it publishes its own process figures, and only
the caller that claims the current slot computes a sample and appends it to the series. It never raises for an
unavailable source: that figure is None.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import redis

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError
from comfystudio_desktop.monitor.aggregates import JobAggregates
from comfystudio_desktop.monitor.series import Resolution, StatsSeries
from comfystudio_desktop.monitor.snapshot import GpuStats, StatsSnapshot
from comfystudio_desktop.monitor.sources import (
    ProcessFigures,
    ProcessProbe,
    StorageFigures,
    gpu_from_system_stats,
    redis_memory_from_info,
    storage_figures,
)
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue

__all__ = ["SAMPLE_INTERVAL_S", "Sampler", "sample_until"]

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = Resolution.FINE.interval_s
PROCS_KEY = "cs:mon:procs"  # sampling process → "cpu|rss|ms": each window or worker publishes its own figures
_PROC_FRESH_MS = 3 * SAMPLE_INTERVAL_S * 1000
_PROC_FORGET_MS = 600_000
_STORAGE_EVERY_S = 60.0  # the outputs folder may hold many files: walk it once a minute, not every sample
_QUICK_TIMEOUT_S = 2.0  # a ComfyUI that does not answer at once makes the GPU figure "unavailable"


class Sampler:
    """Samples the figures for one process.

    Args:
        queue: the queue whose Redis holds the jobs and the series.
        outputs: the `storage/outputs` folder.
        system_stats: fetches ComfyUI's `/system_stats` (e.g. `ComfyClient.system_stats`); None: no GPU figures.
        publish_process: publish this process's CPU/memory as a worker's (the window, a headless worker).
    """

    def __init__(self, queue: JobQueue, outputs: Path, *, system_stats: Callable[[], object] | None = None,
                 publish_process: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        self.outputs = outputs
        self._system_stats = system_stats
        self._clock = clock
        self._probe = ProcessProbe() if publish_process else None
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._aggregates = JobAggregates(queue.conn.client)
        self._storage: StorageFigures | None = None
        self._storage_at = -_STORAGE_EVERY_S

    def tick(self) -> StatsSnapshot | None:
        """Publish this process's figures; if this caller owns the current slot, sample and store. Returns the
        stored sample, or None when another sampler has this slot."""
        now = self._clock()
        conn = self.queue.conn
        if self._probe is not None:
            figures = self._probe.read()
            if figures is not None:
                conn.call(lambda c: c.hset(PROCS_KEY, self._owner, _proc_entry(figures, now)))
        if not conn.call(lambda c: StatsSeries.claim(c, Resolution.FINE, now, self._owner)):
            return None
        snapshot = self.take(now)
        conn.call(lambda c: StatsSeries.append(c, Resolution.FINE, snapshot))
        if conn.call(lambda c: StatsSeries.claim(c, Resolution.COARSE, now, self._owner)):
            conn.call(lambda c: StatsSeries.append(c, Resolution.COARSE, snapshot))
        return snapshot

    def take(self, now: float | None = None) -> StatsSnapshot:
        """Compute the figures now without storing them (raises RedisUnavailable only if Redis is down)."""
        now = self._clock() if now is None else now
        now_ms = round(now * 1000)
        conn = self.queue.conn
        conn.call(lambda c: self._aggregates.advance(c, now_ms))
        jobs = conn.call(lambda c: JobAggregates.read(c, now_ms))
        counts = self.queue.counts()
        memory = conn.call(lambda c: redis_memory_from_info(c.info("memory")))
        cpu, rss = conn.call(lambda c: _workers(c, now_ms))
        storage = self._storage_figures(now)
        return StatsSnapshot(
            at=now, queued=counts["queued"], running=counts["running"], finished=jobs.finished, failed=jobs.failed,
            cancelled=jobs.cancelled, images_total=jobs.images_total, images_last_hour=jobs.images_last_hour,
            processing=jobs.processing, waiting=jobs.waiting, redis_memory=memory, worker_cpu_percent=cpu,
            worker_rss=rss, gpu=self._gpu(), outputs_bytes=storage.total_bytes, outputs_images=storage.images)

    def _gpu(self) -> GpuStats | None:
        if self._system_stats is None:
            return None
        try:
            return gpu_from_system_stats(self._system_stats())
        except ComfyError as exc:
            log.debug("GPU figures unavailable: %s", exc)
            return None

    def _storage_figures(self, now: float) -> StorageFigures:
        if self._storage is None or now - self._storage_at >= _STORAGE_EVERY_S or now < self._storage_at:
            self._storage = storage_figures(self.outputs)
            self._storage_at = now
        return self._storage


def _proc_entry(figures: ProcessFigures, now: float) -> str:
    return f"{figures.cpu_percent:.1f}|{figures.rss}|{round(now * 1000)}"


def _workers(client: redis.Redis, now_ms: int) -> tuple[float | None, int | None]:
    """Sum of the CPU and memory the sampling processes published recently; forget the long-silent ones."""
    entries = cast(dict[str, str], client.hgetall(PROCS_KEY))
    cpu, rss, fresh, stale = 0.0, 0, 0, []
    for owner, entry in entries.items():
        parts = entry.split("|")
        try:
            cpu_i, rss_i, at = float(parts[0]), int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            stale.append(owner)
            continue
        if now_ms - at > _PROC_FORGET_MS:
            stale.append(owner)
        elif now_ms - at <= _PROC_FRESH_MS and cpu_i >= 0 and rss_i >= 0:
            cpu, rss, fresh = cpu + cpu_i, rss + rss_i, fresh + 1
    if stale:
        client.hdel(PROCS_KEY, *stale)
    return (round(cpu, 1), rss) if fresh else (None, None)



def sample_until(queue: JobQueue, outputs: Path, comfy_url: str, stop: threading.Event) -> None:
    """A headless worker's sampling thread: tick twice per slot until `stop`; a Redis outage skips a tick."""
    with ComfyClient(comfy_url, connect_timeout=_QUICK_TIMEOUT_S, read_timeout=_QUICK_TIMEOUT_S) as client:
        sampler = Sampler(queue, outputs, system_stats=client.system_stats)
        while not stop.wait(SAMPLE_INTERVAL_S / 2):
            try:
                sampler.tick()
            except RedisUnavailable as exc:
                log.debug("Monitor sample skipped: %s", exc)
