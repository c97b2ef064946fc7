"""Fan-out of the queue's event stream (`cs:events`) to the API's push clients.

One `redis.asyncio` XREAD BLOCK loop per server, on the server's event loop, feeds a bounded queue per
subscriber. A subscriber that falls too far behind is dropped (its client reconnects with `Last-Event-ID`
and catches up from the stream). The events are the window's: `JobEvent`s parsed by `event_from_fields`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from comfystudio_desktop.jobs import JobEvent
from comfystudio_desktop.queue.job_queue import EVENTS_KEY, event_from_fields
from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint

__all__ = ["EventHub", "Subscription", "stream_id_key", "valid_stream_id"]

log = logging.getLogger(__name__)
_BLOCK_MS = 2_000
_QUEUE_LIMIT = 2_000
_STREAM_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
Entry = tuple[str, JobEvent]


def valid_stream_id(text: str) -> bool:
    """A Redis stream id `ms-seq`, as our SSE `id:` lines carry."""
    return _STREAM_ID_RE.fullmatch(text) is not None


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """Order of stream ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


@dataclass(eq=False)
class Subscription:
    """One push client's feed; `overflowed` once it fell too far behind."""

    job_id: str | None
    queue: asyncio.Queue[Entry | None] = field(default_factory=lambda: asyncio.Queue[Entry | None](_QUEUE_LIMIT))
    overflowed: bool = False

    def offer(self, entry: Entry) -> None:
        if self.overflowed or (self.job_id is not None and entry[1].job_id != self.job_id):
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # tells the reader to end the feed


class EventHub:
    """Follows `cs:events` while it has subscribers' server running; `subscribe()` yields events in order."""

    def __init__(self, endpoint_provider: Callable[[], RedisEndpoint]) -> None:
        self._provider = endpoint_provider
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._client: aioredis.Redis | None = None
        self._stopping = False
        self.connected = asyncio.Event()

    def start(self) -> None:
        """Start following on the running loop, from the stream's end."""
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the follower has read where the stream ends (events after that reach subscribers); False
        after `timeout_s` (Redis not answering)."""
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop following; every subscriber's feed ends."""
        self._stopping = True
        if self._task is not None:
            # redis-py may swallow a cancel that lands inside a blocking read; the flag ends the loop after it.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=_BLOCK_MS / 1000 + 2)
            self._task = None
        for sub in list(self._subscribers):
            sub.overflowed = True
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        self._subscribers.clear()

    async def subscribe(self, job_id: str | None = None, since: str | None = None, *,
                        idle_s: float = 15.0) -> AsyncIterator[Entry | None]:
        """Events (of one job, or all) as they happen; with `since`, first the ones after that id still kept.

        Yields None after `idle_s` without an event, so a server can send a keep-alive (and notice a client gone).
        """
        sub = Subscription(job_id)
        self._subscribers.add(sub)
        try:
            last = (0, 0)
            if since is not None:
                for kept in await self._backlog(since):
                    if job_id is None or kept[1].job_id == job_id:
                        last = stream_id_key(kept[0])
                        yield kept
            while True:
                try:
                    entry = await asyncio.wait_for(sub.queue.get(), idle_s)
                except TimeoutError:
                    yield None
                    continue
                if entry is None:
                    return
                if stream_id_key(entry[0]) > last:  # already sent from the backlog
                    yield entry
        finally:
            self._subscribers.discard(sub)

    async def _backlog(self, since: str) -> list[Entry]:
        client = self._client
        if client is None:
            return []
        reply: Any = await client.xrange(EVENTS_KEY, min=f"({since}", max="+", count=10_000)
        return [(str(entry_id), event_from_fields(fields)) for entry_id, fields in reply or []]

    async def _follow(self) -> None:
        last_id, delay = "$", 0.5
        while not self._stopping:
            client: aioredis.Redis | None = None
            try:
                endpoint = await asyncio.to_thread(self._provider)
                client = endpoint.async_client(socket_timeout=_BLOCK_MS / 1000 + 5)
                if last_id == "$":
                    newest: Any = await client.xrevrange(EVENTS_KEY, count=1)
                    last_id = str(newest[0][0]) if newest else "0-0"
                self._client = client
                self.connected.set()
                delay = 0.5
                while not self._stopping:
                    reply: Any = await client.xread({EVENTS_KEY: last_id}, count=500, block=_BLOCK_MS)
                    for _stream, entries in reply or []:
                        for entry_id, fields in entries:
                            last_id = str(entry_id)
                            entry = (last_id, event_from_fields(fields))
                            for sub in list(self._subscribers):
                                sub.offer(entry)
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError, ValueError) as exc:  # ValueError: a malformed entry
                log.warning("API event stream: Redis connection lost: %s", exc)
                self.connected.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self._client = None
                if client is not None:
                    await client.aclose()

