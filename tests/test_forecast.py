"""The ETA's pure parts: which estimate a job gets, and how the queue is laid out on the workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.forecast import (
    DEFAULT_RUN_S,
    EstimateSource,
    RunningJob,
    RunTimeStats,
    estimate_s,
    forecast,
    run_key,
    running_left_s,
)

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def _job(model: str = "a.safetensors", steps: int | None = 10, job_id: str = "j") -> Job:
    return Job(prompt="p", model=model, steps=steps, job_id=job_id)


@pytest.mark.parametrize(("stats", "expected"), [
    (RunTimeStats(), (DEFAULT_RUN_S, EstimateSource.DEFAULT)),
    (RunTimeStats(global_rates=[0.5, 1.0, 2.0]), (10.0, EstimateSource.GLOBAL)),
    (RunTimeStats(model_rates={"a.safetensors": [0.2]}, global_rates=[9.0]), (2.0, EstimateSource.MODEL)),
    (RunTimeStats(exact={"a.safetensors|text_to_image|ar:1:1|10": [3.0, 5.0]},
                  model_rates={"a.safetensors": [0.2]}), (2.0, EstimateSource.MODEL)),
    (RunTimeStats(exact={"a.safetensors|text_to_image|ar:1:1|10": [3.0, 5.0, 4.0]},
                  model_rates={"a.safetensors": [0.2]}), (4.0, EstimateSource.EXACT)),
    (RunTimeStats(exact={"a.safetensors|text_to_image|ar:1:1|10": [7.0]}, global_rates=[1.0]),
     (7.0, EstimateSource.EXACT)),
])
def test_estimate_prefers_the_closest_kind(stats: RunTimeStats, expected: tuple[float, EstimateSource]) -> None:
    assert estimate_s(_job(), stats) == expected


def test_run_key_tells_sizes_and_steps_apart() -> None:
    assert run_key(_job()).text() == "a.safetensors|text_to_image|ar:1:1|10"
    sized = Job(prompt="p", model="m", width=512, height=768)
    assert run_key(sized).text() == "m|text_to_image|512x768|0"


def test_running_left_follows_progress() -> None:
    assert running_left_s(100.0, 10) == 100.0  # not generating yet
    assert running_left_s(100.0, 30) == 100.0
    assert running_left_s(100.0, 95) == 0.0
    assert running_left_s(100.0, 62) == pytest.approx(100.0 * (1 - 32 / 65))


def test_queue_layout_on_two_workers() -> None:
    stats = RunTimeStats(model_rates={"a.safetensors": [1.0]})  # 10 steps: 10 s a job
    running = [RunningJob(_job(job_id="r1"), "w1", 30), RunningJob(_job(job_id="r2"), "w1", 10),
               RunningJob(_job(job_id="r3"), "w2", 95)]
    queued = [_job(job_id=f"q{i}") for i in range(3)]
    result = forecast(NOW, running, queued, stats)
    assert result.workers == 2
    # w1 runs r1 then r2 (20 s); w2 is free at once: q0 at +0 on w2, q1 at +10 on w2, q2 at +20 on either
    assert [(e.job_id, (e.start - NOW).seconds) for e in result.queued] == [("q0", 0), ("q1", 10), ("q2", 20)]
    assert result.eta("r2") is not None and result.eta("r2").left_s == 10.0  # type: ignore[union-attr]
    assert result.finish == NOW + timedelta(seconds=30)
    later = NOW + timedelta(hours=8)
    assert forecast(NOW, [], queued, stats, not_before=later).queued[0].start == later
    assert forecast(NOW, [], [], stats).finish is None
    assert forecast(NOW, [], queued, stats, workers=3).finish == NOW + timedelta(seconds=10)


@given(st.lists(st.floats(min_value=0.01, max_value=1000), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=4))
def test_finish_is_total_work_spread_over_workers(durations: list[float], workers: int) -> None:
    """Greedy layout: the end is at least the work per worker and at most that plus the longest job."""
    exact = {f"m{i}|text_to_image|ar:1:1|10": [d] * 3 for i, d in enumerate(durations)}
    jobs = [_job(model=f"m{i}", job_id=f"q{i}") for i in range(len(durations))]
    result = forecast(NOW, [], jobs, RunTimeStats(exact=exact), workers=workers)
    assert result.finish is not None
    span = (result.finish - NOW).total_seconds()
    assert sum(durations) / workers - 1e-3 <= span <= sum(durations) / workers + max(durations) + 1e-3
    starts = [e.start for e in result.queued]
    assert starts == sorted(starts)  # queue order is start order
