"""Fixtures for tests that run the worker in-process against the fake ComfyUI: `fake`, `settings`, `worker`.

Registered for the whole suite (`pytest_plugins` in tests/conftest.py); a module that needs another fake or other
settings defines its own fixture of the same name, and `worker` then runs on that one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import WorkerHarness


@pytest.fixture
def fake_step_time() -> float:
    """Seconds the fake ComfyUI spends per sampler step."""
    return 0.02


@pytest.fixture
def fake(tmp_path: Path, fake_step_time: float) -> Iterator[FakeComfyProcess]:
    """The fake ComfyUI on loopback, writing its outputs below the test's folder."""
    with FakeComfyProcess(output_dir=tmp_path / "comfy-out", step_time=fake_step_time) as proc:
        yield proc


@pytest.fixture
def settings(fake: FakeComfyProcess) -> Settings:
    """Settings pointing at `fake`, with a lease short enough for a test to see it lapse."""
    return Settings(comfy_url=fake.url, job_timeout_s=60.0, lease_seconds=3.0)


@pytest.fixture
def worker(queue: JobQueue, home: Home, settings: Settings) -> Iterator[WorkerHarness]:
    """An in-process worker on the test's queue, stopped after the test."""
    with WorkerHarness(queue, home, settings) as harness:
        yield harness
