"""The watchdog with real child processes: restart with backoff, crash loop to FATAL, hang, external, stop."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from comfystudio_desktop.supervise.pidfile import read_pidfile
from comfystudio_desktop.supervise.process_spec import ExitDiagnosis, ProcessSpec
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import Remedy, ServiceState, State
from comfystudio_desktop.supervise.supervised_process import SupervisedProcess
from comfystudio_desktop.supervise.watchdog import Watchdog
from tests.helpers import toy_argv, toy_http_ok, wait_until

NEW_SESSION = {"start_new_session": True} if os.name == "posix" else {}
FAST = RestartPolicy(initial_backoff_s=0.1, max_backoff_s=0.4, max_restarts=3, crash_loop_window_s=60.0,
                     hung_after_failures=2)


class Recorder:
    """Collects what the watchdog reports, from its thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changes: list[ServiceState] = []
        self.restarted: list[str] = []

    def on_change(self, state: ServiceState) -> None:
        with self.lock:
            self.changes.append(state)

    def on_restarted(self, name: str) -> None:
        with self.lock:
            self.restarted.append(name)

    def states_seen(self) -> list[State]:
        with self.lock:
            return [change.state for change in self.changes]


@pytest.fixture
def make_watchdog(tmp_path: Path) -> Iterator[Callable[..., tuple[Watchdog, Recorder]]]:
    """Start a watchdog over toy specs; it (and its children) are stopped at the end."""
    made: list[Watchdog] = []

    def make(*specs: ProcessSpec, policy: RestartPolicy = FAST, interval_s: float = 0.05) -> tuple[Watchdog, Recorder]:
        watchdog = Watchdog([SupervisedProcess(spec, tmp_path / "logs") for spec in specs], policy=policy,
                            interval_s=interval_s)
        recorder = Recorder()
        watchdog.add_on_change(recorder.on_change)
        watchdog.add_on_restarted(recorder.on_restarted)
        made.append(watchdog)
        watchdog.start()
        return watchdog, recorder

    yield make
    for watchdog in made:
        watchdog.stop()


def is_state(*states: State) -> Callable[[ServiceState], bool]:
    return lambda state: state.state in states


def test_a_child_that_exits_is_restarted_after_the_backoff(make_watchdog: Callable[..., tuple[Watchdog, Recorder]],
                                                           tmp_path: Path) -> None:
    spec = ProcessSpec(name="toy", argv=toy_argv("--exit-once-file", str(tmp_path / "exited")),
                       pidfile=tmp_path / "toy.pid.json")
    watchdog, recorder = make_watchdog(spec)
    state = watchdog.wait_for("toy", lambda s: s.state is State.RUNNING and s.restarts == 1, timeout_s=10)
    assert (state.state, state.restarts) == (State.RUNNING, 1)
    restarting = [c for c in recorder.changes if c.state is State.RESTARTING]
    assert restarting and restarting[0].last_exit_code == 7
    # (deadline - now) with an unchanged clock is the backoff give or take a float rounding: Windows' monotonic
    # clock ticks every 15.6 ms, so there it often has not moved.
    assert restarting[0].restart_in_s is not None and restarting[0].restart_in_s <= FAST.initial_backoff_s + 1e-9
    assert "exited with code 7" in restarting[0].message
    # The hooks run after the RUNNING state is published (outside the service's lock): wait for them.
    wait_until(lambda: recorder.restarted == ["toy"], timeout=5, message="the on_restarted hook")


def test_a_child_that_always_exits_becomes_fatal_with_its_last_lines(
        make_watchdog: Callable[..., tuple[Watchdog, Recorder]], tmp_path: Path) -> None:
    # Its health check never passes, so it is never ready: no on_restarted hook may fire.
    spec = ProcessSpec(name="crasher", argv=toy_argv("--exit-code", "3"), health_check=lambda: False,
                       pidfile=tmp_path / "crasher.pid.json")
    watchdog, recorder = make_watchdog(spec)
    state = watchdog.wait_for("crasher", is_state(State.FATAL), timeout_s=10)
    assert state.state is State.FATAL
    assert state.restarts == FAST.max_restarts
    assert state.last_exit_code == 3
    assert "boom" in state.last_log_lines
    assert "crash loop" in state.message and state.pid is None
    assert recorder.states_seen().count(State.RESTARTING) == FAST.max_restarts
    assert recorder.restarted == []  # never became ready again

    # The user asks again: FATAL is cleared and the crash history starts over.
    state = watchdog.restart("crasher")
    assert state.state is not State.FATAL
    state = watchdog.wait_for("crasher", is_state(State.FATAL), timeout_s=10)
    assert state.restarts == 2 * FAST.max_restarts + 1


def test_a_hung_child_is_killed_and_restarted(make_watchdog: Callable[..., tuple[Watchdog, Recorder]],
                                             tmp_path: Path) -> None:
    port_file, hang_file = tmp_path / "port", tmp_path / "hang"
    spec = ProcessSpec(name="server", argv=toy_argv("--port-file", str(port_file), "--hang-file", str(hang_file)),
                       health_check=lambda: toy_http_ok(port_file, timeout=0.3), pidfile=tmp_path / "server.pid.json",
                       readiness_timeout_s=10, stop_grace_s=2)
    watchdog, recorder = make_watchdog(spec)
    first = watchdog.wait_for("server", is_state(State.RUNNING), timeout_s=10)
    assert first.state is State.RUNNING and first.pid is not None
    old = psutil.Process(first.pid)

    hang_file.write_text(str(first.pid))  # it still accepts connections but stops answering
    state = watchdog.wait_for("server", lambda s: s.state is State.RUNNING and s.pid != first.pid, timeout_s=15)
    assert state.state is State.RUNNING and state.restarts == 1
    assert State.HUNG in recorder.states_seen()
    hung = next(c for c in recorder.changes if c.state is State.HUNG)
    assert hung.pid == first.pid and "health checks" in hung.message
    assert not old.is_running() or old.status() == psutil.STATUS_ZOMBIE
    assert recorder.restarted == ["server"]


def test_not_ready_in_time_is_killed_and_counts_toward_fatal(
        make_watchdog: Callable[..., tuple[Watchdog, Recorder]], tmp_path: Path) -> None:
    spec = ProcessSpec(name="mute", argv=toy_argv(), health_check=lambda: False, readiness_timeout_s=0.2,
                       stop_grace_s=2, pidfile=tmp_path / "mute.pid.json")
    policy = RestartPolicy(initial_backoff_s=0.05, max_backoff_s=0.05, max_restarts=1)
    watchdog, _ = make_watchdog(spec, policy=policy)
    state = watchdog.wait_for("mute", is_state(State.FATAL), timeout_s=10)
    assert state.state is State.FATAL and "not ready after 0.2s" in state.message


def test_a_missing_program_is_fatal_at_once(make_watchdog: Callable[..., tuple[Watchdog, Recorder]],
                                            tmp_path: Path) -> None:
    watchdog, _ = make_watchdog(ProcessSpec(name="ghost", argv=(str(tmp_path / "no-such-program"),)))
    state = watchdog.wait_for("ghost", is_state(State.FATAL), timeout_s=5)
    assert state.state is State.FATAL and state.message.startswith("cannot start")


def test_an_external_service_is_watched_and_never_killed(make_watchdog: Callable[..., tuple[Watchdog, Recorder]],
                                                         tmp_path: Path) -> None:
    port_file, hang_file = tmp_path / "port", tmp_path / "hang"
    server = subprocess.Popen(toy_argv("--port-file", str(port_file), "--hang-file", str(hang_file)),
                              stdout=subprocess.DEVNULL, **NEW_SESSION)  # type: ignore[call-overload]
    try:
        watchdog, recorder = make_watchdog(
            ProcessSpec(name="comfyui", health_check=lambda: toy_http_ok(port_file, timeout=0.3)))
        state = watchdog.wait_for("comfyui", lambda s: s.healthy is True, timeout_s=10)
        assert (state.state, state.pid) == (State.EXTERNAL, None)

        hang_file.write_text(str(server.pid))
        # Well past hung_after_failures: still only reported.
        state = watchdog.wait_for("comfyui", lambda s: s.healthy is False, timeout_s=10)
        assert state.state is State.EXTERNAL
        watchdog.restart("comfyui")
        watchdog.stop_service("comfyui")
        watchdog.stop(stop_children=True)
        assert server.poll() is None
        assert set(recorder.states_seen()) == {State.EXTERNAL}
    finally:
        server.kill()
        server.wait(5)


def test_stop_returns_promptly_and_stops_children(make_watchdog: Callable[..., tuple[Watchdog, Recorder]],
                                                  tmp_path: Path) -> None:
    spec = ProcessSpec(name="sleeper", argv=toy_argv(), pidfile=tmp_path / "sleeper.pid.json")
    watchdog, recorder = make_watchdog(spec, interval_s=30.0)
    state = watchdog.wait_for("sleeper", is_state(State.STARTING, State.RUNNING), timeout_s=5)
    assert state.pid is not None
    began = time.monotonic()
    watchdog.stop()
    assert time.monotonic() - began < 5.0
    assert watchdog.states()["sleeper"].state is State.STOPPED
    assert not (tmp_path / "sleeper.pid.json").exists()
    assert recorder.changes[-1].state is State.STOPPED


def test_stop_service_then_restart(make_watchdog: Callable[..., tuple[Watchdog, Recorder]], tmp_path: Path) -> None:
    spec = ProcessSpec(name="sleeper", argv=toy_argv(), pidfile=tmp_path / "sleeper.pid.json")
    watchdog, recorder = make_watchdog(spec)
    first = watchdog.wait_for("sleeper", is_state(State.RUNNING), timeout_s=5)
    assert watchdog.stop_service("sleeper").state is State.STOPPED
    state = watchdog.restart("sleeper")
    assert state.pid not in (None, first.pid)
    watchdog.wait_for("sleeper", is_state(State.RUNNING), timeout_s=5)
    assert recorder.restarted == ["sleeper"]  # the job in flight would be requeued here
    with pytest.raises(KeyError):
        watchdog.restart("nobody")


def test_hooks_prepare_lock_and_an_exit_a_restart_cannot_fix(make_watchdog: Callable[..., tuple[Watchdog, Recorder]],
                                                            tmp_path: Path) -> None:
    calls: list[str] = []

    class Lock:
        def __enter__(self) -> None:
            calls.append("lock")

        def __exit__(self, *exc: object) -> None:
            calls.append("unlock")

    def prepare() -> dict[str, int]:
        calls.append("prepare")
        return {"port": 4242}

    def diagnose(lines: Sequence[str]) -> ExitDiagnosis | None:
        return ExitDiagnosis("data file damaged", Remedy.REPAIR_AOF) if "boom" in lines else None

    sleeper = ProcessSpec(name="sleeper", argv=toy_argv(), pidfile=tmp_path / "sleeper.pid.json", prepare=prepare,
                          start_lock=Lock)
    broken = ProcessSpec(name="broken", argv=toy_argv("--exit-code", "3"), diagnose_exit=diagnose)
    watchdog, _ = make_watchdog(sleeper, broken)
    state = watchdog.wait_for("broken", is_state(State.FATAL), timeout_s=10)
    assert (state.state, state.message, state.remedy, state.restarts) == (
        State.FATAL, "data file damaged", Remedy.REPAIR_AOF, 0)  # no restart was tried
    assert watchdog.wait_for("sleeper", is_state(State.RUNNING), timeout_s=5).state is State.RUNNING
    record = read_pidfile(tmp_path / "sleeper.pid.json")
    assert record is not None and record.extra["port"] == 4242
    assert calls == ["lock", "prepare", "unlock"]
    state = watchdog.restart("broken")  # the user's restart clears the remedy with FATAL
    assert state.remedy is Remedy.NONE


def test_quit_stops_what_the_watchdog_started_and_leaves_what_it_adopted(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    spec = ProcessSpec(name="server", argv=toy_argv("--port-file", str(port_file)),
                       health_check=lambda: toy_http_ok(port_file, timeout=0.3), pidfile=tmp_path / "server.pid.json",
                       readiness_timeout_s=10, stop_grace_s=2, adopt=True, output_to_file=True)
    # Another program starts the service (and leaves it running, named in the pid file) ...
    other = Watchdog([SupervisedProcess(spec, tmp_path / "logs")], policy=FAST, interval_s=0.05)
    other.start()
    pid = other.wait_for("server", is_state(State.RUNNING), timeout_s=10).pid
    other.stop(stop_children=False)
    assert pid is not None
    owner = psutil.Process(pid)
    try:
        # ... the app adopts it, and quitting the app leaves it running.
        app = Watchdog([SupervisedProcess(spec, tmp_path / "logs")], policy=FAST, interval_s=0.05)
        app.start()
        assert app.wait_for("server", is_state(State.RUNNING), timeout_s=10).pid == pid
        assert app.adopted("server")
        app.stop()
        assert owner.is_running() and owner.status() != psutil.STATUS_ZOMBIE
        assert toy_http_ok(port_file)
        # Once it dies, the app starts its own: that one is the app's, and quitting stops it.
        app = Watchdog([SupervisedProcess(spec, tmp_path / "logs")], policy=FAST, interval_s=0.05)
        app.start()
        assert app.wait_for("server", is_state(State.RUNNING), timeout_s=10).pid == pid
        owner.kill()
        owner.wait(5)
        mine = app.wait_for("server", lambda s: s.state is State.RUNNING and s.pid != pid, timeout_s=15).pid
        assert mine is not None and not app.adopted("server")
        app.stop()
        assert not psutil.pid_exists(mine) or psutil.Process(mine).status() == psutil.STATUS_ZOMBIE
    finally:
        if owner.is_running():
            owner.kill()
            owner.wait(5)
