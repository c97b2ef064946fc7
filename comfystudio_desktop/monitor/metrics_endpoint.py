"""The opt-in Prometheus endpoint: the latest `StatsSnapshot` as text format on 127.0.0.1 only.

Served by `prometheus_client` (the reference client: it writes the exposition format and escapes label values,
and its stdlib HTTP server needs nothing else in the frozen build). Scrapes read the snapshot in memory: a scrape
never touches Redis or ComfyUI. No address, password or path is exported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from comfystudio_desktop.monitor.snapshot import DurationStats, StatsSnapshot

__all__ = ["LOOPBACK", "MetricsEndpoint", "MetricsPortError", "snapshot_metrics"]

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class MetricsPortError(OSError):
    """The endpoint could not listen on the port asked for."""


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)


def _durations(name: str, doc: str, stats: DurationStats | None) -> Iterator[Metric]:
    if stats is None:
        return
    family = GaugeMetricFamily(name, doc, labels=["stat"])
    for stat, value in (("mean", stats.mean_s), ("median", stats.median_s), ("p90", stats.p90_s)):
        family.add_metric([stat], value)
    yield family


def snapshot_metrics(s: StatsSnapshot) -> Iterator[Metric]:
    """The metric families of one snapshot; unavailable figures are left out rather than reported as 0."""
    queue = GaugeMetricFamily("comfystudio_queue_jobs", "Jobs waiting or running now", labels=["state"])
    queue.add_metric(["queued"], s.queued)
    queue.add_metric(["running"], s.running)
    yield queue
    ended = CounterMetricFamily("comfystudio_jobs_ended", "Jobs that reached an end state", labels=["status"])
    for status, value in (("finished", s.finished), ("failed", s.failed), ("cancelled", s.cancelled)):
        ended.add_metric([status], value)
    yield ended
    yield CounterMetricFamily("comfystudio_images", "Images of finished jobs", value=s.images_total)
    yield GaugeMetricFamily("comfystudio_images_last_hour", "Images finished in the last hour",
                            value=s.images_last_hour)
    yield from _durations("comfystudio_processing_seconds", "Processing time of jobs finished in the last hour",
                          s.processing)
    yield from _durations("comfystudio_waiting_seconds", "Queue waiting time of jobs finished in the last hour",
                          s.waiting)
    yield from _gauge("comfystudio_redis_memory_bytes", "Redis used_memory", s.redis_memory)
    yield from _gauge("comfystudio_worker_cpu_percent", "CPU of the worker processes (percent of one core)",
                      s.worker_cpu_percent)
    yield from _gauge("comfystudio_worker_memory_bytes", "Resident memory of the worker processes", s.worker_rss)
    if s.gpu is not None:
        for name, doc, value in (("comfystudio_gpu_vram_total_bytes", "ComfyUI device VRAM", s.gpu.vram_total),
                                 ("comfystudio_gpu_vram_free_bytes", "ComfyUI device VRAM free", s.gpu.vram_free)):
            family = GaugeMetricFamily(name, doc, labels=["device"])
            family.add_metric([s.gpu.name], value)
            yield family
    yield GaugeMetricFamily("comfystudio_outputs_bytes", "Size of storage/outputs", value=s.outputs_bytes)
    yield GaugeMetricFamily("comfystudio_outputs_images", "Images in storage/outputs", value=s.outputs_images)
    yield GaugeMetricFamily("comfystudio_sample_timestamp_seconds", "When the figures were sampled", value=s.at)


class _SnapshotCollector(Collector):
    def __init__(self, latest: Callable[[], StatsSnapshot | None]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        if snapshot is not None:
            yield from snapshot_metrics(snapshot)


class MetricsEndpoint:
    """Serves `latest()` on http://127.0.0.1:`port`/metrics from a daemon thread until `stop()`."""

    def __init__(self, port: int, latest: Callable[[], StatsSnapshot | None]) -> None:
        if not 1 <= port <= 65535:
            raise MetricsPortError(f"not a port: {port}")
        self.port = port
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_SnapshotCollector(latest))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen on 127.0.0.1 only; raise MetricsPortError if the port cannot be had."""
        try:
            self._server, self._thread = start_http_server(self.port, addr=LOOPBACK, registry=self._registry)
        except OSError as exc:
            raise MetricsPortError(f"cannot serve metrics on {LOOPBACK}:{self.port}: {exc.strerror or exc}") from exc
        log.info("Metrics served on http://%s:%d/metrics", LOOPBACK, self.port)

    @property
    def url(self) -> str:
        """Where the metrics are."""
        return f"http://{LOOPBACK}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)
