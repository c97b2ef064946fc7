"""CLI fuzz: random argv (texts, undecodable bytes, numbers, NaN/inf, huge values, special files) never gives a
traceback; a refusal is exit 2 with exactly one line; the queue stays consistent and earlier jobs unchanged.

`main()` runs in-process against the home's real embedded redis-server; a few cases run as real processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import Result, run_cli, run_process

# Commands that end on their own without a ComfyUI; `worker`, `--wait`, `redis stop` and `config set` would run
# forever, stop the server under the test, or change the home's settings: they have their own tests.
_COMMANDS = ["submit", "status", "cancel", "retry", "jobs", "config get", "config list", "redis status"]
_OPTIONS = ["--prompt", "--negative", "--model", "--workflow", "--seed", "--aspect-ratio", "--width", "--height",
            "--steps", "--cfg", "--denoise", "--batch-size", "--image", "--priority", "--timeout", "--json",
            "--status", "--from", "-v", "--", "-"]


def special_paths(root: Path) -> list[str]:
    """Paths a careless or hostile user might pass where a file is expected."""
    folder = root / "special"
    folder.mkdir()
    (folder / "notes.png").write_text("text, not an image\n")
    (folder / "empty.png").write_bytes(b"")
    paths = [str(folder), str(folder / "notes.png"), str(folder / "empty.png"), str(folder / "missing.png"),
             "/", "", "~", "nul", "CON"]
    if os.name == "posix":
        os.mkfifo(folder / "fifo.png")
        (folder / "passwd.png").symlink_to("/etc/passwd")
        paths += [str(folder / "fifo.png"), str(folder / "passwd.png"), "/dev/zero", "/dev/null",
                  "/proc/self/environ", "/etc/passwd"]
    return paths


def values(paths: list[str]) -> st.SearchStrategy[str]:
    """Option values of every hostile kind."""
    return st.one_of(
        st.text(max_size=30),
        # Undecodable bytes become lone surrogates, as in real argv (POSIX's fsdecode; Windows' UTF-16 argv can hold
        # lone surrogates too, but its fsdecode is strict, so decode as POSIX does on every platform).
        st.binary(max_size=20).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats().map(repr),
        st.sampled_from(["nan", "inf", "-inf", "1e309", "9" * 5000, "0", "-1", "1:1", "16:9", "1024",
                         "input=", "source=/etc/passwd", "input=/dev/zero", "queued", "text_to_image"]),
        st.sampled_from(paths),
        st.sampled_from(paths).map(lambda p: f"input={p}"),
    )


def argv_strategy(paths: list[str]) -> st.SearchStrategy[list[str]]:
    """Mostly well-formed shapes (option + value pairs) with hostile values, so calls get past argparse."""
    value = values(paths)
    pair = st.tuples(st.sampled_from(_OPTIONS), value).map(list)
    loose = st.one_of(st.sampled_from(_OPTIONS), value).map(lambda t: [t])
    rest = st.lists(st.one_of(pair, pair, loose), max_size=4).map(lambda parts: [t for p in parts for t in p])
    job_id = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,70}", fullmatch=True), value)
    return st.one_of(
        st.tuples(st.just(["submit", "--prompt"]), st.text(min_size=1, max_size=30), rest).map(
            lambda t: [*t[0], t[1], *t[2]]),
        st.tuples(st.sampled_from(["status", "cancel", "retry"]), job_id, rest).map(lambda t: [t[0], "--", t[1]]),
        st.tuples(st.sampled_from(_COMMANDS), rest).map(lambda t: [*t[0].split(), *t[1]]),
    )


def check_contract(result: Result) -> None:
    assert result.code in (0, 1, 2), result
    assert "Traceback" not in result.err, result.err
    if result.code != 0:
        assert len(result.error_lines()) == 1, result.err


def test_random_argv_never_breaks_the_contract(home: Home, redis_server: EmbeddedRedis, queue: JobQueue,
                                               capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths in random argv stay in here
    earlier = [Job(prompt=f"earlier {n}", seed=n) for n in range(3)]
    for job in earlier:
        queue.submit(job)
    config_before = home.config_file.read_bytes() if home.config_file.exists() else None
    paths = special_paths(tmp_path)
    seen: dict[int, int] = {}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(argv_strategy(paths))
    def fuzz(argv: list[str]) -> None:
        result = run_cli(capsys, "--home", str(home.root), *argv)
        check_contract(result)
        seen[result.code] = seen.get(result.code, 0) + 1

    fuzz()
    print(f"fuzz exit codes: {seen}")
    assert seen.get(2, 0) > 0  # the fuzz did reach refusals
    for job in earlier:
        record = queue.status(job.job_id)
        assert record is not None and record.status is JobStatus.QUEUED and record.job == job
    queued = queue.jobs(JobStatus.QUEUED)
    assert queue.counts()["queued"] == len(queued) and queue.counts()["running"] == 0
    for record in queue.jobs():
        assert record.job is not None
        assert record.job.validate() == record.job  # nothing invalid got in
    assert (home.config_file.read_bytes() if home.config_file.exists() else None) == config_before


@pytest.mark.skipif(sys.platform == "win32", reason="Windows argv is always Unicode")
@pytest.mark.parametrize("argv", [
    [b"status", b"\xff\xfe"],
    [b"submit", b"--prompt", b"\xc3\x28", b"--seed", b"1"],
    [b"submit", b"--prompt", b"x", b"--cfg", b"nan"],
    [b"jobs", b"--status", b"\xed\xa0\x80"],
])
def test_real_processes_with_undecodable_argv(tmp_path: Path, argv: list[bytes]) -> None:
    result = run_process(b"--home", os.fsencode(tmp_path / "home"), *argv)
    check_contract(result)
    assert result.code == 2


def test_wait_with_a_short_timeout_ends(home: Home, redis_server: EmbeddedRedis,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "--home", str(home.root), "submit", "--prompt", "x", "--wait", "--timeout", "0.3")
    assert result.code == 1 and "did not end within 0.3 s" in result.err
    check_contract(result)
