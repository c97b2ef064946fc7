"""Queue control's small parts: the new job fields, the cache key, cache entries and notices read from Redis,
and telling an out-of-memory error from others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.batch_expansion import BatchSyntaxError, prompts_from_csv
from comfystudio_desktop.comfy.out_of_memory import is_out_of_memory
from comfystudio_desktop.jobs import Job, JobValidationError
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.queue_pause import NoticeKind, PauseReason, QueuePauseStore, notice_from_fields
from comfystudio_desktop.queue.result_cache import CACHE_PREFIX, ResultCache, cache_key


@pytest.mark.parametrize(("fields", "needle"), [
    ({"no_cache": 1}, "no_cache: must be true or false"),
    ({"no_cache": "true"}, "no_cache: must be true or false"),
    ({"batch_id": 5}, "batch_id: must be text"),
    ({"batch_id": "a b"}, "batch_id: must be 1-64"),
    ({"batch_id": "x" * 65}, "batch_id: must be 1-64"),
])
def test_new_job_fields_are_strict(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(JobValidationError, match=needle):
        Job.from_dict({"prompt": "x", **fields})


def test_new_job_fields_round_trip() -> None:
    job = Job.from_dict({"prompt": "x", "no_cache": True, "batch_id": "batch-1"})
    assert Job.from_json(job.to_json()) == job and job.rerun().batch_id == "batch-1"
    assert Job.from_dict({"prompt": "x", "no_cache": None, "batch_id": None}).no_cache is False


GRAPH = {"3": {"class_type": "KSampler", "inputs": {"seed": 42}},
         "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "comfystudio/JOB-A"}},
         "10": {"class_type": "LoadImage", "inputs": {"image": "upload_JOB-A_input.png"}}}


def _graph_for(job_id: str, seed: int = 42) -> dict[str, object]:
    text = json.dumps(GRAPH).replace("JOB-A", job_id).replace('"seed": 42', f'"seed": {seed}')
    graph: dict[str, object] = json.loads(text)
    return graph


def test_cache_key_ignores_the_job_id_and_sees_everything_else() -> None:
    key = cache_key(_graph_for("JOB-A"), "JOB-A", {"input": b"png bytes"})
    assert key == cache_key(_graph_for("other-id"), "other-id", {"input": b"png bytes"})
    assert key != cache_key(_graph_for("JOB-A", seed=43), "JOB-A", {"input": b"png bytes"})
    assert key != cache_key(_graph_for("JOB-A"), "JOB-A", {"input": b"png bytez"})
    assert key != cache_key(_graph_for("JOB-A"), "JOB-A", {"source": b"png bytes"})


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30),
       st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30))
def test_different_prompts_never_share_a_key(prompt_a: str, prompt_b: str) -> None:
    """Prompts (which cannot hold NUL) give the same key exactly when they are the same text; braces, quotes or
    the text of the id placeholder in a prompt change nothing."""
    same = cache_key({"6": {"inputs": {"text": prompt_a}}}, "job-1", {}) == \
        cache_key({"6": {"inputs": {"text": prompt_b}}}, "job-1", {})
    assert same == (prompt_a == prompt_b)


def test_cache_entries_garbled_in_redis_read_as_misses(queue: JobQueue, tmp_path: Path) -> None:
    cache = ResultCache(queue.conn)
    (tmp_path / "a.png").write_bytes(b"\x89PNG data")
    cache.store("k1", "job-a", tmp_path, ("a.png",), 60)
    hit = cache.lookup("k1")
    assert hit is not None and hit.job_id == "job-a" and hit.outputs[0].size == 9
    client = queue.conn.client
    for garbage in ("", "[]", "{}", "[1]", '[{"name": "a.png", "size": true, "sha256": "0"}]',
                    '[{"name": "../x.png", "size": 1, "sha256": "' + "0" * 64 + '"}]', "[" * 5000):
        client.hset(CACHE_PREFIX + "k1", "outputs", garbage)
        assert cache.lookup("k1") is None, garbage
    assert cache.lookup("missing") is None


@given(st.dictionaries(st.sampled_from(["kind", "reason", "message", "at", "x"]), st.text(max_size=20)))
def test_notice_parser_is_total(fields: dict[str, str]) -> None:
    notice = notice_from_fields(fields)
    assert isinstance(notice.kind, NoticeKind) and (notice.reason is None or isinstance(notice.reason, PauseReason))


def test_a_garbled_pause_flag_still_pauses(queue: JobQueue) -> None:
    queue.conn.client.hset("cs:queue_pause", "reason", "gremlins")
    pause = QueuePauseStore(queue.conn).current()
    assert pause is not None and pause.reason is PauseReason.USER


@pytest.mark.parametrize(("exception_type", "message", "expected"), [
    ("torch.OutOfMemoryError", "Allocation on device 0 would exceed allowed memory. (out of memory)", True),
    ("torch.cuda.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB", True),
    ("RuntimeError", "MPS backend out of memory (MPS allocated: 17.5 GB)", True),
    ("", "VAEDecode (node 8): OutOfMemoryError: out of memory", True),
    ("RuntimeError", "Could not allocate tensor with 1073741824 bytes. There is not enough GPU video memory", True),
    ("safetensors._safetensors_rust.SafetensorError", "Error while deserializing header: HeaderTooLarge", False),
    ("RuntimeError", "fake ComfyUI: injected sampler failure at step 2/4 (error_next)", False),
    ("ValueError", "memory format not supported", False),
])
def test_out_of_memory_is_told_apart(exception_type: str, message: str, expected: bool) -> None:
    assert is_out_of_memory(exception_type, message) is expected


@given(st.text(max_size=200))
def test_csv_prompts_parser_is_total(text: str) -> None:
    try:
        prompts = prompts_from_csv(text)
    except BatchSyntaxError:
        return
    assert prompts and all(p == p.strip() and p for p in prompts)


def test_a_paused_queue_claims_nothing_atomically(queue: JobQueue) -> None:
    """The pause is checked inside the claim script: a worker already past its own check still gets nothing."""
    job = Job(prompt="held", model="m.st")
    queue.submit(job)
    pauses = QueuePauseStore(queue.conn)
    pauses.pause(PauseReason.OUT_OF_MEMORY, "test")
    assert queue.claim("w1") is None and queue.claim("w2", block_s=0.2) is None
    pauses.resume()
    lease = queue.claim("w1")
    assert lease is not None and lease.job_id == job.job_id
