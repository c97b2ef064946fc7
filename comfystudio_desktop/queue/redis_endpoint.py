"""Where the queue's Redis listens and how to log in, and the errors of the embedded server.

redis-py is imported where a client is made, not with this module: finding the home's server (the pid file, the
password) is also what `status` does before it reads one record without redis-py (`cli_status`), and importing
redis-py alone costs more than that whole command's budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aioredis

__all__ = [
    "USER_STOP_MARKER",
    "USER_STOP_MESSAGE",
    "RedisEndpoint",
    "RedisHomeGone",
    "RedisServerError",
    "RedisStoppedByUser",
    "answers_ping",
    "one_shot_options",
]

#: The file a deliberate `redis stop` leaves in the Redis folder.
USER_STOP_MARKER = "stopped-by-user"
USER_STOP_MESSAGE = "Redis was stopped by the user; run `comfystudio-desktop redis start`"


class RedisServerError(RuntimeError):
    """The embedded server cannot be found, started or reached; the message says what to do."""


class RedisHomeGone(RedisServerError):
    """The home's Redis folder was deleted under a running process; a new empty queue must not replace it."""


class RedisStoppedByUser(RedisServerError):
    """The user stopped the server on purpose (`redis stop`); nothing starts it again until `redis start`."""


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """Where a Redis server listens and how to log in. `repr` hides the password."""

    host: str
    port: int
    password: str | None
    embedded: bool
    db: int = 0
    version: str = ""
    url: str = ""  # for an external server given by URL

    def __repr__(self) -> str:
        where = self.url.split("@")[-1] if self.url else f"{self.host}:{self.port}"
        return f"RedisEndpoint({where}, embedded={self.embedded}, version={self.version or '?'})"

    __str__ = __repr__

    def client(self, *, socket_timeout: float | None = 5.0, **kwargs: object) -> redis.Redis:
        """A new client for this endpoint with the seed's connection options."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options: dict[str, Any] = {
            # One immediate retry replaces a pooled connection that died with a restarted server; longer waits
            # are the connection layer's job (the seed's 5 attempts 2 s apart), not redis-py's backoff.
            "retry": Retry(NoBackoff(), 1),
            "socket_connect_timeout": 5,
            "socket_timeout": socket_timeout,
            "health_check_interval": 30,
            "decode_responses": True,
            # RESP2 explicitly: the Windows bundle is Redis 5.0, which has no HELLO (redis-py would warn each time).
            "protocol": 2,
            **kwargs,
        }
        # From redis-py 6.0 on, retrying on timeouts is the default and the flag is deprecated.
        if int(redis.__version__.split(".")[0]) < 6:
            options["retry_on_timeout"] = True
        if self.url:
            return redis.Redis.from_url(self.url, **options)
        return redis.Redis(host=self.host, port=self.port, password=self.password, db=self.db,
                           **options)

    def async_client(self, *, socket_timeout: float) -> aioredis.Redis:
        """A new asyncio client (the event-stream readers) with the same login and protocol as `client`."""
        import redis.asyncio as aioredis

        options: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": socket_timeout,
                                   "decode_responses": True, "protocol": 2}
        if self.url:
            return aioredis.Redis.from_url(self.url, **options)
        return aioredis.Redis(host=self.host, port=self.port, password=self.password, db=self.db, **options)


def one_shot_options(timeout_s: float) -> dict[str, Any]:
    """Client options for one command that must not be retried: a failed PING is an answer, a SHUTDOWN is not sent
    twice, and nothing waits longer than `timeout_s`."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "health_check_interval": 0,
            "retry": Retry(NoBackoff(), 0)}


def answers_ping(client: redis.Redis) -> bool:
    """PING once with `client`, then close it: False when refused, timed out, still loading the AOF, …"""
    import redis

    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()
