"""The lasting history against a real redis-server: filing ended jobs, search, favourites, retention."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.history import INBOX_KEY, History, HistoryQuery, StarOutcome
from comfystudio_desktop.queue.history_entry import HistoryEntry, parse_entry
from comfystudio_desktop.queue.job_queue import STATUS_PREFIX, JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.storage_retention import sweep

DAY_MS = 86_400_000


@pytest.fixture
def history(queue: JobQueue) -> Iterator[History]:
    yield History(queue.conn)


def entry(job_id: str, prompt: str, *, model: str = "sd15.safetensors", seed: int = 1,
          ended_ms: int = 1_700_000_000_000,
          status: JobStatus = JobStatus.FINISHED) -> HistoryEntry:
    return HistoryEntry(job=Job(prompt=prompt, job_id=job_id, model=model, seed=seed), status=status,
                        ended_ms=ended_ms, seed_used=seed, image_url=f"/outputs/{job_id}.png")


def ids(history: History, **query: object) -> list[str]:
    return [e.job_id for e in history.search(HistoryQuery(**query)).entries]  # type: ignore[arg-type]


def test_every_ended_job_is_filed_even_after_its_record_expired(queue: JobQueue, history: History) -> None:
    done, broken, dropped = (Job(prompt=p, job_id=p.replace(" ", "-")) for p in ("red cube", "blue ball", "old hat"))
    for j in (done, broken, dropped):
        queue.submit(j)
    lease = queue.claim("w")
    assert lease is not None and lease.job_id == done.job_id
    queue.finish(lease, "/outputs/red-cube.png", ["red-cube.png"])
    lease = queue.claim("w")
    assert lease is not None
    queue.fail(lease, "ComfyUI said no")
    queue.cancel(dropped.job_id)
    for j in (done, broken, dropped):  # as the 24 h TTL would
        queue.conn.client.delete(STATUS_PREFIX + j.job_id)
    assert history.sync() == 3
    assert queue.conn.client.hlen(INBOX_KEY) == 0
    got = {e.job_id: e for e in history.search().entries}
    assert got[done.job_id].status is JobStatus.FINISHED and got[done.job_id].outputs == ("red-cube.png",)
    assert got[broken.job_id].status is JobStatus.FAILED and got[broken.job_id].error == "ComfyUI said no"
    assert got[dropped.job_id].status is JobStatus.CANCELLED
    assert history.sync() == 0


def test_a_record_that_changed_while_filing_stays_for_the_next_sync(queue: JobQueue, history: History) -> None:
    queue.submit(Job(prompt="first run", job_id="again"))
    queue.cancel("again")
    stale = {b"again": queue.conn.client.hget(INBOX_KEY, "again").encode()}  # type: ignore[union-attr]
    queue.retry("again")
    lease = queue.claim("w")
    assert lease is not None
    queue.finish(lease, "outputs/again.png", ["again.png"])  # ended again: a newer inbox record
    assert history.file(stale) == 1  # as a sync that read the record before the job ended again
    assert queue.conn.client.hexists(INBOX_KEY, "again")
    assert history.get("again").status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert history.sync() == 1
    entry = history.get("again")
    assert entry is not None and entry.status is JobStatus.FINISHED


def test_search_by_words_model_seed_status_date_and_favourites(history: History) -> None:
    t = 1_700_000_000_000
    history.add([
        entry("a", "A red cube on a table", ended_ms=t),
        entry("b", "a RED sphere", model="flux.safetensors", seed=7, ended_ms=t + DAY_MS),
        entry("c", "green cube", status=JobStatus.FAILED, ended_ms=t + 2 * DAY_MS),
        entry("d", "red cube, studio light", model="flux.safetensors", ended_ms=t + 3 * DAY_MS),
    ])
    assert ids(history) == ["d", "c", "b", "a"]
    assert ids(history, text="red") == ["d", "b", "a"]
    assert ids(history, text="Cube red") == ["d", "a"]
    assert ids(history, text="cub") == []  # whole words
    assert ids(history, text="   ,,, ") == ids(history)  # no words at all: no text filter
    assert ids(history, model="flux.safetensors") == ["d", "b"]
    assert ids(history, seed=7) == ["b"]
    assert ids(history, status=JobStatus.FAILED) == ["c"]
    assert ids(history, since_ms=t + DAY_MS, until_ms=t + 2 * DAY_MS) == ["c", "b"]
    assert ids(history, text="cube", since_ms=t + DAY_MS) == ["d", "c"]
    assert history.star("b") is StarOutcome.STARRED
    assert history.star("nope") is StarOutcome.NOT_IN_HISTORY
    assert ids(history, favourites=True) == ["b"]
    assert ids(history, favourites=True, text="cube") == []
    page = history.search(HistoryQuery(text="red", offset=1, limit=1))
    assert page.total == 3 and [e.job_id for e in page.entries] == ["b"] and page.entries[0].favourite
    page = history.search(HistoryQuery(offset=3, limit=10))
    assert page.total == 4 and [e.job_id for e in page.entries] == ["a"]
    assert history.unstar("b") is StarOutcome.UNSTARRED
    assert ids(history, favourites=True) == []


@pytest.mark.parametrize("budget", [10_000, 64])
def test_dense_and_sparse_intersections_agree_with_a_plain_filter(queue: JobQueue, budget: int) -> None:
    history = History(queue.conn, walk_budget=budget)
    t = 1_700_000_000_000
    # "day" on even entries, "night" on odd ones, both on every 50th: a dense and a sparse pair of words.
    history.add([entry(f"e{i}", f"{'day' if i % 2 == 0 else 'night'}{' night' if i % 50 == 0 else ''} cat",
                       ended_ms=t + i, status=JobStatus.FAILED if i % 3 == 0 else JobStatus.FINISHED)
                 for i in range(600)])
    expected_sparse = [f"e{i}" for i in reversed(range(0, 600, 50))]
    aof_before = queue.conn.client.info("persistence")["aof_current_size"]
    page = history.search(HistoryQuery(text="day night", limit=5))
    assert queue.conn.client.info("persistence")["aof_current_size"] == aof_before  # a search writes nothing
    assert not queue.conn.client.keys("cs:history:tmp:*")
    assert [e.job_id for e in page.entries] == expected_sparse[:5]
    if budget == 64:  # too few matches in the walk's budget: intersected in Redis, counted
        assert (page.total, page.total_exact) == (12, True)
    else:  # the page filled while walking: the total is estimated from the share that matched
        assert not page.total_exact and 9 <= page.total <= 15
    dense = [f"e{i}" for i in reversed(range(600)) if i % 2 == 0 and i % 3 == 0]
    page = history.search(HistoryQuery(text="day cat", status=JobStatus.FAILED, offset=3, limit=10))
    assert [e.job_id for e in page.entries] == dense[3:13]
    assert page.total_exact or abs(page.total - len(dense)) <= len(dense) // 4  # an estimate when stopped early


def test_a_replaced_entry_leaves_no_stale_index(history: History) -> None:
    history.add([entry("a", "red cube")])
    history.add([entry("a", "blue ball", model="other.safetensors")])
    assert ids(history, text="red") == [] and ids(history, text="blue") == ["a"]
    assert ids(history, model="sd15.safetensors") == []


def test_retention_prunes_history_but_never_favourites_or_their_outputs(home: Home, history: History) -> None:
    now = time.time()
    old_ms = int((now - 40 * 86_400) * 1000)
    history.add([entry("old", "old cat", ended_ms=old_ms), entry("fav", "old dog", ended_ms=old_ms),
                 entry("new", "new cat", ended_ms=int(now * 1000))])
    history.star("fav")
    old_files = [home.outputs / name for name in ("old.png", "fav.png", "fav_2.png", "fav_x.png")]
    for path in [*old_files, home.outputs / "new.png"]:
        path.write_bytes(b"png")
    for path in old_files:
        os.utime(path, (now - 40 * 86_400, now - 40 * 86_400))
    settings = Settings(output_retention_days=30)
    assert history.prune(settings.output_retention_days, now=now) == 1
    report = sweep(home, settings, keep_job_ids=history.favourite_ids(), now=now)
    assert report.outputs == 2  # old.png and fav_x.png (not a batch image of fav)
    assert sorted(p.name for p in home.outputs.iterdir()) == ["fav.png", "fav_2.png", "new.png"]
    assert ids(history) == ["new", "fav"]
    assert ids(history, text="cat") == ["new"]  # the pruned entry left its indexes too
    history.unstar("fav")
    assert history.prune(settings.output_retention_days, now=now) == 1


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_stored_bytes_become_an_entry_or_are_skipped(raw: bytes | str) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    logger = logging.getLogger("comfystudio_desktop.queue.history_entry")
    logger.addHandler(handler)
    try:
        parsed = parse_entry(raw, "x")
    finally:
        logger.removeHandler(handler)
    assert parsed is None or parsed.job_id == "x"
    assert len(records) == (1 if parsed is None else 0)  # a skipped entry is one log line, a good one none


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
_prompts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=60).filter(
    lambda p: p.strip() != "")


@settings(max_examples=200, deadline=None)
@given(job_id=_ids, prompt=_prompts, ended=st.integers(0, 10**14), seed=st.integers(0, 2**64 - 1),
       status=st.sampled_from([JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED]))
def test_entries_round_trip_through_their_stored_form(job_id: str, prompt: str, ended: int, seed: int,
                                                      status: JobStatus) -> None:
    original = entry(job_id, prompt, seed=seed, ended_ms=ended, status=status)
    assert parse_entry(original.to_json().encode(), job_id) == original
    assert parse_entry(original.to_json().encode(), job_id + "z") is None  # filed under another id


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.dictionaries(_ids, st.binary(max_size=200), max_size=5))
def test_junk_in_the_inbox_is_skipped_without_stopping_the_filing(queue: JobQueue, history: History,
                                                                  junk: dict[str, bytes]) -> None:
    queue.conn.client.flushdb()
    queue.submit(Job(prompt="good one", job_id="good"))
    queue.cancel("good")
    if junk:
        queue.conn.client.hset(INBOX_KEY, mapping={k: v for k, v in junk.items() if k != "good"} or {"z": b"!"})
    history.sync()
    assert queue.conn.client.hlen(INBOX_KEY) == 0
    assert ids(history, text="good") == ["good"]
