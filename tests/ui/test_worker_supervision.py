"""The window's worker thread dies for real and the window restarts it, by the watchdog's rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary
from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.restart_policy import RestartPolicy
from comfystudio_desktop.supervise.service_state import ServiceState, State
from comfystudio_desktop.ui.app_controller import AppController
from comfystudio_desktop.ui.tray import TrayState
from comfystudio_desktop.ui.worker_supervisor import WORKER_SERVICE
from comfystudio_desktop.worker.consumer import Consumer, EmitFn
from tests.ui.window_session import Session, generate, run_until


class CrashPlan:
    """How many of the next worker runs die at once; counts every run."""

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0
        self._lock = threading.Lock()

    def factory(self, queue: JobQueue, client: ComfyClient, home: Home, settings: Settings, *,
                library: TemplateLibrary | None = None) -> Consumer:
        """The controller's consumer factory: a Consumer that follows this plan."""
        return FlakyConsumer(self, queue, client, home, settings, library=library)

    def next_run_crashes(self) -> int:
        """Count a run; its number if it must crash, else 0."""
        with self._lock:
            self.runs += 1
            if self.crashes <= 0:
                return 0
            self.crashes -= 1
            return self.runs


class FlakyConsumer(Consumer):
    """A real Consumer whose `run` raises (the exception escapes to the thread) while its plan says so."""

    def __init__(self, plan: CrashPlan, queue: JobQueue, client: ComfyClient, home: Home, settings: Settings, *,
                 library: TemplateLibrary | None = None) -> None:
        super().__init__(queue, client, home, settings, library=library)
        self.plan = plan

    def run(self, stop: threading.Event, emit: EmitFn) -> None:
        """Die on the planned runs; otherwise work as usual."""
        run = self.plan.next_run_crashes()
        if run:
            raise RuntimeError(f"injected crash in run {run}")
        super().run(stop, emit)


def start_session(qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings, plan: CrashPlan,
                  policy: RestartPolicy) -> tuple[Session, list[ServiceState]]:
    controller = AppController(home, settings, consumer_factory=plan.factory, worker_policy=policy)
    states: list[ServiceState] = []
    controller.service_changed.connect(lambda s: states.append(s) if s.name == WORKER_SERVICE else None)
    return Session(qtbot, loop, home, settings, controller=controller), states


@pytest.fixture
def sessions() -> Iterator[list[Session]]:
    made: list[Session] = []
    yield made
    for session in made:
        session.close()


def test_a_dead_worker_thread_is_restarted_and_the_next_job_finishes(
        qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings, sessions: list[Session]) -> None:
    plan = CrashPlan(crashes=2)
    policy = RestartPolicy(initial_backoff_s=0.2, max_backoff_s=0.4, max_restarts=5, crash_loop_window_s=60.0)
    session, states = start_session(qtbot, loop, home, settings, plan, policy)
    sessions.append(session)
    supervisor = session.app.controller.worker_supervisor
    assert supervisor is not None
    run_until(qtbot, lambda: supervisor.state is State.RUNNING and plan.runs == 3, message="the third worker run")
    restarting = [s for s in states if s.state is State.RESTARTING]
    assert [s.message for s in restarting] == ["stopped with an error: RuntimeError: injected crash in run 1",
                                               "stopped with an error: RuntimeError: injected crash in run 2"]
    # The time left when each state was read: the backoff (0.2 s, then doubled) less however long the state took to
    # reach us, which is more than a few ms on a busy machine (0.13 s seen under Wine).
    first, second = (s.restart_in_s for s in restarting)
    assert first is not None and 0.2 - 0.19 < first <= 0.2 + 1e-6
    assert second is not None and 0.4 - 0.19 < second <= 0.4 + 1e-6
    assert any("injected crash in run 2" in line for line in restarting[-1].last_log_lines)  # the traceback
    panel = session.window.services_panel
    assert panel.cell(WORKER_SERVICE, "Service") == "Worker (in this window)"
    run_until(qtbot, lambda: panel.cell(WORKER_SERVICE, "State") == "running", message="the row says running")
    assert panel.cell(WORKER_SERVICE, "Restarts") == "2"
    assert session.window.status_strip.worker_label.text() == "Worker: running"
    job_id = generate(session, qtbot, "after two crashes")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="the job finished")
    assert (home.outputs / f"{job_id}.png").is_file()
    assert session.app.tray.state is not TrayState.ERROR


def test_a_crash_loop_is_fatal_shown_everywhere_and_restarts_only_when_asked(
        qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings, sessions: list[Session]) -> None:
    plan = CrashPlan(crashes=1000)
    policy = RestartPolicy(initial_backoff_s=0.05, max_backoff_s=0.1, max_restarts=2, crash_loop_window_s=60.0)
    session, states = start_session(qtbot, loop, home, settings, plan, policy)
    sessions.append(session)
    supervisor = session.app.controller.worker_supervisor
    assert supervisor is not None
    run_until(qtbot, lambda: supervisor.state is State.FATAL, message="the crash loop")
    assert plan.runs == 3  # the first run and max_restarts restarts
    fatal = supervisor.snapshot()
    assert fatal.restart_in_s is None and session.app.controller.worker is None  # nothing scheduled
    assert fatal.message == ("crash loop: failed again after 2 restarts within 60s; "
                             "last: RuntimeError: injected crash in run 3")
    window, panel, tray = session.window, session.window.services_panel, session.app.tray
    assert window.services_dock.isVisible()
    assert panel.cell(WORKER_SERVICE, "State") == "FATAL"
    assert "injected crash in run 3" in panel.cell(WORKER_SERVICE, "Detail")
    assert tray.state is TrayState.ERROR and "crash loop" in tray.tooltip
    assert "crash loop" in window.statusBar().currentMessage()
    assert window.status_strip.worker_label.text() == "Worker: crash loop (see Services)"
    qtbot.wait(int(policy.max_backoff_s * 5 * 1000))  # several backoffs later: still no restart
    assert plan.runs == 3 and supervisor.state is State.FATAL
    assert [s.state for s in states].count(State.RESTARTING) == 2

    plan.crashes = 0
    panel.button(WORKER_SERVICE, "restart").click()  # the user's fix: restart it from the Services dock
    run_until(qtbot, lambda: supervisor.state is State.RUNNING, message="the worker running again")
    assert "crash loop" not in tray.tooltip
    job_id = generate(session, qtbot, "after the crash loop")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="the job finished")


def test_pause_survives_a_restart(qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings,
                                  sessions: list[Session]) -> None:
    plan = CrashPlan(crashes=0)
    session, states = start_session(qtbot, loop, home, settings, plan, RestartPolicy(initial_backoff_s=0.05))
    sessions.append(session)
    controller = session.app.controller
    supervisor = controller.worker_supervisor
    assert supervisor is not None
    session.window.pause_action.trigger()
    run_until(qtbot, lambda: plan.runs == 1, message="the first worker run begun")  # before the plan changes
    plan.crashes = 1
    session.app.controller.spawn(controller.restart_service(WORKER_SERVICE))
    run_until(qtbot, lambda: plan.runs == 3 and supervisor.state is State.RUNNING, message="crash and restart")
    assert [s.state for s in states][-4:] == [State.RUNNING, State.RUNNING, State.RESTARTING, State.RUNNING]
    worker = controller.worker
    assert worker is not None and worker.consumer.paused
    assert session.window.status_strip.worker_label.text() == "Worker: paused"
