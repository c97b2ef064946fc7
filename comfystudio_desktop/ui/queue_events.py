"""Following the queue's event stream by push: `redis.asyncio` XREAD BLOCK on the qasync event loop.

Jobs submitted or run by other processes (the CLI, headless workers) reach the window this way. After a
connection gap the follower asks for a resync, because events it missed may have been trimmed from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from PySide6.QtCore import QObject, Signal

from comfystudio_desktop.queue.job_queue import EVENTS_KEY, event_from_fields
from comfystudio_desktop.queue.redis_server import RedisEndpoint

__all__ = ["QueueEventFollower"]

log = logging.getLogger(__name__)
_BLOCK_MS = 5_000


class QueueEventFollower(QObject):
    """Emits `job_event(JobEvent)` for each stream entry, `connection_changed(bool)`, and `resync_needed()`."""

    job_event = Signal(object)
    connection_changed = Signal(bool)
    resync_needed = Signal()

    def __init__(self, endpoint_provider: Callable[[], RedisEndpoint], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._provider = endpoint_provider
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_id = "$"
        self.connected = False

    def start(self, from_id: str = "$") -> None:
        """Start following on the running asyncio (qasync) loop, from `from_id`."""
        self.last_id = from_id
        self._task = asyncio.get_event_loop().create_task(self._follow())

    async def stop(self) -> None:
        """Stop following and wait for the task to end."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _stop_requested(self) -> bool:
        return self._stopping

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self.connection_changed.emit(connected)

    async def _follow(self) -> None:
        delay = 0.5
        while not self._stop_requested():
            client: aioredis.Redis | None = None
            try:
                endpoint = await asyncio.to_thread(self._provider)
                client = _async_client(endpoint)
                await client.ping()
                if not self.connected and self.last_id != "$":
                    self.resync_needed.emit()  # events may have been missed while away
                self._set_connected(True)
                delay = 0.5
                while not self._stop_requested():
                    reply: Any = await client.xread({EVENTS_KEY: self.last_id}, count=500, block=_BLOCK_MS)
                    for _stream, entries in reply or []:
                        for entry_id, fields in entries:
                            self.last_id = entry_id
                            self.job_event.emit(event_from_fields(fields))
                    if self.last_id == "$":
                        self.last_id = await _newest_id(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure here means "reconnect later"
                if self._stop_requested():
                    break
                if self.connected:
                    log.warning("Event stream: Redis connection lost: %s", exc)
                self._set_connected(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if client is not None:
                    await client.aclose()


def _async_client(endpoint: RedisEndpoint) -> aioredis.Redis:
    options: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": _BLOCK_MS / 1000 + 5,
                               "decode_responses": True}
    if endpoint.url:
        return aioredis.Redis.from_url(endpoint.url, **options)
    return aioredis.Redis(host=endpoint.host, port=endpoint.port, password=endpoint.password, **options)


async def _newest_id(client: aioredis.Redis) -> str:
    newest = await client.xrevrange(EVENTS_KEY, count=1)
    return str(newest[0][0]) if newest else "0-0"
