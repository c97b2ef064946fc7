"""Pid files are outside data: only a provable redis-server of this home is ever signalled.

Real processes throughout: a decoy whose pid and true start time are written into the pid file must survive
`redis stop` and `ensure_running`; a redis-server of another home must survive too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.pidfile import (
    PidfileError,
    PidRecord,
    is_ours,
    load_pidfile,
    read_pidfile,
    started_as,
    write_pidfile,
)
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
RECORD_LIKE = st.fixed_dictionaries(
    {},
    optional={"pid": JSON | st.integers(min_value=-(2**70), max_value=2**70),
              "create_time": JSON, "extra": JSON | st.fixed_dictionaries({}, optional={"port": JSON})},
)


@pytest.fixture
def decoy() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated long-running process (a `sleep`): its pid and real start time are what a bad pid file names."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(300)"],
                            stdout=subprocess.PIPE)
    try:
        # Past its exec: until then its command line reads empty (and its start time may still be the parent's).
        # Windows ends the printed line with CRLF.
        assert proc.stdout is not None and proc.stdout.readline().rstrip() == b"up"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _name_in_pidfile(server: EmbeddedRedis, pid: int, port: object = 6379) -> None:
    write_pidfile(server.pidfile, PidRecord(pid=pid, create_time=psutil.Process(pid).create_time(),
                                            extra={"port": port, "version": "7.2.0"}))


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(JSON, RECORD_LIKE))
def test_any_json_is_a_record_or_one_clear_error(tmp_path: Path, data: object) -> None:
    path = tmp_path / "x.pid.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    try:
        record = load_pidfile(path)
    except PidfileError as exc:
        assert "\n" not in str(exc)
        assert read_pidfile(path) is None
        return
    assert record is not None
    assert type(record.pid) is int and 1 < record.pid < 2**32
    assert type(record.create_time) is float and record.create_time > 0
    assert isinstance(record.extra, dict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | st.just(b"[" * 100_000) | st.just(b"\xff\xfe{") | st.just(b"{}" * 40_000))
def test_any_bytes_never_raise_past_the_parser(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "x.pid.json"
    path.write_bytes(raw)
    record = read_pidfile(path)  # never raises
    assert record is None or record.pid > 1


@pytest.mark.parametrize("data", [{"pid": -1, "create_time": 1.0}, {"pid": 0, "create_time": 1.0},
                                  {"pid": 1, "create_time": 1.0}, {"pid": True, "create_time": 1.0},
                                  {"pid": "123", "create_time": 1.0}, {"pid": 2**64, "create_time": 1.0},
                                  {"pid": 1234, "create_time": float("inf")}, {"pid": 1234},
                                  {"pid": 1234, "create_time": 1.0, "extra": []}])
def test_wrong_types_are_refused(tmp_path: Path, data: dict[str, object]) -> None:
    path = tmp_path / "x.pid.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(PidfileError):
        load_pidfile(path)


def test_init_with_its_real_start_time_is_never_ours() -> None:
    try:
        init_started = psutil.Process(1).create_time()
    except psutil.NoSuchProcess:  # Windows has no pid 1 (pid 4 is its System process): refused all the same
        init_started = psutil.boot_time()
    assert not is_ours(PidRecord(pid=1, create_time=init_started))
    me = psutil.Process()
    assert not is_ours(PidRecord(pid=me.pid, create_time=me.create_time()))


def test_same_pid_and_start_time_is_not_enough(decoy: subprocess.Popen[bytes], home: Home) -> None:
    record = PidRecord.of(decoy.pid)
    assert is_ours(record)  # pid + start time alone would pass: that was the bug
    assert not is_ours(record, EmbeddedRedis(home).owns)
    assert not is_ours(record, started_as(("/usr/bin/other-program", "x")))
    assert is_ours(record, started_as(tuple(psutil.Process(decoy.pid).cmdline())))


def test_decoy_survives_stop_and_ensure_running(decoy: subprocess.Popen[bytes], home: Home) -> None:
    server = EmbeddedRedis(home)
    _name_in_pidfile(server, decoy.pid)
    assert server.running_record() is None
    assert server.stop() is False
    assert not server.pidfile.exists()  # stale: removed
    _name_in_pidfile(server, decoy.pid)
    endpoint = server.ensure_running()
    try:
        assert endpoint.client().ping()
        record = server.running_record()
        assert record is not None and record.pid != decoy.pid
    finally:
        assert server.stop() is True
    assert decoy.poll() is None  # never signalled


def test_cli_redis_stop_says_the_pid_file_was_stale(decoy: subprocess.Popen[bytes], home: Home) -> None:
    server = EmbeddedRedis(home)
    _name_in_pidfile(server, decoy.pid)
    done = cli(home.root, "redis", "stop")
    assert done.returncode == 0, done.stderr
    assert f"pid file named pid {decoy.pid}, which is not this home's redis-server; removed" in done.stderr
    assert done.stdout.strip() == "not running"
    assert "Traceback" not in done.stderr
    assert decoy.poll() is None
    assert not server.pidfile.exists()


@pytest.mark.parametrize("content", ['{"pid": -1, "create_time": 1}', '{"pid": 4242, "create_time": 1.0}',
                                     '{"pid": 4242, "create_time": 1.0, "extra": {"port": "x"}}', "[[[[", "\udcff",
                                     '{"pid": 99999999999999999999999, "create_time": 1e308}', ""])
def test_cli_survives_any_pid_file(home: Home, content: str) -> None:
    server = EmbeddedRedis(home)
    server.pidfile.write_text(content, encoding="utf-8", errors="surrogateescape")
    for args in (("redis", "status"), ("redis", "stop"), ("services",)):
        done = cli(home.root, *args)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr
    assert server.running_record() is None


def test_a_server_of_another_home_is_not_ours(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    other = EmbeddedRedis(Home(tmp_path / "other").create())
    theirs = redis_server.running_record()
    assert theirs is not None
    write_pidfile(other.pidfile, theirs)  # the other home's pid file names our running server exactly
    assert other.running_record() is None
    assert other.stop() is False
    assert redis_server.endpoint().client().ping()  # untouched
    assert redis_server.owns(psutil.Process(theirs.pid))


def test_a_running_server_whose_pid_file_was_overwritten_is_adopted_not_doubled(redis_server: EmbeddedRedis,
                                                                                decoy: subprocess.Popen[bytes],
                                                                                home: Home) -> None:
    running = redis_server.running_record()
    assert running is not None
    redis_server.endpoint().client().set("kept", "1")
    _name_in_pidfile(redis_server, decoy.pid)  # someone overwrote the pid file while the server runs
    endpoint = EmbeddedRedis(home).ensure_running()
    assert endpoint.client().get("kept") == "1"  # the same server, not a second one on the same AOF
    record = redis_server.running_record()
    assert record is not None and record.pid == running.pid
    assert decoy.poll() is None
    owned = [p for p in psutil.process_iter() if redis_server.owns(p)]
    assert [p.pid for p in owned] == [running.pid]


def test_redis_stop_finds_a_server_whose_pid_file_was_overwritten(home: Home, decoy: subprocess.Popen[bytes]) -> None:
    server = EmbeddedRedis(home)
    server.ensure_running()
    running = server.running_record()
    assert running is not None
    _name_in_pidfile(server, decoy.pid)
    done = cli(home.root, "redis", "stop")
    assert done.returncode == 0, done.stderr
    assert "which is not this home's redis-server; removed" in done.stderr
    assert done.stdout.strip() == "stopped"
    assert not psutil.pid_exists(running.pid) or psutil.Process(running.pid).status() == psutil.STATUS_ZOMBIE
    assert decoy.poll() is None
