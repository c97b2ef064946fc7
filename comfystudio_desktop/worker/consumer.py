"""The worker: claims jobs and runs them on ComfyUI, keeping up to `pipeline_depth` of them submitted.

`Consumer.run(stop, emit)` is plain Python. The window runs it in a QThread and turns `emit` into a Qt signal;
`comfystudio-desktop worker` runs it headless; tests call it directly. One loop thread owns every run: it claims,
prepares and submits while slots are free (so the GPU is busy with one job while the next one uploads), routes
ComfyUI's events to the run they belong to, and finishes runs. A heartbeat thread keeps the leases.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError, ComfyUnavailable, ComfyValidationError
from comfystudio_desktop.comfy.comfy_events import ComfyEvent, EventKind
from comfystudio_desktop.comfy.comfy_stream import ComfyEventStream
from comfystudio_desktop.comfy.job_tracker import JobOutcome
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary, load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue, LeaseState
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.worker.heartbeat import Heartbeat
from comfystudio_desktop.worker.job_inputs import JobInputError
from comfystudio_desktop.worker.job_outputs import store_outputs
from comfystudio_desktop.worker.job_run import Phase, WorkerRun
from comfystudio_desktop.worker.run_preparation import RunPreparer, comfy_backoff_s

__all__ = ["Consumer", "EmitFn"]

log = logging.getLogger(__name__)
EmitFn = Callable[[JobEvent], None]

_EVENT_WAIT_S = 0.05
_CANCEL_CHECK_S = 1.0
_EMPTY_CLAIM_PAUSE_S = 0.5
_HOUSEKEEPING_S = 2.0
_HISTORY_POLL_S = 5.0  # safety net: a job's end is also read from history if its messages were missed
_HISTORY_POLL_DISCONNECTED_S = 0.5


class Consumer:
    """Runs queued jobs on one ComfyUI. Thread-safe controls: `pause()`, `resume()`; stop via the event."""

    def __init__(self, queue: JobQueue, client: ComfyClient, home: Home, settings: Settings, *,
                 worker_id: str = "", library: TemplateLibrary | None = None) -> None:
        self.queue = queue
        self.client = client
        self.home = home
        self.settings = settings
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.library = library or load_library(home.workflows)
        self._runs: dict[str, WorkerRun] = {}
        self._runs_lock = threading.Lock()
        self._paused = threading.Event()
        self._emit: EmitFn = lambda event: None
        self._preparer = RunPreparer(self)
        self._stream: ComfyEventStream | None = None
        self._last_housekeeping = 0.0
        self._last_empty_claim = 0.0

    # -- controls --------------------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop taking new jobs (jobs in flight go on)."""
        self._paused.set()

    def resume(self) -> None:
        """Take new jobs again."""
        self._paused.clear()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._paused.is_set()

    def in_flight(self) -> list[WorkerRun]:
        """A snapshot of the runs held now."""
        with self._runs_lock:
            return list(self._runs.values())

    # -- the loop --------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, emit: EmitFn) -> None:
        """Work until `stop` is set; then hand every held job back to the queue at once."""
        self._emit = emit
        stream = ComfyEventStream.for_client(self.client).start()
        self._stream = stream
        # The heartbeat is also how a cancel reaches a job whose ComfyUI sends no progress: beat at least every second.
        interval = min(_CANCEL_CHECK_S, max(0.2, self.queue.lease_seconds / 3))
        heartbeat = Heartbeat(self.queue, self.in_flight, interval).start()
        log.info("Worker %s started (ComfyUI %s, pipeline depth %d)", self.worker_id, self.client.base_url,
                 self.settings.pipeline_depth)
        try:
            while not stop.is_set():
                try:
                    self._step(stop)
                except RedisUnavailable as exc:
                    log.warning("Worker %s: Redis unavailable (%s); retrying", self.worker_id, exc)
                    stop.wait(1.0)
        finally:
            heartbeat.stop()
            self._release_all()
            stream.close()
            log.info("Worker %s stopped", self.worker_id)

    def _step(self, stop: threading.Event) -> None:
        now = time.monotonic()
        if now - self._last_housekeeping >= _HOUSEKEEPING_S:
            self._housekeeping()
            self._last_housekeeping = now
        self._fill_slots(stop)
        self._advance_runs()
        if not self._runs:
            return
        assert self._stream is not None
        event = self._stream.get(timeout=_EVENT_WAIT_S)
        while event is not None:
            self._on_comfy_event(event)
            event = self._stream.get(timeout=0)

    def _housekeeping(self) -> None:
        self.queue.reap_expired()
        self.queue.pump_intake()
        self.queue.deliver_outbox()

    def _fill_slots(self, stop: threading.Event) -> None:
        """Claim while there is room; block on the queue's wake-up list only when nothing is in flight."""
        if self._paused.is_set() or any(r.phase is Phase.WAITING_COMFY for r in self._runs.values()):
            if not self._runs:
                stop.wait(0.2)
            return
        while len(self._runs) < self.settings.pipeline_depth and not stop.is_set():
            idle = not self._runs
            if not idle and time.monotonic() - self._last_empty_claim < _EMPTY_CLAIM_PAUSE_S:
                return  # the queue was empty a moment ago: with jobs in flight, look again a little later
            lease = self.queue.claim(self.worker_id, block_s=1.0 if idle else 0.0)
            if lease is None:
                self._last_empty_claim = time.monotonic()
                return
            run = WorkerRun(lease=lease)
            with self._runs_lock:
                self._runs[run.job_id] = run
            self._report(run, JobStatus.PROCESSING, 10, "processing")
            self._preparer.prepare(run)

    def _advance_runs(self) -> None:
        now = time.monotonic()
        for run in list(self._runs.values()):
            if run.flags.lease_lost.is_set():
                log.warning("Job %s: lease lost; another attempt owns it now", run.job_id)
                self._drop(run)
            elif run.flags.cancel_requested.is_set():
                self._cancel_in_comfy(run)
            elif run.phase is Phase.WAITING_COMFY and now >= run.next_attempt_at:
                self._preparer.prepare(run)
            elif run.phase is Phase.SUBMITTED:
                self._check_submitted(run, now)
            elif run.phase is Phase.FINISHING:
                self._record_finish(run)

    # -- submitted runs --------------------------------------------------------------------------------------
    def _check_submitted(self, run: WorkerRun, now: float) -> None:
        assert run.tracker is not None
        if now - run.submitted_at > self.settings.job_timeout_s:
            self._interrupt(run)
            self._fail(run, f"timed out after {self.settings.job_timeout_s:.0f} s")
            return
        connected = self._stream is not None and self._stream.connected
        # A re-attached prompt's messages go to the old worker's socket: only history tells its end.
        every = _HISTORY_POLL_S if connected and not run.reattached else _HISTORY_POLL_DISCONNECTED_S
        if now - run.last_history_poll < every:
            return
        run.last_history_poll = now
        try:
            # Queue first, then history: ComfyUI writes a prompt's history before it leaves the queue, so a prompt
            # in neither is gone - ComfyUI restarted (however fast it came back) and forgot it.
            if run.prompt_id in self.client.queue():
                return
            entry = self.client.history(run.prompt_id)
            if entry is None:
                self._requeue(run, "ComfyUI lost the job (it restarted)")
                return
        except ComfyUnavailable as exc:
            if not connected:
                self._requeue(run, f"ComfyUI stopped during the job ({exc})")
            return
        except ComfyError as exc:
            log.warning("Job %s: status check failed: %s", run.job_id, exc)
            return
        if run.tracker.apply_history(entry):
            self._complete(run)

    def _on_comfy_event(self, event: ComfyEvent) -> None:
        if event.kind is EventKind.RECONNECTED:
            for run in self._runs.values():
                run.last_history_poll = 0.0  # messages sent meanwhile are lost: read history now
            return
        target = next((r for r in self._runs.values() if r.prompt_id == event.prompt_id), None)
        if target is None or target.tracker is None or target.phase is not Phase.SUBMITTED:
            return
        run, tracker = target, target.tracker
        if event.kind is EventKind.PREVIEW and event.preview is not None:
            self._emit(JobEvent(job_id=run.job_id, status=JobStatus.PROCESSING, progress=run.progress,
                                message="generating", preview=event.preview))
            return
        tracker.apply(event)
        if tracker.percent > run.progress and not tracker.done:
            self._report(run, JobStatus.PROCESSING, tracker.percent, "generating")
        if tracker.done:
            self._complete(run)

    def _complete(self, run: WorkerRun) -> None:
        tracker = run.tracker
        assert tracker is not None
        if tracker.outcome is None or (tracker.outcome is JobOutcome.SUCCESS and not tracker.output_images):
            try:  # executing(null) alone, or the images were in messages we missed: history has them
                tracker.apply_history(self.client.history(run.prompt_id))
            except ComfyError as exc:
                log.warning("Job %s: history read failed: %s", run.job_id, exc)
            if tracker.outcome is None:
                return  # history not written yet; the next poll completes it
        log.info("Job %s: %s", run.job_id, tracker.summary())
        if tracker.outcome is JobOutcome.SUCCESS:
            images = tracker.output_images
            if not images:
                self._fail(run, "ComfyUI finished the workflow but saved no image")
                return
            try:
                run.outputs = tuple(store_outputs(run.job_id, images, self.client, self.home))
            except ComfyUnavailable as exc:
                self._requeue(run, f"ComfyUI stopped before the result was copied ({exc})")
                return
            except (ComfyError, OSError, ValueError) as exc:
                self._fail(run, f"could not copy the result: {exc}")
                return
            run.image_url = f"outputs/{run.outputs[0]}"
            run.phase = Phase.FINISHING
            self._record_finish(run)
        elif tracker.outcome is JobOutcome.INTERRUPTED:
            self._fail(run, "interrupted in ComfyUI")
        else:
            self._fail(run, tracker.error or "ComfyUI reported an error")

    def _record_finish(self, run: WorkerRun) -> None:
        try:
            state = self.queue.finish(run.lease, run.image_url, run.outputs)
        except RedisUnavailable as exc:
            log.warning("Job %s: result stored, waiting for Redis to record it (%s)", run.job_id, exc)
            return  # stays FINISHING; retried on the next step (finish is idempotent)
        if state is LeaseState.OK:
            self._emit(JobEvent(job_id=run.job_id, status=JobStatus.FINISHED, progress=100,
                                image_url=run.image_url, seed_used=run.seed_used))
        self._drop(run)

    # -- cancel, fail, requeue -------------------------------------------------------------------------------
    def _cancel_in_comfy(self, run: WorkerRun) -> None:
        if run.phase is Phase.SUBMITTED:
            self._interrupt(run)
        log.info("Job %s cancelled", run.job_id)
        self._emit(JobEvent(job_id=run.job_id, status=JobStatus.CANCELLED, progress=run.progress))
        self._drop(run)

    def _interrupt(self, run: WorkerRun) -> None:
        """Stop this prompt only: delete it from ComfyUI's queue if pending, else interrupt it by id."""
        try:
            state = self.client.queue()
            if run.prompt_id in state.pending_ids:
                self.client.delete_from_queue([run.prompt_id])
            else:
                self.client.interrupt(run.prompt_id)
        except ComfyError as exc:
            log.warning("Job %s: could not stop it in ComfyUI: %s", run.job_id, exc)

    def _fail(self, run: WorkerRun, error: str, node_errors: str = "") -> None:
        state = self.queue.fail(run.lease, error, node_errors)
        if state is LeaseState.OK:
            self._emit(JobEvent(job_id=run.job_id, status=JobStatus.FAILED, progress=run.progress, error=error,
                                node_errors=node_errors))
        self._drop(run)

    def _requeue(self, run: WorkerRun, reason: str) -> None:
        outcome = self.queue.requeue(run.lease, reason)
        record = self.queue.status(run.job_id)
        if record is not None:
            self._emit(JobEvent(job_id=run.job_id, status=record.status, progress=record.progress,
                                message=record.message, error=record.error))
        log.warning("Job %s %s: %s", run.job_id, outcome, reason)
        self._drop(run)

    def _drop(self, run: WorkerRun) -> None:
        with self._runs_lock:
            self._runs.pop(run.job_id, None)

    def _release_all(self) -> None:
        """Clean stop: give every held job back at once, without counting an attempt.

        A job already submitted keeps running in ComfyUI; whoever claims it next re-attaches to it.
        """
        for run in self.in_flight():
            try:
                self.queue.release(run.lease)
            except RedisUnavailable as exc:
                log.warning("Job %s not released (%s); its lease will expire", run.job_id, exc)
            self._drop(run)

    # -- reporting -------------------------------------------------------------------------------------------
    def _report(self, run: WorkerRun, status: JobStatus, progress: int, message: str,
                **fields: str | int) -> None:
        """Record progress in the queue and tell the in-process listener; notice a cancel on the way."""
        run.progress = max(run.progress, progress)
        self._emit(JobEvent(job_id=run.job_id, status=status, progress=run.progress, message=message,
                            seed_used=run.seed_used if run.seed_used >= 0 else None))
        try:
            state = self.queue.progress(run.lease, run.progress, message, **fields)
        except RedisUnavailable as exc:
            log.warning("Job %s: progress not recorded (%s)", run.job_id, exc)
            return
        if state is LeaseState.CANCELLED:
            run.flags.cancel_requested.set()
        elif state is LeaseState.LOST:
            run.flags.lease_lost.set()

    def report_failure(self, run: WorkerRun, exc: Exception) -> None:
        """Fail a run for a reason that a retry cannot fix (bad input, ComfyUI rejected the workflow)."""
        if isinstance(exc, ComfyValidationError):
            node_errors = "\n".join(error.describe() for error in exc.node_errors)
            log.error("Job %s: ComfyUI rejected the workflow: %s", run.job_id, json.dumps(exc.details)[:4000])
            self._fail(run, str(exc), node_errors=node_errors)
        elif isinstance(exc, JobInputError):
            self._fail(run, str(exc))
        else:
            self._fail(run, f"{type(exc).__name__}: {exc}")

    def wait_for_comfy(self, run: WorkerRun, exc: Exception) -> None:
        """ComfyUI is unreachable: keep the job, say so, and try again after a backoff."""
        run.comfy_failures += 1
        delay = comfy_backoff_s(run.comfy_failures)
        run.phase = Phase.WAITING_COMFY
        run.next_attempt_at = time.monotonic() + delay
        log.warning("Job %s waiting for ComfyUI (retry in %.0f s): %s", run.job_id, delay, exc)
        self._report(run, JobStatus.PROCESSING, run.progress, "waiting for ComfyUI")
