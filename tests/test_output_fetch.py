"""Outputs reach the user wherever the worker ran: two homes on one machine beside the scale-out harness (an
external redis-server, two headless workers in homes of their own, two fake ComfyUIs). Every job's images are
fetched into the submitting home byte for byte; a stopped ComfyUI makes them "image on <backend>, unavailable"
until it is back; a download with the wrong bytes is refused."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from comfystudio_desktop.backend_settings import Backend
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobRecord, JobStatus
from comfystudio_desktop.outputs.fetch import Available, OutputFetcher, Unavailable
from comfystudio_desktop.outputs.location import OutputLocation, parse_location
from comfystudio_desktop.queue.history import History
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.routing import BackendRegistry, BackendState
from comfystudio_desktop.settings import Settings, save_settings
from tests.backend_cluster import ExternalRedis, HeadlessWorker
from tests.cli_support import assert_clean_usage_error, run_cli
from tests.fake_comfyui.process import FakeComfyProcess, free_port
from tests.helpers import wait_until

MODELS = {"fast": ["alpha.safetensors"], "slow": ["beta.safetensors"]}


def _location(record: JobRecord) -> OutputLocation:
    location = parse_location(record.output_location)
    assert isinstance(location, OutputLocation), (record.job_id, location)
    return location


def _finished(queue: JobQueue, jobs: list[Job]) -> dict[str, JobRecord]:
    def all_done() -> dict[str, JobRecord] | None:
        records = {j.job_id: queue.status(j.job_id) for j in jobs}
        if all(r is not None and r.status.is_terminal for r in records.values()):
            return {k: r for k, r in records.items() if r is not None}
        return None
    records = wait_until(all_done, timeout=120, message="every job ended")
    assert all(r.status is JobStatus.FINISHED for r in records.values()), records
    return records


def test_outputs_are_fetched_from_the_worker_that_made_them(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ExternalRedis(tmp_path / "redis"))
        fakes = {name: stack.enter_context(FakeComfyProcess(models={"checkpoints": models}, step_time=0.005,
                                                            output_dir=tmp_path / f"out-{name}", port=free_port()))
                 for name, models in MODELS.items()}
        workers = {name: stack.enter_context(HeadlessWorker(tmp_path / f"machine-{name}", server.url,
                                                            Backend(name=name, url=fake.url)))
                   for name, fake in fakes.items()}
        queue = server.queue(lease_seconds=5.0)
        stack.callback(queue.conn.close)
        registry = BackendRegistry(queue.conn)
        wait_until(lambda: {v.name for v in registry.views() if v.state is BackendState.UP} == set(MODELS),
                   timeout=60, message=f"both backends up; logs: {[w.log_text() for w in workers.values()]}")
        # The submitting home: a window's or a script's, with no backend of its own.
        submitter = Home(tmp_path / "desk").create()
        settings = Settings(redis_mode="external", redis_url=server.url)
        save_settings(submitter.config_file, settings)
        jobs = [Job(job_id=f"j{i:02d}", prompt=f"job {i}", model=("alpha.safetensors", "beta.safetensors")[i % 2],
                    steps=3, batch_size=1 + i % 3) for i in range(8)]
        queue.submit_many(jobs)
        records = _finished(queue, jobs)
        fetcher = OutputFetcher(submitter, settings)

        # Nothing is local yet: each file is found where its record says, and is not on the submitting side.
        for record in records.values():
            location = _location(record)
            assert location.backend == record.backend
            assert [f.name for f in location.files] == list(record.outputs)
            assert not (submitter.outputs / record.outputs[0]).exists()

        # The slow backend's ComfyUI goes away: its images are unavailable, the fast one's are fetched.
        fakes["slow"].stop()
        for record in records.values():
            fetched = fetcher.fetch(record)
            if record.backend == "slow":
                assert isinstance(fetched, Unavailable) and fetched.message == "image on slow, unavailable", fetched
            else:
                assert isinstance(fetched, Available), fetched
        slow_job = next(r.job_id for r in records.values() if r.backend == "slow")
        ran = run_cli(capsys, "--home", str(submitter.root), "fetch", slow_job)
        assert (ran.code, ran.error_lines()) == (1, ["image on slow, unavailable"]), ran
        assert not (submitter.outputs / f"{slow_job}.png").exists()

        # It is back: every job's images open from the submitting home, byte for byte the worker's.
        fakes["slow"].start()
        for record in records.values():
            result = fetcher.fetch(record)
            assert isinstance(result, Available), result
            assert [p.name for p in result.paths] == list(record.outputs)
            worker_outputs = workers[record.backend].home.outputs
            for path in result.paths:
                assert path.parent == submitter.outputs
                assert path.read_bytes() == (worker_outputs / path.name).read_bytes()
        copies = tmp_path / "copies"
        ran = run_cli(capsys, "--home", str(submitter.root), "fetch", slow_job, "--to", str(copies), "--json")
        assert ran.code == 0, ran
        answer = json.loads(ran.out)
        assert answer["backend"] == "slow"
        assert [Path(p) for p in answer["paths"]] == [copies / name for name in records[slow_job].outputs]
        assert all(Path(p).read_bytes() == (submitter.outputs / Path(p).name).read_bytes() for p in answer["paths"])

        # A ComfyUI that now serves other bytes under the recorded name: refused, nothing written.
        fast_record = next(r for r in records.values() if r.backend == "fast")
        first = _location(fast_record).files[0]
        served = tmp_path / "out-fast" / first.subfolder / first.filename
        original = served.read_bytes()
        served.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size, other hash
        (submitter.outputs / first.name).unlink()
        result = fetcher.fetch(fast_record)
        assert isinstance(result, Unavailable) and result.message == "image on fast, unavailable", result
        assert "SHA-256" in result.detail
        assert not (submitter.outputs / first.name).exists()
        # A local copy with other bytes is not taken for the output either: it is fetched again once the server
        # serves the right file.
        (submitter.outputs / first.name).write_bytes(b"not the image")
        served.write_bytes(original)
        result = fetcher.fetch(fast_record)
        assert isinstance(result, Available) and result.paths[0].read_bytes() == original, result

        # A day later the status hash is gone (its TTL): the history kept where the images live.
        History(queue.conn).sync()
        queue.conn.call(lambda c: c.delete(f"job:status:{slow_job}"))
        assert queue.status(slow_job) is None
        for name in records[slow_job].outputs:
            (submitter.outputs / name).unlink()
        ran = run_cli(capsys, "--home", str(submitter.root), "fetch", slow_job)
        assert ran.code == 0, ran
        assert ran.out.splitlines() == [str(submitter.outputs / name) for name in records[slow_job].outputs]
        assert all(w.returncode is None for w in workers.values()), [w.log_text() for w in workers.values()]


def test_fetch_refuses_unknown_and_unfinished_jobs_and_bad_arguments(home: Home, queue: JobQueue,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    at = ("--home", str(home.root))
    assert_clean_usage_error(run_cli(capsys, *at, "fetch", "nobody"), "unknown job 'nobody'")
    assert_clean_usage_error(run_cli(capsys, *at, "fetch", "../etc"), "not a job id")
    assert_clean_usage_error(run_cli(capsys, *at, "fetch"), "job_id")
    queue.submit(Job(job_id="waits", prompt="still queued"))
    assert_clean_usage_error(run_cli(capsys, *at, "fetch", "waits"), "job 'waits' is queued, not finished")
    # A job finished by a worker that recorded no location (an older version): its local file is the answer.
    lease = queue.claim("w")
    assert lease is not None and lease.job_id == "waits"
    (home.outputs / "waits.png").write_bytes(b"\x89PNG\r\n\x1a\nlocal")
    queue.finish(lease, "outputs/waits.png", ["waits.png"])
    result = run_cli(capsys, *at, "fetch", "waits")
    assert (result.code, result.out.splitlines()) == (0, [str(home.outputs / "waits.png")]), result
    a_file = home.root / "a-file"
    a_file.write_text("x", encoding="utf-8")
    assert_clean_usage_error(run_cli(capsys, *at, "fetch", "waits", "--to", str(a_file)), "--to")


def test_a_record_without_a_location_uses_the_local_file_only(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").create()
    fetcher = OutputFetcher(home, Settings())
    record = JobRecord(job_id="old", status=JobStatus.FINISHED, progress=100, image_url="outputs/old.png",
                       outputs=("old.png",), backend="gpu-b")
    missing = fetcher.fetch(record)
    assert isinstance(missing, Unavailable) and missing.message == "image on gpu-b, unavailable", missing
    (home.outputs / "old.png").write_bytes(b"\x89PNG\r\n\x1a\nold")
    assert fetcher.fetch(record) == Available((home.outputs / "old.png",))
    garbled = JobRecord(job_id="old", status=JobStatus.FINISHED, outputs=("old.png",), output_location="{nope")
    assert fetcher.fetch(garbled) == Available((home.outputs / "old.png",))
