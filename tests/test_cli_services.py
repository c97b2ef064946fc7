"""`comfystudio-desktop services`: states read from pid files and health checks, with no watchdog running."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop.cli_services import Reach, cmd_services, comfy_report, redis_report
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.aof_repair import find_aof
from comfystudio_desktop.supervise.comfy_launcher import comfy_pidfile
from comfystudio_desktop.supervise.pidfile import PidRecord, write_pidfile
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis, RedisServerError
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import describe_duration
from comfystudio_desktop.supervise.services import build_services
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import FakeComfyProcess, free_port

FAKE_MAIN = Path(__file__).parent / "procs" / "fake_comfy_main.py"


def run_services(home: Home, settings: Settings, capsys: pytest.CaptureFixture[str], *,
                 as_json: bool = True) -> tuple[int, list[dict[str, object]] | str]:
    code = cmd_services(argparse.Namespace(json=as_json), home, settings)
    out = capsys.readouterr().out
    return code, json.loads(out) if as_json else out


def test_nothing_running(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    code, reports = run_services(home, Settings(comfy_url=f"http://127.0.0.1:{free_port()}"), capsys)
    assert code == 1
    assert isinstance(reports, list)
    assert [(r["name"], r["state"]) for r in reports] == [("redis-server", "stopped"), ("comfyui", "unreachable")]


def test_embedded_redis_and_external_comfyui_running(home: Home, redis_server: EmbeddedRedis,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    record = redis_server.running_record()
    endpoint = redis_server.endpoint()
    assert record is not None
    with FakeComfyProcess(step_time=0.02) as fake:
        settings = Settings(comfy_url=fake.url)
        code, reports = run_services(home, settings, capsys)
        assert code == 0 and isinstance(reports, list)
        redis_row, comfy_row = reports
        assert redis_row["state"] == "running" and redis_row["pid"] == record.pid
        assert redis_row["address"] == f"127.0.0.1:{endpoint.port}" and redis_row["version"] == endpoint.version
        assert comfy_row == {"name": "comfyui", "state": "external", "pid": None, "address": fake.url, "version": "",
                             "uptime_s": None, "message": ""}
        code, text = run_services(home, settings, capsys, as_json=False)
        lines = str(text).splitlines()
        assert lines[0].split()[:2] == ["redis-server", "running"] and f"pid {record.pid}" in lines[0]
        assert lines[1].split() == ["comfyui", "external", fake.url]
    assert endpoint.password is not None and endpoint.password not in str(text)


def test_managed_services_started_by_the_window(home: Home, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(comfy_mode="managed", comfy_python=sys.executable, comfy_main=str(FAKE_MAIN),
                        comfy_args=("--output-dir", str(tmp_path / "out"), "--input-dir", str(tmp_path / "in")))
    with build_services(home, settings, redis_policy=RestartPolicy(initial_backoff_s=0.1), interval_s=0.1,
                        comfy_readiness_timeout_s=30.0) as services:
        assert services.wait_until_running(30)
        pids = {name: state.pid for name, state in services.states().items()}
        code, reports = run_services(home, settings, capsys)
        assert code == 0 and isinstance(reports, list)
        assert {(r["name"], r["state"], r["pid"]) for r in reports} == {
            ("redis-server", "running", pids["redis-server"]), ("comfyui", "running", pids["comfyui"])}
        assert reports[1]["address"] == services.comfy_url
    code, reports = run_services(home, settings, capsys)
    assert code == 1 and isinstance(reports, list)
    assert [r["state"] for r in reports] == ["stopped", "stopped"]


def test_a_damaged_aof_is_named_when_redis_is_stopped(home: Home) -> None:
    server = EmbeddedRedis(home)
    client = server.ensure_running().client()
    for i in range(30):
        client.set(f"k{i}", "v" * 20)
    client.close()
    server.stop()
    layout = find_aof(home.redis)
    assert layout is not None
    incr = layout.parts[-1]
    data = bytearray(incr.read_bytes())
    data[data.index(b"*3\r\n$3\r\nSET", len(data) // 2)] = ord("!")
    incr.write_bytes(bytes(data))
    with pytest.raises(RedisServerError, match="did not start"):
        server.ensure_running()
    report = redis_report(home, Settings())
    assert report.state is Reach.STOPPED
    assert report.message.startswith("The queue's append-only file is damaged: Bad file format")


@pytest.mark.skipif(os.name != "posix", reason="SIGSTOP freezes a process only on POSIX")
def test_a_frozen_server_is_unreachable(home: Home, redis_server: EmbeddedRedis) -> None:
    record = redis_server.running_record()
    assert record is not None
    os.kill(record.pid, signal.SIGSTOP)
    try:
        report = redis_report(home, Settings(), timeout_s=0.3)
    finally:
        os.kill(record.pid, signal.SIGCONT)
    assert report.state is Reach.UNREACHABLE and report.pid == record.pid and "does not answer" in report.message


def test_a_reused_pid_is_not_reported_as_comfyui(home: Home) -> None:
    me = psutil.Process()
    write_pidfile(comfy_pidfile(home.run), PidRecord(pid=me.pid, create_time=me.create_time() - 1000.0,
                                                     extra={"port": free_port()}))
    settings = Settings(comfy_mode="managed", comfy_main=str(FAKE_MAIN))
    assert comfy_report(home, settings).state is Reach.STOPPED


def test_the_command_line_runs_it(tmp_path: Path) -> None:
    home = tmp_path / "cli-home"
    done = subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home),
                           "--comfy-url", f"http://127.0.0.1:{free_port()}", "services", "--json"],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 1, done.stderr
    assert [r["state"] for r in json.loads(done.stdout)] == ["stopped", "unreachable"]


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (59.9, "59 s"), (65, "1 min 5 s"), (7500, "2 h 05 min"),
                                               (3 * 86_400 + 4 * 3600, "3 d 4 h"), (-3, "0 s")])
def test_durations_read_well(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text
