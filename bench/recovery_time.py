"""Recovery time after kill -9, with the app's own settings: how long until work goes on.

Redis: kill -9 the supervised redis-server, then measure until the watchdog reports it running again, and until the
queue serves again (a job submitted and claimed through a `ResilientRedis` whose endpoint provider is the watchdog's,
with the seed's 5 attempts 2 s apart).

ComfyUI: kill -9 the managed ComfyUI (the test-suite's fake, started through the real managed-mode launcher) while a
real worker runs a job on it, then measure until the watchdog reports it running again, and until the interrupted
job runs again (requeued with its attempt counted, resubmitted, ComfyUI's progress flowing).

    python bench/recovery_time.py [--reps 5] [--interval 1.0] [--reconnect-delay 2.0]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobEvent, JobStatus
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import JobQueue, SubmitOutcome
from comfystudio_desktop.runtime import open_queue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.comfy_launcher import COMFY_SERVICE
from comfystudio_desktop.supervise.loopback_ports import free_port
from comfystudio_desktop.supervise.redis_service import REDIS_SERVICE
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.supervise.services import AppServices, build_services
from comfystudio_desktop.worker.consumer import Consumer

FAKE_MAIN = Path(__file__).resolve().parents[1] / "tests" / "procs" / "fake_comfy_main.py"
CHECKPOINT = "tiny/sd15-random.safetensors"


def wait(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.005) -> float:
    """Poll until `condition()`; return the monotonic time it first held. Raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(poll)
    return time.monotonic()


class Timeline:
    """When the watchdog reported each state (its on_change callback runs on the watchdog thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[float, ServiceState]] = []

    def __call__(self, state: ServiceState) -> None:
        with self._lock:
            self._seen.append((time.monotonic(), state))

    def running_again(self, name: str, old_pid: int, since: float) -> float | None:
        """When `name` was first reported RUNNING, after `since`, as a process other than `old_pid`."""
        with self._lock:
            return next((at for at, s in self._seen if at >= since and s.name == name and s.state is State.RUNNING
                         and s.pid not in (None, old_pid)), None)


def running_again(services: AppServices, name: str, old_pid: int) -> Callable[[], bool]:
    """The service is RUNNING as a process other than `old_pid`."""
    def check() -> bool:
        state = services.states()[name]
        return state.state is State.RUNNING and state.pid not in (None, old_pid)
    return check


def kill(state: ServiceState, interval: float) -> tuple[int, float]:
    """kill -9 (TerminateProcess on Windows) at a random moment of the watchdog's cycle; returns pid and time."""
    assert state.pid is not None
    time.sleep(random.uniform(0.0, interval))  # a crash does not wait for the watchdog's next look
    psutil.Process(state.pid).kill()
    return state.pid, time.monotonic()


def fresh_restart(services: AppServices, name: str) -> None:
    """Restart on request: the next kill starts a new backoff streak from a settled, healthy service."""
    pid = services.states()[name].pid
    services.watchdog.restart(name)
    wait(running_again(services, name, pid or -1), 60, f"{name} running")


def queue_serves(queue: JobQueue) -> bool:
    """One job submitted to Redis (not to the outbox) and claimed back."""
    try:
        if queue.submit(Job(prompt="probe"), wait_for_redis=True) is not SubmitOutcome.QUEUED:
            queue.deliver_outbox()
            return False
        lease = queue.claim("bench")
        return lease is not None and queue.finish(lease, "outputs/probe.png").value == "ok"
    except RedisUnavailable:
        return False


def finished(queue: JobQueue, job_id: str) -> Callable[[], bool]:
    """The job is FINISHED."""
    def check() -> bool:
        record = queue.status(job_id)
        return record is not None and record.status is JobStatus.FINISHED
    return check


def bench_redis(home: Home, reps: int, interval: float, reconnect_delay: float) -> dict[str, list[float]]:
    settings = Settings(comfy_url=f"http://127.0.0.1:{free_port()}")
    results: dict[str, list[float]] = {"redis-server running again": [], "queue serving again": []}
    timeline = Timeline()
    with build_services(home, settings, interval_s=interval) as services:
        services.watchdog.add_on_change(timeline)
        assert services.watchdog.wait_for(REDIS_SERVICE, lambda s: s.state is State.RUNNING, 30).state is State.RUNNING
        runtime = open_queue(home, settings, endpoint_provider=services.redis_endpoint,
                             reconnect_delay_s=reconnect_delay)
        try:
            for _ in range(reps):
                wait(lambda: queue_serves(runtime.queue), 60, "queue serving")
                pid, killed = kill(services.states()[REDIS_SERVICE], interval)
                served = wait(lambda: queue_serves(runtime.queue), 60, "queue serving")
                wait(running_again(services, REDIS_SERVICE, pid), 60, "redis-server running")
                back = timeline.running_again(REDIS_SERVICE, pid, killed)
                assert back is not None
                results["redis-server running again"].append(back - killed)
                results["queue serving again"].append(served - killed)
                fresh_restart(services, REDIS_SERVICE)
        finally:
            runtime.close()
    return results


def bench_comfy(home: Home, tmp: Path, reps: int, interval: float, reconnect_delay: float) -> dict[str, list[float]]:
    folders = ("--output-dir", str(tmp / "comfy-out"), "--input-dir", str(tmp / "comfy-in"),
               "--temp-dir", str(tmp / "comfy-temp"))
    settings = Settings(comfy_mode="managed", comfy_python=sys.executable, comfy_main=str(FAKE_MAIN),
                        comfy_args=("--step-time", "0.1", *folders)).validate()
    results: dict[str, list[float]] = {"ComfyUI running again": [], "interrupted job running again": []}
    timeline = Timeline()
    with build_services(home, settings, interval_s=interval) as services:
        services.watchdog.add_on_change(timeline)
        assert services.wait_until_running(60)
        runtime = open_queue(home, settings, endpoint_provider=services.redis_endpoint,
                             reconnect_delay_s=reconnect_delay)
        client = ComfyClient(services.comfy_url)
        consumer = Consumer(runtime.queue, client, home, replace(settings, comfy_url=services.comfy_url),
                            worker_id="bench-worker")
        events: list[JobEvent] = []
        stop = threading.Event()
        worker = threading.Thread(target=consumer.run, args=(stop, events.append))
        worker.start()
        try:
            for rep in range(1, reps + 1):
                job = Job(prompt=f"interrupted {rep}", model=CHECKPOINT, steps=30)
                runtime.queue.submit(job)

                def progress_over_30(attempts: int, job_id: str = job.job_id) -> bool:
                    record = runtime.queue.status(job_id)
                    return record is not None and record.attempts == attempts and record.progress > 30

                wait(lambda: progress_over_30(0), 60, "the job running")
                pid, killed = kill(services.states()[COMFY_SERVICE], interval)
                running = wait(lambda: progress_over_30(1), 120, "the job running again")
                wait(running_again(services, COMFY_SERVICE, pid), 60, "ComfyUI running")
                back = timeline.running_again(COMFY_SERVICE, pid, killed)
                assert back is not None
                results["ComfyUI running again"].append(back - killed)
                results["interrupted job running again"].append(running - killed)
                wait(finished(runtime.queue, job.job_id), 120, "the job finished", poll=0.05)
                fresh_restart(services, COMFY_SERVICE)
        finally:
            stop.set()
            worker.join(30)
            client.close()
            runtime.close()
    return results


def report(results: dict[str, list[float]]) -> None:
    for what, times in results.items():
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"  {what:<32} median {statistics.median(times):6.2f} s   max {max(times):6.2f} s   ({shown})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0, help="watchdog check interval (app: 1.0 s)")
    parser.add_argument("--reconnect-delay", type=float, default=2.0,
                        help="ResilientRedis delay between attempts (seed and app: 2.0 s)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(relativeCreated)7d %(name)s %(message)s")
    print(f"kill -9 recovery, {args.reps} repetitions, watchdog interval {args.interval:g} s, "
          f"Redis reconnect delay {args.reconnect_delay:g} s, app restart policies")
    with tempfile.TemporaryDirectory() as tmp:
        print("Redis:")
        report(bench_redis(Home(Path(tmp) / "redis-home").create(), args.reps, args.interval, args.reconnect_delay))
        print("ComfyUI (managed fake, real worker):")
        report(bench_comfy(Home(Path(tmp) / "comfy-home").create(), Path(tmp), args.reps, args.interval,
                           args.reconnect_delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
