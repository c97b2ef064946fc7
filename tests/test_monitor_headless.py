"""A headless worker samples too: its own CPU/memory and ComfyUI's device reach the shared series."""

from __future__ import annotations

import signal
import subprocess
import sys

from comfystudio_desktop.home import Home
from comfystudio_desktop.monitor.series import Resolution, StatsSeries
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.queue.job_queue import JobQueue
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import wait_until


def test_headless_worker_writes_samples_with_its_figures(queue: JobQueue, home: Home) -> None:
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0  # type: ignore[attr-defined]
    with FakeComfyProcess() as fake:
        worker = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root),
                                   "--comfy-url", fake.url, "worker"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, creationflags=flags)
        try:
            def sampled() -> StatsSnapshot | None:
                latest = queue.conn.call(lambda c: StatsSeries.latest(c, Resolution.FINE, 1))
                return latest[0] if latest and latest[0].worker_rss is not None else None

            wait_until(lambda: sampled() is not None, timeout=60, interval=0.5,
                       message="a sample from the headless worker")
            sample = sampled()
            assert sample is not None and sample.gpu is not None and sample.gpu.name == "cpu"
            assert sample.worker_rss is not None and sample.worker_rss > 10_000_000  # a whole Python process
            worker.send_signal(signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGINT)  # type: ignore[attr-defined]
            _, err = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    assert worker.returncode == 0, err
