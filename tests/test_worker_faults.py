"""The worker never dies on a job's fault: that job fails with its reason and the next good job finishes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import SEED_QUEUE_KEY, STATUS_PREFIX, JobQueue
from comfystudio_desktop.settings import Settings
from tests.helpers import WorkerHarness, wait_until

CHECKPOINT = "tiny/sd15-random.safetensors"


def _finishes(worker: WorkerHarness, prompt: str) -> None:
    good = Job(prompt=prompt, model=CHECKPOINT)
    worker.queue.submit(good)
    record = worker.wait_status(good.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    assert worker.thread.is_alive()


def test_an_exception_in_the_handler_fails_that_job_and_the_next_one_finishes(
        worker: WorkerHarness, home: Home, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 48), "red").save(image)
    # The inputs folder replaced by a file: keeping the input copy raises FileExistsError, which the worker's
    # handler does not expect (it is neither a bad input nor ComfyUI's fault).
    shutil.rmtree(home.inputs)
    home.inputs.write_text("not a folder")
    doomed = Job(prompt="no room for inputs", model=CHECKPOINT, workflow="image_to_image",
                 images={"input": str(image)})
    worker.queue.submit(doomed)
    record = worker.wait_status(doomed.job_id, JobStatus.FAILED, JobStatus.FINISHED)
    assert record.status is JobStatus.FAILED and record.error.startswith("worker error: FileExistsError")
    assert record.attempts == 1
    home.inputs.unlink()
    home.inputs.mkdir()
    _finishes(worker, "after a worker error")


def test_hostile_spec_written_into_redis_fails_and_the_next_job_finishes(worker: WorkerHarness) -> None:
    client = worker.queue.conn.client
    hostile = Job(prompt="passed an older validator", model=CHECKPOINT, job_id="hostile-spec")
    spec = json.loads(hostile.to_json())
    # Written straight into Redis as an older, laxer version would have stored it: the worker claims it next.
    client.hset(STATUS_PREFIX + hostile.job_id, mapping={"job_id": hostile.job_id, "status": "queued",
                                                         "spec": json.dumps({**spec, "negative_prompt": ["4", 0]}),
                                                         "score": "1", "attempts": "0", "progress": "0"})
    client.zadd("cs:pending", {hostile.job_id: 1})
    client.rpush("cs:wake", "1")
    record = worker.wait_status(hostile.job_id, JobStatus.FAILED, JobStatus.FINISHED)
    assert "negative_prompt" in record.error and record.attempts == 1
    _finishes(worker, "after a hostile spec")


def test_junk_on_the_seed_queue_never_stops_the_worker(worker: WorkerHarness) -> None:
    client = worker.queue.conn.client
    client.rpush(SEED_QUEUE_KEY, b'{"prompt":"x","model":5}', b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000,
                 json.dumps({"prompt": "from the seed queue", "model": CHECKPOINT, "job_id": "seed-ok"}))
    record = worker.wait_status("seed-ok", JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    wait_until(lambda: len(worker.queue.dead_letters()) == 3, timeout=10, message="three dead letters")
    _finishes(worker, "after junk on comfy_jobs")


def test_a_requeued_job_never_shows_less_progress(queue: JobQueue, home: Home, settings: Settings) -> None:
    job = Job(prompt="crashed once", model=CHECKPOINT, job_id="crashed-once")
    queue.submit(job)
    lease = queue.claim("a-worker-that-crashes")
    assert lease is not None
    queue.progress(lease, 60, "generating")
    assert queue.requeue(lease, "ComfyUI lost the job (it restarted)") == "requeued"
    with WorkerHarness(queue, home, settings) as worker:
        record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error
    events = [e for e in worker.events if e.job_id == job.job_id and e.preview is None]
    progress = [e.progress for e in events]
    assert progress[0] == 60 and progress == sorted(progress), progress
    assert events[0].message == "retrying (attempt 2): processing"
    assert all(e.message.startswith("retrying (attempt 2)") for e in events if e.progress == 60)
