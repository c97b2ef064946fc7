"""The whole window on the real qasync loop: embedded Redis, in-process worker thread, fake ComfyUI over HTTP/WS."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import qasync
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.ui.app import AppSession
from comfystudio_desktop.ui.jobs_model import Column, ThumbnailRole
from comfystudio_desktop.ui.single_instance import SingleInstance
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import FakeComfyProcess

CHECKPOINT = "tiny/sd15-random.safetensors"
T = TypeVar("T")


@pytest.fixture
def loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """The qasync loop as the app uses it, in the mode where Qt's event processing runs it: so whatever
    processes Qt events in a test (qtbot.waitUntil, pytest-qt itself) also runs asyncio tasks."""
    event_loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(event_loop)
    yield event_loop
    # stop() would call QApplication.exit(), which outside exec() leaves Qt's quit flag set so that every later
    # QEventLoop.exec() (pytest-qt's waits) returns at once. There is no exec() to leave: just mark it stopped.
    event_loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
    event_loop.close()  # also joins the loop's executor threads
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)


def run_until(qtbot: QtBot, condition: Callable[[], object], timeout: float = 30.0, message: str = "") -> None:
    """Process Qt events (and with them the asyncio loop) until `condition()` holds."""
    try:
        qtbot.waitUntil(lambda: bool(condition()), timeout=int(timeout * 1000))
    except qtbot.TimeoutError as exc:
        raise AssertionError(f"timed out after {timeout} s waiting for {message or 'condition'}") from exc


def run_coro(qtbot: QtBot, loop: qasync.QEventLoop, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a coroutine on the loop and wait for its result."""
    task = loop.create_task(coro)
    run_until(qtbot, task.done, timeout, f"{coro!r}")
    return task.result()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeComfyProcess]:
    with FakeComfyProcess(output_dir=tmp_path / "comfy-out", step_time=0.01) as proc:
        yield proc


@pytest.fixture
def settings(home: Home, fake: FakeComfyProcess) -> Settings:
    settings = Settings(comfy_url=fake.url, lease_seconds=5.0, notifications=True)
    save_settings(home.config_file, settings)
    return settings


class Session:
    """An AppSession started on the loop, with every job event it shows recorded."""

    def __init__(self, qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings) -> None:
        self.qtbot = qtbot
        self.loop = loop
        self.app = AppSession(home, settings)
        self.events: list[JobEvent] = []
        self.app.controller.job_event.connect(self.events.append)
        run_coro(qtbot, loop, self.app.start())
        self.window = self.app.window
        self.model = self.window.model
        self.closed = False

    def statuses(self, job_id: str) -> list[JobStatus]:
        seen: list[JobStatus] = []
        for event in self.events:
            if event.job_id == job_id and event.preview is None and (not seen or seen[-1] != event.status):
                seen.append(event.status)
        return seen

    def status(self, job_id: str) -> JobStatus | None:
        record = self.model.record(job_id)
        return record.status if record is not None else None

    def close(self) -> None:
        self.shutdown()
        self.dispose()

    def shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            run_coro(self.qtbot, self.loop, self.app.shutdown())

    def dispose(self) -> None:
        # Free the window's Qt objects here, on the GUI thread: a garbage collection that happens to run on a
        # worker thread later must not be the one that destroys them.
        for obj in (self.window, self.app.tray, self.app.tray.menu, self.app.controller):
            obj.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()


@pytest.fixture
def session(qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings) -> Iterator[Session]:
    started = Session(qtbot, loop, home, settings)
    yield started
    started.close()


def _generate(session: Session, qtbot: QtBot, prompt: str) -> str:
    panel = session.window.prompt_panel
    run_until(qtbot, lambda: CHECKPOINT in panel.model_combo.models(), message="the model list from ComfyUI")
    assert panel.model_combo.set_current_model(CHECKPOINT)
    panel.prompt_edit.setPlainText("")
    qtbot.keyClicks(panel.prompt_edit, prompt)
    before = set(session.model.job_ids())
    qtbot.keyClick(panel.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    run_until(qtbot, lambda: set(session.model.job_ids()) - before, message="the new row")
    (job_id,) = set(session.model.job_ids()) - before
    return job_id


def test_model_combo_is_grouped(session: Session, qtbot: QtBot) -> None:
    combo = session.window.prompt_panel.model_combo
    run_until(qtbot, lambda: CHECKPOINT in combo.models(), message="models from ComfyUI")
    assert combo.is_online()
    items = combo.model()
    headers = [combo.itemText(i) for i in range(combo.count())
               if not items.flags(items.index(i, 0)) & Qt.ItemFlag.ItemIsEnabled]
    assert headers == ["UNET", "Checkpoints"]
    groups = {combo.itemData(i, Qt.ItemDataRole.UserRole + 2) for i in range(combo.count())}
    assert combo.set_current_model(CHECKPOINT) and combo.current_group() == "Checkpoints"
    assert groups  # every entry carries its group


def test_ctrl_enter_runs_a_job_to_finished_with_thumbnail(session: Session, qtbot: QtBot, home: Home) -> None:
    job_id = _generate(session, qtbot, "a lighthouse at dusk")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="job finished")
    assert session.statuses(job_id)[:1] in ([JobStatus.QUEUED], [JobStatus.PROCESSING])
    assert session.statuses(job_id)[-2:] == [JobStatus.PROCESSING, JobStatus.FINISHED]
    assert (home.outputs / f"{job_id}.png").is_file()
    row = session.model.row_of(job_id)
    run_until(qtbot, lambda: session.model.index(row, Column.THUMBNAIL).data(ThumbnailRole) is not None,
              message="thumbnail loaded")
    assert not session.model.index(row, Column.THUMBNAIL).data(ThumbnailRole).isNull()
    assert "0 running" in session.window.counts_label.text() or "running" in session.window.counts_label.text()


def test_cancel_and_retry_from_the_context_menu(session: Session, qtbot: QtBot, fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.3)
    job_id = _generate(session, qtbot, "slow enough to cancel")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.PROCESSING, message="job running")
    view = session.window.jobs_view
    assert view.select_job(job_id)
    actions = {a.text(): a for a in view.context_menu().actions()}
    assert actions["Cancel"].isEnabled() and not actions["Retry"].isEnabled()
    actions["Cancel"].trigger()
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.CANCELLED, message="cancelled")
    run_until(qtbot, lambda: job_id in [i["prompt_id"] for i in fake.stats()["interrupts"]]
              or job_id not in fake.stats()["submitted"], message="ComfyUI told")
    fake.control(step_time=0.01)
    view.refresh_actions()
    actions = {a.text(): a for a in view.context_menu().actions()}
    assert actions["Retry"].isEnabled()
    actions["Retry"].trigger()
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="retried job finished")


def test_job_submitted_from_the_cli_appears_by_push(session: Session, home: Home, qtbot: QtBot) -> None:
    async def submit() -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "comfystudio_desktop", "--home", str(home.root), "submit",
                             "--prompt", "from another process", "--model", CHECKPOINT],
            capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    result = run_coro(qtbot, session.loop, submit())
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    run_until(qtbot, lambda: session.model.record(job_id) is not None, message="the CLI job's row")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="the CLI job finished")


def test_restart_restores_rows(loop: qasync.QEventLoop, home: Home, settings: Settings, qtbot: QtBot) -> None:
    first = Session(qtbot, loop, home, settings)
    job_id = _generate(first, qtbot, "remember me")
    run_until(qtbot, lambda: first.status(job_id) is JobStatus.FINISHED, message="job finished")
    first.close()
    second = Session(qtbot, loop, home, settings)
    try:
        record = second.model.record(job_id)
        assert record is not None and record.status is JobStatus.FINISHED
        assert record.job is not None and record.job.prompt == "remember me"
    finally:
        second.close()


def test_tray_menu_pauses_and_quits(session: Session, qtbot: QtBot) -> None:
    tray = session.app.tray
    worker = session.app.controller.worker
    assert worker is not None
    tray.pause_action.trigger()
    assert worker.consumer.paused and session.window.pause_action.isChecked()
    assert session.window.worker_label.text() == "Worker: paused"
    tray.pause_action.trigger()
    assert not worker.consumer.paused and session.window.worker_label.text() == "Worker: running"
    assert "queued" in tray.tooltip
    tray.quit_action.trigger()
    assert session.app._quit.done()


def test_second_instance_focuses_the_first(loop: qasync.QEventLoop, home: Home, session: Session,
                                           qtbot: QtBot) -> None:
    instance = SingleInstance(home.root)
    assert instance.claim()
    activated: list[bool] = []
    instance.activate_requested.connect(lambda: activated.append(True))
    instance.activate_requested.connect(session.window.bring_to_front)
    session.window.hide()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}

    async def second() -> int:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "comfystudio_desktop", "--home",
                                                    str(home.root), cwd=REPO_ROOT, env=env)
        return await asyncio.wait_for(proc.wait(), 60)
    try:
        assert run_coro(qtbot, loop, second()) == 0
        run_until(qtbot, lambda: activated, message="activation request")
        assert session.window.isVisible()
    finally:
        instance.release()


def test_quit_leaves_no_thread_or_server(loop: qasync.QEventLoop, home: Home, settings: Settings,
                                        qtbot: QtBot) -> None:
    session = Session(qtbot, loop, home, settings)
    worker = session.app.controller.worker
    runtime = session.app.controller.runtime
    assert worker is not None and runtime is not None and runtime.redis_server is not None
    record = runtime.redis_server.running_record()
    assert record is not None
    session.shutdown()
    try:
        assert worker.isFinished()
        assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE
        assert runtime.redis_server.running_record() is None
    finally:
        session.dispose()


def test_a_fatal_service_shows_the_services_panel_and_turns_the_tray_red(session: Session, qtbot: QtBot) -> None:
    from comfystudio_desktop.supervise.service_state import ServiceState, State
    from comfystudio_desktop.ui.tray import TrayState

    run_until(qtbot, lambda: "redis-server" in session.window.services_panel.names(), message="services listed")
    assert not session.window.services_dock.isVisible()
    session.app.controller.service_changed.emit(
        ServiceState(name="comfyui", state=State.FATAL, restarts=6, message="crash loop: exited 6 times"))
    assert session.window.services_dock.isVisible()
    assert session.app.tray.state is TrayState.ERROR and "crash loop" in session.app.tray.tooltip
    assert "fatal" in session.window.services_panel.cell("comfyui", "State").lower()
    session.app.controller.service_changed.emit(ServiceState(name="comfyui", state=State.RUNNING, healthy=True))
    assert "crash loop" not in session.app.tray.tooltip


def test_about_names_the_version_and_the_data_folder(session: Session, home: Home) -> None:
    from comfystudio_desktop import __version__

    text = session.window.about_text()
    assert __version__ in text and str(home.root) in text and "embedded=True" in text
    session.window.about_action.trigger()  # opens (non-modal) without error
