"""Backend workers: disable, a dead backend's jobs going to the others, a managed backend's own ComfyUI, the CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from comfystudio_desktop.backend_settings import Backend, BackendKind
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobEvent, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.routing import BackendRegistry, BackendState
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.worker.backend_worker import hand_back_due, make_backend_consumer
from tests.backend_cluster import REPO_ROOT, ExternalRedis, HeadlessWorker
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import wait_for_record, wait_until

FAKE_MAIN = REPO_ROOT / "tests" / "procs" / "fake_comfy_main.py"
MODEL = "m.safetensors"


@pytest.mark.parametrize(("down_since", "now", "grace", "due"), [
    (None, 100.0, 30.0, False),  # up
    (90.0, 100.0, 30.0, False),  # down 10 s of 30
    (70.0, 100.0, 30.0, True),  # exactly the grace period
    (0.0, 100.0, 30.0, True),
])
def test_hand_back_after_the_grace_period(down_since: float | None, now: float, grace: float, due: bool) -> None:
    assert hand_back_due(down_since, now, grace) is due


class _Running:
    """A BackendWorker in a thread (as the window runs it), stopped on exit."""

    def __init__(self, home: Home, queue: JobQueue, backend: Backend, settings: Settings) -> None:
        self.worker = make_backend_consumer(home, settings, backend, queue, grace_s=1.0)
        self.events: list[JobEvent] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop, self.events.append))

    def __enter__(self) -> _Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def settings() -> Settings:
    return Settings(lease_seconds=3.0, job_timeout_s=60.0)


def _fake(tmp_path: Path, name: str, step_time: float) -> FakeComfyProcess:
    return FakeComfyProcess(models={"checkpoints": [MODEL]}, step_time=step_time, output_dir=tmp_path / f"out-{name}")


def test_a_disabled_backend_finishes_its_running_job_and_takes_no_more(
        tmp_path: Path, home: Home, queue: JobQueue, settings: Settings) -> None:
    registry = BackendRegistry(queue.conn)
    with _fake(tmp_path, "a", 0.2) as fake, \
            _Running(home, queue, Backend(name="a", url=fake.url, pipeline_depth=1), settings):
        wait_until(lambda: any(v.state is BackendState.UP for v in registry.views()), message="a up")
        jobs = [Job(job_id=f"j{i}", prompt=f"p{i}", model=MODEL, steps=10) for i in range(3)]
        queue.submit_many(jobs)
        wait_until(lambda: (r := queue.status("j0")) is not None and r.progress > 30, message="j0 running")
        registry.set_enabled("a", False)
        record = wait_for_record(queue, "j0", lambda r: r.status is JobStatus.FINISHED, 30, "j0 finished")
        assert record.backend == "a"
        waiting = wait_for_record(queue, "j1", lambda r: r.message, 10, "j1 says why it waits")
        assert waiting.status is JobStatus.QUEUED and waiting.message == f"no backend has model {MODEL}"
        assert set(fake.stats()["executions"]) == {"j0"}
        registry.set_enabled("a", True)
        for job_id in ("j1", "j2"):
            wait_for_record(queue, job_id, lambda r: r.status is JobStatus.FINISHED, 30, f"{job_id} after enable")
        assert fake.stats()["executions"] == {"j0": 1, "j1": 1, "j2": 1}


def test_a_dead_backends_job_finishes_on_the_other_exactly_once(
        tmp_path: Path, home: Home, queue: JobQueue, settings: Settings) -> None:
    registry = BackendRegistry(queue.conn)
    with contextlib.ExitStack() as stack:
        fast = stack.enter_context(_fake(tmp_path, "fast", 0.01))
        slow = stack.enter_context(_fake(tmp_path, "slow", 0.3))
        stack.enter_context(_Running(home, queue, Backend(name="slow", url=slow.url, pipeline_depth=1), settings))
        wait_until(lambda: [v.state for v in registry.views()] == [BackendState.UP], message="slow up")
        queue.submit(Job(job_id="doomed", prompt="p", model=MODEL, steps=20))
        wait_until(lambda: (r := queue.status("doomed")) is not None and r.progress > 30, message="running on slow")
        stack.enter_context(_Running(home, queue, Backend(name="fast", url=fast.url), settings))
        slow.kill()
        record = wait_for_record(queue, "doomed", lambda r: r.status is JobStatus.FINISHED, 60,
                                 "the job finished elsewhere")
        assert record.backend == "fast" and record.attempts == 1
        assert fast.stats()["executions"] == {"doomed": 1}
        wait_until(lambda: {v.name: v.state for v in registry.views()}.get("slow") is BackendState.DOWN,
                   message="slow shown down")


def test_a_managed_backend_runs_its_own_comfyui_with_its_port_and_cuda_device(tmp_path: Path) -> None:
    with ExternalRedis(tmp_path / "redis") as server:
        backend = Backend(name="gpu1", kind=BackendKind.MANAGED, comfy_main=str(FAKE_MAIN),
                          comfy_python=sys.executable, cuda_device=1)
        worker = HeadlessWorker(tmp_path / "machine", server.url, backend)
        extra = ("--step-time", "0.01", "--model-list", json.dumps({"checkpoints": [MODEL]}),
                 "--output-dir", str(tmp_path / "comfy-out"))
        save_settings(worker.home.config_file, Settings(redis_mode="external", redis_url=server.url,
                                                        backends=(backend,), comfy_args=extra, lease_seconds=5.0))
        queue = server.queue(lease_seconds=5.0)
        try:
            with worker:
                registry = BackendRegistry(queue.conn)
                view = wait_until(lambda: next((v for v in registry.views() if v.state is BackendState.UP), None),
                                  timeout=60, message=f"the managed backend up: {worker.log_text()}")
                assert view.url.startswith("http://127.0.0.1:")
                argv = requests.get(f"{view.url}/system_stats", timeout=5).json()["system"]["argv"]
                assert argv[argv.index("--cuda-device") + 1] == "1"
                assert argv[argv.index("--port") + 1] == view.url.rsplit(":", 1)[1]
                queue.submit(Job(job_id="on-gpu1", prompt="p", model=MODEL))
                record = wait_for_record(queue, "on-gpu1", lambda r: r.status is JobStatus.FINISHED, 60, "the job")
                assert record.backend == "gpu1"
        finally:
            queue.conn.close()


def test_cli_backends_lists_and_disables(tmp_path: Path, home: Home, queue: JobQueue, settings: Settings) -> None:
    config = Settings(backends=(Backend(name="a", url="http://127.0.0.1:9"),))
    save_settings(home.config_file, config)
    registry = BackendRegistry(queue.conn)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), *args],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)

    listed = cli("backends", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(b["name"], b["state"], b["enabled"]) for b in json.loads(listed.stdout)] == [("a", "gone", True)]
    done = cli("backends", "disable", "a")
    assert done.returncode == 0 and done.stdout.strip() == "a: disabled"
    assert [v.enabled for v in registry.views(["a"])] == [False]
    assert "false" in home.config_file.read_text()
    unknown = cli("backends", "disable", "zz")
    assert unknown.returncode == 2 and "no backend named 'zz'" in unknown.stderr
    bad = cli("backends", "enable", "a b")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
