"""The worker: claims jobs and runs them on ComfyUI, keeping up to `pipeline_depth` of them submitted.

`Consumer.run(stop, emit)` is plain Python. The window runs it in a QThread and turns `emit` into a Qt signal;
`comfystudio-desktop worker` runs it headless; tests call it directly. One loop thread owns every run: it claims,
prepares and submits while slots are free (so the GPU is busy with one job while the next one uploads), routes
ComfyUI's events to the run they belong to, and finishes runs. A heartbeat thread keeps the leases.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError, ComfyUnavailable
from comfystudio_desktop.comfy.comfy_events import ComfyEvent, EventKind, OutputImage
from comfystudio_desktop.comfy.comfy_stream import ComfyEventStream
from comfystudio_desktop.comfy.job_tracker import JobTracker
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary, load_library
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.queue.connection import RedisHomeGoneUnavailable, RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue, LeaseState
from comfystudio_desktop.queue.queue_pause import PauseReason, QueueGate, QueuePauseStore
from comfystudio_desktop.queue.result_cache import ResultCache
from comfystudio_desktop.queue.run_times import RunTimes
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.worker.claim_gate import ClaimGate
from comfystudio_desktop.worker.error_log import ErrorLog
from comfystudio_desktop.worker.heartbeat import Heartbeat
from comfystudio_desktop.worker.job_outputs import output_location, store_outputs
from comfystudio_desktop.worker.job_run import Phase, WorkerRun
from comfystudio_desktop.worker.run_decisions import (
    Completed,
    Failed,
    PausedForMemory,
    Preparation,
    Reattached,
    ReusedResult,
    Step,
    Submitted,
    WaitForComfy,
    comfy_run_seconds,
    completion,
    needs_history,
    next_step,
    run_time_to_learn,
)
from comfystudio_desktop.worker.run_preparation import RunPreparer

__all__ = ["Consumer", "EmitFn", "retry_message"]

log = logging.getLogger(__name__)
EmitFn = Callable[[JobEvent], None]

_EVENT_WAIT_S = 0.05
_CANCEL_CHECK_S = 1.0
_EMPTY_CLAIM_PAUSE_S = 0.5
_HOUSEKEEPING_S = 2.0
_HISTORY_POLL_S = 5.0  # safety net: a job's end is also read from history if its messages were missed
_HISTORY_POLL_DISCONNECTED_S = 0.5
_MAX_ERROR_CHARS = 1_000


def retry_message(attempts: int, message: str) -> str:
    """What a run of a requeued job says until it passes the progress an earlier attempt reached."""
    return f"retrying (attempt {attempts + 1}): {message}" if attempts > 0 else f"resuming: {message}"


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
        self.results = ResultCache(queue.conn)
        self._preparer = RunPreparer(queue, client, home, self.library, lambda: self.settings, self.results)
        self._stream: ComfyEventStream | None = None
        self._last_housekeeping = 0.0
        self._last_empty_claim = 0.0
        self._loop_errors = ErrorLog(log, f"Worker {self.worker_id!r}")
        self.fatal_error: RedisUnavailable | None = None  # why `run` ended on its own (the home was deleted)
        self.run_times = RunTimes(queue)
        self.queue_pause = QueuePauseStore(queue.conn)
        self._claim_gate = ClaimGate(self.queue_pause, self.worker_id)
        self._last_comfy_end = 0.0  # monotonic: when ComfyUI last ended one of this worker's runs
        self.backend_name = ""  # named on the record's output location (set by a backend's worker)

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

    @property
    def gate(self) -> QueueGate:
        """The queue-level decision last taken: open, or paused (by whom, until when)."""
        return self._claim_gate.last

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
        log.info("Worker %r started (ComfyUI %s, pipeline depth %d)", self.worker_id, self.client.base_url,
                 self.settings.pipeline_depth)
        told = ""
        try:
            while not stop.is_set():
                try:
                    self._step(stop)
                    told = ""
                except RedisHomeGoneUnavailable as exc:  # nothing to wait for: the data is gone
                    log.error("Worker %r stops: %s", self.worker_id, exc)
                    self.fatal_error = exc
                    break
                except RedisUnavailable as exc:
                    if str(exc) != told:  # once per outage at WARNING; every retry only in the debug log
                        log.warning("Worker %r: Redis unavailable (%s); retrying", self.worker_id, exc)
                        told = str(exc)
                    else:
                        log.debug("Worker %r: Redis still unavailable (%s)", self.worker_id, exc)
                    stop.wait(1.0)
                except Exception as exc:  # noqa: BLE001 - a fault outside any one job (a bug, a Redis error): never end the loop
                    self._loop_errors.report(exc)
                    stop.wait(1.0)
        finally:
            heartbeat.stop()
            self._release_all()
            stream.close()
            log.info("Worker %r stopped", self.worker_id)

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
            self._route_comfy_event(event)
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
        if len(self._runs) < self.settings.pipeline_depth and not self._claim_gate.check(self.settings.active_hours):
            if not self._runs:
                stop.wait(0.5)  # a resume is seen within half a second
            return
        # A pause is looked at before every claim, and again after waiting on the wake-up list.
        while len(self._runs) < self.settings.pipeline_depth and not stop.is_set() and not self._paused.is_set():
            idle = not self._runs
            if not idle and time.monotonic() - self._last_empty_claim < _EMPTY_CLAIM_PAUSE_S:
                return  # the queue was empty a moment ago: with jobs in flight, look again a little later
            lease = self.queue.claim(self.worker_id, block_s=1.0 if idle else 0.0,
                                     still_wanted=lambda: not self._paused.is_set() and not stop.is_set())
            if lease is None:
                self._last_empty_claim = time.monotonic()
                return
            run = WorkerRun(lease=lease)
            with self._runs_lock:
                self._runs[run.job_id] = run
            self._guarded(run, self._start, run)

    def _start(self, run: WorkerRun) -> None:
        reused = self._preparer.look_up_cache(run)
        if reused is not None:
            self._finish_reused(run, reused)
            return  # done in three writes (submit, claim, finish): no progress to report
        self._report(run, JobStatus.PROCESSING, 10, "processing")
        self._prepare(run)

    def _prepare(self, run: WorkerRun) -> None:
        self._apply_preparation(run, self._preparer.prepare(run, self._report, self._wait_connected))

    def _finish_reused(self, run: WorkerRun, reused: ReusedResult) -> None:
        """Finish a run with the outputs the result cache gave it, without going to ComfyUI."""
        run.outputs, run.image_url, run.from_cache = reused.outputs, f"outputs/{reused.outputs[0]}", True
        self._locate(run, ())
        run.phase = Phase.FINISHING
        self._record_finish(run)

    def _wait_connected(self, timeout_s: float) -> None:
        if self._stream is not None:
            self._stream.wait_connected(timeout_s)

    def _apply_preparation(self, run: WorkerRun, outcome: Preparation) -> None:
        """Apply what came of preparing a run."""
        match outcome:
            case Submitted():
                RunPreparer.comfy_answered(self.in_flight())  # ComfyUI took this one: the others waiting go too
            case Reattached(finished=True):
                self._complete(run)
            case Reattached():
                pass  # followed like a run submitted now
            case WaitForComfy(delay_s=delay_s, reason=reason):
                self._wait_for_comfy(run, delay_s, reason)
            case Failed(error=error, node_errors=node_errors, details=details):
                if details:
                    log.error("Job %r: ComfyUI rejected the workflow: %s", run.job_id, details)
                self._fail(run, error, node_errors=node_errors)

    def _advance_runs(self) -> None:
        now = time.monotonic()
        for run in list(self._runs.values()):
            self._guarded(run, self._advance, run, now)

    def _advance(self, run: WorkerRun, now: float) -> None:
        step = next_step(run, now)
        if step is Step.DROP:
            log.warning("Job %r: lease lost; another attempt owns it now", run.job_id)
            self._drop(run)
        elif step is Step.CANCEL:
            self._cancel_in_comfy(run)
        elif step is Step.PREPARE:
            self._prepare(run)
        elif step is Step.CHECK:
            self._check_submitted(run, now)
        elif step is Step.RECORD_FINISH:
            self._record_finish(run)

    def _guarded(self, run: WorkerRun, step: Callable[..., None], *args: object) -> None:
        """Run one step of one job; an unexpected exception fails that job, never the worker."""
        try:
            step(*args)
        except RedisUnavailable:
            raise  # the queue is down, not the job: the loop waits for Redis and the step runs again
        except Exception as exc:  # noqa: BLE001 - an unexpected exception fails that job, never the worker
            self._fail_unexpected(run, exc)

    def _fail_unexpected(self, run: WorkerRun, exc: Exception) -> None:
        log.error("Job %r: unexpected %s in the worker; failing the job", run.job_id, type(exc).__name__,
                  exc_info=exc)
        reason = f"worker error: {type(exc).__name__}: {exc}"
        if len(reason) > _MAX_ERROR_CHARS:
            reason = reason[:_MAX_ERROR_CHARS - 1] + "…"
        try:
            if self._interrupt_on_failure(run):
                self._interrupt(run)  # do not leave ComfyUI working on a job that is failed here
            self._fail(run, reason, count_attempt=True)
        except RedisUnavailable:
            raise
        except Exception as second:  # noqa: BLE001 - the queue refused it too: let the lease expire; the reaper counts it
            log.error("Job %r: could not record the failure (%s: %s); its lease will expire", run.job_id,
                      type(second).__name__, second)
            self._drop(run)

    @staticmethod
    def _interrupt_on_failure(run: WorkerRun) -> bool:
        return run.phase is Phase.SUBMITTED and run.tracker is not None and not run.tracker.done

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
            log.warning("Job %r: status check failed: %s", run.job_id, exc)
            return
        if run.tracker.apply_history(entry):
            self._complete(run)

    def _route_comfy_event(self, event: ComfyEvent) -> None:
        if event.kind is EventKind.RECONNECTED:
            self._preparer.comfy_answered(self._runs.values())
            for run in self._runs.values():
                run.last_history_poll = 0.0  # messages sent meanwhile are lost: read history now
            return
        target = next((r for r in self._runs.values() if r.prompt_id == event.prompt_id), None)
        if target is None or target.tracker is None or target.phase is not Phase.SUBMITTED:
            return
        self._guarded(target, self._on_comfy_event, target, event)

    def _on_comfy_event(self, run: WorkerRun, event: ComfyEvent) -> None:
        tracker = run.tracker
        assert tracker is not None
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
        if needs_history(tracker.outcome, bool(tracker.output_images)):
            try:  # executing(null) alone, or the images were in messages we missed: history has them
                tracker.apply_history(self.client.history(run.prompt_id))
            except ComfyError as exc:
                log.warning("Job %r: history read failed: %s", run.job_id, exc)
        verdict = completion(tracker.outcome, has_images=bool(tracker.output_images), error=tracker.error)
        if verdict is None:
            return  # history not written yet; the next poll completes it
        log.info("Job %r: %s", run.job_id, tracker.summary())
        now = time.monotonic()
        run.ran_s = comfy_run_seconds(now, run.claimed_at, self._last_comfy_end)
        self._last_comfy_end = now
        match verdict:
            case PausedForMemory(error=error):
                self._pause_for_memory(run, error)
            case Failed(error=error):
                self._fail(run, error)
            case Completed():
                self._store_completed(run, tracker)

    def _store_completed(self, run: WorkerRun, tracker: JobTracker) -> None:
        """Copy a completed prompt's images to the outputs, cache them and record the finish."""
        try:
            run.outputs = tuple(store_outputs(run.job_id, tracker.output_images, self.client, self.home))
        except ComfyUnavailable as exc:
            self._requeue(run, f"ComfyUI stopped before the result was copied ({exc})")
            return
        except (ComfyError, OSError, ValueError) as exc:
            self._fail(run, f"could not copy the result: {exc}")
            return
        run.image_url = f"outputs/{run.outputs[0]}"
        self._locate(run, tracker.output_images)
        self._remember_result(run)
        run.phase = Phase.FINISHING
        self._record_finish(run)

    def _record_finish(self, run: WorkerRun) -> None:
        try:
            state = self.queue.finish(run.lease, run.image_url, run.outputs, from_cache=run.from_cache,
                                      location=run.location)
        except RedisUnavailable as exc:
            log.warning("Job %r: result stored, waiting for Redis to record it (%s)", run.job_id, exc)
            return  # stays FINISHING; retried on the next step (finish is idempotent)
        if state is LeaseState.OK:
            self._emit(JobEvent(job_id=run.job_id, status=JobStatus.FINISHED, progress=100,
                                image_url=run.image_url, seed_used=run.seed_used,
                                message="from cache" if run.from_cache else ""))
            self._learn_run_time(run)
        self._drop(run)

    def _locate(self, run: WorkerRun, images: Sequence[OutputImage]) -> None:
        """Note where the stored outputs live, so other machines can fetch them; without it only this one can."""
        try:
            run.location = output_location(self.home, self.backend_name, self.client.base_url, run.outputs,
                                           images).to_json()
        except (OSError, ValueError) as exc:
            log.warning("Job %r: output location not recorded (%s)", run.job_id, exc)

    def _learn_run_time(self, run: WorkerRun) -> None:
        """Keep how long ComfyUI took, for the ETA; runs that did not really run there teach nothing."""
        executed = run.tracker is not None and not run.tracker.fully_cached
        seconds = run_time_to_learn(run.ran_s, executed=executed, from_cache=run.from_cache, reattached=run.reattached)
        if seconds is None:
            return
        try:
            self.run_times.record(run.lease.job, seconds)
        except (RedisError, RedisUnavailable) as exc:
            log.warning("Job %r: run time not recorded (%s)", run.job_id, exc)

    def _remember_result(self, run: WorkerRun) -> None:
        """Put a finished run's outputs in the result cache (a failure here costs only a later re-run)."""
        if not run.cache_key or not self.settings.result_cache:
            return
        try:
            self.results.store(run.cache_key, run.job_id, self.home.resolve_inside_storage("outputs"), run.outputs,
                               self.settings.output_retention_days * 86_400)
        except (OSError, ValueError, RedisError, RedisUnavailable) as exc:
            log.warning("Job %r: result not cached (%s)", run.job_id, exc)

    def _pause_for_memory(self, run: WorkerRun, error: str) -> None:
        """ComfyUI ran out of memory: pause the whole queue first (so no worker takes the job straight back),
        then hand the job back without counting the attempt, and tell the user."""
        self.queue_pause.pause(PauseReason.OUT_OF_MEMORY, f"job {run.job_id}: {error}")
        self._requeue(run, f"ComfyUI ran out of memory; queue paused ({error})", count_attempt=False)

    # -- cancel, fail, requeue -------------------------------------------------------------------------------
    def _cancel_in_comfy(self, run: WorkerRun) -> None:
        if run.phase is Phase.SUBMITTED:
            self._interrupt(run)
        log.info("Job %r cancelled", run.job_id)
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
            log.warning("Job %r: could not stop it in ComfyUI: %s", run.job_id, exc)

    def _fail(self, run: WorkerRun, error: str, node_errors: str = "", *, count_attempt: bool = False) -> None:
        state = self.queue.fail(run.lease, error, node_errors, count_attempt=count_attempt)
        if state is LeaseState.OK:
            self._emit(JobEvent(job_id=run.job_id, status=JobStatus.FAILED, progress=run.progress, error=error,
                                node_errors=node_errors))
        self._drop(run)

    def _requeue(self, run: WorkerRun, reason: str, *, count_attempt: bool = True) -> None:
        outcome = self.queue.requeue(run.lease, reason, count_attempt=count_attempt)
        record = self.queue.status(run.job_id)
        if record is not None:
            self._emit(JobEvent(job_id=run.job_id, status=record.status, progress=record.progress,
                                message=record.message, error=record.error))
        log.warning("Job %r %s: %s", run.job_id, outcome, reason)
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
            except Exception as exc:  # noqa: BLE001 - Redis down or refusing: the lease expires and the job is reaped
                log.warning("Job %r not released (%s); its lease will expire", run.job_id, exc)
            self._drop(run)

    # -- reporting -------------------------------------------------------------------------------------------
    def _report(self, run: WorkerRun, status: JobStatus, progress: int, message: str,
                **fields: str | int) -> None:
        """Record progress in the queue and tell the in-process listener; notice a cancel on the way.

        A run after a requeue starts from where the earlier attempt got to: until it passes that, the progress
        stays and the message says it is a retry.
        """
        if progress < run.lease.progress:
            message = retry_message(run.lease.attempts, message)
        run.progress = max(run.progress, progress)
        self._emit(JobEvent(job_id=run.job_id, status=status, progress=run.progress, message=message,
                            seed_used=run.seed_used if run.seed_used >= 0 else None))
        try:
            state = self.queue.progress(run.lease, run.progress, message, **fields)
        except RedisUnavailable as exc:
            log.warning("Job %r: progress not recorded (%s)", run.job_id, exc)
            return
        if state is LeaseState.CANCELLED:
            run.flags.cancel_requested.set()
        elif state is LeaseState.LOST:
            run.flags.lease_lost.set()

    def _wait_for_comfy(self, run: WorkerRun, delay_s: float, reason: str) -> None:
        """ComfyUI is unreachable: keep the job, say so, and try again after the backoff."""
        run.comfy_failures += 1
        run.phase = Phase.WAITING_COMFY
        run.next_attempt_at = time.monotonic() + delay_s
        log.warning("Job %r waiting for ComfyUI (retry in %.0f s): %s", run.job_id, delay_s, reason)
        self._report(run, JobStatus.PROCESSING, run.progress, "waiting for ComfyUI")
