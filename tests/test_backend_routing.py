"""The model-aware claim on a real redis-server: queue order, model lists, affinity, disabled and dead backends."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.routing import (
    BackendPresence,
    BackendRegistry,
    BackendState,
    RoutedJobQueue,
    backend_key,
)
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import make_queue
from tests.helpers import wait_until


@pytest.fixture
def registry(queue: JobQueue) -> BackendRegistry:
    return BackendRegistry(queue.conn)


def _routed(queue: JobQueue, name: str, prefer_ms: int = 0) -> RoutedJobQueue:
    routed = RoutedJobQueue(queue.conn, name, lease_seconds=30.0)
    routed.prefer_loaded_ms = prefer_ms
    return routed


def _up(registry: BackendRegistry, name: str, *models: str) -> None:
    registry.publish(name, BackendPresence(BackendState.UP, f"http://{name}.invalid", frozenset(models)))


def _submit(queue: JobQueue, job_id: str, model: str) -> None:
    queue.submit(Job(job_id=job_id, prompt="p", model=model))


def test_claim_takes_the_first_job_in_queue_order_whose_model_the_backend_has(
        queue: JobQueue, registry: BackendRegistry) -> None:
    _up(registry, "a", "a.safetensors")
    _up(registry, "b", "b.safetensors")
    for index, model in enumerate(["b.safetensors", "b.safetensors", "a.safetensors", "a.safetensors"]):
        _submit(queue, f"j{index}", model)
    a, b = _routed(queue, "a"), _routed(queue, "b")
    assert [lease.job_id for lease in (a.claim("wa"), a.claim("wa"))] == ["j2", "j3"]  # type: ignore[union-attr]
    assert a.claim("wa") is None  # the b jobs stay pending: nothing claimed and given back
    assert queue.counts()["queued"] == 2
    lease = b.claim("wb")
    assert lease is not None and lease.job_id == "j0"
    record = queue.status("j0")
    assert record is not None and record.backend == "b" and record.status is JobStatus.PROCESSING
    events = [e for _id, e in queue.read_events("0-0", block_ms=10) if e.job_id == "j0"]
    assert events[-1].backend == "b"


def test_a_job_without_a_model_runs_anywhere_and_a_job_no_backend_can_run_says_so(
        queue: JobQueue, registry: BackendRegistry) -> None:
    _up(registry, "a", "a.safetensors")
    _submit(queue, "missing", "nowhere.safetensors")
    _submit(queue, "any", "")
    a = _routed(queue, "a")
    lease = a.claim("wa")
    assert lease is not None and lease.job_id == "any"
    record = queue.status("missing")
    assert record is not None and record.status is JobStatus.QUEUED
    assert record.message == "no backend has model nowhere.safetensors"
    _up(registry, "c", "nowhere.safetensors")  # a backend with the model appears: the job runs there
    lease = _routed(queue, "c").claim("wc")
    assert lease is not None and lease.job_id == "missing"
    record = queue.status("missing")
    assert record is not None and record.backend == "c" and "no backend" not in record.message


def test_disabled_down_and_unknown_backends_claim_nothing(queue: JobQueue, registry: BackendRegistry) -> None:
    _up(registry, "a", "m.safetensors")
    _submit(queue, "j", "m.safetensors")
    registry.set_enabled("a", False)
    assert _routed(queue, "a").claim("wa") is None
    registry.set_enabled("a", True)
    registry.publish("a", BackendPresence(BackendState.DOWN, "http://a.invalid"))
    assert _routed(queue, "a").claim("wa") is None
    assert _routed(queue, "never-published").claim("wx") is None
    record = queue.status("j")
    assert record is not None and record.message == "no backend has model m.safetensors"
    _up(registry, "a", "m.safetensors")
    lease = _routed(queue, "a").claim("wa")
    assert lease is not None and lease.job_id == "j"


def test_a_job_waits_briefly_for_the_backend_that_has_its_model_loaded(
        queue: JobQueue, registry: BackendRegistry) -> None:
    for name in ("a", "b"):
        _up(registry, name, "m.safetensors", "n.safetensors")
    a, b = _routed(queue, "a", prefer_ms=400), _routed(queue, "b", prefer_ms=400)
    _submit(queue, "first", "m.safetensors")
    first = b.claim("wb")
    assert first is not None and b.finish(first, "outputs/x.png") .value == "ok"  # b has m loaded now
    _submit(queue, "second", "m.safetensors")
    _submit(queue, "other", "n.safetensors")
    lease = a.claim("wa")
    assert lease is not None and lease.job_id == "other"  # a leaves `second` to b for a moment
    started = time.monotonic()
    lease = wait_until(lambda: a.claim("wa"), timeout=5.0, message="a takes the job after the preference delay")
    assert lease.job_id == "second" and time.monotonic() - started < 5.0
    view = {v.name: v for v in registry.views()}
    assert view["b"].jobs_done == 1 and view["b"].median_s is not None
    assert view["a"].loaded_model == "m.safetensors" and view["a"].current_job == "second"


def test_a_backends_lists_expire_when_nothing_refreshes_them(queue: JobQueue, registry: BackendRegistry) -> None:
    _up(registry, "a", "m.safetensors")
    ttl = queue.conn.call(lambda c: c.pttl(backend_key("a", "models")))
    assert 0 < ttl <= 10_000
    queue.conn.call(lambda c: c.pexpire(backend_key("a", "models"), 1))
    wait_until(lambda: not queue.conn.call(lambda c: c.exists(backend_key("a", "models"))), message="expiry")
    _submit(queue, "j", "m.safetensors")
    assert _routed(queue, "a").claim("wa") is None
    assert registry.views()[0].state is BackendState.GONE
    # The next refresh brings the lists back even when they did not change (the stall is over).
    registry.publish("a", BackendPresence(BackendState.UP, "http://a.invalid", frozenset({"m.safetensors"})),
                     lists_changed=False)
    lease = _routed(queue, "a").claim("wa")
    assert lease is not None and lease.job_id == "j"


@pytest.fixture
def second_queue(redis_server: EmbeddedRedis, home: Home) -> Iterator[JobQueue]:
    q = make_queue(redis_server, home, lease_seconds=30.0)
    yield q
    q.conn.close()


def test_many_workers_race_for_jobs_and_each_job_is_claimed_once(
        queue: JobQueue, second_queue: JobQueue, registry: BackendRegistry) -> None:
    _up(registry, "a", "m.safetensors", "a.safetensors")
    _up(registry, "b", "m.safetensors", "b.safetensors")
    models = ["m.safetensors", "a.safetensors", "b.safetensors"]
    for index in range(60):
        _submit(queue, f"j{index}", models[index % 3])
    a, b = _routed(queue, "a"), _routed(second_queue, "b")
    claimed: dict[str, str] = {}
    while True:
        got = [(name, routed.claim(f"w{name}")) for name, routed in (("a", a), ("b", b))]
        if all(lease is None for _n, lease in got):
            break
        for name, lease in got:
            if lease is not None:
                assert lease.job_id not in claimed
                claimed[lease.job_id] = name
    assert len(claimed) == 60
    for job_id, name in claimed.items():
        model = models[int(job_id[1:]) % 3]
        assert model == "m.safetensors" or model.startswith(name)


_MODEL_NAMES = ["a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(st.sampled_from([*_MODEL_NAMES, ""]), min_size=1, max_size=25),
       backends=st.dictionaries(st.sampled_from(["x", "y", "z"]), st.sets(st.sampled_from(_MODEL_NAMES)),
                                min_size=1, max_size=3),
       order=st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=60))
def test_routing_never_gives_a_backend_a_job_it_cannot_run(queue: JobQueue, jobs: list[str],
                                                           backends: dict[str, set[str]], order: list[str]) -> None:
    queue.conn.call(lambda c: c.flushdb())
    registry = BackendRegistry(queue.conn)
    for name, models in backends.items():
        _up(registry, name, *models)
    for index, model in enumerate(jobs):
        _submit(queue, f"j{index}", model)
    routed = {name: _routed(queue, name) for name in ("x", "y", "z")}
    claimed: dict[str, str] = {}
    for name in [*order, *sorted(backends) * len(jobs)]:  # then every backend until it finds nothing more
        lease = routed[name].claim(f"w{name}")
        if lease is None:
            continue
        assert lease.job_id not in claimed
        model = jobs[int(lease.job_id[1:])]
        assert name in backends and (model == "" or model in backends[name])
        claimed[lease.job_id] = name
        # Queue order: no earlier job this backend could run was passed over.
        skipped = [i for i in range(int(lease.job_id[1:])) if f"j{i}" not in claimed
                   and (jobs[i] == "" or jobs[i] in backends[name])]
        assert not skipped
    runnable = {f"j{i}" for i, m in enumerate(jobs) if m == "" or any(m in s for s in backends.values())}
    assert set(claimed) == runnable
    for index, model in enumerate(jobs):
        if f"j{index}" not in runnable:
            record = queue.status(f"j{index}")
            assert record is not None and record.message == f"no backend has model {model}"
