"""Queue control with a real worker: result cache hits and misses, out of memory pausing the queue, the user's
pause, active hours, learned run times and batches — on the embedded Redis and the fake ComfyUI."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobRecord, JobStatus
from comfystudio_desktop.queue.forecast import RunTimeStats
from comfystudio_desktop.queue.job_batches import JobBatches
from comfystudio_desktop.queue.job_queue import CancelOutcome, JobQueue
from comfystudio_desktop.queue.queue_pause import NoticeKind, PauseReason, QueuePauseStore
from comfystudio_desktop.queue.result_cache import CACHE_PREFIX
from comfystudio_desktop.queue.run_times import RunTimes
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import WorkerHarness, wait_until

CHECKPOINT = "tiny/sd15-random.safetensors"


@pytest.fixture
def fake_step_time() -> float:
    return 0.01


def _finish(worker: WorkerHarness, job: Job) -> None:
    worker.queue.submit(job)
    record = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert record.status is JobStatus.FINISHED, record.error


def _same(job: Job, **changes: object) -> Job:
    return replace(job.rerun(), **changes)  # type: ignore[arg-type]


# -- result cache ------------------------------------------------------------------------------------------
def test_identical_fixed_seed_job_is_served_from_the_cache(worker: WorkerHarness, fake: FakeComfyProcess,
                                                           home: Home) -> None:
    first = Job(prompt="cache me", model=CHECKPOINT, seed=42, steps=4)
    _finish(worker, first)
    second = _same(first)
    _finish(worker, second)
    record = worker.queue.status(second.job_id)
    assert record is not None and record.from_cache and record.message == "from cache"
    assert record.image_url == f"outputs/{second.job_id}.png" and record.job is not None and record.job.seed == 42
    assert (home.outputs / f"{second.job_id}.png").read_bytes() == (home.outputs / f"{first.job_id}.png").read_bytes()
    assert second.job_id not in fake.stats()["submitted"]
    assert not worker.queue.status(first.job_id).from_cache  # type: ignore[union-attr]
    finished = [e for e in worker.events if e.job_id == second.job_id and e.status is JobStatus.FINISHED]
    assert [e.message for e in finished] == ["from cache"]


def test_random_seed_and_no_cache_never_hit(worker: WorkerHarness, fake: FakeComfyProcess, home: Home) -> None:
    first = Job(prompt="random", model=CHECKPOINT, seed=-1, steps=4)
    _finish(worker, first)
    again = _same(first)
    _finish(worker, again)
    assert again.job_id in fake.stats()["submitted"]
    fixed = Job(prompt="fixed", model=CHECKPOINT, seed=5, steps=4)
    _finish(worker, fixed)
    # The ComfyUI trap: an identical graph is served from ComfyUI's own cache. Each job's SaveImage prefix holds
    # its id, so ComfyUI reuses the sampled image and saves it once more under this job's name (a retry of the
    # same job, fully cached, is covered in test_worker_e2e); the job gets its own file with the same image.
    forced = _same(fixed, no_cache=True)
    _finish(worker, forced)
    stats = fake.stats()
    assert forced.job_id in stats["submitted"] and stats["executions"][forced.job_id] == 1
    record = worker.queue.status(forced.job_id)
    assert record is not None and not record.from_cache and record.outputs == (f"{forced.job_id}.png",)
    assert (home.outputs / f"{forced.job_id}.png").read_bytes().startswith(b"\x89PNG")


def test_setting_off_changed_output_and_changed_input_miss(worker: WorkerHarness, fake: FakeComfyProcess,
                                                           home: Home, tmp_path: Path) -> None:
    picture = tmp_path / "in.png"
    Image.new("RGB", (64, 64), "red").save(picture)
    first = Job(prompt="i2i", model=CHECKPOINT, seed=9, steps=4, workflow="image_to_image",
                images={"input": str(picture)})
    _finish(worker, first)
    hit = _same(first)
    _finish(worker, hit)
    assert worker.queue.status(hit.job_id).from_cache  # type: ignore[union-attr]
    Image.new("RGB", (64, 64), "blue").save(picture)  # other input bytes: another key
    other_input = _same(first)
    _finish(worker, other_input)
    assert other_input.job_id in fake.stats()["submitted"]
    # the cached output changed on disk: the entry is not trusted, the job runs
    for name in (f"{first.job_id}.png", f"{hit.job_id}.png", f"{other_input.job_id}.png"):
        (home.outputs / name).write_bytes(b"not the image")
    changed = _same(other_input)
    _finish(worker, changed)
    assert changed.job_id in fake.stats()["submitted"]
    assert not worker.queue.status(changed.job_id).from_cache  # type: ignore[union-attr]
    worker.consumer.settings = replace(worker.consumer.settings, result_cache=False)
    off = _same(changed)
    _finish(worker, off)
    assert off.job_id in fake.stats()["submitted"]


def test_a_garbled_cache_entry_is_a_miss(worker: WorkerHarness, fake: FakeComfyProcess) -> None:
    first = Job(prompt="garble", model=CHECKPOINT, seed=3, steps=4)
    _finish(worker, first)
    client = worker.queue.conn.client
    keys = [key for key in client.scan_iter(f"{CACHE_PREFIX}*")]
    assert keys
    for key in keys:
        client.hset(key, "outputs", '[{"name": "../../etc/passwd", "size": 1, "sha256": "00"}]')
    second = _same(first)
    _finish(worker, second)
    assert second.job_id in fake.stats()["submitted"]


# -- out of memory, pause, active hours --------------------------------------------------------------------
def test_out_of_memory_requeues_and_pauses_the_queue(worker: WorkerHarness, fake: FakeComfyProcess) -> None:
    pauses = QueuePauseStore(worker.queue.conn)
    fake.control(fault="oom_next")
    job = Job(prompt="too big", model=CHECKPOINT, seed=1, steps=6)
    worker.queue.submit(job)
    stored = wait_until(pauses.current, message="the queue to pause")
    assert stored.reason is PauseReason.OUT_OF_MEMORY and "out of memory" in stored.message
    def queued_again() -> JobRecord | None:
        found = worker.queue.status(job.job_id)
        return found if found is not None and found.status is JobStatus.QUEUED else None

    record = wait_until(queued_again, message="the job to be queued again")
    assert record.attempts == 0 and "out of memory" in record.message
    wait_until(lambda: worker.consumer.gate.reason is PauseReason.OUT_OF_MEMORY, message="the worker to see it")
    assert worker.queue.status(job.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    notices = [notice for _, notice in pauses.notices()]
    assert [(n.kind, n.reason) for n in notices] == [(NoticeKind.PAUSED, PauseReason.OUT_OF_MEMORY)]
    assert pauses.resume() and not pauses.resume()
    final = worker.wait_status(job.job_id, JobStatus.FINISHED, JobStatus.FAILED)
    assert final.status is JobStatus.FINISHED and final.attempts == 0
    assert [n.kind for _, n in pauses.notices()] == [NoticeKind.PAUSED, NoticeKind.RESUMED]
    assert fake.stats()["results"][job.job_id] == "error"  # the first run; the second ran as a new prompt


def test_user_pause_holds_every_claim_until_resumed(worker: WorkerHarness) -> None:
    pauses = QueuePauseStore(worker.queue.conn)
    assert pauses.pause(PauseReason.USER, "lunch") and not pauses.pause(PauseReason.OUT_OF_MEMORY)
    wait_until(lambda: worker.consumer.gate.reason is PauseReason.USER, message="the worker to pause")
    job = Job(prompt="waits", model=CHECKPOINT, seed=1, steps=2)
    worker.queue.submit(job)  # jobs can still be added
    assert worker.consumer.gate.describe() == "paused by the user"
    assert worker.queue.status(job.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    pauses.resume()
    assert worker.wait_status(job.job_id, JobStatus.FINISHED).status is JobStatus.FINISHED


def test_outside_active_hours_nothing_is_claimed(worker: WorkerHarness) -> None:
    now = datetime.now().astimezone()
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    worker.consumer.settings = replace(worker.consumer.settings, active_hours=f"{start:%H:%M}-{end:%H:%M}")
    wait_until(lambda: worker.consumer.gate.reason is PauseReason.OUTSIDE_ACTIVE_HOURS, message="the wait")
    assert worker.consumer.gate.describe() == f"paused until {start:%H:%M}"
    job = Job(prompt="tonight", model=CHECKPOINT, seed=1, steps=2)
    worker.queue.submit(job)
    assert worker.queue.status(job.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    worker.consumer.settings = replace(worker.consumer.settings, active_hours="")
    assert worker.wait_status(job.job_id, JobStatus.FINISHED).status is JobStatus.FINISHED


# -- run times and forecast ----------------------------------------------------------------------------------
def test_run_times_are_learned_and_forecast_the_queue(worker: WorkerHarness) -> None:
    jobs = [Job(prompt=f"learn {i}", model=CHECKPOINT, seed=100 + i, steps=5) for i in range(3)]
    for job in jobs:
        _finish(worker, job)
    times = RunTimes(worker.queue)
    key = f"{CHECKPOINT}|text_to_image|ar:1:1|5"
    # recorded just after the finish: wait for the third
    def three_samples() -> RunTimeStats | None:
        found = times.stats_for(jobs)
        return found if len(found.exact[key]) == 3 else None

    stats = wait_until(three_samples, message="three samples")
    assert all(0 < s < 30 for s in stats.exact[key]) and len(stats.model_rates[CHECKPOINT]) == 3
    QueuePauseStore(worker.queue.conn).pause(PauseReason.USER)
    wait_until(lambda: not worker.consumer.gate.open, message="the worker to pause")
    queued = [Job(prompt=f"later {i}", model=CHECKPOINT, seed=200 + i, steps=5) for i in range(4)]
    worker.queue.submit_many(queued)
    now = datetime.now().astimezone()
    result = times.forecast(now)
    assert [e.job_id for e in result.queued] == [j.job_id for j in queued]
    assert all(e.source.value == "exact" for e in result.queued)
    assert result.finish is not None and result.finish > now
    starts = [e.start for e in result.queued]
    assert starts == sorted(starts) and starts[0] == now


# -- batches -------------------------------------------------------------------------------------------------
def test_batch_status_cancel_retry_rerun(queue: JobQueue) -> None:
    batches = JobBatches(queue)
    jobs = [Job(prompt=f"b {i}", model=CHECKPOINT, batch_id="batch-1") for i in range(4)]
    batches.submit("batch-1", jobs)
    status = batches.status("batch-1")
    assert status is not None and status.total == 4 and status.counts == {JobStatus.QUEUED: 4}
    assert batches.cancel("batch-1") == {CancelOutcome.CANCELLED: 4}
    assert batches.status("batch-1").counts == {JobStatus.CANCELLED: 4}  # type: ignore[union-attr]
    assert batches.retry("batch-1") == 4
    again = batches.rerun("batch-1", "batch-2")
    assert len(again) == 4 and {j.batch_id for j in again} == {"batch-2"}
    assert [j.prompt for j in again] == [j.prompt for j in jobs]
    assert batches.status("batch-2").counts == {JobStatus.QUEUED: 4}  # type: ignore[union-attr]
    assert batches.status("nope") is None
