"""redis-server under the watchdog: kill -9 while jobs flow, hang, adoption, pid safety, damaged AOF, quitting."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import Job, JobStatus
from comfystudio_desktop.queue.connection import RedisUnavailable, ResilientRedis
from comfystudio_desktop.queue.job_queue import LEASES_KEY, PENDING_KEY, JobQueue, SubmitOutcome
from comfystudio_desktop.queue.outbox import Outbox
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.aof_repair import AofLayout, find_aof, repair_aof
from comfystudio_desktop.supervise.pidfile import PidRecord, read_pidfile, write_pidfile
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.supervise.redis_service import REDIS_SERVICE, RedisService
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import Remedy, ServiceState, State
from comfystudio_desktop.supervise.services import build_services
from comfystudio_desktop.supervise.watchdog import Watchdog
from tests.fake_comfyui.process import free_port
from tests.helpers import Recorder, wait_until

FAST = RestartPolicy(initial_backoff_s=0.3, max_backoff_s=1.0, max_restarts=3, crash_loop_window_s=60.0,
                     hung_after_failures=2)
TOTAL = 300


def running(restarts: int = 0) -> Callable[[ServiceState], bool]:
    return lambda s: s.state is State.RUNNING and s.restarts >= restarts


@pytest.fixture
def supervise(home: Home) -> Iterator[Callable[..., tuple[Watchdog, RedisService, Recorder]]]:
    """Start a watchdog over the home's redis-server; every one made is stopped (with its server) at the end."""
    made: list[Watchdog] = []

    def make(**service_options: float) -> tuple[Watchdog, RedisService, Recorder]:
        service = RedisService(EmbeddedRedis(home), health_timeout_s=0.5, **service_options)
        watchdog = Watchdog([service.process], policy=FAST, interval_s=0.05)
        recorder = Recorder()
        watchdog.add_on_change(recorder)
        made.append(watchdog)
        watchdog.start()
        return watchdog, service, recorder

    yield make
    for watchdog in made:
        watchdog.stop()


def make_queue(service: RedisService, home: Home) -> JobQueue:
    # The provider only says where the server is: restarting it is the watchdog's job.
    return JobQueue(ResilientRedis(service.endpoint, delay_s=0.2), outbox=Outbox(home.outbox), lease_seconds=2.0)


def test_kill_9_while_jobs_flow_restarts_on_the_same_port_and_keeps_every_job(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], home: Home,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="comfystudio_desktop.queue.connection")
    watchdog, service, _ = supervise()
    first = watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
    assert first.state is State.RUNNING and first.pid is not None
    port = service.port
    producer_q, consumer_q = make_queue(service, home), make_queue(service, home)
    jobs = [Job(prompt=f"job {i}") for i in range(TOTAL)]
    accepted: list[str] = []
    finished: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for job in jobs:
                assert producer_q.submit(job) in (SubmitOutcome.QUEUED, SubmitOutcome.OUTBOX, SubmitOutcome.DUPLICATE)
                accepted.append(job.job_id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    def consume() -> None:
        while not stop.is_set():
            try:
                lease = consumer_q.claim("watchdog-test", block_s=0.2)
                if lease is not None and consumer_q.finish(lease, f"outputs/{lease.job_id}.png").value == "ok":
                    finished.append(lease.job_id)
                consumer_q.reap_expired()
            except RedisUnavailable:
                continue

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(accepted) >= TOTAL // 3, timeout=30, message="a third of the jobs accepted")
        killed_at = time.monotonic()
        psutil.Process(first.pid).kill()  # SIGKILL (TerminateProcess on Windows): only the AOF survives
        again = watchdog.wait_for(REDIS_SERVICE, running(restarts=1), timeout_s=10)
        recovered_s = time.monotonic() - killed_at
        assert again.state is State.RUNNING and again.pid != first.pid
        assert recovered_s < FAST.initial_backoff_s + 2.0, f"took {recovered_s:.2f} s"
        assert service.port == port  # clients find it where they left it
        threads[0].join(60)
        assert not errors, errors
        assert len(accepted) == TOTAL
        producer_q.deliver_outbox()

        def all_done() -> bool:
            client = producer_q.conn.client
            return client.zcard(PENDING_KEY) == 0 and client.zcard(LEASES_KEY) == 0
        wait_until(all_done, timeout=60, message="every job claimed and finished")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    records = producer_q.jobs()
    assert sorted(r.job_id for r in records) == sorted(j.job_id for j in jobs)
    assert all(r.status is JobStatus.FINISHED for r in records)
    assert len(finished) == len(set(finished)) == TOTAL  # none finished twice
    text = caplog.text
    assert "Redis connection lost: " in text
    assert "Reconnect attempt 1/5 failed" in text
    assert "Connected to Redis successfully" in text
    for q in (producer_q, consumer_q):
        q.conn.close()


@pytest.mark.skipif(os.name != "posix", reason="SIGSTOP freezes a process only on POSIX")
def test_a_hung_server_is_killed_and_restarted_with_its_data(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]]) -> None:
    watchdog, service, recorder = supervise(stop_grace_s=0.5)
    first = watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
    client = service.endpoint().client()
    client.set("kept", "yes")
    client.close()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)  # alive, but answers nothing
    again = watchdog.wait_for(REDIS_SERVICE, running(restarts=1), timeout_s=20)
    assert again.state is State.RUNNING and again.pid != first.pid
    assert State.HUNG in recorder.seen(REDIS_SERVICE)
    assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE
    client = service.endpoint().client()
    assert client.get("kept") == "yes"  # the AOF brought it back
    client.close()


def test_a_server_started_by_the_cli_is_adopted_and_left_running_on_quit(home: Home) -> None:
    cli_server = EmbeddedRedis(home)
    endpoint = cli_server.ensure_running()
    record = cli_server.running_record()
    assert record is not None
    services = build_services(home, Settings(comfy_url=f"http://127.0.0.1:{free_port()}"), redis_policy=FAST,
                              interval_s=0.05)
    try:
        try:
            services.start()
            state = services.watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
            assert (state.pid, state.message) == (record.pid, f"adopted pid {record.pid}")
            assert services.watchdog.adopted(REDIS_SERVICE)
            assert services.redis_endpoint().port == endpoint.port
            assert services.watchdog.states()["comfyui"].state is State.EXTERNAL  # never started
        finally:
            services.stop()  # quitting stops only what the app started: this server belongs to the CLI
        assert cli_server.running_record() == record
        client = endpoint.client()
        assert client.ping()
        client.close()
    finally:
        assert cli_server.stop()  # its owner stops it
    assert read_pidfile(cli_server.pidfile) is None


def test_a_server_the_watchdog_started_is_stopped_on_quit(home: Home) -> None:
    services = build_services(home, Settings(comfy_url=f"http://127.0.0.1:{free_port()}"), redis_policy=FAST,
                              interval_s=0.05)
    with services:
        pid = services.watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10).pid
        assert pid is not None and not services.watchdog.adopted(REDIS_SERVICE)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert EmbeddedRedis(home).running_record() is None


def test_close_to_tray_handover_keeps_the_server_and_the_next_run_adopts_it(home: Home) -> None:
    settings = Settings(comfy_url=f"http://127.0.0.1:{free_port()}")
    first = build_services(home, settings, redis_policy=FAST, interval_s=0.05)
    first.start()
    pid = first.watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10).pid
    first.stop(stop_children=False)
    assert pid is not None and psutil.pid_exists(pid)
    second = build_services(home, settings, redis_policy=FAST, interval_s=0.05)
    try:
        with second:
            state = second.watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
            assert state.pid == pid and state.message == f"adopted pid {pid}"
        assert psutil.pid_exists(pid)  # adopted, so the second run leaves it running
    finally:
        EmbeddedRedis(home).stop()
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
               timeout=10, message="the server stopped")


def test_a_reused_pid_in_the_pid_file_is_never_signalled(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], home: Home) -> None:
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        started = psutil.Process(unrelated.pid).create_time()
        write_pidfile(EmbeddedRedis(home).pidfile, PidRecord(pid=unrelated.pid, create_time=started - 1000.0,
                                                             extra={"port": free_port()}))
        watchdog, _, _ = supervise()
        state = watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
        assert state.state is State.RUNNING and state.pid != unrelated.pid
        watchdog.stop()
        assert unrelated.poll() is None  # same pid, other start time: never touched
    finally:
        unrelated.kill()
        unrelated.wait(10)


def _aof_layout(home: Home) -> AofLayout:
    layout = find_aof(home.redis)
    assert layout is not None
    return layout


def _aof_files(root: Path) -> dict[str, bytes]:
    """The AOF's files by name: the parts of a multi-part folder (Redis 7+, Valkey), or the one file (Redis 5)."""
    return {p.name: p.read_bytes() for p in root.iterdir()} if root.is_dir() else {root.name: root.read_bytes()}


def _damage(home: Home, how: str) -> None:
    """Damage the stopped server's AOF: garble the middle of the increment (or of Redis 5's single file), or cut the
    RDB base short."""
    layout = _aof_layout(home)
    if how != "garbled" and not layout.multi_part:
        pytest.skip("Redis 5 keeps one appendonly.aof without an RDB base: there is no base to damage")
    base, incr = layout.parts[0], layout.parts[-1]
    if how == "garbled":
        data = bytearray(incr.read_bytes())
        command = data.index(b"*3\r\n$3\r\nSET", len(data) // 2)  # a command header, not a value's bytes
        data[command] = ord("!")
        incr.write_bytes(bytes(data))
    else:
        base.write_bytes(base.read_bytes()[:20])


def _fill_and_stop(supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], count: int) -> None:
    watchdog, service, _ = supervise()
    watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
    client = service.endpoint().client()
    for i in range(count):
        client.set(f"key:{i:03d}", "x" * 40)
    client.close()
    watchdog.stop()


def test_a_damaged_aof_goes_fatal_without_a_restart_loop_and_repair_brings_the_queue_back(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], home: Home) -> None:
    _fill_and_stop(supervise, 100)
    layout = _aof_layout(home)
    original = _aof_files(layout.root)
    _damage(home, "garbled")
    damaged = _aof_files(layout.root)
    assert damaged != original
    watchdog, service, recorder = supervise()
    state = watchdog.wait_for(REDIS_SERVICE, lambda s: s.state is State.FATAL, timeout_s=10)
    assert state.state is State.FATAL and state.remedy is Remedy.REPAIR_AOF
    assert state.message.startswith("The queue's append-only file is damaged: Bad file format reading the append "
                                    "only file")
    # Redis 7+ and Valkey name the damaged part (Redis 8 as appendonlydir/...); Redis 5 has one file and names none.
    assert not layout.multi_part or "appendonly.aof.1.incr.aof" in state.message
    assert "make a backup" not in state.message.lower()  # the shell advice is cut: the app offers its own repair
    assert state.message.endswith("Repair it from Services.")
    # No loop: it stays FATAL, started once.
    assert watchdog.wait_for(REDIS_SERVICE, lambda s: s.state is not State.FATAL, timeout_s=0.5).state is State.FATAL
    assert len(recorder.pids(REDIS_SERVICE)) == 1 and State.RESTARTING not in recorder.seen(REDIS_SERVICE)

    report = repair_aof(home)
    assert report.repaired, report.message
    assert report.backup is not None and report.backup.parent == home.redis / "aof-backups"
    backed_up = _aof_files(report.backup / layout.root.name)
    assert backed_up == damaged  # the file as it was before the repair, byte for byte
    assert report.dropped_bytes and report.dropped_bytes[0][0] == layout.parts[-1].name
    assert "Repaired the append-only file" in report.message and str(report.backup) in report.message

    state = watchdog.restart(REDIS_SERVICE)
    state = watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10)
    assert state.state is State.RUNNING and state.remedy is Remedy.NONE
    client = service.endpoint().client()
    kept = sorted(client.keys("key:*"))
    client.close()
    assert kept[0] == "key:000" and 0 < len(kept) < 100  # what came before the damage is back


def test_a_damaged_base_cannot_be_repaired_and_says_so(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], home: Home) -> None:
    _fill_and_stop(supervise, 5)
    _damage(home, "truncated-base")
    watchdog, _, _ = supervise()
    state = watchdog.wait_for(REDIS_SERVICE, lambda s: s.state is State.FATAL, timeout_s=10)
    assert state.remedy is Remedy.REPAIR_AOF
    assert state.message == ("The queue's append-only file is damaged: Unexpected EOF reading RDB file. "
                             "Repair it from Services.")
    report = repair_aof(home)
    assert not report.repaired
    assert report.message.startswith("The append-only file was not repaired: ")
    # Valkey's part-by-part check names the base; Redis 8's checker says what is wrong with it.
    assert ("appendonly.aof.1.base.rdb" in report.message or "RDB preamble of AOF file is not sane" in report.message)
    assert "cannot be repaired automatically" in report.message
    assert report.backup is not None and (report.backup / "appendonlydir").is_dir()


def test_a_truncated_tail_is_loaded_without_a_repair(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], home: Home) -> None:
    _fill_and_stop(supervise, 20)
    layout = find_aof(home.redis)
    assert layout is not None
    incr = layout.parts[-1]
    incr.write_bytes(incr.read_bytes()[:-7])  # the last command cut short, as by a power cut
    watchdog, service, _ = supervise()
    assert watchdog.wait_for(REDIS_SERVICE, running(), timeout_s=10).state is State.RUNNING
    client = service.endpoint().client()
    assert len(client.keys("key:*")) == 19  # the server drops the torn command itself (aof-load-truncated)
    client.close()


def test_the_app_repairs_from_services_and_restarts_the_queue(
        supervise: Callable[..., tuple[Watchdog, RedisService, Recorder]], home: Home) -> None:
    _fill_and_stop(supervise, 40)
    _damage(home, "garbled")
    with build_services(home, Settings(comfy_url=f"http://127.0.0.1:{free_port()}"), redis_policy=FAST,
                        interval_s=0.05) as services:
        state = services.wait_for_redis(10)
        assert state.state is State.FATAL and state.remedy is Remedy.REPAIR_AOF
        report = services.repair_redis_aof()
        assert report.repaired, report.message
        assert services.wait_for_redis(10).state is State.RUNNING
        client = services.redis_endpoint().client()
        assert client.get("key:000") == "x" * 40
        client.close()
