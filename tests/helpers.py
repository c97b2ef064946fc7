"""Small test helpers: waiting on real conditions with a deadline."""

from __future__ import annotations

import http.client
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent, JobRecord, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.worker.consumer import Consumer

T = TypeVar("T")

#: A small HTTP child process for supervisor tests (see its --help): it can hang, exit, or ignore SIGTERM.
TOY_SERVICE = Path(__file__).parent / "procs" / "toy_service.py"


def toy_argv(*args: str) -> tuple[str, ...]:
    """The command line that runs the toy service with `args`."""
    return (sys.executable, str(TOY_SERVICE), *args)


def toy_http_ok(port_file: Path, path: str = "/health", timeout: float = 0.5) -> bool:
    """GET `path` on the port the toy service wrote to `port_file`; True on 200."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(port_file.read_text()), timeout=timeout)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False


def unlinked(path: Path) -> bool:
    """Delete `path`; False while Windows refuses because another reader (the window's thumbnail or viewer read,
    off the GUI thread) still has it open. Wait on it: `run_until(qtbot, lambda: unlinked(path))`."""
    try:
        path.unlink()
    except PermissionError:
        return False
    return True


def wait_until(condition: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
        last = condition()
    return last


def wait_for_record(queue: JobQueue, job_id: str, holds: Callable[[JobRecord], object], timeout: float = 10.0,
                    message: str = "") -> JobRecord:
    """Poll the queue's record of `job_id` until `holds(record)` is truthy; return that record."""
    def ready() -> JobRecord | None:
        record = queue.status(job_id)
        return record if record is not None and holds(record) else None
    return wait_until(ready, timeout, message=message or f"job {job_id}")


class Recorder:
    """Service states a watchdog reported (from its thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: list[ServiceState] = []

    def __call__(self, state: ServiceState) -> None:
        with self.lock:
            self.states.append(state)

    def seen(self, name: str) -> list[State]:
        with self.lock:
            return [s.state for s in self.states if s.name == name]

    def pids(self, name: str) -> set[int]:
        with self.lock:
            return {s.pid for s in self.states if s.name == name and s.pid is not None}


class WorkerHarness:
    """A real Consumer running in a thread, with every JobEvent it emits recorded; a context manager."""

    def __init__(self, queue: JobQueue, home: Home, settings: Settings, *, worker_id: str = "test-worker") -> None:
        self.queue = queue
        self.client = ComfyClient(settings.comfy_url)
        self.consumer = Consumer(queue, self.client, home, settings, worker_id=worker_id)
        self.events: list[JobEvent] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.consumer.run, args=(self.stop, self.events.append))

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker thread did not stop"
        self.client.close()

    def wait_status(self, job_id: str, *statuses: JobStatus, timeout: float = 30) -> JobRecord:
        def reached() -> JobRecord | None:
            record = self.queue.status(job_id)
            return record if record is not None and record.status in statuses else None
        return wait_until(reached, timeout=timeout, message=f"job {job_id} to become {statuses}")
