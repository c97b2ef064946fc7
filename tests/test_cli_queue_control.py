"""`move`, `submit --priority`, `jobs --status queued`, `history`, `star` and `unstar` through the real CLI."""

from __future__ import annotations

import json

import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import Result, assert_clean_usage_error, run_cli


def cli(capsys: pytest.CaptureFixture[str], home: Home, *argv: str) -> Result:
    return run_cli(capsys, "--home", str(home.root), *argv)


def queued(capsys: pytest.CaptureFixture[str], home: Home) -> list[tuple[int, str, str]]:
    result = cli(capsys, home, "jobs", "--status", "queued", "--json")
    assert result.code == 0, result
    return [(j["position"], j["job_id"], j["priority"]) for j in json.loads(result.out)]


def test_priority_move_and_queued_listing(home: Home, redis_server: EmbeddedRedis, queue: JobQueue,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for job_id, priority in (("a", "normal"), ("b", "low"), ("c", "high"), ("d", "3")):
        result = cli(capsys, home, "submit", "--prompt", f"job {job_id}", "--priority", priority)
        assert result.code == 0, result
    ids = {r.job.prompt[-1]: r.job_id for r in queue.jobs() if r.job is not None}
    assert [(p, level) for p, _, level in queued(capsys, home)] == [(1, "high"), (2, "high"), (3, "normal"),
                                                                    (4, "low")]
    assert [i for _, i, _ in queued(capsys, home)] == [ids["c"], ids["d"], ids["a"], ids["b"]]
    assert cli(capsys, home, "move", ids["b"], "--top").out.strip() == "moved: position 1"
    assert cli(capsys, home, "move", ids["c"], "--after", ids["a"]).code == 0
    assert cli(capsys, home, "move", ids["d"], "--bottom").code == 0
    assert [i for _, i, _ in queued(capsys, home)] == [ids["b"], ids["a"], ids["c"], ids["d"]]
    text = cli(capsys, home, "jobs", "--status", "queued").out.splitlines()
    assert text[0].split()[:3] == ["1", "low", ids["b"]]
    assert_clean_usage_error(cli(capsys, home, "move", "nope", "--top"), "is not waiting in the queue")
    assert_clean_usage_error(cli(capsys, home, "move", ids["a"], "--before", ids["a"]), "before or after itself")
    assert_clean_usage_error(cli(capsys, home, "move", ids["a"]), "one of the arguments")
    assert_clean_usage_error(cli(capsys, home, "move", ids["a"], "--top", "--bottom"), "not allowed with")
    assert_clean_usage_error(cli(capsys, home, "submit", "--prompt", "x", "--priority", "urgent"),
                             "expected a whole number")


def test_history_search_star_unstar(home: Home, redis_server: EmbeddedRedis, queue: JobQueue,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    for job_id, prompt, model in (("cat-1", "a red cat", "sd15.safetensors"), ("dog-1", "a red dog", "flux.gguf"),
                                  ("cat-2", "a grey cat", "flux.gguf")):
        queue.submit(Job(prompt=prompt, job_id=job_id, model=model))
        lease = queue.claim("w")
        assert lease is not None
        queue.finish(lease, f"/outputs/{job_id}.png")
    queue.submit(Job(prompt="a red bird", job_id="waiting"))

    def listed(*argv: str) -> list[str]:
        result = cli(capsys, home, "history", "--json", *argv)
        assert result.code == 0, result
        return [e["job_id"] for e in json.loads(result.out)["entries"]]

    assert listed() == ["cat-2", "dog-1", "cat-1"]
    assert listed("--search", "red") == ["dog-1", "cat-1"]
    assert listed("--model", "flux.gguf", "--search", "cat") == ["cat-2"]
    assert listed("--status", "failed") == []
    assert listed("--since", "2000-01-01", "--limit", "1") == ["cat-2"]
    assert listed("--until", "2000-01-01") == []
    assert cli(capsys, home, "star", "dog-1").out.strip() == "starred"
    assert listed("--favourites") == ["dog-1"]
    lines = cli(capsys, home, "history", "--favourites").out.splitlines()
    assert len(lines) == 1 and " * finished  dog-1  flux.gguf  'a red dog'" in lines[0]
    assert cli(capsys, home, "unstar", "dog-1").out.strip() == "unstarred"
    assert listed("--favourites") == []
    assert_clean_usage_error(cli(capsys, home, "star", "waiting"), "not in the history")
    assert_clean_usage_error(cli(capsys, home, "history", "--since", "2026-02-30"), "not a real date")
    assert_clean_usage_error(cli(capsys, home, "history", "--since", "yesterday"), "expected YYYY-MM-DD")
    assert_clean_usage_error(cli(capsys, home, "history", "--limit", "0"), "expected 1..1000")
    assert_clean_usage_error(cli(capsys, home, "history", "--status", "queued"), "invalid choice")
    assert_clean_usage_error(cli(capsys, home, "history", "--since", "2026-02-02", "--until", "2026-02-01"),
                             "--since is after --until")
