"""A deliberate `redis stop` holds: workers wait and say so until `redis start`; a deleted home is never recreated.

Also: clients speak RESP2 explicitly (the Windows bundle is Redis 5.0, which has no HELLO).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.connection import (
    RedisHomeGoneUnavailable,
    RedisStoppedUnavailable,
    RedisUnavailable,
    ResilientRedis,
)
from comfystudio_desktop.runtime import allow_redis_start, open_queue
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_server import (
    USER_STOP_MESSAGE,
    EmbeddedRedis,
    RedisServerError,
    RedisStoppedByUser,
)
from comfystudio_desktop.supervise.redis_service import RedisService
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import FakeComfyProcess
from tests.helpers import wait_until

CHECKPOINT = "tiny/sd15-random.safetensors"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def server_processes(home: Home) -> list[psutil.Process]:
    server = EmbeddedRedis(home)
    return [p for p in psutil.process_iter() if server.owns(p)]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(output_dir=tmp_path / "comfy-out", step_time=0.02) as proc:
        yield proc


@pytest.fixture
def stopped_at_end(home: Home) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(home)
    yield server
    server.clear_user_stop()
    server.stop()


def test_clients_speak_resp2(redis_server: EmbeddedRedis) -> None:
    client = redis_server.endpoint().client()
    try:
        assert str(client.client_info()["resp"]) == "2"
    finally:
        client.close()


def test_cli_prints_no_protocol_warning(home: Home, stopped_at_end: EmbeddedRedis) -> None:
    for args in (("jobs",), ("redis", "status"), ("services",)):
        done = cli(home.root, *args)
        assert "HELLO" not in done.stderr and "RESP3" not in done.stderr, done.stderr


def test_a_user_stop_is_not_undone_by_reconnects(home: Home, stopped_at_end: EmbeddedRedis) -> None:
    server = stopped_at_end
    conn = ResilientRedis(server.ensure_running, delay_s=0.05)
    try:
        assert server.stop(by_user=True) is True
        with pytest.raises(RedisStoppedUnavailable, match="stopped by the user"):
            conn.call(lambda c: c.ping())
        with pytest.raises(RedisStoppedByUser):
            server.ensure_running()
        assert server_processes(home) == []
        server.ensure_running(by_user=True)  # `redis start`
        assert conn.call(lambda c: c.ping())
    finally:
        conn.close()


def test_the_window_may_end_a_user_stop(home: Home, stopped_at_end: EmbeddedRedis) -> None:
    server = stopped_at_end
    server.ensure_running()
    server.stop(by_user=True)
    allow_redis_start(home, Settings())
    assert not server.stopped_by_user()
    assert server.ensure_running().client().ping()


def test_the_watchdog_does_not_restart_a_user_stop(home: Home, stopped_at_end: EmbeddedRedis) -> None:
    server = stopped_at_end
    server.ensure_running()
    server.stop(by_user=True)
    service = RedisService(server)
    try:
        with pytest.raises(OSError, match="stopped by the user"):
            service.process.start()
    finally:
        service.process.stop()
    assert server_processes(home) == []


def test_a_queue_opened_during_a_user_stop_keeps_submits_in_the_outbox(home: Home,
                                                                       stopped_at_end: EmbeddedRedis) -> None:
    stopped_at_end.ensure_running()
    assert cli(home.root, "redis", "stop").stdout.strip() == "stopped"
    listed = cli(home.root, "jobs")
    assert listed.returncode == 2
    assert listed.stderr.strip().splitlines() == [f"comfystudio-desktop: error: {USER_STOP_MESSAGE}"]
    submitted = cli(home.root, "submit", "--prompt", "kept", "--model", CHECKPOINT)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert len(list(home.outbox.glob("*.json"))) == 1
    assert server_processes(home) == []
    started = cli(home.root, "redis", "start")
    assert started.returncode == 0 and started.stdout.startswith("running"), started.stderr
    status = cli(home.root, "status", job_id, "--json")  # opening the queue delivers the outbox
    assert status.returncode == 0 and '"queued"' in status.stdout, status.stderr


def test_a_deleted_home_is_never_recreated(tmp_path: Path) -> None:
    home = Home(tmp_path / "doomed").create()
    server = EmbeddedRedis(home)
    rt = open_queue(home, Settings(), reconnect_delay_s=0.05)
    try:
        server.stop()
        shutil.rmtree(home.root)
        with pytest.raises(RedisUnavailable, match="gone"):
            rt.queue.conn.call(lambda c: c.ping())
        with pytest.raises(RedisServerError, match="gone"):
            server.ensure_running()
        assert not home.root.exists()  # no fresh secret, no empty queue
    finally:
        rt.close()


def test_a_home_deleted_during_a_user_stop_is_reported_as_gone(tmp_path: Path) -> None:
    home = Home(tmp_path / "doomed").create()
    server = EmbeddedRedis(home)
    rt = open_queue(home, Settings(), reconnect_delay_s=0.05)
    try:
        server.stop(by_user=True)
        with pytest.raises(RedisStoppedUnavailable):
            rt.queue.conn.call(lambda c: c.ping())
        shutil.rmtree(home.root)
        # The stop was recorded in the home now deleted: a worker must not keep waiting for `redis start`.
        with pytest.raises(RedisHomeGoneUnavailable, match="gone"):
            rt.queue.conn.call(lambda c: c.ping())
        assert not home.root.exists()
    finally:
        rt.close()


def test_headless_worker_waits_while_stopped_then_reconnects(home: Home, fake: FakeComfyProcess,
                                                             stopped_at_end: EmbeddedRedis, tmp_path: Path) -> None:
    save_settings(home.config_file, Settings(comfy_url=fake.url))
    assert cli(home.root, "redis", "start").returncode == 0
    log_path = tmp_path / "worker.err"
    with open(log_path, "wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "--verbose",
                                   "worker"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=err)

    def worker_log() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    try:
        wait_until(lambda: "started (ComfyUI" in worker_log(), 60, message="the worker to start")
        assert cli(home.root, "redis", "stop").stdout.strip() == "stopped"
        # The worker notices, says why (once), and keeps asking (about once a second, in the debug log) without
        # starting the server.
        wait_until(lambda: worker_log().count("still unavailable") >= 3, 60,
                   message="the worker to retry several times while Redis is stopped by the user")
        assert server_processes(home) == []
        assert EmbeddedRedis(home).stopped_by_user()
        assert worker.poll() is None
        assert cli(home.root, "redis", "start").returncode == 0
        wait_until(lambda: "Connected to Redis successfully" in worker_log(), 30,
                   message="the worker to reconnect after `redis start`")
        submitted = cli(home.root, "submit", "--prompt", "after the restart", "--model", CHECKPOINT, "--wait",
                        "--timeout", "60", "--json")
        assert submitted.returncode == 0, submitted.stderr
        assert JobStatus.FINISHED.value in submitted.stdout
        assert len(server_processes(home)) == 1
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def test_headless_worker_exits_with_one_line_when_its_home_is_deleted(tmp_path: Path, fake: FakeComfyProcess) -> None:
    home = Home(tmp_path / "doomed").create()
    save_settings(home.config_file, Settings(comfy_url=fake.url))
    log_path = tmp_path / "worker.err"
    with open(log_path, "wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "worker"],
                                  cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: "started (ComfyUI" in log_path.read_text(encoding="utf-8", errors="replace"), 60,
                   message="the worker to start")
        # Stopped as `redis stop` does, so the worker cannot start the server again (in the home about to go) in
        # the moment before the move; a server started there would follow the folder and keep the worker going.
        # The worker may see the stop first and the missing home next: the deleted home must still end it.
        EmbeddedRedis(home).stop(by_user=True)
        # Moved away in one step (the worker may still write its log into the old folder), then deleted.
        trash = tmp_path / "trash"
        home.root.rename(trash)
        code = worker.wait(60)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    last = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1]
    assert code == 2
    assert last.startswith("comfystudio-desktop: error: ") and "gone" in last
    assert "Traceback" not in log_path.read_text(encoding="utf-8", errors="replace")
    assert not home.root.exists()  # never made anew: no fresh secret, no empty queue
