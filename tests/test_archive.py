"""Export and import of jobs: a round trip between two homes, idempotence, and hostile archives refused whole."""

from __future__ import annotations

import io
import json
import stat
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.archive import ArchiveError, ArchiveLimits, export_archive, import_archive
from comfystudio_desktop.queue.archive_format import FORMAT, JOBS, MANIFEST
from comfystudio_desktop.queue.history import History, HistoryQuery
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.ordering import QueueOrder
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.cli_support import assert_clean_usage_error, run_cli
from tests.conftest import make_queue


def png(colour: str = "red", size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[tuple[Home, JobQueue]]:
    """A second home with its own embedded redis-server."""
    home = Home(tmp_path / "other").create()
    server = EmbeddedRedis(home)
    server.ensure_running()
    queue = make_queue(server, home)
    yield home, queue
    queue.conn.close()
    server.stop()


def fill(queue: JobQueue, home: Home, tmp_path: Path) -> dict[str, Job]:
    """One job in each state; images on disk, an output for the finished one."""
    picture = tmp_path / "in.png"
    picture.write_bytes(png("blue"))
    jobs = {name: Job(prompt=f"a {name} job", job_id=f"{name}-1", seed=11, model="m.safetensors",
                      workflow="image_to_image" if name in ("queued", "finished") else "text_to_image",
                      images={"input": str(picture)} if name in ("queued", "finished") else {})
            for name in ("finished", "failed", "running", "cancelled", "queued")}
    for name in ("finished", "failed", "running"):
        queue.submit(jobs[name])
        lease = queue.claim("w")
        assert lease is not None and lease.job_id == jobs[name].job_id
        if name == "finished":
            (home.outputs / "finished-1.png").write_bytes(png("green"))
            queue.finish(lease, "outputs/finished-1.png", ["finished-1.png"])
        elif name == "failed":
            queue.fail(lease, "no such model")
    queue.submit(jobs["cancelled"])
    queue.cancel(jobs["cancelled"].job_id)
    queue.submit(jobs["queued"])
    return jobs


def test_export_then_import_on_another_home_gives_the_same_jobs(home: Home, queue: JobQueue, tmp_path: Path,
                                                                other: tuple[Home, JobQueue]) -> None:
    jobs = fill(queue, home, tmp_path)
    archive = tmp_path / "jobs.zip"
    report = export_archive(archive, queue, home, with_outputs=True)
    assert (report.jobs, report.inputs, report.outputs) == (5, 2, 1)
    home_b, queue_b = other
    imported = import_archive(archive, queue_b, home_b)
    assert (imported.queued, imported.to_history, imported.already_known, imported.outputs_copied) == (2, 3, 0, 1)
    waiting = {q.record.job_id: q.record.job for q in QueueOrder(queue_b).queued()}
    assert set(waiting) == {"running-1", "queued-1"}  # unfinished ones queued again
    for job_id, job in waiting.items():
        assert job is not None
        original = jobs[job_id.removesuffix("-1")]
        assert job.to_dict() | {"images": {}} == original.to_dict() | {"images": {}}
        for slot, path in job.images.items():
            assert Path(path).is_relative_to(home_b.storage) and Path(path).read_bytes() == png("blue"), slot
    ended = {e.job_id: e for e in History(queue_b.conn).search(HistoryQuery()).entries}
    assert {i: e.status for i, e in ended.items()} == {"finished-1": JobStatus.FINISHED,
                                                       "failed-1": JobStatus.FAILED,
                                                       "cancelled-1": JobStatus.CANCELLED}
    assert ended["failed-1"].error == "no such model" and ended["finished-1"].outputs == ("finished-1.png",)
    assert (home_b.outputs / "finished-1.png").read_bytes() == png("green")
    again = import_archive(archive, queue_b, home_b)  # idempotent by job id
    assert (again.queued, again.to_history, again.already_known) == (0, 0, 5)
    assert len(QueueOrder(queue_b).queued()) == 2
    assert not [p for p in home_b.storage.iterdir() if p.name.startswith(".import-")]


def test_export_by_status_and_an_unfinished_job_needs_its_images(home: Home, queue: JobQueue,
                                                                 tmp_path: Path) -> None:
    jobs = fill(queue, home, tmp_path)
    archive = tmp_path / "failed.zip"
    assert export_archive(archive, queue, home, statuses={JobStatus.FAILED, JobStatus.CANCELLED}).jobs == 2
    with zipfile.ZipFile(archive) as zf:
        assert sorted(json.loads(line)["job"]["job_id"] for line in zf.read(JOBS).splitlines()) == [
            "cancelled-1", "failed-1"]
    Path(jobs["queued"].images["input"]).unlink()
    with pytest.raises(ArchiveError, match="queued-1"):
        export_archive(tmp_path / "all.zip", queue, home)
    assert not (tmp_path / "all.zip").exists()


def archive_with(tmp_path: Path, members: Sequence[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def named(name: str) -> zipfile.ZipInfo:
    """A member named exactly `name`: on Windows ZipInfo() turns a backslash into '/', so the name is set after."""
    info = zipfile.ZipInfo("member")
    info.filename = name
    return info


def manifest(count: int = 1, version: object = 1) -> bytes:
    return json.dumps({"format": FORMAT, "version": version, "created_at": "2026-01-01", "jobs": count}).encode()


def line(job_id: str = "a", **changes: object) -> bytes:
    base: dict[str, object] = {"job": {"prompt": "x", "job_id": job_id, "workflow": "image_to_image",
                                       "images": {"input": "/elsewhere/a.png"}},
                               "status": "queued", "ended_ms": None, "seed_used": None, "error": "", "image_url": "",
                               "outputs": [], "inputs": {"input": f"inputs/{job_id}_input.png"}}
    return json.dumps(base | changes).encode() + b"\n"


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


Members = Sequence[tuple[zipfile.ZipInfo | str, bytes]]
GOOD: Members = [(MANIFEST, manifest()), (JOBS, line()), ("inputs/a_input.png", png())]
HOSTILE: dict[str, tuple[Members, str]] = {
    "traversal": ([*GOOD, ("../evil.png", png())], "'../evil.png'"),
    "absolute": ([*GOOD, ("/etc/evil.png", png())], "'/etc/evil.png'"),
    "backslash": ([*GOOD, (named("inputs\\a_source.png"), png())], "inputs\\\\a_source.png"),
    "symlink": ([GOOD[0], GOOD[1], (symlink("inputs/a_input.png"), b"/etc/passwd")], "a link or folder"),
    "stray member": ([*GOOD, ("outputs/zzz.png", png())], "'outputs/zzz.png': no job refers to it"),
    "bad image": ([GOOD[0], GOOD[1], ("inputs/a_input.png", b"\x89PNG\r\n\x1a\nnot really")],
                  "'inputs/a_input.png'"),
    "missing input": ([GOOD[0], GOOD[1]], "inputs/a_input.png' is missing"),
    "newer format": ([(MANIFEST, manifest(version=2)), *GOOD[1:]], "format version 2 is not supported"),
    "bool version": ([(MANIFEST, manifest(version=True)), *GOOD[1:]], "is not supported"),
    "count mismatch": ([(MANIFEST, manifest(count=2)), *GOOD[1:]], "1 jobs, the manifest says 2"),
    "unknown job field": ([GOOD[0], (JOBS, line(job={"prompt": "x", "job_id": "a", "evil": 1})), GOOD[2]],
                          "line 1: 'evil': unknown field"),
    "input of another job": ([GOOD[0], (JOBS, line(inputs={"input": "inputs/b_input.png"})),
                              ("inputs/b_input.png", png())], "is not the 'input' image of this job"),
    "foreign output": ([GOOD[0], (JOBS, line(status="finished", ended_ms=5, outputs=["b.png"])), GOOD[2]],
                       "'b.png' is not an output name of this job"),
    "no manifest": (GOOD[1:], "'manifest.json' is missing"),
    "zip bomb": ([*GOOD, ("outputs/a_2.png", bytes(60 * 2 ** 20))], "compressed more than 100:1"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archives_are_refused_whole_naming_the_member(home: Home, queue: JobQueue, tmp_path: Path,
                                                              case: str) -> None:
    members, needle = HOSTILE[case]
    path = archive_with(tmp_path, members)
    before = sorted(queue.conn.client.keys("*"))
    with pytest.raises(ArchiveError) as err:
        import_archive(path, queue, home)
    assert needle in str(err.value)
    assert sorted(queue.conn.client.keys("*")) == before
    assert not list(home.storage.rglob("*.png")) and not list(home.storage.glob(".import-*"))


def test_the_good_archive_of_those_cases_imports(home: Home, queue: JobQueue, tmp_path: Path) -> None:
    assert import_archive(archive_with(tmp_path, GOOD), queue, home).queued == 1


def test_limits_on_members_and_size(home: Home, queue: JobQueue, tmp_path: Path) -> None:
    path = archive_with(tmp_path, GOOD)
    with pytest.raises(ArchiveError, match="3 members, more than 2"):
        import_archive(path, queue, home, ArchiveLimits(max_members=2))
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        import_archive(path, queue, home, ArchiveLimits(max_total_bytes=100))
    with pytest.raises(ArchiveError, match="bytes, more than 10"):
        import_archive(path, queue, home, ArchiveLimits(max_archive_bytes=10))
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04 and then nothing")
    with pytest.raises(ArchiveError, match="not a readable zip archive"):
        import_archive(tmp_path / "not.zip", queue, home)


_names = st.one_of(st.sampled_from([MANIFEST, JOBS, "inputs/a_input.png", "outputs/a.png", "../x", "/abs",
                                    "inputs/", "a\\b", "inputs/a_input.png/../../x", "C:x.png"]),
                   st.text(min_size=1, max_size=30))
_payloads = st.one_of(st.sampled_from([manifest(), line(), png(), b"", b"{}", manifest(count=0)]),
                      st.binary(max_size=200))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(st.tuples(_names, _payloads), max_size=6))
def test_any_archive_is_imported_or_refused_with_one_error(home: Home, queue: JobQueue, tmp_path: Path,
                                                           members: list[tuple[str, bytes]]) -> None:
    queue.conn.client.flushdb()
    path = tmp_path / "fuzz.zip"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the test
        for name, data in members:
            try:
                zf.writestr(name, data)
            except (ValueError, UnicodeEncodeError, IndexError):
                continue  # a name zipfile itself cannot write (IndexError: one that is empty up to a NUL)
    try:
        import_archive(path, queue, home)
    except ArchiveError:
        assert queue.conn.client.dbsize() == 0  # nothing half-imported
    assert not list(home.storage.glob(".import-*"))


def test_cli_export_and_import(home: Home, redis_server: EmbeddedRedis, queue: JobQueue, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    fill(queue, home, tmp_path)
    archive = tmp_path / "cli.zip"
    result = run_cli(capsys, "--home", str(home.root), "export", "--status", "queued", "--status", "finished",
                     "--with-outputs", str(archive))
    assert (result.code, result.out.strip()) == (0, "exported 2 job(s), 2 input image(s), 1 output(s)")
    result = run_cli(capsys, "--home", str(home.root), "import", str(archive))
    assert result.out.strip() == "queued 0, added to the history 0, already known 2, outputs copied 0"
    hostile = archive_with(tmp_path, HOSTILE["traversal"][0])
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "import", str(hostile)), "'../evil.png'")
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "import", str(tmp_path / "none.zip")),
                             "cannot be read")
    assert_clean_usage_error(run_cli(capsys, "--home", str(home.root), "export", str(tmp_path / "no" / "x.zip")),
                             "not a file in an existing folder")
