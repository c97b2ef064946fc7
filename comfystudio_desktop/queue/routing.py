"""Several backends on one queue: what each publishes about itself, and the claim that routes by model.

Each backend's worker publishes its ComfyUI's model list (and the workflows whose nodes it has) as sets that
expire unless refreshed, plus a state hash; `RoutedJobQueue.claim` hands a worker only jobs its backend can run
(see `routing_lua`). Every window and CLI reads the same keys (`BackendRegistry.views`).
"""

from __future__ import annotations

import logging
import secrets
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from comfystudio_desktop.jobs import now_iso
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import (
    EVENTS_KEY,
    EVENTS_MAXLEN,
    LEASES_KEY,
    PENDING_KEY,
    TOKENS_KEY,
    JobQueue,
    Lease,
    LeaseState,
)
from comfystudio_desktop.queue.routing_lua import ROUTED_CLAIM

__all__ = ["BACKENDS_KEY", "DISABLED_KEY", "BackendPresence", "BackendRegistry", "BackendState", "BackendView",
           "RoutedJobQueue", "backend_key", "median_s"]

log = logging.getLogger(__name__)

BACKENDS_KEY = "cs:backends"
DISABLED_KEY = "cs:backends:disabled"
CLAIM_WINDOW = 200  # pending jobs a claim looks at, in queue order
PREFER_LOADED_MS = 750  # how long a job waits for the backend that has its model loaded
PRESENCE_TTL_MS = 10_000  # a backend that stops refreshing its lists is offered no jobs after this
_TIMES_KEPT = 50


def backend_key(name: str, part: str = "") -> str:
    """`cs:backend:{name}` or `cs:backend:{name}:{part}`."""
    return f"cs:backend:{name}:{part}" if part else f"cs:backend:{name}"


class BackendState(StrEnum):
    """What a backend's worker last said about its ComfyUI."""

    UP = "up"
    DOWN = "down"  # ComfyUI does not answer: no jobs are offered to it
    STOPPED = "stopped"  # its worker stopped cleanly
    GONE = "gone"  # nothing refreshed it for a while (a dead worker or machine)


@dataclass(frozen=True, slots=True)
class BackendPresence:
    """What a worker publishes about its backend on each refresh."""

    state: BackendState
    url: str
    models: frozenset[str] = frozenset()
    workflows: frozenset[str] = frozenset()  # empty: not checked (every workflow is offered)
    vram_free: int = -1  # bytes, from /system_stats (-1: unknown)
    vram_total: int = -1
    device: str = ""


@dataclass(frozen=True, slots=True)
class BackendView:
    """One backend as a panel or `backends` shows it."""

    name: str
    state: BackendState
    enabled: bool
    url: str = ""
    current_job: str = ""
    loaded_model: str = ""
    vram_free: int = -1
    vram_total: int = -1
    device: str = ""
    jobs_done: int = 0
    median_s: float | None = None
    models: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for `backends --json`)."""
        return {"name": self.name, "state": str(self.state), "enabled": self.enabled, "url": self.url,
                "current_job": self.current_job, "loaded_model": self.loaded_model, "vram_free": self.vram_free,
                "vram_total": self.vram_total, "device": self.device, "jobs_done": self.jobs_done,
                "median_s": self.median_s, "models": sorted(self.models)}


def median_s(times_ms: Iterable[str]) -> float | None:
    """The median of run times kept as millisecond strings (bad entries ignored); None without any."""
    values = [int(t) / 1000 for t in times_ms if t.isascii() and t.isdigit()]
    return statistics.median(values) if values else None


def _int(text: str | None, default: int = -1) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


class BackendRegistry:
    """Reads and writes the backend keys."""

    def __init__(self, conn: ResilientRedis) -> None:
        self.conn = conn

    def publish(self, name: str, presence: BackendPresence, *, lists_changed: bool = True) -> None:
        """Store the backend's state and its lists (with a fresh expiry); `lists_changed` wakes idle workers.

        A backend whose ComfyUI is down has its lists removed at once, so no claim offers it a job meanwhile.
        """
        def write(c: redis.Redis) -> None:
            pipe = c.pipeline(transaction=True)
            pipe.sadd(BACKENDS_KEY, name)
            info = backend_key(name)
            pipe.hset(info, mapping={"state": str(presence.state), "url": presence.url, "updated_at": now_iso(),
                                     "vram_free": presence.vram_free, "vram_total": presence.vram_total,
                                     "device": presence.device})
            pipe.pexpire(info, 7 * 24 * 3600 * 1000)
            for part, values in (("models", presence.models), ("workflows", presence.workflows)):
                key = backend_key(name, part)
                if presence.state is not BackendState.UP or (part == "workflows" and not values):
                    pipe.delete(key)  # down: offered nothing; no workflow list: not checked, any workflow
                    continue
                # Rewritten each time, not only when changed: a list that expired during a stall (a sleeping
                # machine, a slow disk) comes back with the next refresh.
                pipe.delete(key)
                # An empty set cannot exist in Redis: a marker keeps "up, no models" apart from "gone".
                pipe.sadd(key, "\x00", *sorted(values))
                pipe.pexpire(key, PRESENCE_TTL_MS)
            pipe.execute()

        self.conn.call(write)
        if lists_changed and presence.state is BackendState.UP:
            pending = self.conn.call(lambda c: c.llen("cs:wake"))
            if not pending:  # jobs waiting for this backend's models: wake the workers to look again
                self.conn.call(lambda c: c.rpush("cs:wake", "1"))

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Let the backend take jobs, or not (it finishes what it runs); every worker sees it at its next claim."""
        if enabled:
            self.conn.call(lambda c: c.srem(DISABLED_KEY, name))
        else:
            self.conn.call(lambda c: c.sadd(DISABLED_KEY, name))
        log.info("Backend %r %s", name, "enabled" if enabled else "disabled")

    def record_run(self, name: str, job_id: str, duration_s: float) -> None:
        """Count a finished job and keep its run time for the median."""
        def write(c: redis.Redis) -> None:
            pipe = c.pipeline(transaction=True)
            info = backend_key(name)
            pipe.hincrby(info, "jobs_done", 1)
            times = backend_key(name, "times")
            pipe.lpush(times, int(duration_s * 1000))
            pipe.ltrim(times, 0, _TIMES_KEPT - 1)
            pipe.execute()
            # Clear the current job only if it is still this one (a deeper pipeline claimed the next meanwhile).
            c.eval("if redis.call('HGET', KEYS[1], 'current_job') == ARGV[1] then "
                   "redis.call('HSET', KEYS[1], 'current_job', '') end return 1", 1, info, job_id)

        self.conn.call(write)

    def names(self) -> list[str]:
        """Every backend that ever published, sorted."""
        return sorted(str(n) for n in self.conn.call(lambda c: c.smembers(BACKENDS_KEY)))

    def views(self, names: Iterable[str] = ()) -> list[BackendView]:
        """Each backend's state; `names` adds configured backends that have not published yet."""
        every = sorted(set(self.names()) | set(names))

        def read(c: redis.Redis) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            pipe.smembers(DISABLED_KEY)
            for name in every:
                pipe.hgetall(backend_key(name))
                pipe.smembers(backend_key(name, "models"))
                pipe.lrange(backend_key(name, "times"), 0, -1)
            return pipe.execute()

        reply = self.conn.call(read)
        disabled = {str(n) for n in reply[0]}
        views = []
        for index, name in enumerate(every):
            info, models, times = reply[1 + 3 * index: 4 + 3 * index]
            views.append(_view(name, info, models, times, enabled=name not in disabled))
        return views

    def holders(self) -> dict[str, tuple[str, ...]]:
        """model → the live backends that have it (for the models combo)."""
        out: dict[str, list[str]] = {}
        for view in self.views():
            for model in view.models:
                out.setdefault(model, []).append(view.name)
        return {model: tuple(names) for model, names in out.items()}


def _view(name: str, info: dict[str, str], models: set[str], times: list[str], *, enabled: bool) -> BackendView:
    try:
        state = BackendState(info.get("state", "gone"))
    except ValueError:
        state = BackendState.GONE
    if state is BackendState.UP and not models:
        state = BackendState.GONE  # the lists expired: nothing refreshed them
    return BackendView(
        name=name, state=state, enabled=enabled, url=info.get("url", ""), current_job=info.get("current_job", ""),
        loaded_model=info.get("loaded_model", ""), vram_free=_int(info.get("vram_free")),
        vram_total=_int(info.get("vram_total")), device=info.get("device", ""),
        jobs_done=max(0, _int(info.get("jobs_done"), 0)), median_s=median_s(times),
        models=frozenset(m for m in models if m != "\x00"))


class RoutedJobQueue(JobQueue):
    """A JobQueue whose claims only take jobs that backend `backend` can run; finished runs are counted."""

    def __init__(self, conn: ResilientRedis, backend: str, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.backend = backend
        self.registry = BackendRegistry(conn)
        self.prefer_loaded_ms = PREFER_LOADED_MS
        self._scripts["ROUTED_CLAIM"] = conn.client.register_script(ROUTED_CLAIM)
        self._claimed_at: dict[str, float] = {}

    def _claim_once(self, worker_id: str, token: str) -> Lease | None:
        for _ in range(20):
            deadline = int(time.time() * 1000 + self.lease_seconds * 1000)
            reply = self.run_raw("ROUTED_CLAIM", [PENDING_KEY, LEASES_KEY, TOKENS_KEY, EVENTS_KEY],
                                 [token, deadline, now_iso(), worker_id, EVENTS_MAXLEN, self.backend, CLAIM_WINDOW,
                                  int(time.time() * 1000), self.prefer_loaded_ms])
            if not reply:
                return None
            lease = self._lease_from_reply(reply, token, worker_id)
            if lease is not None:
                self._claimed_at[lease.job_id] = time.monotonic()
                return lease
            token = secrets.token_hex(16)  # the bad job was failed under the old token: claim afresh
        return None

    def finish(self, lease: Lease, image_url: str, outputs: Iterable[str] = (), *,
               from_cache: bool = False, location: str = "") -> LeaseState:
        """Finish as JobQueue does, and count the run on this backend."""
        state = super().finish(lease, image_url, outputs, from_cache=from_cache, location=location)
        started = self._claimed_at.pop(lease.job_id, None)
        if state is LeaseState.OK and started is not None:
            self.registry.record_run(self.backend, lease.job_id, time.monotonic() - started)
        return state

    def fail(self, lease: Lease, error: str, node_errors: str = "", *, count_attempt: bool = False) -> LeaseState:
        """Fail as JobQueue does (the run is not counted in the backend's times)."""
        self._claimed_at.pop(lease.job_id, None)
        return super().fail(lease, error, node_errors, count_attempt=count_attempt)

    def requeue(self, lease: Lease, reason: str, *, count_attempt: bool = True) -> str:
        """Requeue as JobQueue does (the run is not counted in the backend's times)."""
        self._claimed_at.pop(lease.job_id, None)
        return super().requeue(lease, reason, count_attempt=count_attempt)

    def finish_and_claim(self, lease: Lease, image_url: str, outputs: Iterable[str] = ()) -> tuple[
            LeaseState, Lease | None]:
        """Finish, then claim through the routed claim (two round trips: the claim must see this backend)."""
        return self.finish(lease, image_url, outputs), self.claim(lease.worker_id)
