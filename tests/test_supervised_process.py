"""SupervisedProcess with real child processes on 127.0.0.1: start, output, stop, leftovers, adoption, external."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop.supervise.pidfile import PidRecord, read_pidfile, write_pidfile
from comfystudio_desktop.supervise.process_spec import ProcessSpec
from comfystudio_desktop.supervise.service_state import State
from comfystudio_desktop.supervise.supervised_process import SupervisedProcess
from tests.helpers import toy_argv, toy_http_ok, wait_until

NEW_SESSION = os.name == "posix"  # its own session, so a kill of its group reaches no one else


@pytest.fixture
def make_process(tmp_path: Path) -> Iterator[Callable[..., SupervisedProcess]]:
    """Build SupervisedProcess objects on toy specs; every one is stopped at the end."""
    made: list[SupervisedProcess] = []

    def make(**spec_fields: object) -> SupervisedProcess:
        spec_fields.setdefault("name", "toy")
        spec_fields.setdefault("pidfile", tmp_path / "run" / "toy.pid.json")
        process = SupervisedProcess(ProcessSpec(**spec_fields), tmp_path / "logs")  # type: ignore[arg-type]
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop("test over")


@pytest.fixture
def popen_toy(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start toy processes directly (as a leftover of an earlier run would be); kill whatever is left at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(toy_argv(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=NEW_SESSION)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def wait_ready(process: SupervisedProcess, timeout: float = 10.0) -> None:
    wait_until(process.check_health, timeout, message=f"{process.name} to pass its health check")
    process.mark_running(time.monotonic())


def test_start_writes_pidfile_captures_output_and_stop_terminates(make_process: Callable[..., SupervisedProcess],
                                                                   tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = make_process(argv=toy_argv("--say", "hello from toy", "--port-file", str(port_file)),
                           health_check=lambda: toy_http_ok(port_file))
    process.start()
    assert process.state is State.STARTING
    wait_ready(process)
    pid = process.pid
    assert pid is not None
    record = read_pidfile(tmp_path / "run" / "toy.pid.json")
    assert record is not None and record.pid == pid and record.extra["name"] == "toy"
    assert record.create_time == pytest.approx(psutil.Process(pid).create_time(), abs=0.05)

    wait_until(lambda: any("hello from toy" in line for line in process.log.tail()), message="output line")
    state = process.snapshot()
    assert (state.state, state.pid, state.restarts) == (State.RUNNING, pid, 0)
    assert state.uptime_s is not None and state.uptime_s >= 0
    assert "hello from toy" in (tmp_path / "logs" / "toy.log").read_text(encoding="utf-8")

    process.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "run" / "toy.pid.json").exists()
    state = process.snapshot()
    assert state.state is State.STOPPED and state.pid is None
    if os.name == "posix":
        assert state.last_exit_code == -15


def test_exit_is_seen_with_exit_code_and_last_lines(make_process: Callable[..., SupervisedProcess]) -> None:
    process = make_process(argv=toy_argv("--exit-code", "3"))
    process.start()
    wait_until(lambda: not process.poll(), message="the toy to exit")
    state = process.snapshot()
    assert state.state is State.STOPPED and state.last_exit_code == 3
    assert "boom" in state.last_log_lines
    assert state.message == "exited with code 3"


def test_stop_hook_is_tried_first(make_process: Callable[..., SupervisedProcess], tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = make_process(argv=toy_argv("--port-file", str(port_file)), health_check=lambda: toy_http_ok(port_file),
                           stop_hook=lambda: toy_http_ok(port_file, "/quit"))
    process.start()
    wait_ready(process)
    process.stop()
    state = process.snapshot()
    assert state.last_exit_code == 0
    assert "quitting on request" in state.last_log_lines


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX; on Windows terminate is already a kill")
def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(make_process: Callable[..., SupervisedProcess],
                                                                  tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = make_process(argv=toy_argv("--ignore-term", "--port-file", str(port_file)),
                           health_check=lambda: toy_http_ok(port_file), stop_grace_s=0.5)
    process.start()
    wait_ready(process)  # it answers, so its SIGTERM handler is installed
    began = time.monotonic()
    process.stop()
    assert time.monotonic() - began >= 0.5
    state = process.snapshot()
    assert state.last_exit_code == -9
    assert any("killing" in line for line in state.last_log_lines)


def test_pidfile_naming_an_unrelated_process_is_left_alone(make_process: Callable[..., SupervisedProcess],
                                                           tmp_path: Path) -> None:
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=NEW_SESSION)
    try:
        real = psutil.Process(unrelated.pid).create_time()
        pidfile = tmp_path / "run" / "toy.pid.json"
        write_pidfile(pidfile, PidRecord(pid=unrelated.pid, create_time=real - 1000.0))  # same pid, other start
        port_file = tmp_path / "port"
        process = make_process(argv=toy_argv("--port-file", str(port_file)),
                               health_check=lambda: toy_http_ok(port_file), adopt=True, stop_grace_s=0.5)
        process.start()
        wait_ready(process)
        assert process.pid != unrelated.pid
        record = read_pidfile(pidfile)
        assert record is not None and record.pid == process.pid  # the stale file was replaced
        process.stop()
        assert unrelated.poll() is None, "the unrelated process was signalled"
    finally:
        unrelated.kill()
        unrelated.wait(5)


def test_our_healthy_leftover_is_adopted(make_process: Callable[..., SupervisedProcess],
                                         popen_toy: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    leftover = popen_toy("--port-file", str(port_file))
    wait_until(lambda: toy_http_ok(port_file), message="the leftover to answer")
    write_pidfile(tmp_path / "run" / "toy.pid.json", PidRecord.of(leftover.pid))
    process = make_process(argv=toy_argv("--port-file", str(port_file)), health_check=lambda: toy_http_ok(port_file),
                           adopt=True)
    process.start()
    state = process.snapshot()
    assert (state.state, state.pid) == (State.RUNNING, leftover.pid)
    assert state.uptime_s is not None and state.uptime_s >= 0
    assert "adopted" in state.message
    process.stop()
    assert leftover.wait(5) is not None


def test_our_leftover_is_stopped_when_adoption_is_not_allowed(make_process: Callable[..., SupervisedProcess],
                                                             popen_toy: Callable[..., subprocess.Popen[bytes]],
                                                             tmp_path: Path) -> None:
    leftover = popen_toy()
    write_pidfile(tmp_path / "run" / "toy.pid.json", PidRecord.of(leftover.pid))
    process = make_process(argv=toy_argv(), stop_grace_s=2.0)
    process.start()
    assert leftover.wait(5) is not None
    assert process.pid not in (None, leftover.pid)
    assert process.state is State.STARTING


def test_output_to_file_lets_the_child_write_its_log(make_process: Callable[..., SupervisedProcess],
                                                    tmp_path: Path) -> None:
    process = make_process(argv=toy_argv("--say", "straight to the file"), output_to_file=True)
    process.start()
    log_file = tmp_path / "logs" / "toy.log"
    wait_until(lambda: "straight to the file" in log_file.read_text(encoding="utf-8"), message="output in file")
    assert any("straight to the file" in line for line in process.snapshot().last_log_lines)
    process.stop()
    assert any("stopped" in line for line in process.snapshot().last_log_lines)


def test_external_service_is_watched_never_stopped(make_process: Callable[..., SupervisedProcess],
                                                   popen_toy: Callable[..., subprocess.Popen[bytes]],
                                                   tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    server = popen_toy("--port-file", str(port_file))
    wait_until(lambda: toy_http_ok(port_file), message="the external server to answer")
    process = make_process(health_check=lambda: toy_http_ok(port_file))
    process.start()
    state = process.snapshot()
    assert (state.state, state.pid, state.healthy) == (State.EXTERNAL, None, True)
    process.stop()
    assert server.poll() is None
    assert process.state is State.EXTERNAL


def test_missing_program_raises_and_reports(make_process: Callable[..., SupervisedProcess], tmp_path: Path) -> None:
    process = make_process(argv=(str(tmp_path / "no-such-program"),))
    with pytest.raises(FileNotFoundError):
        process.start()
    state = process.snapshot()
    assert state.state is State.STOPPED and "cannot start" in state.message


@pytest.mark.parametrize("fields", [
    {"name": "bad name"}, {"name": "../x", "argv": ("x",)}, {"name": "ok"}, {"name": "ok", "argv": ("x",),
                                                                         "readiness_timeout_s": 0},
])
def test_spec_rejects_nonsense(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProcessSpec(**fields)  # type: ignore[arg-type]
