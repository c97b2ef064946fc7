"""The worker end to end: real queue on the embedded redis-server, real HTTP + WebSocket to the fake ComfyUI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import requests
from PIL import Image

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus, JobValidationError
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT, make_queue
from tests.fake_comfyui.process import FakeComfyProcess, free_port
from tests.helpers import WorkerHarness, wait_until

CHECKPOINT = "tiny/sd15-random.safetensors"


@pytest.fixture
def settings(fake: FakeComfyProcess) -> Settings:
    return Settings(comfy_url=fake.url, job_timeout_s=60.0, lease_seconds=3.0,
                    unet_text_encoder="tiny/clip-l-random.safetensors", unet_vae="tiny/sd15-vae-random.safetensors")


def _png(path: Path, size: tuple[int, int] = (64, 48), colour: str = "red") -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def _unet_model(fake: FakeComfyProcess) -> str:
    return str(requests.get(f"{fake.url}/models/diffusion_models", timeout=5).json()[0])


def test_text_to_image_checkpoint(worker: WorkerHarness, fake: FakeComfyProcess, home: Home) -> None:
    job = Job(prompt="a tiny test image", model=CHECKPOINT, seed=42, aspect_ratio="16:9")
    worker.queue.submit(job)
    record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    assert record.progress == 100 and record.image_url == f"outputs/{job.job_id}.png"
    with Image.open(home.outputs / f"{job.job_id}.png") as img:
        width, height = img.size
    assert width > height and width % 16 == 0 and height % 16 == 0  # 16:9 at the checkpoint family's size
    assert record.seed_used == 42
    assert fake.stats()["executions"][job.job_id] == 1
    progress = [e.progress for e in worker.events if e.job_id == job.job_id and e.preview is None]
    assert progress == sorted(progress), "progress went backwards"
    assert {10, 15, 20, 30, 100} <= set(progress)
    assert any(30 < p < 100 for p in progress), "ComfyUI's progress was not mapped onto 30-95"
    assert any(e.preview for e in worker.events if e.job_id == job.job_id), "no preview frames passed on"
    assert not list(home.outputs.glob(".*.tmp"))


def test_text_to_image_unet_and_random_seed(worker: WorkerHarness, fake: FakeComfyProcess) -> None:
    job = Job(prompt="unet path", model=_unet_model(fake), seed=-1)
    worker.queue.submit(job)
    record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    assert record.seed_used is not None and record.seed_used >= 0  # the random seed used is recorded


def test_image_to_image_and_blend(worker: WorkerHarness, fake: FakeComfyProcess, home: Home, tmp_path: Path) -> None:
    i2i = Job(prompt="repaint", model=CHECKPOINT, workflow="image_to_image", denoise=0.6,
              images={"input": str(_png(tmp_path / "in.png"))})
    blend = Job(prompt="blend", model=CHECKPOINT, workflow="blend",
                images={"source": str(_png(tmp_path / "s.png", colour="blue")),
                        "target": str(_png(tmp_path / "t.jpg", (80, 80), "green"))})
    for job in (i2i, blend):
        worker.queue.submit(job)
    for job in (i2i, blend):
        record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
        assert record.status is JobStatus.FINISHED, record.error
    assert (home.inputs / f"upload_{i2i.job_id}_input.png").is_file()
    assert (home.inputs / f"upload_{blend.job_id}_source.png").is_file()
    with Image.open(home.inputs / f"upload_{blend.job_id}_target.png") as img:
        assert img.format == "PNG"  # inputs are kept as PNG whatever they came as
    uploads = fake.stats()["uploads"]
    assert f"upload_{i2i.job_id}_input.png" in uploads and f"upload_{blend.job_id}_target.png" in uploads


def test_batch_of_two_writes_two_files(worker: WorkerHarness, home: Home) -> None:
    job = Job(prompt="two", model=CHECKPOINT, batch_size=2)
    worker.queue.submit(job)
    record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    assert record.outputs == (f"{job.job_id}.png", f"{job.job_id}_2.png")
    assert (home.outputs / f"{job.job_id}.png").is_file() and (home.outputs / f"{job.job_id}_2.png").is_file()


def test_cancel_queued_job_never_reaches_comfy(queue: JobQueue, home: Home, settings: Settings,
                                               fake: FakeComfyProcess) -> None:
    job = Job(prompt="never", model=CHECKPOINT)
    queue.submit(job)
    queue.cancel(job.job_id)
    with WorkerHarness(queue, home, settings) as worker:
        follow = Job(prompt="after", model=CHECKPOINT)
        queue.submit(follow)
        worker.wait_status(follow.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert job.job_id not in fake.stats()["submitted"]
    assert queue.status(job.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]


def test_cancel_running_job_interrupts_exactly_that_prompt(worker: WorkerHarness, fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.5)
    job = Job(prompt="long", model=CHECKPOINT, steps=40)
    worker.queue.submit(job)
    wait_until(lambda: (r := worker.queue.status(job.job_id)) is not None and r.progress > 30, timeout=30,
               message="job running in ComfyUI")
    worker.queue.cancel(job.job_id)
    wait_until(lambda: fake.stats()["interrupts"], timeout=10, message="interrupt sent")
    interrupts = fake.stats()["interrupts"]
    assert [i["prompt_id"] for i in interrupts] == [job.job_id] and interrupts[0]["applied"] is True
    wait_until(lambda: not worker.consumer.in_flight(), timeout=10, message="worker dropped the job")
    assert worker.queue.status(job.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]


def test_timeout_interrupts_and_fails(queue: JobQueue, home: Home, settings: Settings,
                                      fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.5)
    with WorkerHarness(queue, home, replace(settings, job_timeout_s=1.0)) as worker:
        job = Job(prompt="slow", model=CHECKPOINT, steps=40)
        queue.submit(job)
        record = worker.wait_status(job.job_id, JobStatus.FAILED, JobStatus.FINISHED)
    assert record.status is JobStatus.FAILED and record.error == "timed out after 1 s"
    assert job.job_id in [i["prompt_id"] for i in fake.stats()["interrupts"]]


def test_comfy_down_then_up(queue: JobQueue, home: Home, tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(comfy_url=f"http://127.0.0.1:{port}", lease_seconds=3.0)
    with WorkerHarness(queue, home, settings) as worker:
        job = Job(prompt="patience", model=CHECKPOINT)
        queue.submit(job)
        wait_until(lambda: (r := queue.status(job.job_id)) is not None and r.message == "waiting for ComfyUI",
                   timeout=20, message="job waiting for ComfyUI")
        assert queue.status(job.job_id).status is JobStatus.PROCESSING  # type: ignore[union-attr]
        with FakeComfyProcess(output_dir=tmp_path / "late-comfy", port=port, step_time=0.02):
            record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED, timeout=60)
    assert record.status is JobStatus.FINISHED, record.error


def test_comfy_rejection_fails_with_node_message(queue: JobQueue, home: Home, settings: Settings,
                                                 fake: FakeComfyProcess) -> None:
    shipped = json.loads((REPO_ROOT / "workflows" / "text_to_image-checkpoint.json").read_text())
    shipped["defaults"]["sampler"] = "no_such_sampler"  # the template's sampler slot fills KSampler.sampler_name
    (home.workflows / "text_to_image-checkpoint.json").write_text(json.dumps(shipped))
    with WorkerHarness(queue, home, settings) as worker:
        job = Job(prompt="rejected", model=CHECKPOINT)
        queue.submit(job)
        record = worker.wait_status(job.job_id, JobStatus.FAILED, JobStatus.FINISHED)
    assert record.status is JobStatus.FAILED
    assert record.error.startswith("ComfyUI rejected the workflow") and "sampler_name" in record.error
    assert "sampler_name" in record.node_errors
    assert record.attempts == 0  # a rejected workflow is not retried


def test_cached_rerun_still_yields_the_output(worker: WorkerHarness, fake: FakeComfyProcess, home: Home) -> None:
    job = Job(prompt="cache me", model=CHECKPOINT, seed=7)
    worker.queue.submit(job)
    worker.wait_status(job.job_id, JobStatus.FINISHED)
    first = (home.outputs / f"{job.job_id}.png").read_bytes()
    (home.outputs / f"{job.job_id}.png").unlink()
    # ComfyUI forgets the history but keeps its cache; the job is run again (same id, same recorded seed).
    requests.post(f"{fake.url}/history", json={"clear": True}, timeout=5).raise_for_status()
    client = worker.queue.conn.client
    client.hset(f"job:status:{job.job_id}", mapping={"status": "failed", "error": "simulated"})
    assert worker.queue.retry(job.job_id)
    record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    assert (home.outputs / f"{job.job_id}.png").read_bytes() == first
    assert fake.stats()["executions"][job.job_id] == 1  # the second run was served from ComfyUI's cache


def test_bad_inputs_fail_before_anything_is_submitted(worker: WorkerHarness, fake: FakeComfyProcess,
                                                      tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(_png(tmp_path / "whole.png").read_bytes()[:60])
    unknown = Job(prompt="x", model="no/such/model.safetensors")
    corrupt = Job(prompt="x", model=CHECKPOINT, workflow="image_to_image", images={"input": str(broken)})
    for job in (unknown, corrupt):
        worker.queue.submit(job)
    assert worker.wait_status(unknown.job_id, JobStatus.FAILED).error.startswith("Unknown model 'no/such/model")
    assert "truncated or corrupt" in worker.wait_status(corrupt.job_id, JobStatus.FAILED).error
    with pytest.raises(JobValidationError, match="images"):
        worker.queue.submit(Job(prompt="x", model=CHECKPOINT, images={"../../etc": str(broken)}))
    submitted = fake.stats()["submitted"]
    assert unknown.job_id not in submitted and corrupt.job_id not in submitted


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_of_headless_worker_reattaches_without_rerunning(redis_server: EmbeddedRedis, home: Home,
                                                                fake: FakeComfyProcess) -> None:
    save_settings(home.config_file, Settings(comfy_url=fake.url, lease_seconds=2.0))
    fake.control(step_time=0.1)
    queue = make_queue(redis_server, home, lease_seconds=2.0)
    job = Job(prompt="survive", model=CHECKPOINT, steps=20)
    queue.submit(job)
    headless = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "worker"],
                                cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (r := queue.status(job.job_id)) is not None and r.progress > 30, timeout=60,
                   message="the headless worker running the job")
        os.kill(headless.pid, signal.SIGKILL)
        headless.wait(10)
        assert psutil.pid_exists(headless.pid) is False or headless.returncode is not None
        with WorkerHarness(queue, home, Settings(comfy_url=fake.url, lease_seconds=2.0)) as worker:
            record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED, timeout=60)
        assert record.status is JobStatus.FINISHED, record.error
        assert record.attempts == 1  # the crashed attempt counted once
        assert fake.stats()["executions"][job.job_id] == 1  # re-attached, not run again
        assert (home.outputs / f"{job.job_id}.png").is_file()
    finally:
        if headless.poll() is None:
            headless.kill()
            headless.wait(10)
        queue.conn.close()


def test_template_with_node_types_comfy_lacks_fails_before_upload(queue: JobQueue, home: Home, settings: Settings,
                                                                  fake: FakeComfyProcess) -> None:
    shipped = json.loads((REPO_ROOT / "workflows" / "text_to_image-checkpoint.json").read_text())
    shipped["prompt"]["99"] = {"class_type": "FancyUpscaler", "inputs": {}}
    (home.workflows / "text_to_image-checkpoint.json").write_text(json.dumps(shipped))
    with WorkerHarness(queue, home, settings) as worker:
        job = Job(prompt="needs a custom node", model=CHECKPOINT)
        queue.submit(job)
        record = worker.wait_status(job.job_id, JobStatus.FAILED, JobStatus.FINISHED)
    assert record.status is JobStatus.FAILED
    assert "text_to_image-checkpoint.json" in record.error and "FancyUpscaler" in record.error
    assert job.job_id not in fake.stats()["submitted"]
