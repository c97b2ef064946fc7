"""The CLI's queue control: batch syntax on `submit`, `batch`, `pause` / `resume` and `eta`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import assert_clean_usage_error, run_cli


@pytest.fixture
def cli(home: Home, redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(*argv: str):  # type: ignore[no-untyped-def]
        return run_cli(capsys, "--home", str(home.root), *argv)
    return run


def _queued(queue: JobQueue, ids: list[str]) -> list:  # type: ignore[type-arg]
    jobs = {r.job_id: r.job for r in queue.jobs(JobStatus.QUEUED)}
    return [jobs[i] for i in ids]


def test_matrix_seeds_and_models_make_one_batch(cli, queue: JobQueue) -> None:  # type: ignore[no-untyped-def]
    result = cli("submit", "--matrix", "a {red|green} {cube|sphere}", "--seeds", "10-12", "--models", "a.st,b.st",
                 "--no-cache")
    assert result.code == 0, result
    jobs = _queued(queue, result.out.split())
    assert len(jobs) == 24 and len({j.batch_id for j in jobs}) == 1 and jobs[0].batch_id.startswith("batch-")
    assert [j.model for j in jobs] == ["a.st"] * 12 + ["b.st"] * 12  # model by model: each loads once
    assert [(j.prompt, j.seed) for j in jobs[:4]] == [("a red cube", 10), ("a red cube", 11), ("a red cube", 12),
                                                      ("a red sphere", 10)]
    assert all(j.no_cache for j in jobs)
    status = cli("batch", "status", jobs[0].batch_id, "--json")
    data = json.loads(status.out)
    assert (data["total"], data["counts"], data["progress"]) == (24, {"queued": 24}, 0)
    assert [j["job_id"] for j in data["jobs"]] == result.out.split()
    cancelled = cli("batch", "cancel", jobs[0].batch_id, "--json")
    assert cancelled.code == 0 and json.loads(cancelled.out) == {"cancelled": 24}
    rerun = cli("batch", "rerun", jobs[0].batch_id, "--json")
    assert rerun.code == 0 and json.loads(rerun.out)["jobs"] == 24


def test_plain_submit_is_no_batch_and_csv_is(cli, queue: JobQueue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    single = cli("submit", "--prompt", "one", "--model", "m.st")
    assert _queued(queue, single.out.split())[0].batch_id == ""
    table = tmp_path / "prompts.csv"
    table.write_text('id,prompt\n1,"a fox, red"\n2,a bird\n', encoding="utf-8")
    many = cli("submit", "--from", str(table), "--model", "m.st")
    jobs = _queued(queue, many.out.split())
    assert [j.prompt for j in jobs] == ["a fox, red", "a bird"] and jobs[0].batch_id == jobs[1].batch_id != ""


@pytest.mark.parametrize(("args", "needle"), [
    (["--matrix", "{a|b|c|d|e|f|g|h|i|j}{a|b|c|d|e|f|g|h|i|j}{a|b|c|d|e|f|g|h|i|j}{a|b}"], "at most"),
    (["--matrix", "{a|b}", "--seeds", "1-600"], "at most 1,000"),
    (["--prompt", "x", "--seeds", "1-600", "--models", "a,b"], "at most 1,000"),
    (["--matrix", "a {b"], "never closed"),
    (["--prompt", "x", "--matrix", "y"], "cannot be used together"),
    (["--prompt", "x", "--seeds", "9-1"], "below"),
    (["--prompt", "x", "--models", "a,../b"], "invalid model name"),
])
def test_bad_batches_are_one_line_and_submit_nothing(cli, queue: JobQueue, args: list[str],  # type: ignore[no-untyped-def]
                                                      needle: str) -> None:
    assert_clean_usage_error(cli("submit", "--model", "m.st", *args), needle)
    assert queue.jobs() == []


def test_unknown_batch(cli) -> None:  # type: ignore[no-untyped-def]
    assert_clean_usage_error(cli("batch", "status", "batch-nope"), "unknown batch")
    assert_clean_usage_error(cli("batch", "status", "bad id!"), "not a job id")


def test_pause_resume_and_status(cli) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("pause", "--status", "--json").out)["paused"] is False
    paused = cli("pause", "--json")
    assert paused.code == 0 and json.loads(paused.out) | {"message": ""} == {
        "paused": True, "reason": "user", "message": "", "until": None, "status": "paused by the user"}
    assert cli("pause", "--status").out.strip() == "paused by the user"
    assert cli("resume").out.strip() == "running"
    assert cli("resume").code == 0  # not paused, and the queue runs: nothing to do


def test_outside_active_hours_status_and_eta(cli, home: Home, queue: JobQueue) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta

    start = datetime.now().astimezone() + timedelta(hours=2)
    save_settings(home.config_file, Settings(active_hours=f"{start:%H:%M}-{start + timedelta(hours=1):%H:%M}"))
    assert cli("pause", "--status").out.strip() == f"paused until {start:%H:%M}"
    resumed = cli("resume")
    assert resumed.code == 1 and resumed.out.strip() == f"paused until {start:%H:%M}"
    ids = cli("submit", "--prompt", "later", "--model", "m.st", "--steps", "10").out.split()
    eta = json.loads(cli("eta", "--json").out)
    assert eta["status"] == f"paused until {start:%H:%M}"
    assert [q["job_id"] for q in eta["queued"]] == ids and eta["queued"][0]["source"] == "default"
    assert datetime.fromisoformat(eta["queued"][0]["start"]).strftime("%H:%M") == f"{start:%H:%M}"
    text = cli("eta").out
    assert "starts ≈" in text and ids[0] in text
