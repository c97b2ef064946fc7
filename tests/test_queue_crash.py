"""kill -9 of redis-server while jobs are enqueued and claimed: nothing accepted is lost or doubled."""

from __future__ import annotations

import threading

import psutil

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import LEASES_KEY, PENDING_KEY, JobQueue, Lease, SubmitOutcome
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import make_queue
from tests.helpers import wait_until

TOTAL = 500


def test_kill_9_during_enqueue_and_claim_loses_and_doubles_nothing(home: Home, redis_server: EmbeddedRedis) -> None:
    # Reconnecting restarts the server from its AOF, as the CLI and the watchdog do.
    producer_q = make_queue(redis_server, home, lease_seconds=1.0, delay_s=0.1)
    consumer_q = make_queue(redis_server, home, lease_seconds=1.0, delay_s=0.1)
    jobs = [Job(prompt=f"job {i}") for i in range(TOTAL)]
    accepted: list[str] = []
    finished: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for j in jobs:
                outcome = producer_q.submit(j)
                assert outcome in (SubmitOutcome.QUEUED, SubmitOutcome.OUTBOX, SubmitOutcome.DUPLICATE)
                accepted.append(j.job_id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    def consume() -> None:
        while not stop.is_set():
            try:
                lease: Lease | None = consumer_q.claim("crash-test", block_s=0.2)
                if lease is not None and consumer_q.finish(lease, f"outputs/{lease.job_id}.png").value == "ok":
                    finished.append(lease.job_id)
                consumer_q.reap_expired()
            except RedisUnavailable:
                continue

    def all_terminal() -> bool:
        client = producer_q.conn.client
        return client.zcard(PENDING_KEY) == 0 and client.zcard(LEASES_KEY) == 0

    producer = threading.Thread(target=produce)
    consumer = threading.Thread(target=consume)
    producer.start()
    consumer.start()
    try:
        wait_until(lambda: len(accepted) >= TOTAL // 3, timeout=30, message="a third of the jobs accepted")
        victim = redis_server.running_record()
        assert victim is not None
        psutil.Process(victim.pid).kill()  # SIGKILL: no chance to save anything beyond the AOF
        producer.join(60)
        assert not errors, errors
        assert len(accepted) == TOTAL
        assert redis_server.running_record() is not None and redis_server.running_record() != victim
        producer_q.deliver_outbox()
        wait_until(all_terminal, timeout=60, message="every job claimed and finished")
    finally:  # whatever failed: the consumer stops, so nothing reconnects (and restarts the server) after the test
        stop.set()
        consumer.join(10)
        producer.join(60)

    # Every accepted job exists exactly once, and ended finished.
    records = producer_q.jobs()
    ids = [r.job_id for r in records]
    assert len(ids) == len(set(ids)) == TOTAL
    assert set(ids) == {j.job_id for j in jobs}
    assert all(r.status is JobStatus.FINISHED for r in records)
    # A job is finished by one lease only: a second 'ok' finish would mean it ran twice to completion.
    assert len(finished) == len(set(finished))
    for q in (producer_q, consumer_q):
        q.conn.close()


def test_claimed_job_survives_kill_9_of_redis(home: Home, redis_server: EmbeddedRedis) -> None:
    q: JobQueue = make_queue(redis_server, home)
    j = Job(prompt="held by a worker")
    q.submit(j)
    lease = q.claim("w")
    assert lease is not None
    record = redis_server.running_record()
    assert record is not None
    psutil.Process(record.pid).kill()
    # The reconnect restarts the server; the lease and its token came back from the AOF.
    assert q.progress(lease, 55, "after the crash").value == "ok"
    assert q.finish(lease, "outputs/x.png").value == "ok"
    assert q.status(j.job_id).status is JobStatus.FINISHED  # type: ignore[union-attr]
    q.conn.close()
