"""One supervised process: start it (or adopt a leftover), capture its output, check its health, stop it.

This is the mechanism only; `watchdog.Watchdog` decides when to restart. The same class runs redis-server and
ComfyUI, and watches an external ComfyUI it must never start or kill.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import psutil

from comfystudio_desktop.supervise.child_env import child_environment
from comfystudio_desktop.supervise.pidfile import (
    PidRecord,
    is_ours,
    read_pidfile,
    remove_pidfile,
    started_as,
    write_pidfile,
)
from comfystudio_desktop.supervise.process_log import ProcessLog
from comfystudio_desktop.supervise.process_spec import ExitDiagnosis, ProcessSpec
from comfystudio_desktop.supervise.service_state import Remedy, ServiceState, State

__all__ = ["SupervisedProcess"]

log = logging.getLogger(__name__)

_KILL_WAIT_S = 5.0
_PUMP_DRAIN_S = 1.0  # after an exit, wait this long for the last output so error reports include it

# sys.platform (not os.name) so that mypy checks each branch against its own platform's stubs.
if sys.platform == "win32":
    # Own process group (no console Ctrl+C from us reaches it) and no console window flashing up.
    _CREATION_FLAGS = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    _NEW_SESSION = False
else:
    # Own session: a Ctrl+C in the terminal that runs the app must not hit the children before we stop them
    # in order.
    _CREATION_FLAGS = 0
    _NEW_SESSION = True


class SupervisedProcess:
    """Runs one `ProcessSpec`. Not thread-safe for concurrent control calls; `snapshot()` may be called anywhere."""

    def __init__(self, spec: ProcessSpec, logs_dir: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.log = ProcessLog(logs_dir / f"{spec.name}.log", child_writes=spec.output_to_file)
        self._clock = clock
        self._identity = spec.identity or (started_as(spec.argv, spec.cwd) if spec.argv else None)
        self._lock = threading.Lock()  # guards the fields read by snapshot()
        self._popen: subprocess.Popen[bytes] | None = None
        self._proc: psutil.Process | None = None  # the process we signal, spawned or adopted
        self._record: PidRecord | None = None
        self._pump: threading.Thread | None = None
        self._state = State.EXTERNAL if spec.external else State.STOPPED
        self._message = ""
        self._started_at: float | None = None
        self._ready_at: float | None = None
        self._healthy_for_s = 0.0  # how long the last process ran ready, kept after it exits
        self._restart_at: float | None = None
        self._starts = 0
        self._exit_code: int | None = None
        self._healthy: bool | None = None
        self._remedy = Remedy.NONE

    # -- what the watchdog reads ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The service name."""
        return self.spec.name

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    @property
    def pid(self) -> int | None:
        """Pid of the running (or adopted) process."""
        if self._record is not None:
            return self._record.pid
        return self._popen.pid if self._popen is not None else None

    @property
    def record(self) -> PidRecord | None:
        """The pid record of the running (or adopted) process, with its pid-file extras (e.g. a port)."""
        return self._record

    @property
    def started_at(self) -> float | None:
        """Monotonic time the current process was started (or adopted)."""
        return self._started_at

    @property
    def restart_at(self) -> float | None:
        """Monotonic time a restart is due, while RESTARTING."""
        return self._restart_at

    def healthy_for_s(self, now: float) -> float:
        """How long the current (or, after an exit, the last) process has been ready; 0 if it never was."""
        return now - self._ready_at if self._ready_at is not None else self._healthy_for_s

    def snapshot(self) -> ServiceState:
        """An immutable view for the UI and the CLI."""
        with self._lock:
            now = self._clock()
            return ServiceState(
                name=self.spec.name, state=self._state, pid=self.pid, restarts=max(0, self._starts - 1),
                last_exit_code=self._exit_code,
                uptime_s=now - self._started_at if self._started_at is not None else None,
                restart_in_s=max(0.0, self._restart_at - now) if self._restart_at is not None else None,
                healthy=self._healthy, message=self._message, last_log_lines=self.log.tail(),
                remedy=self._remedy)

    # -- control ----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Adopt a healthy leftover of ours (if allowed) or spawn; STARTING (or RUNNING when adopted).

        Raises OSError when the program cannot be started.
        """
        if self.spec.external:
            self._set(State.EXTERNAL, "watching")
            self.check_health()
            return
        if self._proc is not None or self._popen is not None:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self._start_lock():
            if not self._take_over_leftover():
                self._spawn()

    def diagnose_exit(self) -> ExitDiagnosis | None:
        """After an exit: the spec's verdict on the last run's output when restarting cannot help, else None."""
        diagnose = self.spec.diagnose_exit
        if diagnose is None:
            return None
        try:
            return diagnose(self.log.run_tail())
        except Exception:  # foreign code; without a verdict the exit is an ordinary crash
            log.exception("Exit diagnosis of %s failed", self.name)
            return None

    def poll(self) -> bool:
        """True while the process is alive; on exit, record the exit code and return False."""
        if self._popen is None and self._proc is None:
            return False
        if self._is_alive():
            return True
        # An adopted process is not our child: its exit code is not ours to read.
        code = self._popen.returncode if self._popen is not None else None
        pid = self.pid
        self._forget_process(code, _exit_text(code))
        log.warning("%s (pid %s) %s", self.name, pid, _exit_text(code))
        return False

    def check_health(self) -> bool:
        """Run the health check (a raising check counts as a failure); no check means "alive"."""
        check = self.spec.health_check
        if check is None:
            ok = self._is_alive()
        else:
            try:
                ok = bool(check())
            except Exception as exc:  # noqa: BLE001 - a health check is foreign code; its failure is just "unhealthy"
                log.debug("Health check of %s raised: %s", self.name, exc)
                ok = False
        if ok != self._healthy and self._healthy is not None and self._state in (State.RUNNING, State.EXTERNAL):
            log.info("%s is %s", self.name, "healthy again" if ok else "not answering its health check")
        with self._lock:
            self._healthy = ok
        return ok

    def stop(self, reason: str = "stopped") -> None:
        """Stop the process: stop hook, grace, terminate, grace, kill. Never touches an external service."""
        if self.spec.external:
            log.info("%s is external; not stopping it", self.name)
            return
        if self._proc is not None or self._popen is not None:
            pid = self.pid
            code = self._stop_process()
            self._forget_process(code, f"stopped ({reason}), exit code {code}")
            log.info("Stopped %s (pid %s, exit code %s): %s", self.name, pid, code, reason)
        self._set(State.STOPPED, reason)
        self.log.close()

    def close(self) -> None:
        """Release the log file (the process itself is left as it is)."""
        self.log.close()

    def mark_running(self, now: float) -> None:
        """The process passed its readiness check."""
        self._ready_at = now
        self._set(State.RUNNING, "running")
        log.info("%s is ready (pid %s)", self.name, self.pid)

    def mark_restarting(self, restart_at: float, message: str) -> None:
        """A restart is due at `restart_at` (monotonic)."""
        self._set(State.RESTARTING, message, restart_at=restart_at)

    def mark_hung(self, message: str) -> None:
        """Alive but not answering; the caller is about to kill it."""
        self._set(State.HUNG, message)

    def mark_fatal(self, message: str, remedy: Remedy = Remedy.NONE) -> None:
        """No more restarts until the user asks; `remedy` names what else the user can do about it."""
        self._set(State.FATAL, message, remedy=remedy)

    # -- internals ----------------------------------------------------------------------------------------------------

    def _is_alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self._proc is not None and _alive(self._proc)

    def _set(self, state: State, message: str, *, restart_at: float | None = None,
             remedy: Remedy = Remedy.NONE) -> None:
        with self._lock:
            self._state, self._message, self._restart_at, self._remedy = state, message, restart_at, remedy

    def _start_lock(self) -> contextlib.ExitStack:
        """Take the spec's start lock now; the returned stack releases it. Failing to take it is an OSError."""
        stack = contextlib.ExitStack()
        if self.spec.start_lock is not None:
            try:
                stack.enter_context(self.spec.start_lock())
            except Exception as exc:  # e.g. timed out: retried with backoff, like a failed start
                raise OSError(f"cannot take the start lock of {self.name}: {exc}") from exc
        return stack

    def _prepare(self) -> dict[str, Any]:
        """Run the spec's prepare hook; its failure is an OSError (retried with backoff, like a failed start)."""
        if self.spec.prepare is None:
            return {}
        try:
            return dict(self.spec.prepare())
        except Exception as exc:  # foreign code
            self.log.note(f"cannot prepare the start: {exc}")
            self._set(State.STOPPED, f"cannot prepare the start: {exc}")
            raise OSError(f"cannot prepare the start of {self.name}: {exc}") from exc

    def _spawn(self) -> None:
        spec = self.spec
        prepared = self._prepare()
        self.log.note_start(" ".join(spec.argv))
        out_file = self.log.open_for_child() if spec.output_to_file else None
        try:
            popen = subprocess.Popen(  # argv from our own spec, never through a shell
                list(spec.argv), cwd=spec.cwd, env=child_environment(spec.env), stdin=subprocess.DEVNULL,
                stdout=out_file or subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                start_new_session=_NEW_SESSION, creationflags=_CREATION_FLAGS)
        except OSError as exc:
            self.log.note(f"cannot start: {exc}")
            with self._lock:
                self._exit_code = None
            self._set(State.STOPPED, f"cannot start: {exc}")
            raise
        finally:
            if out_file is not None:
                out_file.close()  # the child has its own handle now
        record: PidRecord | None = None
        proc: psutil.Process | None = None
        try:
            proc = psutil.Process(popen.pid)
            record = PidRecord(pid=popen.pid, create_time=proc.create_time(),
                               extra={**spec.pid_extra, **prepared, "name": spec.name, "argv": list(spec.argv)})
        except psutil.Error:
            pass  # already gone (some platforms refuse to read a zombie); poll() will report the exit
        if record is not None and spec.pidfile is not None:
            try:
                write_pidfile(spec.pidfile, record)
            except OSError as exc:
                # Unrecorded, it would be invisible to the other programs that share the start lock, which would
                # start a second one (two redis-servers on one AOF): stop it and report a failed start.
                popen.kill()
                popen.wait(_KILL_WAIT_S)
                if popen.stdout is not None:
                    popen.stdout.close()
                self.log.note(f"cannot write the pid file: {exc}")
                self._set(State.STOPPED, f"cannot write the pid file: {exc}")
                raise OSError(f"cannot write the pid file of {spec.name}: {exc}") from exc
        pump = self.log.pump(popen.stdout, f"{spec.name}-output") if popen.stdout is not None else None
        with self._lock:
            self._popen, self._proc, self._record, self._pump = popen, proc, record, pump
            self._started_at, self._healthy = self._clock(), None  # the last exit code stays until the next exit
            self._ready_at, self._healthy_for_s = None, 0.0
            self._starts += 1
            self._state, self._message, self._restart_at, self._remedy = State.STARTING, "starting", None, Remedy.NONE
        self.log.note(f"started pid {popen.pid}")
        log.info("Started %s (pid %d)", spec.name, popen.pid)

    def _take_over_leftover(self) -> bool:
        """Handle a pid file left by an earlier run; True if its process was adopted."""
        path = self.spec.pidfile
        record = read_pidfile(path) if path is not None else None
        if path is None or record is None:
            return False
        if not is_ours(record, self._identity):
            # Gone, or the pid now belongs to an unrelated process: never signal it; the file is stale.
            log.info("Pid file of %s names pid %d, which is not ours (gone, or another program); replacing it",
                     self.name, record.pid)
            remove_pidfile(path, record)
            return False
        try:
            proc = psutil.Process(record.pid)
        except psutil.Error:
            return False
        started_at = self._clock() - max(0.0, time.time() - record.create_time)
        with self._lock:
            self._proc, self._record, self._started_at = proc, record, started_at
        if self.spec.adopt and self.check_health():
            with self._lock:
                self._starts += 1
                self._ready_at = self._clock()
                self._state, self._message, self._restart_at = State.RUNNING, f"adopted pid {record.pid}", None
                self._remedy = Remedy.NONE
            captured = "" if self.spec.output_to_file else " (its output is not captured)"
            self.log.note(f"adopted pid {record.pid} from an earlier run{captured}")
            log.info("Adopted %s (pid %d) left by an earlier run", self.name, record.pid)
            return True
        log.warning("Stopping leftover %s (pid %d) from an earlier run", self.name, record.pid)
        self.log.note(f"stopping leftover pid {record.pid} from an earlier run")
        code = self._stop_process()
        self._forget_process(code, f"stopped, exit code {code}")
        return False

    def _stop_process(self) -> int | None:
        """Stop hook, then terminate (POSIX), then kill, each followed by a wait; returns the exit code."""
        grace = self.spec.stop_grace_s
        if self.spec.stop_hook is not None:
            try:
                self.spec.stop_hook()
            except Exception as exc:  # noqa: BLE001 - foreign code; a failed graceful stop falls through to signals
                log.warning("Stop hook of %s failed: %s", self.name, exc)
            else:
                if (done := self._wait_exit(grace))[0]:
                    return done[1]
        # On Windows terminate() is TerminateProcess, i.e. already a kill: skip straight to it.
        if os.name == "posix":
            self._signal("terminate")
            if (done := self._wait_exit(grace))[0]:
                return done[1]
            self.log.note(f"still running {grace:g}s after SIGTERM; killing")
            log.warning("%s (pid %s) ignored SIGTERM for %gs; killing it", self.name, self.pid, grace)
        self._signal("kill")
        done = self._wait_exit(_KILL_WAIT_S)
        if not done[0]:
            log.error("%s (pid %s) is still running after kill", self.name, self.pid)
        return done[1]

    def _signal(self, how: Literal["terminate", "kill"]) -> None:
        """Signal our process only: it must still be the one the pid record names (same start time)."""
        proc, record, popen = self._proc, self._record, self._popen
        if (proc is None or record is None) and popen is not None:
            # No psutil view of our child; an unreaped child's pid cannot have been reused, so Popen is safe.
            if how == "terminate":
                popen.terminate()
            else:
                popen.kill()
            return
        if proc is None or record is None or not is_ours(record, self._identity):
            return  # exited (maybe a zombie awaiting our wait) or the pid was reused: nothing of ours to signal
        try:
            if how == "terminate":
                proc.terminate()
            else:
                proc.kill()
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied as exc:
            log.warning("Cannot %s %s (pid %d): %s", how, self.name, record.pid, exc)

    def _wait_exit(self, timeout_s: float) -> tuple[bool, int | None]:
        """(exited, exit code) after waiting up to `timeout_s`; the code is None for a process not our child."""
        if self._popen is not None:
            try:
                return True, self._popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                return False, None
        if self._proc is not None:
            try:
                return True, self._proc.wait(timeout_s)
            except psutil.TimeoutExpired:
                return False, None
            except psutil.NoSuchProcess:
                return True, None
        return True, None

    def _forget_process(self, exit_code: int | None, how: str) -> None:
        """Drop the handles of a process that has exited; keep its exit code and final output."""
        if self._pump is not None:
            self._pump.join(_PUMP_DRAIN_S)
        record = self._record
        if record is not None:
            self.log.note(f"pid {record.pid} {how}")
            if self.spec.pidfile is not None:
                remove_pidfile(self.spec.pidfile, record)
        with self._lock:
            self._healthy_for_s = self._clock() - self._ready_at if self._ready_at is not None else 0.0
            self._popen = self._proc = self._record = self._pump = None
            self._started_at, self._ready_at, self._exit_code = None, None, exit_code
            if self._state in (State.STARTING, State.RUNNING):
                self._state, self._message = State.STOPPED, how


def _exit_text(code: int | None) -> str:
    return "exited" if code is None else f"exited with code {code}"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
