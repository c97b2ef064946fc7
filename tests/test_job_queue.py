"""The crash-safe queue against a real redis-server started by the app's manager."""

from __future__ import annotations

import json
import threading

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus, JobValidationError
from comfystudio_desktop.queue.job_queue import (
    DEAD_KEY,
    PENDING_KEY,
    SEED_QUEUE_KEY,
    CancelOutcome,
    JobQueue,
    LeaseState,
    SubmitOutcome,
)
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import make_queue
from tests.helpers import wait_until


def job(prompt: str = "a cat", **kw: object) -> Job:
    return Job(prompt=prompt, **kw)  # type: ignore[arg-type]


def test_submit_is_idempotent_by_job_id(queue: JobQueue) -> None:
    j = job()
    assert queue.submit(j) is SubmitOutcome.QUEUED
    assert queue.submit(j) is SubmitOutcome.DUPLICATE
    assert queue.conn.client.zcard(PENDING_KEY) == 1
    record = queue.status(j.job_id)
    assert record is not None and record.status is JobStatus.QUEUED and record.job == j


def test_invalid_job_is_rejected_before_redis(queue: JobQueue) -> None:
    with pytest.raises(JobValidationError) as err:
        queue.submit(job("   "))
    assert err.value.field == "prompt"
    with pytest.raises(JobValidationError) as err:
        queue.submit(job(job_id="../../etc/passwd"))
    assert err.value.field == "job_id"
    assert queue.conn.client.zcard(PENDING_KEY) == 0


def test_claims_follow_priority_then_fifo(queue: JobQueue) -> None:
    low1, low2 = job("low 1"), job("low 2")
    high = job("high", priority=5)
    for j in (low1, low2, high):
        queue.submit(j)
    order = []
    while (lease := queue.claim("w")) is not None:
        order.append(lease.job_id)
    assert order == [high.job_id, low1.job_id, low2.job_id]


def test_finish_sets_seed_fields_and_ttl_only_when_terminal(queue: JobQueue) -> None:
    j = job()
    queue.submit(j)
    key = f"job:status:{j.job_id}"
    assert queue.conn.client.ttl(key) == -1  # a queued job never expires
    lease = queue.claim("w")
    assert lease is not None
    assert queue.progress(lease, 40, "sampling") is LeaseState.OK
    assert queue.progress(lease, 20, "late event") is LeaseState.OK
    assert queue.status(j.job_id).progress == 40  # type: ignore[union-attr]
    assert queue.conn.client.ttl(key) == -1
    assert queue.finish(lease, f"outputs/{j.job_id}.png", [f"{j.job_id}.png"]) is LeaseState.OK
    fields = queue.conn.client.hgetall(key)
    assert {"job_id", "status", "progress", "image_url", "error", "updated_at"} <= set(fields)
    assert fields["status"] == "finished" and fields["progress"] == "100"
    assert 86_000 < queue.conn.client.ttl(key) <= 86_400
    # A repeat from the same lease (reply lost, call retried) changes nothing and says ok.
    assert queue.finish(lease, f"outputs/{j.job_id}.png") is LeaseState.OK


def test_stale_lease_token_cannot_finish_or_fail(home: Home, redis_server: EmbeddedRedis) -> None:
    q = make_queue(redis_server, home, lease_seconds=0.2)
    j = job()
    q.submit(j)
    stale = q.claim("slow worker")
    assert stale is not None
    wait_until(lambda: q.reap_expired(), timeout=5, message="lease expiry")
    fresh = q.claim("fresh worker")
    assert fresh is not None and fresh.job_id == j.job_id and fresh.token != stale.token
    assert q.finish(stale, "outputs/stale.png") is LeaseState.LOST
    assert q.fail(stale, "stale error") is LeaseState.LOST
    assert q.heartbeat(stale) is LeaseState.LOST
    record = q.status(j.job_id)
    assert record is not None and record.status is JobStatus.PROCESSING and record.attempts == 1
    assert q.finish(fresh, "outputs/fresh.png") is LeaseState.OK
    assert q.status(j.job_id).image_url == "outputs/fresh.png"  # type: ignore[union-attr]
    q.conn.close()


def test_vanished_worker_job_is_redelivered_after_lease(home: Home, redis_server: EmbeddedRedis) -> None:
    q = make_queue(redis_server, home, lease_seconds=0.3)
    j = job()
    q.submit(j)
    assert q.claim("worker that dies") is not None
    assert q.claim("other") is None  # still leased
    reaped = wait_until(lambda: q.reap_expired(), timeout=5, message="lease expiry")
    assert reaped == [(j.job_id, "requeued")]
    lease = q.claim("other")
    assert lease is not None and lease.job_id == j.job_id and lease.attempts == 1
    q.conn.close()


def test_heartbeat_keeps_the_lease(home: Home, redis_server: EmbeddedRedis) -> None:
    q = make_queue(redis_server, home, lease_seconds=0.5)
    q.submit(job())
    lease = q.claim("w")
    assert lease is not None
    for _ in range(4):
        assert q.heartbeat(lease) is LeaseState.OK
        assert q.reap_expired() == []
    q.conn.close()


def test_quarantine_after_max_attempts(home: Home, redis_server: EmbeddedRedis) -> None:
    q = make_queue(redis_server, home, max_attempts=3)
    j = job()
    q.submit(j)
    outcomes = []
    for _ in range(3):
        lease = q.claim("w")
        assert lease is not None
        outcomes.append(q.requeue(lease, "ComfyUI crashed"))
    assert outcomes == ["requeued", "requeued", "quarantined"]
    record = q.status(j.job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error == "quarantined after 3 attempts: ComfyUI crashed"
    assert q.claim("w") is None
    q.conn.close()


def test_release_does_not_count_an_attempt(queue: JobQueue) -> None:
    j = job()
    queue.submit(j)
    lease = queue.claim("w")
    assert lease is not None
    assert queue.release(lease) == "requeued"
    again = queue.claim("w")
    assert again is not None and again.job_id == j.job_id and again.attempts == 0


def test_cancelled_queued_job_is_never_claimed(queue: JobQueue) -> None:
    a, b = job("a"), job("b")
    queue.submit(a)
    queue.submit(b)
    assert queue.cancel(a.job_id) is CancelOutcome.CANCELLED
    lease = queue.claim("w")
    assert lease is not None and lease.job_id == b.job_id
    assert queue.claim("w") is None
    assert queue.status(a.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert queue.cancel(a.job_id) is CancelOutcome.ALREADY_CANCELLED
    assert queue.cancel("no-such-job") is CancelOutcome.NOT_FOUND


def test_cancel_running_job_tells_the_worker(queue: JobQueue) -> None:
    j = job()
    queue.submit(j)
    lease = queue.claim("w")
    assert lease is not None
    assert queue.cancel(j.job_id) is CancelOutcome.CANCELLING
    assert queue.heartbeat(lease) is LeaseState.CANCELLED
    assert queue.progress(lease, 50) is LeaseState.CANCELLED
    assert queue.finish(lease, "outputs/x.png") is LeaseState.CANCELLED
    record = queue.status(j.job_id)
    assert record is not None and record.status is JobStatus.CANCELLED and record.image_url == ""
    assert queue.reap_expired() == []  # a cancelled job is not requeued by the reaper


def test_cancel_racing_claim_never_runs_a_cancelled_job(queue: JobQueue) -> None:
    jobs = [job(f"race {i}") for i in range(200)]
    for j in jobs:
        queue.submit(j)
    claimed: list[tuple[str, LeaseState]] = []
    cancelled: dict[str, CancelOutcome] = {}

    def claimer() -> None:
        while (lease := queue.claim("racer")) is not None:
            claimed.append((lease.job_id, queue.heartbeat(lease)))

    def canceller() -> None:
        for j in jobs:
            cancelled[j.job_id] = queue.cancel(j.job_id)

    threads = [threading.Thread(target=claimer), threading.Thread(target=canceller)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for job_id, state in claimed:
        # Either claimed before the cancel (the worker is told) or cancelled while queued (never claimed).
        assert cancelled[job_id] is CancelOutcome.CANCELLING or state is LeaseState.OK
        if cancelled[job_id] is CancelOutcome.CANCELLED:
            pytest.fail(f"{job_id} was cancelled while queued but still claimed")
    never_claimed = {j.job_id for j in jobs} - {c[0] for c in claimed}
    assert all(cancelled[i] is CancelOutcome.CANCELLED for i in never_claimed)
    assert all(queue.status(j.job_id).status is JobStatus.CANCELLED for j in jobs)  # type: ignore[union-attr]


def test_retry_requeues_failed_job(queue: JobQueue) -> None:
    j = job()
    queue.submit(j)
    lease = queue.claim("w")
    assert lease is not None
    queue.fail(lease, "ComfyUI said no")
    assert queue.conn.client.ttl(f"job:status:{j.job_id}") > 0
    assert queue.retry(j.job_id)
    assert queue.conn.client.ttl(f"job:status:{j.job_id}") == -1
    record = queue.status(j.job_id)
    assert record is not None and record.status is JobStatus.QUEUED and record.error == ""
    assert not queue.retry(j.job_id)  # queued jobs are not retryable


def test_event_stream_follows_every_transition(queue: JobQueue) -> None:
    start = queue.last_event_id()
    j = job()
    queue.submit(j)
    lease = queue.claim("w")
    assert lease is not None
    queue.progress(lease, 30, "submitted")
    queue.finish(lease, "outputs/x.png")
    events = [e for _, e in queue.read_events(start, block_ms=100)]
    assert [(e.status, e.progress) for e in events] == [
        (JobStatus.QUEUED, 0), (JobStatus.PROCESSING, 0), (JobStatus.PROCESSING, 30), (JobStatus.FINISHED, 100)]
    assert events[-1].image_url == "outputs/x.png"


def test_seed_format_jobs_are_taken_in_and_bad_ones_dead_lettered(queue: JobQueue) -> None:
    seed_job = {"job_id": "uuid-1234", "prompt": "a cat", "seed": 12345, "workflow": "text_to_image",
                "model": "turbo_fp8", "aspect_ratio": "1:1", "batch_size": 1, "images": {},
                "created_at": "2024-12-31T10:00:00"}
    client = queue.conn.client
    client.rpush(SEED_QUEUE_KEY, json.dumps(seed_job), "{not json", json.dumps({"prompt": ""}),
                 json.dumps({"prompt": "no id given"}))
    assert queue.pump_intake() == 2
    assert client.llen(SEED_QUEUE_KEY) == 0
    record = queue.status("uuid-1234")
    assert record is not None and record.job is not None and record.job.seed == 12345
    dead = queue.dead_letters()
    assert [d.raw for d in dead] == ["{not json", json.dumps({"prompt": ""})]
    assert "not valid JSON" in dead[0].reason and "prompt" in dead[1].reason
    assert client.llen(DEAD_KEY) == 2
    assert queue.pump_intake() == 0  # nothing taken twice
    assert client.zcard(PENDING_KEY) == 2


def test_outbox_delivers_once_after_an_outage(home: Home, redis_server: EmbeddedRedis) -> None:
    q = make_queue(redis_server, home, restart=False, delay_s=0.05)
    redis_server.stop()
    j = job("made while Redis was down")
    assert q.submit(j) is SubmitOutcome.OUTBOX
    assert len(q.outbox) == 1  # type: ignore[arg-type]
    redis_server.ensure_running()
    assert q.deliver_outbox() == 1
    assert q.deliver_outbox() == 0
    assert len(q.outbox) == 0  # type: ignore[arg-type]
    assert q.conn.client.zcard(PENDING_KEY) == 1
    record = q.status(j.job_id)
    assert record is not None and record.status is JobStatus.QUEUED
    q.conn.close()


def test_seed_recovery_log_lines(home: Home, redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture) -> None:
    q = make_queue(redis_server, home, restart=False, delay_s=0.05)
    q.submit(job())
    redis_server.stop()
    caplog.set_level("INFO")
    with pytest.raises(Exception, match="unreachable"):
        q.counts()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Redis connection lost: ") for m in messages)
    assert [m for m in messages if m.startswith("Reconnect attempt")][:2] == [
        m for m in messages if m.startswith("Reconnect attempt 1/5 failed") or m.startswith(
            "Reconnect attempt 2/5 failed")]
    assert any(m.startswith("Reconnect attempt 5/5 failed") for m in messages)
    redis_server.ensure_running()
    caplog.clear()
    assert q.counts() == {"queued": 1, "running": 0}  # AOF brought the queued job back
    assert "Connected to Redis successfully" in [r.getMessage() for r in caplog.records]
    q.conn.close()


def test_finish_and_claim_is_one_atomic_step(queue: JobQueue) -> None:
    a, b = job("a"), job("b")
    queue.submit(a)
    queue.submit(b)
    first = queue.claim("w")
    assert first is not None and first.job_id == a.job_id
    state, second = queue.finish_and_claim(first, "outputs/a.png")
    assert state is LeaseState.OK and second is not None and second.job_id == b.job_id
    assert queue.status(a.job_id).status is JobStatus.FINISHED  # type: ignore[union-attr]
    assert queue.status(b.job_id).status is JobStatus.PROCESSING  # type: ignore[union-attr]
    queue.cancel(b.job_id)
    state, nothing = queue.finish_and_claim(second, "outputs/b.png")
    assert state is LeaseState.CANCELLED and nothing is None
    assert queue.status(b.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
