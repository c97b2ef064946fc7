"""The window's link to the core: opens the queue, runs the worker thread, follows events, talks to ComfyUI.

Everything that may block (Redis, HTTP) runs in `asyncio.to_thread` on the qasync loop, so the GUI thread never
waits on the network; results come back as Qt signals. The controller holds no widgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError
from comfystudio_desktop.comfy.model_catalogue import load_catalogue
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary, load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobEvent
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import CancelOutcome, SubmitOutcome
from comfystudio_desktop.runtime import Runtime, open_queue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.storage_retention import in_use, sweep
from comfystudio_desktop.supervise.service_state import State
from comfystudio_desktop.supervise.services import AppServices, build_services
from comfystudio_desktop.ui.queue_events import QueueEventFollower
from comfystudio_desktop.ui.worker_thread import WorkerThread
from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["AppController"]

log = logging.getLogger(__name__)
_COMFY_POLL_S = 5.0
_STORAGE_SWEEP_S = 3600.0
_COUNTS_MIN_INTERVAL_S = 0.25
_HISTORY_WINDOW_S = 24 * 3600
# The shipped workflows in the order a person meets them; user templates follow alphabetically.
_WORKFLOW_ORDER = {"text_to_image": 0, "image_to_image": 1, "blend": 2}


class AppController(QObject):
    """Owns the runtime (queue), the worker thread and the event follower for one window."""

    job_event = Signal(object)  # JobEvent: from the in-process worker and from the queue's stream
    records_loaded = Signal(object)  # list[JobRecord]: the table's contents at start and after a resync
    models_loaded = Signal(object, bool)  # {"UNET": [...], "Checkpoints": [...]}, ComfyUI answered
    workflows_loaded = Signal(object)  # list of {"name", "title", "image_slots"}
    redis_changed = Signal(bool, str)  # connected, description
    comfy_changed = Signal(bool, str)  # up, description (device, VRAM)
    counts_changed = Signal(int, int)  # queued, running
    worker_changed = Signal(str)  # running | paused | stopped
    problem = Signal(str)  # something the user must be told (a failed submit, Redis gone)
    service_changed = Signal(object)  # ServiceState, from the watchdog
    ready = Signal()

    def __init__(self, home: Home, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.settings = settings
        self.runtime: Runtime | None = None
        self.library: TemplateLibrary | None = None
        self.services: AppServices | None = None
        self.client = ComfyClient.from_settings(settings)
        self.worker: WorkerThread | None = None
        self.follower: QueueEventFollower | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counts_pending = False
        self._last_counts = 0.0
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the watchdog (Redis, ComfyUI), open the queue, restore the table, start worker and follower."""
        services = await asyncio.to_thread(build_services, self.home, self.settings)
        self.services = services
        services.watchdog.add_on_change(self.service_changed.emit)  # from the watchdog thread: a queued signal
        services.start()
        await self._wait_for_redis(services)
        if services.comfy_url != self.client.base_url:  # a managed ComfyUI listens on a port of its own
            self.client.close()
            self.client = ComfyClient(services.comfy_url)
        runtime = await asyncio.to_thread(open_queue, self.home, self.settings,
                                          endpoint_provider=services.redis_endpoint)
        self.runtime = runtime
        endpoint = runtime.endpoint
        mode = "embedded" if endpoint.embedded else "external"
        self.redis_changed.emit(True, f"Redis {mode} {endpoint.version}".strip())
        self.library = await asyncio.to_thread(load_library, self.home.workflows)
        names = sorted(self.library.names(), key=lambda n: (_WORKFLOW_ORDER.get(n, len(_WORKFLOW_ORDER)), n))
        self.workflows_loaded.emit([{"name": name, "title": self.library.title(name),
                                     "image_slots": list(self.library.image_slots(name))} for name in names])
        for error in self.library.errors:
            self.problem.emit(str(error))
        await self._restore_and_follow()
        worker_settings = replace(self.settings, comfy_url=services.comfy_url)
        consumer = Consumer(runtime.queue, self.client, self.home, worker_settings, library=self.library)
        self.worker = WorkerThread(consumer, self)
        self.worker.job_event.connect(self._on_worker_job_event)
        self.worker.start()
        self.worker_changed.emit("running")
        self.spawn(self.refresh_models())
        self.spawn(self._watch_comfy())
        self.spawn(self._keep_storage_tidy())
        self.request_counts()
        self.ready.emit()

    async def _wait_for_redis(self, services: AppServices) -> None:
        """Wait until the queue's Redis runs; while it cannot (e.g. a damaged AOF) say why and keep waiting."""
        told = ""
        while True:
            state = await asyncio.to_thread(services.wait_for_redis, 30.0)
            if state.state in (State.RUNNING, State.EXTERNAL) and state.healthy:
                return
            message = state.message or f"Redis is {state.state.value}"
            if message != told:
                self.redis_changed.emit(False, f"Redis: {message}")
                self.problem.emit(f"The queue cannot start: {message}")
                told = message
            await asyncio.sleep(0.5)

    async def run_service_action(self, action: str, name: str) -> None:
        """restart / stop a service, or repair the queue's AOF (blocking calls, run off the GUI thread)."""
        services = self.services
        if services is None:
            return
        if action == "restart":
            await asyncio.to_thread(services.restart, name)
        elif action == "stop":
            await asyncio.to_thread(services.stop_service, name)
        elif action == "repair":
            report = await asyncio.to_thread(services.repair_redis_aof)
            self.problem.emit(report.message)

    async def _restore_and_follow(self) -> None:
        assert self.runtime is not None
        queue = self.runtime.queue
        # Take the stream position first, so nothing between the snapshot and the follow is missed.
        last_id = await asyncio.to_thread(queue.last_event_id)
        records = await asyncio.to_thread(queue.jobs, since_s=_HISTORY_WINDOW_S)
        self.records_loaded.emit(records)
        if self.follower is None:
            # The queue's connection knows where Redis is after a restart; the follower never starts a server.
            self.follower = QueueEventFollower(lambda: queue.conn.endpoint, self)
            self.follower.job_event.connect(self.job_event)
            self.follower.job_event.connect(self._on_any_job_event)
            self.follower.connection_changed.connect(self._on_follower_connection_changed)
            self.follower.resync_needed.connect(self._on_follower_resync_needed)
            self.follower.start(last_id)

    async def shutdown(self, *, stop_services: bool) -> None:
        """Stop the worker (its jobs go back to the queue at once), the follower and, if asked, the services.

        Every step has a time limit, so a stuck step cannot keep the app from quitting; the services are
        stopped whatever happened before.
        """
        self._closing = True
        try:
            if self.worker is not None:
                await _bounded(asyncio.to_thread(self.worker.stop), 35.0, "stopping the worker")
                self.worker_changed.emit("stopped")
            if self.follower is not None:
                await _bounded(self.follower.stop(), 5.0, "stopping the event follower")
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await _bounded(asyncio.gather(*self._tasks, return_exceptions=True), 5.0, "cancelling tasks")
            self.client.close()
            if self.runtime is not None:
                self.runtime.close()
        finally:
            if self.services is not None:
                await _bounded(asyncio.to_thread(self.services.stop, stop_children=stop_services), 60.0,
                               "stopping the services")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine on the loop; its failure is logged and shown, never lost."""
        task = asyncio.get_event_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("Background task failed", exc_info=exc)
            self.problem.emit(str(exc))

    # -- user actions ----------------------------------------------------------------------------------------
    async def submit(self, job: Job) -> SubmitOutcome:
        """Queue a job (the outbox keeps it if Redis is down)."""
        assert self.runtime is not None
        outcome = await asyncio.to_thread(self.runtime.queue.submit, job, wait_for_redis=False)
        if outcome is SubmitOutcome.OUTBOX:
            self.problem.emit("Redis is unreachable: the job is kept and will be queued when it is back.")
        self.request_counts()
        return outcome

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a job."""
        assert self.runtime is not None
        return await asyncio.to_thread(self.runtime.queue.cancel, job_id)

    async def retry(self, job_id: str) -> bool:
        """Queue a failed or cancelled job again."""
        assert self.runtime is not None
        return await asyncio.to_thread(self.runtime.queue.retry, job_id)

    async def load_record(self, job_id: str) -> None:
        """Read one job's full record (parameters included) and hand it to the table."""
        assert self.runtime is not None
        record = await asyncio.to_thread(self.runtime.queue.status, job_id)
        if record is not None:
            self.records_loaded.emit([record])

    async def refresh_models(self) -> None:
        """Reload the grouped model list (from ComfyUI, else the models folder)."""
        models_dir = self.settings.comfy_models_dir or None
        catalogue = await asyncio.to_thread(load_catalogue, self.client, models_dir)
        self.models_loaded.emit(catalogue.to_dict(), catalogue.comfy_answered)

    def set_paused(self, paused: bool) -> None:
        """Pause or resume taking new jobs (jobs in flight go on)."""
        if self.worker is None:
            return
        if paused:
            self.worker.consumer.pause()
        else:
            self.worker.consumer.resume()
        self.worker_changed.emit("paused" if paused else "running")

    # -- status ----------------------------------------------------------------------------------------------
    def request_counts(self) -> None:
        """Refresh the queued/running counts soon (coalesced: at most four reads a second)."""
        if self._counts_pending or self.runtime is None or self._closing:
            return
        self._counts_pending = True
        self.spawn(self._update_counts())

    async def _update_counts(self) -> None:
        try:
            wait = self._last_counts + _COUNTS_MIN_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            assert self.runtime is not None
            counts = await asyncio.to_thread(self.runtime.queue.counts)
            self._last_counts = time.monotonic()
            self.counts_changed.emit(counts["queued"], counts["running"])
        except RedisUnavailable as exc:
            log.warning("Counts unavailable: %s", exc)
        finally:
            self._counts_pending = False

    async def _watch_comfy(self) -> None:
        """ComfyUI's health for the status bar (a health poll; job state always comes by push)."""
        was_up: bool | None = None
        while True:
            try:
                stats = await asyncio.to_thread(self.client.system_stats)
                up, text = True, _describe_stats(stats)
            except ComfyError as exc:
                up, text = False, f"ComfyUI unreachable at {self.client.base_url}"
                log.debug("ComfyUI health: %s", exc)
            self.comfy_changed.emit(up, text)
            if up and was_up is False:
                self.spawn(self.refresh_models())  # it came back: its model list is the real one
            was_up = up
            await asyncio.sleep(_COMFY_POLL_S)

    async def _keep_storage_tidy(self) -> None:
        """Apply the retention settings now and every hour (never to images an active job needs)."""
        assert self.runtime is not None
        queue = self.runtime.queue
        while True:
            try:
                records = await asyncio.to_thread(queue.jobs)
                job_ids, paths = in_use(records)
                await asyncio.to_thread(sweep, self.home, self.settings, active_job_ids=job_ids, active_paths=paths)
            except RedisUnavailable as exc:
                log.warning("Storage clean-up skipped: %s", exc)
            await asyncio.sleep(_STORAGE_SWEEP_S)

    def _on_worker_job_event(self, event: JobEvent) -> None:
        self.job_event.emit(event)
        self._on_any_job_event(event)

    def _on_any_job_event(self, event: JobEvent) -> None:
        if event.preview is None:
            self.request_counts()

    def _on_follower_connection_changed(self, connected: bool) -> None:
        endpoint = self.runtime.endpoint if self.runtime is not None else None
        if connected:
            self.redis_changed.emit(True, f"Redis {'embedded' if endpoint and endpoint.embedded else 'external'}"
                                          f" {endpoint.version if endpoint else ''}".strip())
        else:
            self.redis_changed.emit(False, "Redis reconnecting…")

    def _on_follower_resync_needed(self) -> None:
        if self.runtime is not None and not self._closing:
            self.spawn(self._resync())

    async def _resync(self) -> None:
        assert self.runtime is not None
        records = await asyncio.to_thread(self.runtime.queue.jobs, since_s=_HISTORY_WINDOW_S)
        self.records_loaded.emit(records)
        self.request_counts()


async def _bounded(awaitable: Awaitable[Any], timeout_s: float, what: str) -> None:
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError:
        log.error("Gave up %s after %.0f s", what, timeout_s)


def _describe_stats(stats: dict[str, Any]) -> str:
    devices = stats.get("devices") or []
    version = (stats.get("system") or {}).get("comfyui_version", "")
    if not devices:
        return f"ComfyUI {version}".strip()
    device = devices[0]
    name = str(device.get("name", "device")).split(":")[-1].strip()
    free, total = device.get("vram_free"), device.get("vram_total")
    vram = f", VRAM {free / 2**30:.1f}/{total / 2**30:.1f} GB free" if free and total else ""
    return f"ComfyUI {version} on {name}{vram}".replace("  ", " ")
