"""`status` without redis-py: the same answer as the ordinary path, and the ordinary path whenever it cannot.

Against the home's real embedded server; the ordinary path is `cli_queue.cmd_status` on an opened queue.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.cli_args import CommandFailed
from comfystudio_desktop.cli_queue import cmd_status
from comfystudio_desktop.cli_status import quick_status
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.queue.job_records import STATUS_PREFIX
from comfystudio_desktop.runtime import Runtime, open_queue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.conftest import REPO_ROOT

JOB_ID = "job-under-test"
FIELDS = ("job_id", "status", "progress", "image_url", "error", "message", "attempts", "seed_used", "outputs",
          "updated_at", "spec", "created_at")


@pytest.fixture
def runtime(home: Home, redis_server: EmbeddedRedis) -> Iterator[Runtime]:
    rt = open_queue(home, Settings())
    yield rt
    rt.close()


def answer(capsys: pytest.CaptureFixture[str], run: Callable[[], int | None]) -> tuple[str, int | None]:
    """What a status call printed on stdout and returned (None: it declined; "!" + message: it refused)."""
    capsys.readouterr()
    try:
        code = run()
    except CommandFailed as exc:
        return "!" + str(exc), 2
    return capsys.readouterr().out, code


def both(capsys: pytest.CaptureFixture[str], home: Home, rt: Runtime, job_id: str,
         as_json: bool) -> tuple[tuple[str, int | None], tuple[str, int | None]]:
    args = argparse.Namespace(job_id=job_id, json=as_json)
    return (answer(capsys, lambda: quick_status(args, home, Settings())),
            answer(capsys, lambda: cmd_status(args, rt)))


field_values = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"queued", b"processing", b"finished", b"failed", b"cancelled", b"-1", b"50", b"[]",
                     b'["a.png", 3]', b"{", Job(prompt="p", job_id=JOB_ID).to_json().encode()]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=len(FIELDS)), as_json=st.booleans())
def test_any_stored_record_reads_as_the_ordinary_path_reads_it(capsys: pytest.CaptureFixture[str], home: Home,
                                                              runtime: Runtime, record: dict[str, bytes],
                                                              as_json: bool) -> None:
    client = runtime.endpoint.client(decode_responses=False)
    try:
        client.delete(STATUS_PREFIX + JOB_ID)
        if record:
            client.hset(STATUS_PREFIX + JOB_ID, mapping=record)  # type: ignore[arg-type]
    finally:
        client.close()
    quick, ordinary = both(capsys, home, runtime, JOB_ID, as_json)
    assert quick == ordinary
    assert quick[1] is not None


def test_a_submitted_job_prints_the_same_both_ways(capsys: pytest.CaptureFixture[str], home: Home,
                                                   runtime: Runtime) -> None:
    job = Job(prompt="a lighthouse at dusk, 35 mm", seed=7)
    runtime.queue.submit(job)
    for as_json in (False, True):
        quick, ordinary = both(capsys, home, runtime, job.job_id, as_json)
        assert quick == ordinary and quick[1] == 0
    assert json.loads(quick[0])["status"] == "queued"


def test_declines_when_no_server_runs(capsys: pytest.CaptureFixture[str], home: Home) -> None:
    args = argparse.Namespace(job_id=JOB_ID, json=False)
    assert answer(capsys, lambda: quick_status(args, home, Settings())) == ("", None)
    assert not EmbeddedRedis(home).pidfile.exists()  # it never starts one: that is the ordinary path's job


def test_declines_while_the_outbox_holds_a_job(capsys: pytest.CaptureFixture[str], home: Home,
                                                runtime: Runtime) -> None:
    from comfystudio_desktop.queue.outbox import Outbox

    Outbox(home.outbox).put(Job(prompt="waiting for Redis", job_id=JOB_ID))
    args = argparse.Namespace(job_id=JOB_ID, json=False)
    assert answer(capsys, lambda: quick_status(args, home, Settings())) == ("", None)


def test_declines_for_an_external_server(capsys: pytest.CaptureFixture[str], home: Home,
                                         runtime: Runtime) -> None:
    args = argparse.Namespace(job_id=JOB_ID, json=False)
    external = Settings(redis_mode="external", redis_url="redis://127.0.0.1:1/0")
    assert answer(capsys, lambda: quick_status(args, home, external)) == ("", None)


def test_declines_when_the_password_is_refused(capsys: pytest.CaptureFixture[str], home: Home,
                                               runtime: Runtime, redis_server: EmbeddedRedis) -> None:
    runtime.queue.submit(Job(prompt="p", job_id=JOB_ID))
    redis_server.secret_file.write_text("A" * 64, encoding="utf-8")  # valid-looking, but not the server's
    args = argparse.Namespace(job_id=JOB_ID, json=False)
    assert answer(capsys, lambda: quick_status(args, home, Settings())) == ("", None)


def test_a_status_call_never_imports_redis_py(home: Home, redis_server: EmbeddedRedis) -> None:
    rt = open_queue(home, Settings())
    job = Job(prompt="p")
    rt.queue.submit(job)
    rt.close()
    # redis.asyncio may be registered unexecuted (lazy_imports.defer_redis_asyncio): only modules that ran count.
    probe = ("import json, sys\nfrom comfystudio_desktop.cli import main\ncode = main(sys.argv[1:])\n"
             "ran = sorted(n for n, m in sys.modules.items() if n.split('.')[0] == 'redis'"
             " and type(m).__name__ != '_DeferredModule')\n"
             "print(json.dumps({'code': code, 'redis': ran}), file=sys.stderr)")
    printed = []
    for argv, expected in ((["status", job.job_id], 0), (["status", "no-such-job"], 2)):
        done = subprocess.run([sys.executable, "-c", probe, "--home", str(home.root), *argv], capture_output=True,
                              text=True, timeout=60, cwd=REPO_ROOT)
        seen = json.loads(done.stderr.strip().splitlines()[-1])
        assert seen == {"code": expected, "redis": []}, done.stderr
        printed.append(done.stdout.split())
    assert printed[0][:2] == [job.job_id, "queued"] and printed[1] == []


def test_the_ordinary_path_still_answers_when_the_server_is_down(home: Home) -> None:
    from tests.cli_support import run_process

    done = run_process("--home", str(home.root), "status", "no-such-job")
    try:
        assert done.code == 2 and "unknown job" in done.err  # it started the server to know
        assert EmbeddedRedis(home).running_record() is not None
    finally:
        EmbeddedRedis(home).stop()
