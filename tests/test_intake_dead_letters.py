"""The intake and dead letters on the real embedded Redis: any entry becomes a job or a dead letter with a reason."""

from __future__ import annotations

import json
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.jobs import Job, JobStatus, JobValidationError
from comfystudio_desktop.queue.dead_letters import MAX_DEAD_LETTERS, MAX_RAW_BYTES, DeadLetter, DeadLetterNotFound
from comfystudio_desktop.queue.job_queue import (
    DEAD_KEY,
    INDEX_KEY,
    INTAKE_PROCESSING_KEY,
    PENDING_KEY,
    SEED_QUEUE_KEY,
    STATUS_PREFIX,
    JobQueue,
    LeaseState,
)
from tests.job_strategies import JSON_VALUES, job_like

EARLIER = Job(prompt="an earlier job", job_id="earlier-job", seed=7)

ENTRIES = st.one_of(
    st.binary(max_size=120),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    job_like().map(lambda d: json.dumps(d).encode()),
    job_like().map(lambda d: json.dumps({**d, "job_id": EARLIER.job_id}).encode()),  # a duplicate id
    st.just(b"[" * 50_000 + b"]" * 50_000),
    st.just(b'{"prompt": "x", "model": 5}'),
    st.just(b'{"prompt": "\\ud800"}'),
    st.just(b'{"prompt": "\xff\xfe"}'),
)


def _reset(queue: JobQueue) -> dict[str, str]:
    client = queue.conn.client
    client.flushdb()
    queue.submit(EARLIER)
    return cast(dict[str, str], client.hgetall(STATUS_PREFIX + EARLIER.job_id))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(ENTRIES, min_size=1, max_size=8))
def test_any_entries_become_jobs_or_dead_letters(queue: JobQueue, entries: list[bytes]) -> None:
    earlier = _reset(queue)
    client = queue.conn.client
    client.rpush(SEED_QUEUE_KEY, *entries)
    taken = queue.pump_intake()
    dead = queue.dead_letters()
    assert taken + len(dead) == len(entries)
    assert client.zcard(INDEX_KEY) == 1 + taken
    assert client.llen(INTAKE_PROCESSING_KEY) == 0 and client.llen(SEED_QUEUE_KEY) == 0
    assert all(letter.reason and letter.at for letter in dead)
    assert client.hgetall(STATUS_PREFIX + EARLIER.job_id) == earlier, "an earlier job changed"
    for job_id in cast(list[str], client.zrange(INDEX_KEY, 0, -1)):
        record = queue.status(job_id)
        assert record is not None and record.job is not None and record.status is JobStatus.QUEUED


def test_named_bad_entries_get_their_reasons(queue: JobQueue) -> None:
    client = queue.conn.client
    queue.submit(EARLIER)
    bad: list[tuple[bytes, str]] = [
        (b'{"prompt":"x","model":5}', "model: must be text, not a number"),
        (b'{"prompt":"x","workflow":["a"]}', "workflow: must be text, not an array"),
        (b'{"prompt":"x","aspect_ratio":{"w":1}}', "aspect_ratio: must be text"),
        (b'{"prompt":"x","negative_prompt":["4",0]}', "negative_prompt: must be text, not an array"),
        (b'{"prompt":"x","images":{"input":5}}', "images: the 'input' path must be text"),
        (b'{"prompt":"\xc3\x28"}', "not valid UTF-8"),
        (b'{"prompt":"\\ud800"}', "lone surrogate"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"prompt":"x","job_id":"abc\\n"}', "job_id: must be 1-64"),
        (json.dumps({"prompt": "again", "job_id": EARLIER.job_id}).encode(), "duplicate job id"),
        (b"x" * (300 * 1024), "larger than"),
    ]
    client.rpush(SEED_QUEUE_KEY, *(entry for entry, _ in bad), b'{"prompt":"a good one"}')
    assert queue.pump_intake() == 1
    dead = queue.dead_letters()
    assert [needle in letter.reason for letter, (_, needle) in zip(dead, bad, strict=True)] == [True] * len(bad)
    assert dead[5].raw == '{"prompt":"\\xc3("}'  # invalid UTF-8 kept visible, escaped
    assert dead[-1].truncated and dead[-1].size == 300 * 1024 and len(dead[-1].raw.encode()) == MAX_RAW_BYTES
    assert queue.status(EARLIER.job_id).job == EARLIER  # type: ignore[union-attr]
    assert client.llen(INTAKE_PROCESSING_KEY) == 0


def test_stranded_and_untagged_processing_entries_are_handled(queue: JobQueue) -> None:
    client = queue.conn.client
    client.rpush(INTAKE_PROCESSING_KEY, b'41\n{"prompt":"left by a crash"}', b"\xff no tag", b"")
    assert queue.pump_intake() == 1
    reasons = [letter.reason for letter in queue.dead_letters()]
    assert len(reasons) == 2 and all("not tagged" in reason for reason in reasons)
    assert client.llen(INTAKE_PROCESSING_KEY) == 0
    # The same tagged entry again derives the same job id: a duplicate, so a dead letter and not a second job.
    client.rpush(INTAKE_PROCESSING_KEY, b'41\n{"prompt":"left by a crash"}')
    assert queue.pump_intake() == 0 and len(queue.dead_letters()) == 3  # now a duplicate: dead, not lost


def test_dead_letters_are_capped(queue: JobQueue) -> None:
    client = queue.conn.client
    client.rpush(SEED_QUEUE_KEY, *[f"junk {i}".encode() for i in range(MAX_DEAD_LETTERS + 50)])
    while client.llen(SEED_QUEUE_KEY):
        queue.pump_intake(limit=500)
    dead = queue.dead_letters()
    assert len(dead) == MAX_DEAD_LETTERS
    assert dead[0].raw == "junk 50" and dead[-1].raw == f"junk {MAX_DEAD_LETTERS + 49}"


def test_requeue_and_clear(queue: JobQueue) -> None:
    client = queue.conn.client
    queue.submit(EARLIER)
    client.rpush(SEED_QUEUE_KEY, b'{"prompt":"x","model":5}', b'{"prompt":"no id","seed":3}', b"\x00junk")
    client.rpush(SEED_QUEUE_KEY, json.dumps({"prompt": "dup", "job_id": EARLIER.job_id}).encode())
    assert queue.pump_intake() == 1
    assert queue.conn.client.zcard(PENDING_KEY) == 2
    with pytest.raises(JobValidationError, match="model: must be text"):
        queue.requeue_dead(0)  # still bad: stays dead with the new reason, now the last one
    dead = queue.dead_letters()
    assert len(dead) == 3 and "model" in dead[-1].reason
    with pytest.raises(JobValidationError, match="duplicate job id"):
        queue.requeue_dead(1)
    with pytest.raises(DeadLetterNotFound):
        queue.requeue_dead(99)
    with pytest.raises(DeadLetterNotFound):
        queue.requeue_dead(-1)
    # A dead letter whose job id is free again is queued and leaves the list.
    record = queue.status(EARLIER.job_id)
    assert record is not None
    client.delete(STATUS_PREFIX + EARLIER.job_id)
    client.zrem(PENDING_KEY, EARLIER.job_id)
    index = next(i for i, letter in enumerate(queue.dead_letters()) if "duplicate" in letter.reason)
    job = queue.requeue_dead(index)
    assert job.job_id == EARLIER.job_id and job.prompt == "dup"
    assert queue.status(job.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert len(queue.dead_letters()) == 2
    assert queue.clear_dead() == 2 and queue.dead_letters() == [] and queue.dead_count() == 0


def test_requeue_of_a_job_without_id_keeps_its_derived_id(queue: JobQueue) -> None:
    client = queue.conn.client
    client.rpush(SEED_QUEUE_KEY, b'{"prompt":"no id"}')
    assert queue.pump_intake() == 1
    job_id = client.zrange(INDEX_KEY, 0, -1)[0]
    # The same entry dead-lettered (e.g. by a tool that copied it there) cannot make a second job.
    letter = DeadLetter.of(b'{"prompt":"no id"}', "copied", entry_id="1")
    client.rpush(DEAD_KEY, letter.to_json())
    with pytest.raises(JobValidationError, match="duplicate"):
        queue.requeue_dead(0)
    assert client.zcard(INDEX_KEY) == 1 and job_id == client.zrange(INDEX_KEY, 0, -1)[0]


def test_truncated_and_foreign_dead_letters(queue: JobQueue) -> None:
    client = queue.conn.client
    client.rpush(SEED_QUEUE_KEY, b'{"prompt":"' + b"a" * 10_000 + b'","model":5}')
    queue.pump_intake()
    client.rpush(DEAD_KEY, b"\xff not json", json.dumps({"raw": "{}", "error": "old format"}))
    dead = queue.dead_letters()
    assert dead[0].truncated and dead[1].reason == "unreadable dead letter" and dead[2].reason == "old format"
    with pytest.raises(JobValidationError, match="cannot be queued again"):
        queue.requeue_dead(0)
    assert len(queue.dead_letters()) == 3


def test_claimed_spec_that_no_longer_parses_fails_that_job(queue: JobQueue) -> None:
    """Hostile data written straight into Redis (or by an older, laxer version) fails its job at claim."""
    client = queue.conn.client
    hostile = Job(prompt="x", job_id="hostile-1")
    queue.submit(hostile)
    spec = json.loads(cast(str, client.hget(STATUS_PREFIX + hostile.job_id, "spec")))
    client.hset(STATUS_PREFIX + hostile.job_id, "spec", json.dumps({**spec, "negative_prompt": ["4", 0]}))
    good = Job(prompt="fine", job_id="good-1")
    queue.submit(good)
    lease = queue.claim("w")
    assert lease is not None and lease.job_id == good.job_id
    record = queue.status(hostile.job_id)
    assert record is not None and record.status is JobStatus.FAILED and record.attempts == 1
    assert "not valid any more" in record.error and "negative_prompt" in record.error


def test_progress_never_goes_back_after_a_requeue(queue: JobQueue) -> None:
    job = Job(prompt="long", job_id="requeued-1")
    queue.submit(job)
    lease = queue.claim("w1")
    assert lease is not None and lease.progress == 0
    assert queue.progress(lease, 55, "generating") is LeaseState.OK
    assert queue.requeue(lease, "ComfyUI lost the job (it restarted)") == "requeued"
    record = queue.status(job.job_id)
    assert record is not None and record.progress == 55
    assert record.message == "retrying (attempt 2): ComfyUI lost the job (it restarted)"
    again = queue.claim("w2")
    assert again is not None and again.progress == 55 and again.attempts == 1
    record = queue.status(job.job_id)
    assert record is not None and record.progress == 55 and record.message == "retrying (attempt 2)"
    queue.progress(again, 10, "processing")
    assert queue.status(job.job_id).progress == 55  # type: ignore[union-attr]
    queue.progress(again, 70, "generating")
    assert queue.status(job.job_id).progress == 70  # type: ignore[union-attr]


def test_hostile_status_fields_do_not_break_reading(queue: JobQueue) -> None:
    job = Job(prompt="x", job_id="garbled-1")
    queue.submit(job)
    queue.conn.client.hset(STATUS_PREFIX + job.job_id, mapping={"seed_used": "abc", "outputs": "5",
                                                                "progress": "lots", "status": "weird"})
    record = queue.status(job.job_id)
    assert record is not None and record.seed_used is None and record.outputs == () and record.progress == 0
    assert record.status is JobStatus.FAILED


def test_invalid_utf8_written_by_another_tool_does_not_break_reading(queue: JobQueue) -> None:
    job = Job(prompt="x", job_id="bytes-1")
    queue.submit(job)
    client = queue.conn.client
    client.hset(STATUS_PREFIX + job.job_id, "message", b"\xff\xfe half")
    client.zadd(INDEX_KEY, {b"\xffodd": 1})
    client.hset(STATUS_PREFIX.encode() + b"\xffodd", mapping={"job_id": b"\xffodd", "status": "queued"})
    record = queue.status(job.job_id)
    assert record is not None and record.message == "\\xff\\xfe half"
    listed = {r.job_id for r in queue.jobs()}
    assert listed == {job.job_id, "\\xffodd"}
