"""The counts refresh: one read in flight, reads at least the interval apart, and the last ask always served."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

from comfystudio_desktop.ui.refresh_coalescer import RefreshCoalescer


class Recorder:
    """A refresh that takes `duration_s` and notes when each run started and how many ran at once."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s
        self.starts: list[float] = []
        self.running = 0
        self.most_at_once = 0

    async def refresh(self) -> None:
        self.starts.append(time.monotonic())
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(self.duration_s)
        self.running -= 1


async def _settle(coalescer: RefreshCoalescer) -> None:
    deadline = time.monotonic() + 5
    while coalescer.active:
        assert time.monotonic() < deadline, "the refresh never settled"
        await asyncio.sleep(0.005)


def _spawn(tasks: list[asyncio.Task[None]]) -> Callable[[Coroutine[Any, Any, None]], object]:
    return lambda coro: tasks.append(asyncio.get_running_loop().create_task(coro))


def test_a_burst_of_asks_is_one_read() -> None:
    async def scenario() -> Recorder:
        recorder, tasks = Recorder(0.01), list[asyncio.Task[None]]()
        coalescer = RefreshCoalescer(recorder.refresh, _spawn(tasks), min_interval_s=0.05)
        for _ in range(100):
            coalescer.request()
        await _settle(coalescer)
        return recorder

    assert len(asyncio.run(scenario()).starts) == 1


def test_asks_during_a_read_get_exactly_one_more_read_after_the_interval() -> None:
    async def scenario() -> Recorder:
        recorder, tasks = Recorder(0.03), list[asyncio.Task[None]]()
        coalescer = RefreshCoalescer(recorder.refresh, _spawn(tasks), min_interval_s=0.08)
        coalescer.request()
        while not recorder.starts:
            await asyncio.sleep(0.001)
        for _ in range(10):  # while the first read is in flight
            coalescer.request()
        await _settle(coalescer)
        return recorder

    recorder = asyncio.run(scenario())
    assert len(recorder.starts) == 2 and recorder.most_at_once == 1
    assert recorder.starts[1] - recorder.starts[0] >= 0.08 - 1e-9  # less a float rounding, as below


def test_a_steady_stream_of_asks_is_rate_limited_and_the_last_is_served() -> None:
    interval, span = 0.05, 0.5

    async def scenario() -> tuple[Recorder, float]:
        recorder, tasks = Recorder(0.005), list[asyncio.Task[None]]()
        coalescer = RefreshCoalescer(recorder.refresh, _spawn(tasks), min_interval_s=interval)
        end = time.monotonic() + span
        last_ask = 0.0
        while time.monotonic() < end:
            coalescer.request()
            last_ask = time.monotonic()
            await asyncio.sleep(0.002)
        await _settle(coalescer)
        return recorder, last_ask

    recorder, last_ask = asyncio.run(scenario())
    assert recorder.most_at_once == 1
    assert len(recorder.starts) <= span / interval + 2
    # Less a float rounding: on Windows the clock ticks in whole steps, and a run starts at the very tick where
    # last start + interval is reached, which the subtraction may put a hair under the interval.
    assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(recorder.starts))
    assert recorder.starts[-1] >= last_ask - 0.01  # a read began after (or with) the last ask: nothing lost
