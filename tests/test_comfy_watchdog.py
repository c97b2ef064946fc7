"""ComfyUI under the watchdog, with the fake ComfyUI as the managed one and a real worker running jobs on it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import requests

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.runtime import Runtime, open_queue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.comfy_launcher import COMFY_SERVICE, comfy_pidfile
from comfystudio_desktop.supervise.pidfile import PidRecord, write_pidfile
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import State
from comfystudio_desktop.supervise.services import AppServices, build_services
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import Recorder, WorkerHarness, wait_until

FAKE_MAIN = Path(__file__).parent / "procs" / "fake_comfy_main.py"
CHECKPOINT = "tiny/sd15-random.safetensors"
FAST = RestartPolicy(initial_backoff_s=0.2, max_backoff_s=1.0, max_restarts=3, crash_loop_window_s=60.0,
                     hung_after_failures=2)
# The worker notices a dead ComfyUI by polling it 0.5 s after losing the socket; a ComfyUI back within that time
# would hide the loss from it (see the report), so the tests with a job in flight restart it after 1 s (the app: 2 s).
COMFY_WITH_JOBS = RestartPolicy(initial_backoff_s=1.0, max_backoff_s=1.0, max_restarts=3, crash_loop_window_s=60.0,
                                hung_after_failures=2)


def managed(tmp_path: Path, main: Path = FAKE_MAIN, step_time: float = 0.05) -> Settings:
    """Managed-mode settings that start the fake as if it were ComfyUI's main.py (its folders under tmp_path)."""
    folders = ("--output-dir", str(tmp_path / "comfy-out"), "--input-dir", str(tmp_path / "comfy-in"),
               "--temp-dir", str(tmp_path / "comfy-temp"))
    return Settings(comfy_mode="managed", comfy_python=sys.executable, comfy_main=str(main),
                    comfy_args=("--step-time", str(step_time), *folders), lease_seconds=2.0,
                    job_timeout_s=60.0).validate()


@pytest.fixture
def start_services(home: Home) -> Iterator[Callable[..., tuple[AppServices, Recorder]]]:
    """Build and start the app's services with fast test policies; all are stopped (with children) at the end."""
    made: list[AppServices] = []

    def start(settings: Settings, *, wait: bool = True,
              comfy_policy: RestartPolicy = COMFY_WITH_JOBS) -> tuple[AppServices, Recorder]:
        services = build_services(home, settings, redis_policy=FAST, comfy_policy=comfy_policy, interval_s=0.1,
                                  comfy_health_timeout_s=0.5, comfy_readiness_timeout_s=30.0)
        recorder = Recorder()
        services.watchdog.add_on_change(recorder)
        made.append(services)
        services.start()
        if wait:
            assert services.wait_until_running(30), services.states()
        return services, recorder

    yield start
    for services in made:
        services.stop()


class Worker(WorkerHarness):
    """A real Consumer in a thread on the supervised services (its own queue connection), recording its events."""

    def __init__(self, services: AppServices, home: Home, settings: Settings) -> None:
        self.runtime: Runtime = open_queue(home, settings, endpoint_provider=services.redis_endpoint,
                                           reconnect_delay_s=0.2)
        super().__init__(self.runtime.queue, home, replace(settings, comfy_url=services.comfy_url),
                         worker_id="watchdog-test")

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.runtime.close()

    def wait_running_in_comfy(self, job_id: str) -> None:
        wait_until(lambda: (r := self.queue.status(job_id)) is not None and r.progress > 30, timeout=30,
                   message="the job running in ComfyUI")

    def last_requeue_reason(self, job_id: str) -> str:
        return str(self.queue.conn.client.hget(f"job:status:{job_id}", "last_error") or "")


def fake_stats(services: AppServices) -> dict[str, object]:
    reply = requests.get(f"{services.comfy_url}/_fake/stats", timeout=5)
    reply.raise_for_status()
    return dict(reply.json())


def test_kill_9_of_managed_comfyui_mid_job_requeues_and_runs_the_job_again(
        start_services: Callable[..., tuple[AppServices, Recorder]], home: Home, tmp_path: Path) -> None:
    settings = managed(tmp_path)
    services, _ = start_services(settings)
    first = services.states()[COMFY_SERVICE]
    assert first.state is State.RUNNING and first.pid is not None
    with Worker(services, home, settings) as worker:
        job = Job(prompt="survive a crash", model=CHECKPOINT, steps=30)
        worker.queue.submit(job)
        worker.wait_running_in_comfy(job.job_id)
        psutil.Process(first.pid).kill()
        record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
        assert record.status is JobStatus.FINISHED, record.error
        assert record.attempts == 1  # the interrupted attempt counted once
        assert worker.last_requeue_reason(job.job_id).startswith("ComfyUI stopped during the job")
    again = services.states()[COMFY_SERVICE]
    assert again.state is State.RUNNING and again.restarts == 1 and again.pid != first.pid
    assert again.last_exit_code is not None and again.last_exit_code != 0
    executions = fake_stats(services)["executions"]
    assert isinstance(executions, dict) and executions[job.job_id] == 1  # run again on the new ComfyUI
    assert sorted(p.name for p in home.outputs.iterdir()) == [f"{job.job_id}.png"]  # written once


def test_a_hung_comfyui_is_detected_killed_and_restarted_and_the_job_still_finishes(
        start_services: Callable[..., tuple[AppServices, Recorder]], home: Home, tmp_path: Path) -> None:
    settings = managed(tmp_path)
    services, recorder = start_services(settings)
    first = services.states()[COMFY_SERVICE]
    with Worker(services, home, settings) as worker:
        job = Job(prompt="survive a hang", model=CHECKPOINT, steps=30)
        worker.queue.submit(job)
        worker.wait_running_in_comfy(job.job_id)
        requests.post(f"{services.comfy_url}/_fake/control", json={"fault": "hang"}, timeout=5).raise_for_status()
        state = services.watchdog.wait_for(COMFY_SERVICE, lambda s: s.state is State.RUNNING and s.restarts == 1,
                                           timeout_s=30)
        assert state.state is State.RUNNING and state.pid != first.pid
        assert State.HUNG in recorder.seen(COMFY_SERVICE)
        record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
        assert record.status is JobStatus.FINISHED, record.error
        assert record.attempts == 1 and worker.last_requeue_reason(job.job_id).startswith("ComfyUI stopped")
    assert sorted(p.name for p in home.outputs.iterdir()) == [f"{job.job_id}.png"]


def test_a_comfyui_that_always_exits_goes_fatal_after_the_threshold(
        start_services: Callable[..., tuple[AppServices, Recorder]], tmp_path: Path) -> None:
    broken = tmp_path / "main.py"
    broken.write_text("import sys\nprint('Cannot import torch', file=sys.stderr)\nsys.exit(3)\n")
    services, recorder = start_services(managed(tmp_path, main=broken), wait=False, comfy_policy=FAST)
    state = services.watchdog.wait_for(COMFY_SERVICE, lambda s: s.state is State.FATAL, timeout_s=30)
    assert state.state is State.FATAL and "crash loop" in state.message
    assert state.restarts == FAST.max_restarts and state.last_exit_code == 3
    assert "Cannot import torch" in state.last_log_lines
    assert recorder.seen(COMFY_SERVICE).count(State.RESTARTING) == FAST.max_restarts
    assert services.states()["redis-server"].state is State.RUNNING  # one broken service does not stop the other


def test_external_comfyui_is_watched_but_never_killed(
        start_services: Callable[..., tuple[AppServices, Recorder]], tmp_path: Path) -> None:
    with FakeComfyProcess(step_time=0.02) as fake:
        services, _ = start_services(Settings(comfy_url=fake.url))
        state = services.states()[COMFY_SERVICE]
        assert state.state is State.EXTERNAL and state.healthy is True and state.pid is None
        assert services.comfy_url == fake.url and not services.comfy_managed
        services.restart(COMFY_SERVICE)
        services.stop_service(COMFY_SERVICE)
        fake.control(fault="hang")
        state = services.watchdog.wait_for(COMFY_SERVICE, lambda s: s.healthy is False, timeout_s=10)
        assert state.state is State.EXTERNAL and state.healthy is False  # not HUNG: not ours to kill
        fake.control(fault="none")
        services.stop()
        assert fake.returncode is None  # alive through restart, stop, hang and quit


def test_a_leftover_managed_comfyui_is_stopped_and_a_reused_pid_is_never_signalled(
        start_services: Callable[..., tuple[AppServices, Recorder]], home: Home, tmp_path: Path) -> None:
    settings = managed(tmp_path)
    earlier, _ = start_services(settings)
    leftover = earlier.states()[COMFY_SERVICE].pid
    earlier.stop(stop_children=False)  # an app that died: its ComfyUI runs on, named in the pid file
    assert leftover is not None and psutil.pid_exists(leftover)
    services, _ = start_services(settings)
    state = services.states()[COMFY_SERVICE]
    assert state.state is State.RUNNING and state.pid != leftover
    assert not psutil.pid_exists(leftover)  # ours, not adoptable (its output pipe is gone): stopped
    services.stop()

    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        started = psutil.Process(unrelated.pid).create_time()
        write_pidfile(comfy_pidfile(home.run), PidRecord(pid=unrelated.pid, create_time=started - 1000.0,
                                                         extra={"port": 1}))
        services, _ = start_services(settings)
        assert services.states()[COMFY_SERVICE].pid != unrelated.pid
        services.stop()
        assert unrelated.poll() is None  # same pid, other start time: never signalled
    finally:
        unrelated.kill()
        unrelated.wait(10)
