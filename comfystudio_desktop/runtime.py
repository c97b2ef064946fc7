"""Opening the app's core for a command or the window: Redis and the queue (on the home and settings that
`home_settings` opened)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import RedisUnavailable, ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisEndpoint

__all__ = [
    "Runtime",
    "allow_redis_start",
    "open_queue",
    "redis_endpoint_provider",
]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The opened core: what every command and the window work with."""

    home: Home
    settings: Settings
    queue: JobQueue
    redis_server: EmbeddedRedis | None  # None with an external Redis

    @property
    def endpoint(self) -> RedisEndpoint:
        """Where the queue's Redis is."""
        return self.queue.conn.endpoint

    def close(self) -> None:
        """Close connections; the embedded server keeps running for other processes."""
        self.queue.conn.close()


def redis_endpoint_provider(home: Home, settings: Settings, *,
                            may_start: Callable[[], bool] = lambda: True) -> Callable[[], RedisEndpoint]:
    """How to find the queue's Redis on every (re)connect.

    External: the configured URL. Embedded: the home's server, started (or restarted after a crash) while
    `may_start()` says so; otherwise only a running server is used. After a deliberate `redis stop` it raises
    RedisStoppedByUser instead of starting one, and it never recreates a deleted home (RedisServerError).
    """
    if settings.redis_mode == "external":
        url = settings.redis_url
        return lambda: RedisEndpoint(host="", port=0, password=None, embedded=False, url=url)
    server = EmbeddedRedis(home, settings.redis_binary or None)
    return lambda: server.ensure_running() if may_start() else server.endpoint()


def allow_redis_start(home: Home, settings: Settings) -> None:
    """End a deliberate `redis stop`: the embedded server may be started again (the window calls it as it opens).

    Raises RedisServerError when the stop record cannot be removed.
    """
    if settings.redis_mode == "embedded":
        EmbeddedRedis(home, settings.redis_binary or None).clear_user_stop()


def open_queue(home: Home, settings: Settings, *, start_redis: bool = True, reconnect_delay_s: float = 2.0,
               endpoint_provider: Callable[[], RedisEndpoint] | None = None) -> Runtime:
    """Connect to the queue's Redis, starting the home's embedded server when needed.

    `endpoint_provider` replaces the default way of finding the server on reconnect (see
    `redis_endpoint_provider`).
    """
    server = EmbeddedRedis(home, settings.redis_binary or None) if settings.redis_mode == "embedded" else None
    provider = endpoint_provider or redis_endpoint_provider(home, settings, may_start=lambda: start_redis)
    conn = ResilientRedis(provider, delay_s=reconnect_delay_s)
    queue = JobQueue(conn, outbox=Outbox(home.outbox), max_attempts=settings.max_attempts,
                     lease_seconds=settings.lease_seconds)
    try:
        delivered = queue.deliver_outbox()
    except RedisUnavailable as exc:
        log.warning("Outbox not delivered yet: %s", exc)
    else:
        if delivered:
            log.info("Delivered %d job(s) from the outbox", delivered)
    return Runtime(home=home, settings=settings, queue=queue, redis_server=server)
