"""The command line, run as a real process against a real home and its embedded Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli
from tests.helpers import wait_until


def test_submit_status_cancel_jobs(cli_home: Path) -> None:
    submitted = run_cli(cli_home, "submit", "--prompt", "a cat", "--seed", "12345", "--aspect-ratio", "16:9")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    status = run_cli(cli_home, "status", job_id, "--json")
    assert status.returncode == 0
    fields = json.loads(status.stdout)
    assert fields["job_id"] == job_id and fields["status"] == "queued" and fields["progress"] == 0
    assert {"job_id", "status", "progress", "image_url", "error", "updated_at"} <= set(fields)
    listed = json.loads(run_cli(cli_home, "jobs", "--json").stdout)
    assert [j["job_id"] for j in listed] == [job_id]
    assert listed[0]["job"]["seed"] == 12345 and listed[0]["job"]["aspect_ratio"] == "16:9"
    cancelled = run_cli(cli_home, "cancel", job_id)
    assert (cancelled.returncode, cancelled.stdout.strip()) == (0, "cancelled")
    after = run_cli(cli_home, "status", job_id)
    assert after.returncode == 1 and "cancelled" in after.stdout  # cancelled jobs exit 1
    assert run_cli(cli_home, "jobs", "--status", "queued", "--json").stdout.strip() == "[]"
    redis_status = json.loads(run_cli(cli_home, "redis", "status", "--json").stdout)
    assert redis_status["running"] is True and redis_status["bind"] == "127.0.0.1"
    stop = run_cli(cli_home, "redis", "stop")
    assert stop.stdout.strip() == "stopped"
    assert json.loads(run_cli(cli_home, "redis", "status", "--json").stdout)["running"] is False


@pytest.mark.parametrize(("args", "needle"), [
    (["submit", "--prompt", ""], "prompt: must not be empty"),
    (["submit", "--prompt", "x", "--batch-size", "99"], "batch_size: must be 1..16"),
    (["submit", "--prompt", "x", "--aspect-ratio", "wide"], "aspect_ratio"),
    (["submit", "--prompt", "x", "--workflow", "image_to_image", "--image", "input=/no/such/file.png"],
     "file.png does not exist"),
    (["submit", "--prompt", "x", "--image", "input=/no/such/file.png"], "takes no image"),
    (["submit", "--prompt", "x", "--image", "elsewhere=/tmp/x.png"], "SLOT=PATH"),
    (["submit", "--prompt", "x", "--model", "../../secrets.safetensors"], "invalid model name"),
    (["submit", "--prompt", "x", "--width", "100"], "--width needs --height"),
    (["status", "no-such-job"], "unknown job"),
    (["submit"], "--prompt"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_clear_line(cli_home: Path, args: list[str], needle: str) -> None:
    result = run_cli(cli_home, *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0] and "Traceback" not in result.stderr


def test_invalid_settings_file_names_the_field(cli_home: Path) -> None:
    cli_home.mkdir(parents=True)
    (cli_home / "config.json").write_text(json.dumps({"pipeline_depth": 0}))
    result = run_cli(cli_home, "jobs")
    assert result.returncode == 2
    assert "setting 'pipeline_depth': must be 1..8" in result.stderr


def test_submit_wait_follows_the_job_to_its_end(cli_home: Path) -> None:
    waiting = subprocess.Popen([sys.executable, "-m", "comfystudio_desktop", "--home", str(cli_home), "submit",
                                "--prompt", "wait for me", "--wait", "--json"], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def queued_id() -> str:
            listed = run_cli(cli_home, "jobs", "--status", "queued", "--json")
            jobs = json.loads(listed.stdout) if listed.returncode == 0 and listed.stdout.strip() else []
            return str(jobs[0]["job_id"]) if jobs else ""
        job_id = wait_until(queued_id, timeout=60, message="the job queued")
        assert waiting.poll() is None  # still waiting: the job has not ended
        assert run_cli(cli_home, "cancel", job_id).returncode == 0
        out, _err = waiting.communicate(timeout=60)
        assert waiting.returncode == 1  # a cancelled job
        result = json.loads(out)
        assert result["job_id"] == job_id and result["status"] == "cancelled"
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate(timeout=10)
