"""Where a Windows user's data lives, and homes under long paths and non-ASCII user names (`C:\\Users\\Jérôme Müller`).

The path tests run everywhere; the CI's Windows stage runs them under Windows CPython with the Windows redis-server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home, resolve_home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.supervise.aof_repair import find_aof, repair_aof
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT, make_queue

windows_only = pytest.mark.skipif(os.name != "nt", reason="Windows folders: platformdirs has no roaming/local split "
                                                          "elsewhere")


def _user_folder(tmp_path: Path) -> Path:
    """A profile folder with spaces and accents, padded so the home's files sit near Windows' 260-character limit."""
    profile = tmp_path / "Users" / "Jérôme Müller"
    padding = max(0, 180 - len(str(profile)) - len("/AppData/Local/ComfyStudio/redis"))
    return profile / ("Données " + "é" * padding) if padding else profile


@windows_only
def test_the_home_is_in_local_appdata_and_an_existing_roaming_home_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / "Jérôme Müller"
    monkeypatch.delenv("COMFYSTUDIO_HOME", raising=False)
    # platformdirs' documented overrides of the known folders.
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", str(profile / "AppData" / "Local"))
    monkeypatch.setenv("WIN_PD_OVERRIDE_APPDATA", str(profile / "AppData" / "Roaming"))
    assert resolve_home() == profile / "AppData" / "Local" / "ComfyStudio"
    roaming_home = Home(profile / "AppData" / "Roaming" / "ComfyStudio").create()
    assert resolve_home() == roaming_home.root  # made by an earlier version: kept, not split in two
    Home(profile / "AppData" / "Local" / "ComfyStudio").create()
    assert resolve_home() == profile / "AppData" / "Local" / "ComfyStudio"


def test_a_home_under_a_non_ascii_user_name_keeps_its_queue_across_a_hard_kill(tmp_path: Path) -> None:
    home = Home(_user_folder(tmp_path) / "AppData" / "Local" / "ComfyStudio").create()
    server = EmbeddedRedis(home)
    endpoint = server.ensure_running()
    try:
        queue = make_queue(server, home, lease_seconds=30.0)
        job = Job(prompt="un phare au crépuscule, « Müller »").validate()
        queue.submit(job)
        record, child = server.running_record(), server._proc
        assert record is not None and child is not None  # the server is this test's own child
        child.kill()  # TerminateProcess on Windows, SIGKILL elsewhere
        child.wait(10)
        status = queue.status(job.job_id)  # reconnecting restarts the server on the same append-only file
        assert status is not None and status.status is JobStatus.QUEUED
        assert status.job is not None and status.job.prompt == job.prompt
        assert server.running_record() not in (None, record)
        queue.conn.close()
    finally:
        server.stop()
    assert endpoint.port > 0 and find_aof(home.redis) is not None
    report = repair_aof(home)  # the checker runs on the same path, as the Services dock would run it
    assert report.repaired, report.message
    assert report.backup is not None and report.backup.is_relative_to(home.redis)


def test_the_command_line_takes_a_non_ascii_home(tmp_path: Path) -> None:
    home = _user_folder(tmp_path) / "AppData" / "Local" / "ComfyStudio"

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "comfystudio_desktop", "--home", str(home), *args],
                              cwd=REPO_ROOT, capture_output=True, timeout=120, check=False,
                              env={**os.environ, "PYTHONIOENCODING": "utf-8"})
        assert done.returncode == 0, done.stderr.decode("utf-8", errors="replace")
        return done.stdout.decode("utf-8")

    try:
        submitted = json.loads(cli("submit", "--prompt", "Jérôme's lighthouse", "--json").splitlines()[-1])
        status = json.loads(cli("status", submitted["job_id"], "--json").splitlines()[-1])
        assert status["status"] == "queued"
        assert json.loads(cli("redis", "status", "--json").splitlines()[-1])["home"] == str(home)
    finally:
        cli("redis", "stop")
