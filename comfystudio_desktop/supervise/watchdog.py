"""The watchdog: one thread that keeps several supervised processes up according to a `RestartPolicy`.

Callbacks run on the watchdog thread (or on the thread that called `restart`/`stop_service`); the UI bridges them
to Qt signals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from comfystudio_desktop.supervise.restart_policy import (
    RestartHistory,
    RestartPolicy,
    Verdict,
    decide_restart,
    is_hung,
    readiness_expired,
)
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.supervise.supervised_process import SupervisedProcess

__all__ = ["ChangeCallback", "RestartedHook", "Watchdog", "crash_loop_message"]

log = logging.getLogger(__name__)

ChangeCallback = Callable[[ServiceState], None]
RestartedHook = Callable[[str], None]

# Not a real start failure to retry: the program or its folder is missing or not allowed.
_PERMANENT_START_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError)
# While a service starts, look for its first passing health check this often (a refused connection is cheap), so
# RUNNING and the on_restarted hooks follow readiness closely rather than up to a whole interval later.
_STARTING_POLL_S = 0.2


def crash_loop_message(policy: RestartPolicy, reason: str) -> str:
    """What a service that gave up after a crash loop says (the Services dock and the tray show it)."""
    return (f"crash loop: failed again after {policy.max_restarts} restarts within {policy.crash_loop_window_s:g}s; "
            f"last: {reason}")


@dataclass(eq=False)
class _Service:
    process: SupervisedProcess
    policy: RestartPolicy
    # Serialises control of one process between the watchdog thread and restart()/stop_service() callers.
    lock: threading.RLock = field(default_factory=threading.RLock)
    history: RestartHistory = field(default_factory=RestartHistory)
    health_failures: int = 0
    restarted: bool = False  # a replacement is on its way: tell the on_restarted hooks once it is ready
    announce_ready: bool = False  # call the on_restarted hooks after releasing the lock
    next_step_at: float = 0.0  # monotonic (the watchdog's clock): when to look at this service again
    last_key: tuple[object, ...] | None = None
    #: The running process was adopted (another program started it), not spawned by this watchdog.
    adopted: bool = False


class Watchdog:
    """Starts its services, checks each every `interval_s`, restarts with backoff, gives up on crash loops."""

    def __init__(self, processes: Iterable[SupervisedProcess] = (), *, policy: RestartPolicy | None = None,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy or RestartPolicy()
        self._interval_s = interval_s
        self._clock = clock
        self._services: dict[str, _Service] = {}
        self._on_change: list[ChangeCallback] = []
        self._on_restarted: list[RestartedHook] = []
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        for process in processes:
            self.add(process)

    def add(self, process: SupervisedProcess, *, policy: RestartPolicy | None = None) -> None:
        """Supervise one more process (before `start`), optionally with its own policy."""
        if self._thread is not None:
            raise RuntimeError("add services before starting the watchdog")
        if process.name in self._services:
            raise ValueError(f"duplicate service name {process.name!r}")
        self._services[process.name] = _Service(process, policy or self._policy)

    def add_on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(state)` whenever a service's state, pid, health or message changes."""
        self._on_change.append(callback)

    def add_on_restarted(self, hook: RestartedHook) -> None:
        """Call `hook(name)` when a service that crashed, hung or was restarted is ready again."""
        self._on_restarted.append(hook)

    def start(self) -> None:
        """Start the watchdog thread; it starts (or adopts) every service, then supervises them."""
        if self._thread is not None:
            raise RuntimeError("watchdog already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self, stop_children: bool = True) -> None:
        """Stop the thread promptly (after the step under way), then stop the services in reverse order.

        With `stop_children`, only the processes this watchdog spawned are stopped: one it adopted was started by
        another program (e.g. a redis-server a CLI command started for a headless worker) and keeps running.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for service in reversed(self._services.values()):
            with service.lock:
                process = service.process
                if stop_children and service.adopted and process.pid is not None:
                    log.info("Leaving %s (pid %s) running: it was adopted, not started by this app", process.name,
                             process.pid)
                elif stop_children:
                    process.stop("app is shutting down")
                process.close()
            self._publish(service)

    def adopted(self, name: str) -> bool:
        """True when the service's current process was adopted rather than started by this watchdog."""
        return self._service(name).adopted

    def restart(self, name: str) -> ServiceState:
        """Stop and start a service now, clearing FATAL and the crash history. Blocks up to the stop grace."""
        service = self._service(name)
        with service.lock:
            process = service.process
            log.info("Restarting %s on request", name)
            if process.spec.external:
                process.check_health()
            else:
                process.stop("restart requested")
                service.history, service.health_failures, service.restarted = RestartHistory(), 0, True
                self._launch(service)
            service.next_step_at = 0.0  # look at it again on the watchdog's next turn
        self._publish(service)
        return process.snapshot()

    def stop_service(self, name: str) -> ServiceState:
        """Stop one service until `restart(name)`. Blocks up to the stop grace; external services are left alone."""
        service = self._service(name)
        with service.lock:
            service.process.stop("stopped on request")
        self._publish(service)
        return service.process.snapshot()

    def states(self) -> dict[str, ServiceState]:
        """A snapshot of every service, by name."""
        return {name: service.process.snapshot() for name, service in self._services.items()}

    def wait_for(self, name: str, predicate: Callable[[ServiceState], bool], timeout_s: float) -> ServiceState:
        """Block until `predicate(state)` holds for service `name` or the timeout passes; return the last state."""
        service = self._service(name)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(state := service.process.snapshot()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, self._interval_s))
        return state

    # -- the loop -------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        for service in self._services.values():
            if self._stop.is_set():
                return
            # After stop(stop_children=False) and a new start() the processes may still be running.
            if service.process.state in (State.STOPPED, State.EXTERNAL):
                self._guarded(service, self._launch)
        while not self._stop.wait(self._next_wait()):
            for service in self._services.values():
                if self._stop.is_set():
                    break
                if self._clock() >= self._due_at(service):
                    self._guarded(service, self._step)
                    service.next_step_at = self._clock() + self._cadence(service)

    def _guarded(self, service: _Service, action: Callable[[_Service], None]) -> None:
        try:
            with service.lock:
                action(service)
        except Exception:  # the watchdog thread must outlive any one service's surprise
            log.exception("Watchdog step for %s failed", service.process.name)
        self._publish(service)

    def _next_wait(self) -> float:
        """Until the next service is due: at most the interval."""
        now = self._clock()
        return min([self._interval_s, *(max(0.0, self._due_at(s) - now) for s in self._services.values())])

    def _due_at(self, service: _Service) -> float:
        """A restart falls due at its time; anything else at the service's own cadence."""
        process = service.process
        if process.state is State.RESTARTING and process.restart_at is not None:
            return process.restart_at
        return service.next_step_at

    def _cadence(self, service: _Service) -> float:
        """How soon to look again: every interval, or more often while a start awaits its first health check.

        Each service keeps its own cadence, so one service starting never makes another's health checks (and its
        count of failures before HUNG) run faster.
        """
        if service.process.state is State.STARTING:
            return min(self._interval_s, _STARTING_POLL_S)
        return self._interval_s

    def _step(self, service: _Service) -> None:
        process, now = service.process, self._clock()
        state = process.state
        if state is State.EXTERNAL:
            process.check_health()
        elif state is State.RESTARTING:
            if process.restart_at is None or now >= process.restart_at:
                self._launch(service)
        elif state in (State.STARTING, State.RUNNING):
            if not process.poll():
                self._on_exit(service)
            elif state is State.STARTING:
                self._check_ready(service, now)
            else:
                self._check_alive(service)

    def _on_exit(self, service: _Service) -> None:
        """Restart after the backoff, unless the exit's output shows that a restart cannot help."""
        process = service.process
        diagnosis = process.diagnose_exit()
        if diagnosis is None:
            self._schedule_restart(service, process.snapshot().message)
            return
        service.restarted = True  # tell the on_restarted hooks once the user's fix brings it back
        process.mark_fatal(diagnosis.message, diagnosis.remedy)
        log.error("%s will not be restarted: %s", process.name, diagnosis.message)

    def _launch(self, service: _Service) -> None:
        process = service.process
        service.adopted = False
        try:
            process.start()
        except _PERMANENT_START_ERRORS as exc:
            process.mark_fatal(f"cannot start: {exc}")
            log.error("Cannot start %s: %s", process.name, exc)
            return
        except OSError as exc:
            log.warning("Starting %s failed: %s", process.name, exc)
            self._schedule_restart(service, f"cannot start: {exc}")
            return
        service.health_failures = 0
        # Spawning leaves it STARTING; only adopting a healthy leftover makes it RUNNING at once.
        service.adopted = process.state is State.RUNNING
        if service.adopted:
            self._ready(service)

    def _check_ready(self, service: _Service, now: float) -> None:
        process = service.process
        if process.check_health():
            process.mark_running(now)
            self._ready(service)
        elif process.started_at is not None and readiness_expired(process.started_at,
                                                                  process.spec.readiness_timeout_s, now):
            reason = f"not ready after {process.spec.readiness_timeout_s:g}s"
            log.warning("%s was %s; killing it", process.name, reason)
            process.stop(reason)
            self._schedule_restart(service, reason)

    def _check_alive(self, service: _Service) -> None:
        process = service.process
        service.health_failures = 0 if process.check_health() else service.health_failures + 1
        if not is_hung(service.policy, service.health_failures):
            return
        reason = f"hung: failed {service.health_failures} health checks in a row"
        log.warning("%s (pid %s) is %s; killing it", process.name, process.pid, reason)
        process.mark_hung(reason)
        self._emit(service)  # the UI shows HUNG while the stop takes its grace
        process.stop(reason)
        self._schedule_restart(service, reason)

    def _schedule_restart(self, service: _Service, reason: str) -> None:
        process, now = service.process, self._clock()
        decision = decide_restart(service.policy, service.history, now=now,
                                  healthy_for_s=process.healthy_for_s(now))
        service.history, service.restarted = decision.history, True
        if decision.verdict is Verdict.FATAL:
            message = crash_loop_message(service.policy, reason)
            process.mark_fatal(message)
            log.error("%s gave up: %s", process.name, message)
            return
        process.mark_restarting(now + decision.delay_s, reason)
        log.info("Restarting %s in %gs (restart %d in the last %gs)", process.name, decision.delay_s,
                 len(decision.history.recent), service.policy.crash_loop_window_s)

    def _ready(self, service: _Service) -> None:
        if service.restarted:
            service.restarted, service.announce_ready = False, True

    def _publish(self, service: _Service) -> None:
        """Outside the service lock (a callback may call back into the watchdog): hooks first, then the state."""
        if service.announce_ready:
            service.announce_ready = False
            self._call_restarted_hooks(service)
        self._emit(service)

    def _call_restarted_hooks(self, service: _Service) -> None:
        for hook in list(self._on_restarted):
            try:
                hook(service.process.name)
            except Exception:  # a broken hook must not stop supervision
                log.exception("on_restarted hook for %s failed", service.process.name)

    def _emit(self, service: _Service) -> None:
        state = service.process.snapshot()
        key = (state.state, state.pid, state.restarts, state.last_exit_code, state.healthy, state.message,
               state.remedy)
        with self._changed:
            if key == service.last_key:
                return
            service.last_key = key
            self._changed.notify_all()
        for callback in list(self._on_change):
            try:
                callback(state)
            except Exception:  # a broken listener must not stop supervision
                log.exception("on_change callback for %s failed", service.process.name)

    def _service(self, name: str) -> _Service:
        try:
            return self._services[name]
        except KeyError:
            raise KeyError(f"no service named {name!r}") from None
