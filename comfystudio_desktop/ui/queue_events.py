"""The queue's event stream as one async iterator of typed messages: `redis.asyncio` XREAD BLOCK on the qasync loop.

Every job change reaches every window this way, whether the worker runs in the window, in another process or on
another machine. After a connection gap the stream says so (`StreamConnected(resync=True)`), because events it
missed may have been trimmed from the stream and the table must be read again. (The first connect needs no
resync: the caller read its snapshot at the position it starts from.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from comfystudio_desktop.backoff import Backoff
from comfystudio_desktop.jobs import JobEvent
from comfystudio_desktop.queue.job_queue import EVENTS_KEY, event_from_fields
from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint

__all__ = ["QueueEventStream", "QueueMessage", "StreamConnected", "StreamLost"]

log = logging.getLogger(__name__)
#: How long one XREAD waits for new entries. A new entry ends it at once; what the block bounds is how long a
#: cancelled read can keep the connection busy (under the Windows stage's Wine a cancelled socket read ends
#: only with its block, so a window's quit waited that long). One idle round trip a second costs nothing.
_BLOCK_MS = 1_000
#: Reconnect delays of the follower: 0.5 s, doubled per failure, at most 5 s.
_RECONNECT = Backoff(initial=0.5, factor=2.0, maximum=5.0)


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """The stream is readable (again); `resync` when events may have been missed while it was not."""

    resync: bool


@dataclass(frozen=True, slots=True)
class StreamLost:
    """The connection to the stream broke; it is retried with a backoff."""

    reason: str


#: What `QueueEventStream.listen` yields.
QueueMessage = JobEvent | StreamConnected | StreamLost


class QueueEventStream:
    """Reads the queue's event stream from `from_id` on; `listen()` yields each entry as a `JobEvent`.

    Args:
        endpoint_provider: where Redis is now (read at each connect; it may move after a restart). Called on a
            worker thread, since it may block.
        from_id: the stream position to start after ("$": only new entries).
    """

    def __init__(self, endpoint_provider: Callable[[], RedisEndpoint], from_id: str = "$") -> None:
        self._provider = endpoint_provider
        self.last_id = from_id

    async def listen(self) -> AsyncIterator[QueueMessage]:
        """Yield every job event, plus a message for each connect and loss; ends only when cancelled."""
        failures = 0
        connected = lost = False
        while True:
            client: aioredis.Redis | None = None
            try:
                endpoint = await asyncio.to_thread(self._provider)
                client = endpoint.async_client(socket_timeout=_BLOCK_MS / 1000 + 5)
                await client.ping()
                if not connected:
                    connected = True
                    yield StreamConnected(resync=lost)
                failures = 0
                while True:
                    reply: Any = await client.xread({EVENTS_KEY: self.last_id}, count=500, block=_BLOCK_MS)
                    for _stream, entries in reply or []:
                        for entry_id, fields in entries:
                            self.last_id = entry_id
                            yield event_from_fields(fields)
                    if self.last_id == "$":
                        self.last_id = await _newest_id(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure here means "reconnect later"
                if connected:
                    log.warning("Event stream: Redis connection lost: %s", exc)
                    connected, lost = False, True
                    yield StreamLost(str(exc))
                failures += 1
                await asyncio.sleep(_RECONNECT.delay(failures))
            finally:
                if client is not None:
                    await client.aclose()



async def _newest_id(client: aioredis.Redis) -> str:
    newest = await client.xrevrange(EVENTS_KEY, count=1)
    return str(newest[0][0]) if newest else "0-0"
