"""The monitor's figures, series and caps on a real embedded redis-server."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobRecord
from comfystudio_desktop.monitor.aggregates import iso_ms
from comfystudio_desktop.monitor.sampler import Sampler
from comfystudio_desktop.monitor.series import Resolution, StatsSeries
from comfystudio_desktop.monitor.snapshot import StatsSnapshot
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import make_queue


def _run_jobs(queue: JobQueue, outputs: Path) -> list[JobRecord]:
    """Four finished (one with two images), one failed, one cancelled while queued, one left queued."""
    ids = [f"job-{n}" for n in range(7)]
    queue.submit_many([Job(prompt=f"p{n}", job_id=job_id) for n, job_id in enumerate(ids)])
    for n in range(4):
        lease = queue.claim("w")
        assert lease is not None
        names = [f"{lease.job_id}.png"] + ([f"{lease.job_id}_1.png"] if n == 0 else [])
        for name in names:
            (outputs / name).write_bytes(b"x" * (100 + n))
        queue.finish(lease, f"/outputs/{names[0]}", names)
    lease = queue.claim("w")
    assert lease is not None
    queue.fail(lease, "boom")
    queue.cancel(ids[5])
    queue.cancel(ids[5])  # a repeat changes nothing
    records = [queue.status(job_id) for job_id in ids[:4]]
    assert all(r is not None for r in records)
    return [r for r in records if r is not None]


def _seconds(values: list[int]) -> tuple[float, float, float]:
    s = [v / 1000 for v in values]
    p90 = statistics.quantiles(s, n=10, method="inclusive")[-1]
    return statistics.fmean(s), statistics.median(s), p90


def test_figures_from_known_jobs_are_exact(queue: JobQueue, home: Home) -> None:
    outputs = home.outputs
    finished = _run_jobs(queue, outputs)
    sampler = Sampler(queue, outputs, publish_process=False)
    snap = sampler.take()
    assert (snap.queued, snap.running, snap.finished, snap.failed, snap.cancelled) == (1, 0, 4, 1, 1)
    assert (snap.images_total, snap.images_last_hour) == (5, 5)
    assert (snap.outputs_images, snap.outputs_bytes) == (5, 100 * 2 + 101 + 102 + 103)
    procs = [iso_ms(r.finished_at) - iso_ms(r.started_at) for r in finished]  # type: ignore[operator]
    waits = [iso_ms(r.started_at) - iso_ms(r.created_at) for r in finished]  # type: ignore[operator]
    assert snap.processing is not None and snap.waiting is not None
    assert (snap.processing.count, snap.waiting.count) == (4, 4)
    assert (snap.processing.mean_s, snap.processing.median_s, snap.processing.p90_s) == _seconds(procs)
    assert (snap.waiting.mean_s, snap.waiting.median_s, snap.waiting.p90_s) == _seconds(waits)
    assert snap.redis_memory is not None and snap.redis_memory > 0
    assert snap.gpu is None and snap.worker_cpu_percent is None
    # Sampling again reads no event twice: the counts stand.
    again = Sampler(queue, outputs, publish_process=False).take()
    assert (again.finished, again.failed, again.cancelled, again.images_total) == (4, 1, 1, 5)


def test_one_sampler_writes_per_slot_and_publishes_worker_figures(queue: JobQueue, home: Home) -> None:
    at = 1_800_000_000.0
    first = Sampler(queue, home.outputs, clock=lambda: at)
    second = Sampler(queue, home.outputs, clock=lambda: at + 1)  # same 10 s slot
    stored = first.tick()
    assert stored is not None and second.tick() is None
    assert stored.worker_cpu_percent is not None and stored.worker_rss is not None and stored.worker_rss > 0
    client = queue.conn.client
    assert StatsSeries.length(client, Resolution.FINE) == 1
    assert StatsSeries.length(client, Resolution.COARSE) == 1
    assert StatsSeries.latest(client, Resolution.FINE, 10) == [stored]


def test_caps_hold_after_many_samples(queue: JobQueue, home: Home) -> None:
    client = queue.conn.client
    snap = Sampler(queue, home.outputs, publish_process=False).take()
    for resolution in Resolution:
        pipe_rounds = resolution.cap + 500
        for n in range(pipe_rounds):
            StatsSeries.append(client, resolution, replace(snap, at=float(n)))
        assert StatsSeries.length(client, resolution) == resolution.cap
        newest = StatsSeries.latest(client, resolution, 1)
        assert newest[0].at == float(pipe_rounds - 1)


def test_series_and_counts_survive_kill_9_of_redis(redis_server: EmbeddedRedis, home: Home) -> None:
    queue = make_queue(redis_server, home)
    try:
        _run_jobs(queue, home.outputs)
        sampler = Sampler(queue, home.outputs, publish_process=False, clock=lambda: 1_800_000_000.0)
        stored = sampler.tick()
        assert stored is not None
        record = redis_server.running_record()
        assert record is not None
        process = psutil.Process(record.pid)
        process.kill()  # SIGKILL: only what the AOF (fsync always) holds comes back
        process.wait(10)
        # The reconnect restarts the server from its append-only file.
        samples = queue.conn.call(lambda c: StatsSeries.latest(c, Resolution.FINE, 10))
        assert samples == [stored]
        restarted = redis_server.running_record()
        assert restarted is not None and restarted.pid != record.pid
        after = Sampler(queue, home.outputs, publish_process=False).take()
        assert (after.finished, after.failed, after.cancelled, after.images_total) == (4, 1, 1, 5)
    finally:
        queue.conn.close()


@pytest.mark.parametrize("text", ["", "{}", "[]", '{"at": 1}', "nan"])
def test_unreadable_samples_are_refused(text: str) -> None:
    from comfystudio_desktop.monitor.snapshot import SnapshotFormatError

    with pytest.raises(SnapshotFormatError):
        StatsSnapshot.from_json(text)
