"""Coalescing a refresh that many events ask for (the queue's counts): one in flight, a bounded rate, none lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["RefreshCoalescer"]


class RefreshCoalescer:
    """Runs `refresh` when asked: at most one run at a time, runs at least `min_interval_s` apart.

    Asks that arrive while a run waits for its turn are served by that run; asks that arrive while it is in
    progress get exactly one more run after it, so the last change is always shown.

    Args:
        refresh: the (async) refresh itself.
        spawn: starts a coroutine on the event loop (the controller's `spawn`, which logs failures).
    """

    def __init__(self, refresh: Callable[[], Awaitable[None]],
                 spawn: Callable[[Coroutine[Any, Any, None]], object], *, min_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh = refresh
        self._spawn = spawn
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._active = False
        self._again = False
        self._last_start = -float("inf")

    @property
    def active(self) -> bool:
        """True while a run is waiting or in progress."""
        return self._active

    def request(self) -> None:
        """Ask for a refresh soon."""
        if self._active:
            self._again = True
            return
        self._active = True
        self._spawn(self._run())

    async def _run(self) -> None:
        try:
            while True:
                # A loop, not one sleep: on Windows asyncio wakes a timer up to the clock's resolution (15.6 ms)
                # early, and the interval is a promise.
                while (wait := self._last_start + self.min_interval_s - self._clock()) > 0:
                    await asyncio.sleep(wait)
                self._again = False  # asks until now are served by this run
                self._last_start = self._clock()
                await self._refresh()
                if not self._again:
                    return
        finally:
            self._active = False
