"""Shared fixtures: a fresh home, the app's own embedded redis-server, and the queue on top of it.

Every process a test starts is stopped by the test; an autouse check fails a test that leaves a child running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.queue.redis_server import EmbeddedRedis, RedisEndpoint

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """Fail a test that leaves a child process of its own running (and clean it up)."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    leftovers = []
    for child in me.children(recursive=True):
        if child.pid in before:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                child.wait(1)
                continue
            leftovers.append(f"{child.pid} {' '.join(child.cmdline())[:120]}")
            child.kill()
            child.wait(5)
        except psutil.NoSuchProcess:
            continue
    assert not leftovers, f"test left processes running: {leftovers}"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A fresh, created home folder."""
    return Home(tmp_path / "home").create()


@pytest.fixture
def redis_server(home: Home) -> Iterator[EmbeddedRedis]:
    """The home's embedded redis-server, started by the app's manager and stopped afterwards."""
    server = EmbeddedRedis(home)
    server.ensure_running()
    yield server
    server.stop()


def make_queue(server: EmbeddedRedis, home: Home, *, restart: bool = True, **kwargs: float) -> JobQueue:
    """A JobQueue on `server`; with `restart`, reconnecting restarts a dead server (as the CLI does)."""
    provider = server.ensure_running if restart else server.endpoint
    conn = ResilientRedis(provider, delay_s=kwargs.pop("delay_s", 0.1))
    return JobQueue(conn, outbox=Outbox(home.outbox), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def queue(redis_server: EmbeddedRedis, home: Home) -> Iterator[JobQueue]:
    """A JobQueue with short leases for tests."""
    q = make_queue(redis_server, home, lease_seconds=30.0)
    yield q
    q.conn.close()


@pytest.fixture
def endpoint(redis_server: EmbeddedRedis) -> RedisEndpoint:
    """The running server's endpoint."""
    return redis_server.endpoint()
