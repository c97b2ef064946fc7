"""The window's link to the core: opens the queue, runs the worker thread, follows events, talks to ComfyUI.

Everything that may block (Redis, HTTP) runs in `asyncio.to_thread` on the qasync loop, so the GUI thread never
waits on the network; results come back as Qt signals carrying typed values. The controller holds no widgets.

Job state has one path: the queue's event stream, read by one `async for` that feeds `_handle_message`, whether
the worker runs in this window or elsewhere. The in-process worker adds only what Redis does not carry: preview
frames and its own state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Signal

from comfystudio_desktop.batch_plan import JobBatch
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError
from comfystudio_desktop.comfy.model_catalogue import Catalogue, load_catalogue, load_part_lists
from comfystudio_desktop.comfy.unet_parts import PartLists
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary, load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobEvent, JobRecord
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_batches import JobBatches
from comfystudio_desktop.queue.job_queue import CancelOutcome, JobQueue, SubmitOutcome
from comfystudio_desktop.queue.retention import clean_up_storage
from comfystudio_desktop.runtime import Runtime, allow_redis_start, open_queue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.settings_watch import SETTINGS_POLL_S, SettingsChange, SettingsWatch
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import ServiceState
from comfystudio_desktop.supervise.services import AppServices, build_services
from comfystudio_desktop.ui.monitor_dock import MonitorFeed
from comfystudio_desktop.ui.operations import Operation
from comfystudio_desktop.ui.queue_events import QueueEventStream, QueueMessage, StreamConnected, StreamLost
from comfystudio_desktop.ui.refresh_coalescer import RefreshCoalescer
from comfystudio_desktop.ui.status_values import (
    LinkStatus,
    Problem,
    WorkerStatus,
    comfy_status,
    redis_service_status,
    redis_status,
    worker_status,
)
from comfystudio_desktop.ui.worker_supervisor import WORKER_POLICY, WORKER_SERVICE, WorkerSupervisor
from comfystudio_desktop.ui.worker_thread import PreviewFrame, WorkerThread
from comfystudio_desktop.ui.workflow_choices import WorkflowInfo, workflow_infos

if TYPE_CHECKING:
    from comfystudio_desktop.api.server import ApiServer
    from comfystudio_desktop.ui.backend_workers import BackendWorkers
    from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["AppController", "ConsumerFactory", "JobRecords", "Workflows"]

log = logging.getLogger(__name__)
#: A shutdown step slower than this (seconds) is logged with its time.
_SLOW_STEP_S = 5.0
_COMFY_POLL_S = 5.0
_STORAGE_SWEEP_S = 3600.0
_COUNTS_MIN_INTERVAL_S = 0.1  # at most ~10 counts reads a second, however many events arrive
_HISTORY_WINDOW_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class JobRecords:
    """Full job records for the table: its contents at start and after a resync, or one job's parameters."""

    records: tuple[JobRecord, ...]


@dataclass(frozen=True, slots=True)
class Workflows:
    """The workflows the prompt panel offers, in order."""

    items: tuple[WorkflowInfo, ...]


class ConsumerFactory(Protocol):
    """Makes the worker the window runs (`Consumer` itself, or a subclass of it)."""

    def __call__(self, queue: JobQueue, client: ComfyClient, home: Home, settings: Settings, *,
                 library: TemplateLibrary | None = None) -> Consumer:
        """A new Consumer for these parts."""
        ...


class AppController(QObject):
    """Owns the runtime (queue), the supervised worker thread and the queue's event stream for one window.

    Args:
        consumer_factory: makes each worker (a fresh one after a crash); `Consumer` by default.
        worker_policy: backoff and crash-loop rules for restarting the worker thread.
    """

    job_event = Signal(JobEvent)  # every job change, from the queue's event stream only
    preview_frame = Signal(PreviewFrame)  # from the in-process worker (Redis does not carry previews)
    records_loaded = Signal(JobRecords)
    models_loaded = Signal(Catalogue)
    unet_parts_loaded = Signal(PartLists)  # the text encoders and VAEs ComfyUI's loaders accept
    workflows_loaded = Signal(Workflows)
    redis_changed = Signal(LinkStatus)
    comfy_changed = Signal(LinkStatus)
    counts_changed = Signal(int, int)  # queued, running
    worker_changed = Signal(WorkerStatus)
    problem = Signal(Problem)  # something the user must be told (a failed submit, Redis gone)
    service_changed = Signal(ServiceState)  # from the watchdog and the worker's supervisor
    ready = Signal()
    settings_changed = Signal(SettingsChange)  # config.json changed (e.g. `config set`); live fields applied

    def __init__(self, home: Home, settings: Settings, parent: QObject | None = None, *,
                 consumer_factory: ConsumerFactory | None = None, worker_policy: RestartPolicy = WORKER_POLICY) -> None:
        super().__init__(parent)
        self.home = home
        self.settings = settings
        self.runtime: Runtime | None = None
        self.library: TemplateLibrary | None = None
        self.services: AppServices | None = None
        self.client = ComfyClient.from_settings(settings)
        self.worker_supervisor: WorkerSupervisor | None = None
        self.backend_workers: BackendWorkers | None = None  # with `backends` configured, instead of the above
        self._consumer_factory = consumer_factory
        self._worker_policy = worker_policy
        self._follow_task: asyncio.Task[None] | None = None
        self.monitor = MonitorFeed(self)  # samples for the Monitor dock, the tray and the metrics endpoint
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawning = True
        self._counts = RefreshCoalescer(self._update_counts, self.spawn, min_interval_s=_COUNTS_MIN_INTERVAL_S)
        self._closing = False
        self.api: ApiServer | None = None  # the HTTP API while setting api_enabled is on

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the watchdog (Redis, ComfyUI), open the queue, restore the table, start worker and follower."""
        # A new window ends a deliberate `redis stop`, as `redis start` does.
        await asyncio.to_thread(allow_redis_start, self.home, self.settings)
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
        self.redis_changed.emit(redis_status(runtime.endpoint))
        self.library = await asyncio.to_thread(load_library, self.home.workflows)
        self.workflows_loaded.emit(Workflows(tuple(workflow_infos(self.library))))
        for error in self.library.errors:
            self.problem.emit(Problem(str(error)))
        await self._restore_and_follow()
        if self.settings.backends:  # several ComfyUIs: a worker per backend instead of the single one
            # Imported here, as the single worker's modules are: not needed to show the window.
            from comfystudio_desktop.ui.backend_workers import BackendWorkers

            self.backend_workers = BackendWorkers(self.home, self.settings, runtime.queue, self.library, parent=self)
            self.backend_workers.preview_frame.connect(self.preview_frame)
            await self.backend_workers.start()
        else:
            self._start_worker(replace(self.settings, comfy_url=services.comfy_url))
        self.spawn(self.refresh_models())
        self.spawn(self._watch_comfy())
        self.spawn(self._keep_storage_tidy())
        self.spawn(self._follow_settings())
        self.spawn(self.monitor.run(runtime.queue, self.home.outputs, lambda: self.client.base_url,
                                    self.settings.metrics_port))
        self.request_counts()
        if self.settings.api_enabled:
            self.spawn(self._start_api())
        self.ready.emit()

    async def _start_api(self) -> None:
        """Serve the HTTP API on this loop (aiohttp is loaded only when the setting is on)."""
        from comfystudio_desktop.api.server import ApiServer

        assert self.runtime is not None and self.library is not None
        s = self.settings
        api = ApiServer(self.home, s, self.runtime.queue, self.library, lambda: self.client, host=s.api_host,
                        port=s.api_port, expose_confirmed=s.api_expose_confirmed)
        await api.start()
        self.api = api

    def _start_worker(self, worker_settings: Settings) -> None:
        assert self.runtime is not None
        queue, library = self.runtime.queue, self.library

        factory = self._consumer_factory
        if factory is None:  # imported here: the worker's modules are not needed to show the window
            from comfystudio_desktop.worker.consumer import Consumer

            factory = Consumer

        def make_consumer() -> Consumer:
            # The client is read at each (re)start: a managed ComfyUI may have been given a new one meanwhile.
            return factory(queue, self.client, self.home, worker_settings, library=library)

        supervisor = WorkerSupervisor(make_consumer, policy=self._worker_policy, parent=self)
        supervisor.preview_frame.connect(self.preview_frame)
        supervisor.state_changed.connect(self._on_worker_supervisor_state_changed)
        self.worker_supervisor = supervisor
        supervisor.start()

    @property
    def worker(self) -> WorkerThread | None:
        """The worker thread running now (None while it restarts, after a crash loop, or before start)."""
        return self.worker_supervisor.worker_thread if self.worker_supervisor is not None else None

    async def _wait_for_redis(self, services: AppServices) -> None:
        """Wait until the queue's Redis runs; while it cannot (e.g. a damaged AOF) say why and keep waiting."""
        told = ""
        while True:
            status = redis_service_status(await asyncio.to_thread(services.wait_for_redis, 30.0))
            if status.up:
                return
            if status.text != told:
                self.redis_changed.emit(status)
                self.problem.emit(Problem(f"The queue cannot start: {status.text.removeprefix('Redis: ')}"))
                told = status.text
            await asyncio.sleep(0.5)

    # -- service actions (the Services dock's buttons: one function each) ---------------------------------------
    async def restart_service(self, name: str) -> None:
        """Restart a service (the worker: stop it, its jobs go back to the queue, and start a fresh one)."""
        if name == WORKER_SERVICE:
            if (supervisor := self._live_supervisor()) is not None:
                await supervisor.restart()
            return
        if self.services is not None:
            await Operation(partial(self.services.restart, name), f"restart {name!r}").run()

    async def stop_service(self, name: str) -> None:
        """Stop a service until it is restarted by hand."""
        if name == WORKER_SERVICE:
            if (supervisor := self._live_supervisor()) is not None:
                await supervisor.stop("stopped on request")
            return
        if self.services is not None:
            await Operation(partial(self.services.stop_service, name), f"stop {name!r}").run()

    async def repair_queue_aof(self) -> None:
        """Repair the queue's damaged append-only file and say what was done."""
        if self.services is not None:
            await Operation(self.services.repair_redis_aof, "repair the queue's AOF") \
                .success(lambda report: self.problem.emit(Problem(report.message))).run()

    def _live_supervisor(self) -> WorkerSupervisor | None:
        return None if self._closing else self.worker_supervisor

    def log_file(self, name: str) -> Path:
        """The log a service's "Open log" button shows (the worker thread logs to the app's own log)."""
        if name == WORKER_SERVICE or self.services is None:
            return self.home.logs / "comfystudio.log"
        return self.services.log_file(name)

    async def _restore_and_follow(self) -> None:
        assert self.runtime is not None
        queue = self.runtime.queue
        # Take the stream position first, so nothing between the snapshot and the follow is missed.
        last_id = await asyncio.to_thread(queue.last_event_id)
        records = await asyncio.to_thread(queue.jobs, since_s=_HISTORY_WINDOW_S)
        self.records_loaded.emit(JobRecords(tuple(records)))
        if self._follow_task is None:
            # The queue's connection knows where Redis is after a restart; the stream never starts a server.
            stream = QueueEventStream(lambda: queue.conn.endpoint, last_id)
            self._follow_task = self.spawn(self._follow_queue(stream))

    async def _follow_queue(self, stream: QueueEventStream) -> None:
        """The one reader of job state: every message of the queue's event stream, in order."""
        async for message in stream.listen():
            self._handle_message(message)

    def _handle_message(self, message: QueueMessage) -> None:
        match message:
            case JobEvent():
                self.job_event.emit(message)
                self.request_counts()
            case StreamConnected(resync=resync):
                self.redis_changed.emit(redis_status(self.runtime.endpoint if self.runtime is not None else None))
                if resync and self.runtime is not None and not self._closing:
                    self.spawn(self._resync())  # events may have been trimmed while away
            case StreamLost():
                self.redis_changed.emit(redis_status(None, connected=False))

    async def shutdown(self, *, stop_services: bool) -> None:
        """Stop the worker (its jobs go back to the queue at once), the event stream and, if asked, the services.

        Every step has a time limit, so a stuck step cannot keep the app from quitting; the services are
        stopped whatever happened before.
        """
        self._closing = True
        try:
            if self.worker_supervisor is not None:
                await _bounded(self.worker_supervisor.stop("app is shutting down"), 35.0, "stopping the worker")
            if self.backend_workers is not None:
                await _bounded(self.backend_workers.stop(), 45.0, "stopping the backends' workers")
            if self._follow_task is not None:
                self._follow_task.cancel()
                await _bounded(asyncio.gather(self._follow_task, return_exceptions=True), 5.0,
                               "stopping the event stream")
            if self.api is not None:
                await _bounded(self.api.stop(), 5.0, "stopping the API")
            # From here on nothing new starts: a refresh asked for by a late signal would otherwise outlive the
            # loop ("Task was destroyed but it is pending").
            self._spawning = False
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

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run a coroutine on the loop; its failure is logged and shown, never lost.

        Once shutdown has cancelled the background tasks, the coroutine is closed unstarted and None returned.
        """
        if not self._spawning:
            coro.close()
            return None
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
            self.problem.emit(Problem(str(exc)))

    # -- user actions ----------------------------------------------------------------------------------------
    async def submit(self, job: Job) -> SubmitOutcome:
        """Queue a job (the outbox keeps it if Redis is down)."""
        assert self.runtime is not None
        outcome = await asyncio.to_thread(self.runtime.queue.submit, job, wait_for_redis=False)
        if outcome is SubmitOutcome.OUTBOX:
            self.problem.emit(Problem("Redis is unreachable: the job is kept and will be queued when it is back."))
        self.request_counts()
        return outcome

    async def submit_batch(self, batch: JobBatch) -> None:
        """Queue a batch's jobs in one round trip, in order, under its batch id (the outbox keeps them if Redis is
        down)."""
        assert self.runtime is not None
        outcomes = await asyncio.to_thread(_submit_batch, self.runtime.queue, batch)
        if SubmitOutcome.OUTBOX in outcomes:
            self.problem.emit(Problem("Redis is unreachable: the batch is kept and will be queued when it is back."))
        self.request_counts()

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
            self.records_loaded.emit(JobRecords((record,)))

    async def refresh_models(self) -> None:
        """Reload the grouped model list (from ComfyUI, else the models folder)."""
        models_dir = self.settings.comfy_models_dir or None
        catalogue = await asyncio.to_thread(load_catalogue, self.client, models_dir)
        if catalogue.comfy_answered:
            self.unet_parts_loaded.emit(await asyncio.to_thread(load_part_lists, self.client))
        self.models_loaded.emit(catalogue)

    def set_paused(self, paused: bool) -> None:
        """Pause or resume taking new jobs (jobs in flight go on); a restarted worker keeps the choice."""
        if self.backend_workers is not None:
            self.backend_workers.set_paused(paused)
        supervisor = self.worker_supervisor
        if supervisor is None:
            return
        supervisor.set_paused(paused)
        self.worker_changed.emit(worker_status(supervisor.snapshot(), paused))

    # -- status ----------------------------------------------------------------------------------------------
    def request_counts(self) -> None:
        """Refresh the queued/running counts soon (coalesced: one read in flight, at most ~10 a second)."""
        if self.runtime is not None and not self._closing:
            self._counts.request()

    async def _update_counts(self) -> None:
        assert self.runtime is not None
        try:
            counts = await asyncio.to_thread(self.runtime.queue.counts)
        except RedisUnavailable as exc:
            log.warning("Counts unavailable: %s", exc)
            return
        self.counts_changed.emit(counts["queued"], counts["running"])

    async def _watch_comfy(self) -> None:
        """ComfyUI's health for the status bar (a health poll; job state always comes by push)."""
        was_up: bool | None = None
        while True:
            try:
                stats: dict[str, Any] | None = await asyncio.to_thread(self.client.system_stats)
            except ComfyError as exc:
                stats = None
                log.debug("ComfyUI health: %s", exc)
            status = comfy_status(stats, self.client.base_url)
            self.comfy_changed.emit(status)
            if status.up and was_up is False:
                self.spawn(self.refresh_models())  # it came back: its model list is the real one
            was_up = status.up
            await asyncio.sleep(_COMFY_POLL_S)

    async def _keep_storage_tidy(self) -> None:
        """Apply the retention settings now and every hour (never to images an active job needs)."""
        assert self.runtime is not None
        queue = self.runtime.queue
        while True:
            try:
                await asyncio.to_thread(clean_up_storage, queue, self.home, self.settings)
            except RedisUnavailable as exc:
                log.warning("Storage clean-up skipped: %s", exc)
            await asyncio.sleep(_STORAGE_SWEEP_S)

    def _on_worker_supervisor_state_changed(self, state: ServiceState) -> None:
        self.service_changed.emit(state)  # the Services dock, the tray and the status bar show it like the others
        paused = self.worker_supervisor is not None and self.worker_supervisor.paused
        self.worker_changed.emit(worker_status(state, paused))

    async def _follow_settings(self) -> None:
        """Apply changes of config.json that need no restart to the controller and its worker; tell the window."""
        watch = SettingsWatch(self.home.config_file, self.settings)
        while not self._closing:
            await asyncio.sleep(SETTINGS_POLL_S)
            change = watch.poll()
            if change is None:
                continue
            live = {name: getattr(change.settings, name) for name in change.live}
            self.settings = replace(self.settings, **live)
            if self.worker is not None:
                self.worker.consumer.settings = replace(self.worker.consumer.settings, **live)
            self.settings_changed.emit(change)

    async def _resync(self) -> None:
        assert self.runtime is not None
        records = await asyncio.to_thread(self.runtime.queue.jobs, since_s=_HISTORY_WINDOW_S)
        self.records_loaded.emit(JobRecords(tuple(records)))
        self.request_counts()


def _submit_batch(queue: JobQueue, batch: JobBatch) -> list[SubmitOutcome]:
    jobs = list(batch.jobs)
    try:
        return JobBatches(queue).submit(batch.batch_id, jobs)
    except RedisUnavailable:
        # The membership could not be written; the jobs still carry their batch id, and the outbox keeps them.
        log.warning("Batch %r: Redis is unreachable, its jobs go to the outbox", batch.batch_id)
        return queue.submit_many(jobs)


async def _bounded(awaitable: Awaitable[Any], timeout_s: float, what: str, *, slow_s: float = _SLOW_STEP_S) -> None:
    began = time.monotonic()
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError:
        log.error("Gave up %s after %.0f s", what, timeout_s)
        return
    took = time.monotonic() - began
    if took > slow_s:  # the user waits for it when quitting: say which step it was
        log.warning("%s took %.1f s", what.capitalize(), took)
