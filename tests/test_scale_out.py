"""Scale-out on one machine: an external redis-server with a password, two headless backend workers in homes of
their own, two fake ComfyUIs with different models and speeds. Every job runs exactly once, on a backend that has
its model; a job no backend can run says so."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.routing import BackendRegistry, BackendState
from tests.backend_cluster import ExternalRedis, HeadlessWorker
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import wait_for_record, wait_until

MODELS = {"fast": ["alpha.safetensors", "shared.safetensors"], "slow": ["beta.safetensors", "shared.safetensors"]}


def test_two_headless_backends_share_one_external_redis(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ExternalRedis(tmp_path / "redis"))
        fakes = {name: stack.enter_context(FakeComfyProcess(models={"checkpoints": models}, step_time=step,
                                                            output_dir=tmp_path / f"out-{name}"))
                 for (name, models), step in zip(MODELS.items(), (0.005, 0.02), strict=True)}
        workers = [stack.enter_context(HeadlessWorker(tmp_path / f"machine-{name}", server.url,
                                                      Backend(name=name, url=fake.url)))
                   for name, fake in fakes.items()]
        queue = server.queue(lease_seconds=5.0)
        stack.callback(queue.conn.close)
        registry = BackendRegistry(queue.conn)
        wait_until(lambda: {v.name for v in registry.views() if v.state is BackendState.UP} == set(MODELS),
                   timeout=60, message=f"both backends up; logs: {[w.log_text() for w in workers]}")
        models = ["alpha.safetensors", "beta.safetensors", "shared.safetensors"]
        jobs = [Job(job_id=f"j{i:02d}", prompt=f"job {i}", model=models[i % 3], steps=4) for i in range(24)]
        queue.submit_many(jobs)
        orphan = Job(job_id="orphan", prompt="nobody has it", model="nowhere.safetensors")
        queue.submit(orphan)

        def all_done() -> bool:
            return all((r := queue.status(j.job_id)) is not None and r.status in (JobStatus.FINISHED,
                                                                                    JobStatus.FAILED) for j in jobs)

        wait_until(all_done, timeout=120, message="every job finished")
        executions = {name: Counter(fake.stats()["executions"]) for name, fake in fakes.items()}
        for job in jobs:
            record = queue.status(job.job_id)
            assert record is not None and record.status is JobStatus.FINISHED, record
            ran_on = [name for name, counts in executions.items() for _ in range(counts[job.job_id])]
            assert ran_on == [record.backend], f"{job.job_id} ran on {ran_on}, recorded {record.backend!r}"
            assert job.model in MODELS[record.backend]
        assert {queue.status(j.job_id).backend for j in jobs if j.model == "shared.safetensors"}  # type: ignore[union-attr]
        record = wait_for_record(queue, "orphan", lambda r: r.message, 10, "the orphan's message")
        assert record.status is JobStatus.QUEUED and record.message == "no backend has model nowhere.safetensors"
        views = {v.name: v for v in registry.views()}
        assert sum(v.jobs_done for v in views.values()) == len(jobs)
        assert all(v.median_s is not None for v in views.values())
        assert all(w.returncode is None for w in workers), [w.log_text() for w in workers]
