"""A Redis connection that survives a server crash, with the seed system's auto-recovery semantics.

`_ensure_connected()` checks with PING and reconnects up to 5 attempts 2 s apart, resetting the counter after a
success. The log lines are the ones operators already search for: `Redis connection lost: ...`,
`Reconnect attempt X/5 failed`, `Connected to Redis successfully`.

Blocking reads (BLPOP, XREAD BLOCK) use their own client whose socket timeout exceeds the block time, because
redis-py raises on a blocking call that outlasts `socket_timeout`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint, RedisHomeGone, RedisStoppedByUser

__all__ = [
    "RECOVERABLE_ERRORS",
    "RedisHomeGoneUnavailable",
    "RedisStoppedUnavailable",
    "RedisUnavailable",
    "ResilientRedis",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

RECOVERABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionError,
    OSError,
)


class RedisUnavailable(RuntimeError):
    """Redis could not be reached after the reconnect attempts."""


class RedisStoppedUnavailable(RedisUnavailable):
    """Redis is down because the user stopped it (`redis stop`); it is not restarted until `redis start`."""


class RedisHomeGoneUnavailable(RedisUnavailable):
    """The home folder was deleted under this process: its Redis data is gone and is never made anew here."""


# Where nothing listens: the clients of a connection opened while the server is stopped on purpose.
_NOWHERE = RedisEndpoint(host="127.0.0.1", port=0, password=None, embedded=True)


class ResilientRedis:
    """Two redis-py clients (plain and blocking) for one endpoint, reconnected on failure.

    `endpoint_provider` is asked again on every reconnect, so a server restarted on a new port is found.
    """

    def __init__(
        self,
        endpoint_provider: Callable[[], RedisEndpoint],
        *,
        attempts: int = 5,
        delay_s: float = 2.0,
        max_block_s: float = 10.0,
    ) -> None:
        self._provider = endpoint_provider
        self.attempts = attempts
        self.delay_s = delay_s
        self.max_block_s = max_block_s
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._user_stop: RedisStoppedByUser | None = None  # set while the server is stopped on purpose
        self._home_gone: RedisHomeGone | None = None  # set once the home was deleted under us
        try:
            self.endpoint = endpoint_provider()
        except RedisStoppedByUser as exc:
            # Open anyway: a submit still goes to the outbox, and a worker waits for `redis start`.
            self._note_user_stop(exc)
            self.endpoint = _NOWHERE
        self._client = self.endpoint.client()
        self._blocking = self.endpoint.client(socket_timeout=max_block_s + 5.0)
        self.connected = self._user_stop is None

    @property
    def client(self) -> redis.Redis:
        """The client for ordinary (non-blocking) commands."""
        return self._client

    @property
    def blocking(self) -> redis.Redis:
        """The client for BLPOP / XREAD BLOCK of at most `max_block_s`."""
        return self._blocking

    def close(self) -> None:
        """Close both clients; later calls raise RedisUnavailable."""
        self._closed.set()
        with self._lock:
            self._client.close()
            self._blocking.close()

    def _ensure_connected(self) -> bool:  # noqa: PLR0911 - the seed's recovery loop: each way out says why
        """PING; on failure rebuild the clients up to `attempts` times, `delay_s` apart."""
        with self._lock:
            try:
                if self._client.ping():
                    return True
            except RECOVERABLE_ERRORS as exc:
                if self.connected:
                    log.warning("Redis connection lost: %s", exc)
                self.connected = False
            for attempt in range(1, self.attempts + 1):
                if self._closed.is_set():
                    return False
                try:
                    self._reconnect()
                    self.connected = True
                    self._user_stop = self._home_gone = None
                    log.info("Connected to Redis successfully")
                    return True
                except RedisStoppedByUser as exc:
                    self._note_user_stop(exc)
                    return False  # no point in retrying: only `redis start` ends it
                except RedisHomeGone as exc:
                    if self._home_gone is None:
                        log.error("%s", exc)
                    self._home_gone, self._user_stop = exc, None  # a stop recorded in a home now gone no longer holds
                    return False
                except (*RECOVERABLE_ERRORS, RuntimeError) as exc:  # type: ignore[misc]
                    log.warning("Reconnect attempt %d/%d failed: %s", attempt, self.attempts, exc)
                if attempt < self.attempts and self._closed.wait(self.delay_s):
                    return False
            return False

    def _note_user_stop(self, exc: RedisStoppedByUser) -> None:
        if self._user_stop is None:
            log.info("Redis stopped by the user; waiting for `comfystudio-desktop redis start`")
        self._user_stop = exc

    def _unavailable(self, exc: BaseException) -> RedisUnavailable:
        if self._home_gone is not None:  # first: nothing, not even `redis start`, brings a deleted home back
            return RedisHomeGoneUnavailable(str(self._home_gone))
        if self._user_stop is not None:
            return RedisStoppedUnavailable(str(self._user_stop))
        return RedisUnavailable(f"Redis is unreachable: {exc}")

    def _reconnect(self) -> None:
        endpoint = self._provider()
        client = endpoint.client()
        client.ping()
        blocking = endpoint.client(socket_timeout=self.max_block_s + 5.0)
        old = (self._client, self._blocking)
        self.endpoint, self._client, self._blocking = endpoint, client, blocking
        for stale in old:
            stale.close()

    def call(self, operation: Callable[[redis.Redis], T], *, blocking: bool = False, reconnect: bool = True) -> T:
        """Run `operation(client)`; on a connection error reconnect (seed semantics) and run it once more.

        Operations passed here must be idempotent: a write whose reply was lost is sent again.
        Raises RedisUnavailable when the server stays unreachable.
        """
        try:
            result = operation(self._blocking if blocking else self._client)
        except RECOVERABLE_ERRORS as exc:
            if self.connected:
                log.warning("Redis connection lost: %s", exc)
                self.connected = False
            if not reconnect or not self._ensure_connected():
                raise self._unavailable(exc) from exc
        else:
            if not self.connected:  # the server came back and redis-py's pool reconnected on its own
                self.connected = True
                log.info("Connected to Redis successfully")
            return result
        try:
            return operation(self._blocking if blocking else self._client)
        except RECOVERABLE_ERRORS as exc:
            self.connected = False
            raise self._unavailable(exc) from exc
