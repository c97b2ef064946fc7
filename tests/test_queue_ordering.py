"""Reorder and priority of waiting jobs against a real redis-server: atomic moves, racing claims, restarts."""

from __future__ import annotations

import random
import subprocess
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.job_queue import JobQueue, LeaseState
from comfystudio_desktop.queue.ordering import Move, MoveOutcome, Priority, QueueOrder
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT, make_queue


def submit(queue: JobQueue, n: int, **kw: object) -> list[str]:
    jobs = [Job(prompt=f"job {i}", job_id=f"j{i:03d}", **kw) for i in range(n)]  # type: ignore[arg-type]
    queue.submit_many(jobs)
    return [j.job_id for j in jobs]


def order(queue: JobQueue) -> list[str]:
    return [q.record.job_id for q in QueueOrder(queue).queued()]


def claim_order(queue: JobQueue) -> list[str]:
    claimed = []
    while (lease := queue.claim("w")) is not None:
        claimed.append(lease.job_id)
    return claimed


def apply_model(ids: list[str], job: str, where: Move, anchor: str) -> None:
    ids.remove(job)
    if where is Move.TOP:
        ids.insert(0, job)
    elif where is Move.BOTTOM:
        ids.append(job)
    else:
        ids.insert(ids.index(anchor) + (where is Move.AFTER), job)


def test_moves_put_jobs_where_asked_and_claims_follow(queue: JobQueue) -> None:
    a, b, c, d = submit(queue, 4)
    ordering = QueueOrder(queue)
    assert ordering.move(d, Move.TOP) is MoveOutcome.MOVED
    assert ordering.move(a, Move.BOTTOM) is MoveOutcome.MOVED
    assert ordering.move(b, Move.AFTER, c) is MoveOutcome.MOVED
    assert order(queue) == [d, c, b, a]
    assert [q.position for q in ordering.queued()] == [1, 2, 3, 4]
    assert ordering.move(c, Move.BEFORE, c) is MoveOutcome.SAME_JOB
    assert ordering.move("nope", Move.TOP) is MoveOutcome.NOT_QUEUED
    assert ordering.move(c, Move.BEFORE, "nope") is MoveOutcome.ANCHOR_NOT_QUEUED
    assert claim_order(queue) == [d, c, b, a]
    assert ordering.move(a, Move.TOP) is MoveOutcome.NOT_QUEUED  # claimed: no longer waiting


def test_repeated_moves_between_adjacent_jobs_re_space_the_scores(queue: JobQueue) -> None:
    ids = submit(queue, 6)
    ordering = QueueOrder(queue)
    model = list(ids)
    for i in range(60):  # each halves the gap before ids[5]: the scores run out of room many times
        job = ids[i % 4]
        assert ordering.move(job, Move.BEFORE, ids[5]) is MoveOutcome.MOVED
        apply_model(model, job, Move.BEFORE, ids[5])
    assert order(queue) == model
    late = Job(prompt="late", job_id="late")
    queue.submit(late)  # still lands at the end of its band after the re-spacing
    assert claim_order(queue) == [*model, "late"]


def test_priority_levels_order_jobs_and_a_new_job_goes_after_its_level(queue: JobQueue) -> None:
    a, b, c = submit(queue, 3)
    ordering = QueueOrder(queue)
    assert ordering.set_priority(c, Priority.HIGH) is MoveOutcome.MOVED
    assert ordering.set_priority(a, Priority.LOW) is MoveOutcome.MOVED
    queue.submit(Job(prompt="normal later", job_id="n2"))
    queue.submit(Job(prompt="high later", job_id="h2", priority=Priority.HIGH.value))
    queued = ordering.queued()
    assert [q.record.job_id for q in queued] == [c, "h2", b, "n2", a]
    assert [q.priority for q in queued] == [Priority.HIGH, Priority.HIGH, Priority.NORMAL, Priority.NORMAL,
                                            Priority.LOW]
    assert Priority.of(-3) is Priority.LOW and Priority.of(0) is Priority.NORMAL and Priority.of(99) is Priority.HIGH


def test_a_retried_job_keeps_the_priority_it_was_given(queue: JobQueue) -> None:
    _a, b = submit(queue, 2)
    ordering = QueueOrder(queue)
    ordering.set_priority(b, Priority.LOW)
    for _ in range(2):
        lease = queue.claim("w")
        assert lease is not None
        queue.fail(lease, "ComfyUI said no")
    assert queue.retry(b)
    queue.submit(Job(prompt="later", job_id="later"))
    assert [(q.record.job_id, q.priority) for q in ordering.queued()] == [("later", Priority.NORMAL),
                                                                         (b, Priority.LOW)]


def test_a_requeued_job_comes_back_to_its_moved_place(queue: JobQueue) -> None:
    a, b, c = submit(queue, 3)
    ordering = QueueOrder(queue)
    ordering.move(c, Move.TOP)
    lease = queue.claim("w")
    assert lease is not None and lease.job_id == c
    queue.release(lease)
    assert order(queue) == [c, a, b]


def test_the_order_survives_a_redis_restart(home: Home, redis_server: EmbeddedRedis) -> None:
    queue = make_queue(redis_server, home)
    a, b, c, d = submit(queue, 4)
    ordering = QueueOrder(queue)
    ordering.move(c, Move.TOP)
    ordering.set_priority(a, Priority.LOW)
    ordering.move(d, Move.BEFORE, b)
    expected = order(queue)
    assert expected == [c, d, b, a]
    queue.conn.close()
    redis_server.stop()
    queue = make_queue(redis_server, home)  # reconnecting starts the server again from its AOF
    try:
        assert order(queue) == expected
        assert QueueOrder(queue).queued()[-1].priority is Priority.LOW
    finally:
        queue.conn.close()


@pytest.mark.parametrize("claimers", [3])
def test_moves_racing_claims_lose_and_double_nothing(home: Home, redis_server: EmbeddedRedis, claimers: int) -> None:
    """Three worker threads and two worker processes claim while a fourth thread moves and re-prioritises."""
    producer = make_queue(redis_server, home)
    # Two workers in their own processes, as headless workers on the same queue would be; they wait for jobs.
    procs = [subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "procs" / "claimer.py"), str(home.root),
                               str(n)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT) for n in range(2)]
    claimed: list[str] = []
    outcomes: list[MoveOutcome] = []
    errors: list[BaseException] = []
    done = threading.Event()
    queues = [make_queue(redis_server, home) for _ in range(claimers + 1)]

    def claim(q: JobQueue) -> None:
        try:
            while (lease := q.claim(f"w{id(q)}")) is not None:
                claimed.append(lease.job_id)
                assert q.finish(lease, f"/outputs/{lease.job_id}.png") is LeaseState.OK
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def mover(q: JobQueue) -> None:
        rng = random.Random(7)
        ordering = QueueOrder(q)
        try:
            while not done.is_set():
                job, anchor = rng.choice(ids), rng.choice(ids)
                where = rng.choice(list(Move))
                outcomes.append(ordering.move(job, where, anchor) if where in (Move.BEFORE, Move.AFTER)
                                else ordering.move(job, where))
                if rng.random() < 0.1:
                    outcomes.append(ordering.set_priority(job, rng.choice(list(Priority))))
        except BaseException as exc:
            errors.append(exc)

    move_thread = threading.Thread(target=mover, args=(queues[0],))
    threads = [threading.Thread(target=claim, args=(q,)) for q in queues[1:]]
    by_processes = []
    try:
        # Submitted once both processes wait for jobs: a process slow to start (Windows) would otherwise find the
        # threads had taken every job already.
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        ids = submit(producer, 600)
        move_thread.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0
            by_processes.extend(out.split())
        claimed.extend(by_processes)
    finally:  # whatever failed: the mover stops, so nothing reconnects (and restarts the server) after the test
        done.set()
        if move_thread.is_alive():
            move_thread.join(30)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
        for q in (producer, *queues):
            q.conn.close()
    assert not errors, errors
    assert sorted(claimed) == sorted(ids)  # every job claimed, none twice
    assert by_processes  # the processes took part
    assert MoveOutcome.MOVED in outcomes and MoveOutcome.NOT_QUEUED in outcomes


moves = st.lists(st.tuples(st.integers(0, 7), st.sampled_from(list(Move)), st.integers(0, 7)), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=moves)
def test_any_sequence_of_moves_gives_the_order_asked(queue: JobQueue, steps: list[tuple[int, Move, int]]) -> None:
    queue.conn.client.flushdb()
    ids = submit(queue, 8)
    model = list(ids)
    ordering = QueueOrder(queue)
    for job_i, where, anchor_i in steps:
        job, anchor = ids[job_i], ids[anchor_i]
        outcome = ordering.move(job, where, anchor)
        if where in (Move.BEFORE, Move.AFTER) and job == anchor:
            assert outcome is MoveOutcome.SAME_JOB
            continue
        assert outcome is MoveOutcome.MOVED
        apply_model(model, job, where, anchor)
    assert order(queue) == model
    assert claim_order(queue) == model
