"""Keeps the window's worker thread running, by the watchdog's rules.

A worker thread that ends without being asked to (an exception escaped `Consumer.run`) is started again with a
fresh Consumer after the backoff of a `RestartPolicy`; too many restarts in the policy's window is a crash loop
(FATAL: no more restarts until the user asks). Its state is a `ServiceState`, so the Services dock, the tray and
the status bar show the worker as they show redis-server and ComfyUI.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from comfystudio_desktop.supervise.restart_policy import RestartHistory, RestartPolicy, Verdict, decide_restart
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.supervise.watchdog import crash_loop_message
from comfystudio_desktop.ui.worker_thread import PreviewFrame, WorkerThread

if TYPE_CHECKING:
    from comfystudio_desktop.worker.consumer import Consumer

__all__ = ["WORKER_POLICY", "WORKER_SERVICE", "WorkerSupervisor"]

log = logging.getLogger(__name__)

WORKER_SERVICE = "worker"
#: The watchdog's own defaults: 1 s doubling to 60 s; more than 5 restarts within 10 minutes is a crash loop.
WORKER_POLICY = RestartPolicy()
_TRACEBACK_LINES = 12


class WorkerSupervisor(QObject):
    """Runs one `WorkerThread` at a time, made by `make_consumer`; lives on (and is called from) the GUI thread.

    Signals: `preview_frame(PreviewFrame)` from whichever thread runs now, `state_changed(ServiceState)` on every
    change.
    """

    preview_frame = Signal(PreviewFrame)
    state_changed = Signal(ServiceState)

    def __init__(self, make_consumer: Callable[[], Consumer], *, policy: RestartPolicy = WORKER_POLICY,
                 clock: Callable[[], float] = time.monotonic, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._make_consumer = make_consumer
        self._policy = policy
        self._clock = clock
        self._history = RestartHistory()
        self._thread: WorkerThread | None = None
        self._retired: WorkerThread | None = None
        self._paused = False
        self._starts = 0
        self._started_at: float | None = None
        self._restart_at: float | None = None
        self._state = State.STOPPED
        self._message = ""
        self._error_lines: tuple[str, ...] = ()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer_timeout)

    # -- what the controller reads ------------------------------------------------------------------------------

    @property
    def worker_thread(self) -> WorkerThread | None:
        """The thread running now (None while restarting, stopped or FATAL)."""
        return self._thread

    @property
    def state(self) -> State:
        """Where the worker stands."""
        return self._state

    @property
    def paused(self) -> bool:
        """True while the worker takes no new jobs (kept across restarts)."""
        return self._paused

    def snapshot(self) -> ServiceState:
        """The worker as a service row."""
        now = self._clock()
        return ServiceState(
            name=WORKER_SERVICE, state=self._state, restarts=max(0, self._starts - 1),
            uptime_s=now - self._started_at if self._started_at is not None else None,
            restart_in_s=max(0.0, self._restart_at - now) if self._restart_at is not None else None,
            healthy=self._state is State.RUNNING, message=self._message, last_log_lines=self._error_lines)

    # -- control ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._launch()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume taking new jobs, now and for every restarted worker."""
        self._paused = paused
        if self._thread is not None:
            if paused:
                self._thread.consumer.pause()
            else:
                self._thread.consumer.resume()

    async def restart(self) -> None:
        """Stop the worker if it runs (its jobs go back to the queue), forget the crash history, start it again."""
        await self._stop_thread()
        self._history = RestartHistory()
        log.info("Restarting the worker on request")
        self._launch()

    async def stop(self, reason: str) -> None:
        """Stop the worker until `restart()`: no restart is scheduled after this."""
        await self._stop_thread()
        self._set(State.STOPPED, reason)

    async def _stop_thread(self) -> None:
        self._timer.stop()
        self._restart_at = None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if not await asyncio.to_thread(thread.stop):
            log.error("The worker thread did not stop within its time limit")
        self._started_at = None
        # Kept until the next stop, so whoever held the thread can still ask it whether it finished.
        if self._retired is not None:
            self._retired.deleteLater()
        self._retired = thread

    # -- restarts -----------------------------------------------------------------------------------------------

    def _launch(self) -> None:
        self._restart_at = None
        try:
            consumer = self._make_consumer()
        except Exception as exc:  # a consumer that cannot even be made is a crash like any other
            log.exception("Cannot create the worker")
            self._starts += 1
            self._started_at = self._clock()
            self._on_crash(exc)
            return
        if self._paused:
            consumer.pause()
        thread = WorkerThread(consumer, self)
        thread.preview_frame.connect(self.preview_frame)
        thread.finished.connect(self._on_thread_finished)  # a slot of ours: delivered on the GUI thread
        self._thread = thread
        self._starts += 1
        self._started_at = self._clock()
        thread.start()
        self._set(State.RUNNING, "running")

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if not isinstance(thread, WorkerThread) or thread is not self._thread or thread.stop_requested:
            return  # stopped on purpose (or an earlier thread): nothing to restart
        self._thread = None
        thread.deleteLater()
        self._on_crash(thread.error)

    def _on_crash(self, error: Exception | None) -> None:
        now = self._clock()
        healthy_for = now - self._started_at if self._started_at is not None else 0.0
        self._started_at = None
        reason = f"{type(error).__name__}: {error}" if error is not None else "the worker thread ended"
        if error is not None:
            lines = "".join(traceback.format_exception(error)).splitlines()
            self._error_lines = tuple(lines[-_TRACEBACK_LINES:])
        decision = decide_restart(self._policy, self._history, now=now, healthy_for_s=healthy_for)
        self._history = decision.history
        if decision.verdict is Verdict.FATAL:
            message = crash_loop_message(self._policy, reason)
            log.error("The worker gave up: %r", message)
            self._set(State.FATAL, message)
            return
        self._restart_at = now + decision.delay_s
        log.warning("The worker stopped (%r); restarting it in %gs (restart %d in the last %gs)", reason,
                    decision.delay_s, len(decision.history.recent), self._policy.crash_loop_window_s)
        self._timer.start(int(decision.delay_s * 1000))
        self._set(State.RESTARTING, f"stopped with an error: {reason}")

    def _on_timer_timeout(self) -> None:
        self._launch()

    def _set(self, state: State, message: str) -> None:
        self._state, self._message = state, message
        self.state_changed.emit(self.snapshot())
