"""`submit --from FILE`: prompts or JSON lines, all or nothing, one pipelined submit; the parser is total."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.job_batch import BatchError, jobs_from_lines
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import assert_clean_usage_error, run_cli, run_process

DEFAULTS = {"workflow": "text_to_image", "model": "m.safetensors", "seed": 7}


def test_prompts_and_json_lines(home: Home, redis_server: EmbeddedRedis, queue: JobQueue, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "batch.txt"
    batch.write_text("\ufeffa red fox\n\n# a comment\n  a blue bird  \n"
                     + json.dumps({"prompt": "json one", "seed": 3, "job_id": "mine-1", "priority": 5}) + "\n")
    result = run_cli(capsys, "--home", str(home.root), "submit", "--from", str(batch), "--model", "m.safetensors",
                     "--steps", "12")
    assert result.code == 0, result
    ids = result.out.split()
    assert len(ids) == 3 and ids[2] == "mine-1"
    jobs = {r.job_id: r.job for r in queue.jobs(JobStatus.QUEUED)}
    assert [jobs[i].prompt for i in ids] == ["a red fox", "a blue bird", "json one"]  # type: ignore[union-attr]
    assert all(j is not None and j.model == "m.safetensors" and j.steps == 12 for j in jobs.values())
    assert (jobs["mine-1"].seed, jobs["mine-1"].priority) == (3, 5)  # type: ignore[union-attr]
    again = run_cli(capsys, "--home", str(home.root), "submit", "--from", str(batch), "--json")
    assert json.loads(again.out.splitlines()[2]) == {"job_id": "mine-1", "outcome": "duplicate"}


@pytest.mark.parametrize(("lines", "needle"), [
    (["ok", '{"prompt": "x", "model": 5}'], "line 2: "),
    (["ok", "ok", '{"prompt": "x", "width": 1020, "height": 1024}'], "line 3: width: must be a multiple of 8"),
    (["{not json"], "line 1: not valid JSON"),
    (['{"prompt": "x"} trailing'], "line 1: not valid JSON"),
    (['{"prompt": "x", "bogus": 1}'], "line 1: 'bogus': unknown field"),
    (['{"prompt": "x", "images": {"input": "/etc/passwd"}}'], "line 1: images: input: Workflow 'text_to_image'"),
    (['{"prompt": "x", "workflow": "image_to_image"}'], "line 1: images: input: This workflow needs"),
    (['{"prompt": ""}'], "line 1: prompt: must not be empty"),
    (["# only a comment", ""], "no prompts in the batch"),
    (['{"prompt": "x", "job_id": "a\\n"}'], "line 1: job_id"),
    (["{" + '"a":' * 0 + "[" * 50_000 + "]" * 50_000 + "}"], "line 1: "),
])
def test_a_bad_line_submits_nothing(home: Home, redis_server: EmbeddedRedis, queue: JobQueue, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str], lines: list[str], needle: str) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "submit", "--from", str(batch)), needle)
    assert queue.jobs() == []


def test_invalid_utf8_line_is_named(home: Home, redis_server: EmbeddedRedis, queue: JobQueue, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "batch.txt"
    batch.write_bytes(b"fine\ncaf\xe9\n")
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "submit", "--from", str(batch)),
                             "line 2: not valid UTF-8")
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "submit", "--from", str(tmp_path)),
                             "is a folder")
    missing = tmp_path / "no"
    with pytest.raises(FileNotFoundError) as reason:  # the system's words: "No such file" on POSIX, not on Windows
        missing.stat()
    assert reason.value.strerror
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "submit", "--from", str(missing)),
                             reason.value.strerror)
    assert queue.jobs() == []


def test_stdin_as_a_real_process(home: Home, redis_server: EmbeddedRedis, queue: JobQueue) -> None:
    result = run_process("--home", str(home.root), "submit", "--from", "-", stdin=b"one\ntwo\nthree\n")
    assert result.code == 0, result
    assert sorted(r.job.prompt for r in queue.jobs() if r.job) == ["one", "three", "two"]


def test_wait_is_for_one_job(home: Home, redis_server: EmbeddedRedis, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b").write_text("a\nb\n")
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "submit", "--from", str(tmp_path / "b"),
                                     "--wait"), "--wait follows one job")


line = st.one_of(
    st.text(max_size=40),
    st.dictionaries(st.sampled_from(["prompt", "seed", "model", "width", "height", "images", "job_id", "cfg", "x"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                              st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5),
                                                                                   st.text(max_size=5), max_size=2)),
                    max_size=5).map(json.dumps),
    st.binary(max_size=20),
)


@given(st.lists(line, max_size=6))
def test_batch_parser_is_total(lines: list[str | bytes]) -> None:
    """Any lines: either every job valid, or one BatchError naming a line (never another exception)."""
    def check(job: Job) -> Job:
        return job.validate()
    try:
        jobs = jobs_from_lines(lines, DEFAULTS, check)
    except BatchError as exc:
        assert str(exc).startswith("line ") or "no prompts" in str(exc)
        return
    assert jobs and all(job.validate() is job for job in jobs)
