"""The start lock is a real OS lock: racing starters make one server, a dead holder frees it, nothing lingers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import filelock
import psutil
import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisServerError
from tests.conftest import REPO_ROOT
from tests.helpers import wait_until

RACER = Path(__file__).parent / "procs" / "start_racer.py"
RACERS = 3
# Each round starts a server and stops it. A Windows process start is far slower than a fork (redis-server.exe
# takes 2-4 s to start under Wine's CI stage): 12 rounds there keep the test inside its 180 s timeout, which on
# Windows aborts the whole session, and every round is still three starters racing for one lock.
ROUNDS = 12 if os.name == "nt" else 50


def servers_of(home: Home) -> list[psutil.Process]:
    """Every redis/valkey server process whose working folder is this home's Redis folder."""
    server = EmbeddedRedis(home)
    found = []
    for proc in psutil.process_iter():
        if server.owns(proc):
            found.append(proc)
    return found


def lock_is_free(server: EmbeddedRedis) -> bool:
    probe = filelock.FileLock(server.lock_file, timeout=0, thread_local=False, preserve_lock_file=True)
    try:
        probe.acquire()
    except filelock.Timeout:
        return False
    probe.release()
    return True


@pytest.fixture
def racers(home: Home) -> Iterator[list[subprocess.Popen[str]]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, str(RACER), str(home.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env) for _ in range(RACERS)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield procs
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        EmbeddedRedis(home).stop()


def test_racing_starters_make_exactly_one_server_each_round(home: Home,
                                                            racers: list[subprocess.Popen[str]]) -> None:
    server = EmbeddedRedis(home)
    started = time.monotonic()
    for round_no in range(ROUNDS):
        for proc in racers:  # as close together as pipes allow; the lock must sort them out
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = {proc.stdout.readline().strip() for proc in racers if proc.stdout is not None}
        assert len(answers) == 1 and next(iter(answers)).startswith("port "), (round_no, answers)
        running = servers_of(home)
        assert len(running) == 1, (round_no, running)
        record = server.running_record()
        assert record is not None and record.pid == running[0].pid
        assert answers == {f"port {server.endpoint(record).port}"}
        assert lock_is_free(server)
        assert server.stop() is True
        wait_until(lambda: not servers_of(home), 10, message="the server to exit")
    print(f"{ROUNDS} rounds of {RACERS} racers in {time.monotonic() - started:.1f} s")
    assert server.lock_file.exists()  # never deleted to release it (Windows could not)


def test_a_killed_holder_releases_the_lock(home: Home) -> None:
    server = EmbeddedRedis(home)
    code = ("import sys, time; from pathlib import Path; from comfystudio_desktop.home import Home;"
            "from comfystudio_desktop.supervise.redis_server import EmbeddedRedis\n"
            "with EmbeddedRedis(Home(Path(sys.argv[1]))).start_lock():\n"
            "    print('held', flush=True); time.sleep(300)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(home.root)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO_ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RedisServerError, match=r"start\.lock"), server.start_lock(timeout=0.2):  # names the file
            pass
        holder.kill()
        holder.wait(10)
        with server.start_lock(timeout=5):  # the OS let go of it with the holder
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_two_threads_of_one_process_exclude_each_other(home: Home) -> None:
    server = EmbeddedRedis(home)
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with server.start_lock():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RedisServerError), EmbeddedRedis(home).start_lock(timeout=0.2):
            pass
    finally:
        release.set()
        thread.join(10)


def test_a_failed_start_stops_the_server_it_spawned(home: Home) -> None:
    server = EmbeddedRedis(home)
    server.pidfile.mkdir()  # the pid file cannot be written: a directory is in the way
    with pytest.raises(RedisServerError, match="pid file"):
        server.ensure_running()
    assert servers_of(home) == []
    assert lock_is_free(server)


def test_stop_tolerates_the_server_exiting_at_any_moment(home: Home) -> None:
    server = EmbeddedRedis(home)
    for delay in (0.0, 0.001, 0.003, 0.01, 0.03):
        server.ensure_running()
        record = server.running_record()
        assert record is not None
        victim = psutil.Process(record.pid)  # kill() checks it is still this process, not a reused pid

        def kill(victim: psutil.Process = victim) -> None:
            with contextlib.suppress(psutil.NoSuchProcess):  # stop() may have been quicker
                victim.kill()

        killer = threading.Timer(delay, kill)
        killer.start()
        try:
            server.stop()  # whatever step the kill lands on: no NoSuchProcess, no traceback
        finally:
            killer.join(5)
        wait_until(lambda: not servers_of(home), 10, message="the server to exit")
        assert server.running_record() is None


def test_a_supervised_start_that_cannot_record_its_pid_stops_the_server(home: Home) -> None:
    from comfystudio_desktop.supervise.redis_service import RedisService

    server = EmbeddedRedis(home)
    server.pidfile.mkdir()  # unrecorded, the server would be invisible to the CLI, which would start a second one
    service = RedisService(server)
    try:
        with pytest.raises(OSError, match="pid file"):
            service.process.start()
        assert servers_of(home) == []
        assert lock_is_free(server)
    finally:
        service.process.stop()
