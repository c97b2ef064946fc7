"""The embedded redis-server: loopback only, password, 0600 secret, one server per home, pid safety."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import psutil
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.pidfile import PidRecord, write_pidfile
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisServerError, find_redis_binary, parse_version
from tests.conftest import REPO_ROOT


def test_listens_on_loopback_only_with_password(redis_server: EmbeddedRedis) -> None:
    endpoint = redis_server.endpoint()
    record = redis_server.running_record()
    assert record is not None
    listening = [c.laddr for c in psutil.Process(record.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
    no_password = redis.Redis(host="127.0.0.1", port=endpoint.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.exceptions.AuthenticationError):
        no_password.ping()
    no_password.close()
    wrong = redis.Redis(host="127.0.0.1", port=endpoint.port, password="guess", socket_timeout=5,
                        retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    wrong.close()
    client = endpoint.client()
    assert client.ping()
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "always"
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    client.close()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_secret_is_private_and_never_logged(home: Home, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = EmbeddedRedis(home)
    endpoint = server.ensure_running()
    try:
        assert oct(server.secret_file.stat().st_mode & 0o777) == "0o600"
        assert oct(server.config_file.stat().st_mode & 0o777) == "0o600"
        password = server.password()
        assert len(password) >= 43  # 32+ random bytes, URL-safe base64
        assert password not in caplog.text
        assert password not in repr(endpoint) and password not in str(endpoint)
    finally:
        server.stop()
    assert password not in server.server_log.read_text()


def test_two_processes_on_one_home_share_one_server(redis_server: EmbeddedRedis, home: Home) -> None:
    code = ("import sys; from pathlib import Path; from comfystudio_desktop.home import Home;"
            "from comfystudio_desktop.supervise.redis_server import EmbeddedRedis;"
            "e = EmbeddedRedis(Home(Path(sys.argv[1]))).ensure_running(); print(e.port)")
    out = subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True, text=True, timeout=60,
                         cwd=REPO_ROOT, check=True)
    assert int(out.stdout.strip()) == redis_server.endpoint().port
    servers = [p for p in psutil.process_iter() if redis_server.owns(p)]
    assert len(servers) == 1


def test_concurrent_starts_make_one_server(home: Home) -> None:
    code = ("import sys; from pathlib import Path; from comfystudio_desktop.home import Home;"
            "from comfystudio_desktop.supervise.redis_server import EmbeddedRedis;"
            "e = EmbeddedRedis(Home(Path(sys.argv[1]))).ensure_running(); print(e.port)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home.root)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO_ROOT) for _ in range(3)]
    ports = {p.communicate(timeout=60)[0].strip() for p in procs}
    server = EmbeddedRedis(home)
    try:
        assert len(ports) == 1
        assert server.running_record() is not None
    finally:
        server.stop()


def test_reused_pid_of_unrelated_process_is_never_touched(home: Home) -> None:
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        real = psutil.Process(unrelated.pid).create_time()
        write_pidfile(EmbeddedRedis(home).pidfile, PidRecord(pid=unrelated.pid, create_time=real - 1000.0,
                                                             extra={"port": 1}))
        server = EmbeddedRedis(home)
        assert server.running_record() is None  # same pid, other start time: not ours
        assert server.stop() is False
        endpoint = server.ensure_running()
        try:
            assert server.running_record().pid != unrelated.pid  # type: ignore[union-attr]
            assert endpoint.client().ping()
            assert unrelated.poll() is None  # still alive, never signalled
        finally:
            server.stop()
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait(10)


def test_stop_saves_and_restart_restores(home: Home) -> None:
    server = EmbeddedRedis(home)
    server.ensure_running().client().set("k", "v")
    assert server.stop() is True
    assert server.running_record() is None
    try:
        assert server.ensure_running().client().get("k") == "v"
    finally:
        server.stop()


def _listen_on(port: int) -> socket.socket:
    """Another program's listening socket on `port`; on Windows exclusive, so no SO_REUSEADDR can share it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name == "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_port_taken_between_choosing_and_binding_it_is_skipped(home: Home,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    squatters: list[socket.socket] = []

    class RacedRedis(EmbeddedRedis):
        """Another program takes the chosen port after it was found free, before redis-server binds it (once)."""

        def prepare_config(self, preferred_port: int = 0) -> int:
            port = super().prepare_config(preferred_port)
            if not squatters:
                squatters.append(_listen_on(port))
            return port

    server = RacedRedis(home)
    try:
        endpoint = server.ensure_running()
        taken = squatters[0].getsockname()[1]
        assert endpoint.port != taken
        assert endpoint.client().ping() is True
        assert f"Port {taken} was taken while redis-server started" in caplog.text
    finally:
        server.stop()
        for sock in squatters:
            sock.close()


def test_binary_search_order(tmp_path: object) -> None:
    assert find_redis_binary().is_file()
    with pytest.raises(RedisServerError, match="does not exist"):
        find_redis_binary("/no/such/redis-server")
    assert parse_version("7.2.4") == (7, 2, 4)
    assert parse_version("5.0") == (5, 0, 0)
