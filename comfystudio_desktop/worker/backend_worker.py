"""One worker per backend: a Consumer with the routed claim, and a publisher that tells Redis what it can run.

`BackendConsumer` is a Consumer: the window's WorkerThread and `comfystudio-desktop worker --backend NAME` run it
the same way (`run(stop, emit)`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError
from comfystudio_desktop.comfy.model_catalogue import fetch_from_comfy, merge_groups
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary, load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.routing import BackendPresence, BackendRegistry, BackendState, RoutedJobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.worker.consumer import Consumer, EmitFn
from comfystudio_desktop.worker.job_run import WorkerRun

__all__ = ["BackendConsumer", "BackendPublisher", "hand_back_due", "make_backend_consumer", "runnable_workflows"]

log = logging.getLogger(__name__)

REFRESH_S = 2.0  # how often the backend's state is published (its lists expire after PRESENCE_TTL_MS)
LISTS_EVERY_S = 10.0  # how often the model list is read again while ComfyUI stays up
GRACE_S = 30.0  # a backend down this long hands its jobs to the others


def hand_back_due(down_since: float | None, now: float, grace_s: float) -> bool:
    """Whether a backend's held jobs go back to the queue: it has been down for at least the grace period."""
    return down_since is not None and now - down_since >= grace_s


def runnable_workflows(library: TemplateLibrary, node_classes: frozenset[str]) -> frozenset[str]:
    """Workflow names with at least one template whose node classes this ComfyUI all has."""
    return frozenset(name for (name, _family), template in library.templates.items()
                     if template.node_classes() <= node_classes)


def _vram(stats: dict[str, Any]) -> tuple[int, int, str]:
    """Free and total VRAM in bytes and the device name from `/system_stats` (-1 where not given)."""
    devices = stats.get("devices")
    if not isinstance(devices, list) or not devices or not isinstance(devices[0], dict):
        return -1, -1, ""
    first = devices[0]
    free, total, name = first.get("vram_free"), first.get("vram_total"), first.get("name")
    return (free if type(free) is int else -1, total if type(total) is int else -1,
            name if isinstance(name, str) else "")


class BackendPublisher:
    """Keeps the backend's presence in Redis current: state, VRAM, and its model and workflow lists."""

    def __init__(self, name: str, url: str, registry: BackendRegistry, library: TemplateLibrary) -> None:
        self.name = name
        self.url = url
        self.registry = registry
        self.library = library
        self._client = ComfyClient(url, connect_timeout=2.0, read_timeout=5.0)
        self._lists: tuple[frozenset[str], frozenset[str]] | None = None
        self._lists_read_at = 0.0
        self._down_since: float | None = None
        self._lock = threading.Lock()  # guards _down_since (read by the worker's loop)
        self._refresh_lock = threading.Lock()

    @property
    def down_since(self) -> float | None:
        """When ComfyUI stopped answering (monotonic), or None while it answers."""
        with self._lock:
            return self._down_since

    def refresh(self) -> None:
        """Read ComfyUI once and publish what it said; Redis outages are the caller's to wait out.

        Called by the presence thread and by the worker's loop (when a run loses ComfyUI): one at a time.
        """
        with self._refresh_lock:
            self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        try:
            stats = self._client.system_stats()
            if self._lists is None or now - self._lists_read_at >= LISTS_EVERY_S:
                lists = self._read_lists()
                changed, self._lists, self._lists_read_at = lists != self._lists, lists, now
            else:
                changed = False
        except ComfyError as exc:
            with self._lock:
                if self._down_since is None:
                    log.warning("Backend %r: ComfyUI at %s does not answer (%s)", self.name, self.url, exc)
                    self._down_since = now
            self._lists = None  # read them afresh when it is back: it may be another installation
            self.registry.publish(self.name, BackendPresence(BackendState.DOWN, self.url))
            return
        with self._lock:
            if self._down_since is not None:
                log.info("Backend %r: ComfyUI answers again", self.name)
            self._down_since = None
        free, total, device = _vram(stats)
        models, workflows = self._lists
        self.registry.publish(self.name, BackendPresence(BackendState.UP, self.url, models, workflows, free, total,
                                                         device), lists_changed=changed)

    def _read_lists(self) -> tuple[frozenset[str], frozenset[str]]:
        groups = merge_groups(fetch_from_comfy(self._client))
        models = frozenset(name for names in groups.values() for name in names)
        nodes = frozenset(self._client.object_info())
        return models, runnable_workflows(self.library, nodes)

    def stopped(self) -> None:
        """The worker stops: no more jobs are offered to this backend."""
        self.registry.publish(self.name, BackendPresence(BackendState.STOPPED, self.url))

    def loop(self, stop: threading.Event) -> None:
        """Refresh every REFRESH_S until `stop`."""
        while not stop.is_set():
            try:
                self.refresh()
            except RedisUnavailable as exc:
                log.debug("Backend %r: presence not published (%s)", self.name, exc)
            except Exception:  # never let the presence thread die: the lists would expire and jobs stall
                log.exception("Backend %r: presence refresh failed", self.name)
            stop.wait(REFRESH_S)

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()


class BackendConsumer(Consumer):
    """A Consumer that hands its jobs to the other backends once its ComfyUI has been down for the grace period.

    Within the grace period the jobs stay: when ComfyUI returns the run re-attaches to its prompt (or submits).
    """

    def __init__(self, queue: JobQueue, client: ComfyClient, home: Home, settings: Settings, *,
                 publisher: BackendPublisher, grace_s: float = GRACE_S, worker_id: str = "") -> None:
        super().__init__(queue, client, home, settings, worker_id=worker_id, library=publisher.library)
        self.publisher = publisher
        self.grace_s = grace_s
        self.backend_name = publisher.name

    def run(self, stop: threading.Event, emit: EmitFn) -> None:
        """Publish the backend's presence and run jobs until `stop`; then say the backend stopped."""
        inner = threading.Event()
        presence = threading.Thread(target=self.publisher.loop, args=(inner,), name=f"presence-{self.publisher.name}",
                                    daemon=True)
        try:
            self.publisher.refresh()  # before the first claim: the claim needs the lists
        except RedisUnavailable as exc:
            log.warning("Backend %r: presence not published yet (%s)", self.publisher.name, exc)
        presence.start()
        try:
            super().run(stop, emit)
        finally:
            inner.set()
            presence.join(10.0)
            try:
                self.publisher.stopped()
            except RedisUnavailable as exc:
                log.warning("Backend %r: stop not published (%s); its lists expire", self.publisher.name, exc)
            self.publisher.close()
            self.client.close()

    def _requeue(self, run: WorkerRun, reason: str, *, count_attempt: bool = True) -> None:
        super()._requeue(run, reason, count_attempt=count_attempt)
        self.publisher.refresh()  # ComfyUI may be gone: withdraw the lists now, before this worker claims again

    def _wait_for_comfy(self, run: WorkerRun, delay_s: float, reason: str) -> None:
        """As Consumer, and tell Redis at once that this backend is down, so it is offered nothing meanwhile."""
        super()._wait_for_comfy(run, delay_s, reason)
        self.publisher.refresh()

    def _housekeeping(self) -> None:
        super()._housekeeping()
        if hand_back_due(self.publisher.down_since, time.monotonic(), self.grace_s):
            for run in self.in_flight():
                self._requeue(run, f"backend {self.publisher.name!r} did not answer for {self.grace_s:.0f} s; "
                                   "handed to the other backends")


def make_backend_consumer(home: Home, settings: Settings, backend: Backend, queue: JobQueue, *,
                          worker_id: str = "", grace_s: float = GRACE_S,
                          library: TemplateLibrary | None = None) -> BackendConsumer:
    """The worker of one backend on the queue's connection: its own routed claim, ComfyUI client (so its own
    client id and WebSocket), pipeline depth and re-attach state."""
    routed = RoutedJobQueue(queue.conn, backend.name, outbox=queue.outbox, max_attempts=settings.max_attempts,
                            lease_seconds=settings.lease_seconds)
    publisher = BackendPublisher(backend.name, backend.comfy_url, routed.registry,
                                 library or load_library(home.workflows))
    own = replace(settings, comfy_url=backend.comfy_url, pipeline_depth=backend.pipeline_depth)
    if not backend.enabled:
        routed.registry.set_enabled(backend.name, False)
    return BackendConsumer(routed, ComfyClient(backend.comfy_url), home, own, publisher=publisher, grace_s=grace_s,
                           worker_id=worker_id or f"{backend.name}-worker")
