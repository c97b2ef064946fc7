"""One bad file in outbox/ is moved to outbox/rejected/ with its reason and never blocks delivery or a command."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.outbox import MAX_FILE_BYTES, Outbox
from tests.conftest import run_cli

BAD_FILES: dict[str, bytes] = {
    "wrong-type.json": b'{"prompt":"x","model":5}',
    "junk.json": bytes(range(256)),
    "list-negative.json": b'{"prompt":"x","negative_prompt":["4",0]}',
    "nested.json": b"[" * 50_000 + b"]" * 50_000,
    "empty.json": b"",
    "huge.json": b" " * (MAX_FILE_BYTES + 1),
}
_EXAMPLE = itertools.count()


def _fill_outbox(folder: Path) -> tuple[Job, set[str]]:
    """Bad files of every kind, plus one good job, in `folder`; returns the good job and the bad names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in BAD_FILES.items():
        (folder / name).write_bytes(data)
    bad = set(BAD_FILES)
    (folder / "a-folder.json").mkdir()
    unreadable = folder / "unreadable.json"
    unreadable.write_bytes(b'{"prompt":"x","model":5}')  # bad either way: unreadable, or (as root) invalid
    unreadable.chmod(0)
    bad |= {"a-folder.json", "unreadable.json"}
    if sys.platform != "win32":  # symlinks need privileges there; FIFOs do not exist
        (folder / "dangling.json").symlink_to(folder / "no-such-target")
        os.mkfifo(folder / "pipe.json")  # reading it would block forever
        bad |= {"dangling.json", "pipe.json"}
    good = Job(prompt="kept while Redis was down", job_id="outbox-good")
    Outbox(folder).put(good)
    return good, bad


def _rejected(folder: Path) -> set[str]:
    return {p.name for p in (folder / "rejected").iterdir() if not p.name.endswith(".reason.txt")}


def test_bad_files_are_moved_aside_with_reasons_and_the_good_one_is_delivered(queue: JobQueue, home: Home) -> None:
    assert queue.outbox is not None
    good, expected = _fill_outbox(home.outbox)
    assert queue.deliver_outbox() == 1
    assert queue.status(good.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert _rejected(home.outbox) == expected
    assert list(home.outbox.glob("*.json")) == [] and len(queue.outbox) == 0
    reasons = {name: (home.outbox / "rejected" / f"{name}.reason.txt").read_text(encoding="utf-8")
               for name in expected}
    assert "model: must be text" in reasons["wrong-type.json"]
    assert "not valid UTF-8" in reasons["junk.json"]
    assert "negative_prompt" in reasons["list-negative.json"]
    assert "nested too deeply" in reasons["nested.json"]
    assert "not a regular file" in reasons["a-folder.json"]
    assert all("not a regular file" in reasons[name] for name in expected & {"dangling.json", "pipe.json"})
    assert "more than a job can take" in reasons["huge.json"]
    assert queue.deliver_outbox() == 0  # nothing left, nothing raised


def test_a_second_rejected_file_of_the_same_name_keeps_the_first(home: Home) -> None:
    outbox = Outbox(home.outbox)
    for _ in range(2):
        (home.outbox / "x.json").write_bytes(b"junk")
        assert list(outbox.pending()) == []
    assert _rejected(home.outbox) == {"x.json", "x.json.1"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=100).map(lambda t: json.dumps({"prompt": t, "seed": 1}).encode()))
def test_any_file_content_is_delivered_or_rejected(home: Home, data: bytes) -> None:
    folder = home.outbox / f"example-{next(_EXAMPLE)}"
    folder.mkdir(parents=True)
    path = folder / "fuzz.json"
    path.write_bytes(data)
    pending = list(Outbox(folder).pending())
    rejected = folder / "rejected" / "fuzz.json"
    if pending:
        assert [p for _, p in pending] == [path] and not rejected.exists()
    else:
        assert not path.exists() and rejected.exists()
        assert (folder / "rejected" / "fuzz.json.reason.txt").read_text(encoding="utf-8").strip()


def test_commands_and_submit_are_not_blocked_by_a_bad_outbox_file(cli_home: Path) -> None:
    home = Home(cli_home).create()
    (home.outbox).mkdir(parents=True, exist_ok=True)
    (home.outbox / "bad.json").write_bytes(b'{"prompt":"x","model":5}')
    (home.outbox / "dir.json").mkdir()
    listed = run_cli(cli_home, "jobs", "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert json.loads(listed.stdout) == []
    submitted = run_cli(cli_home, "submit", "--prompt", "still works")
    assert submitted.returncode == 0 and "Traceback" not in submitted.stderr, submitted.stderr
    assert _rejected(home.outbox) == {"bad.json", "dir.json"}


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlink_to_a_real_job_file_elsewhere_is_not_followed(home: Home, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(Job(prompt="not from the outbox").to_json(), encoding="utf-8")
    home.outbox.mkdir(parents=True, exist_ok=True)
    (home.outbox / "link.json").symlink_to(elsewhere)
    assert list(Outbox(home.outbox).pending()) == []
    assert elsewhere.exists() and _rejected(home.outbox) == {"link.json"}
