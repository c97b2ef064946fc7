"""The whole window on the real qasync loop: embedded Redis, in-process worker thread, fake ComfyUI over HTTP/WS."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys

import psutil
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.ui.jobs_model import Column, ThumbnailRole
from comfystudio_desktop.ui.model_combo import GroupRole
from comfystudio_desktop.ui.single_instance import SingleInstance
from tests.conftest import REPO_ROOT
from tests.fake_comfyui.process import FakeComfyProcess
from tests.ui.window_session import CHECKPOINT, Session, generate, run_coro, run_until


def test_model_combo_is_grouped(session: Session, qtbot: QtBot) -> None:
    combo = session.window.prompt_panel.model_combo
    run_until(qtbot, lambda: CHECKPOINT in combo.models(), message="models from ComfyUI")
    assert combo.is_online()
    items = combo.model()
    headers = [combo.itemText(i) for i in range(combo.count())
               if not items.flags(items.index(i, 0)) & Qt.ItemFlag.ItemIsEnabled]
    assert headers == ["UNET", "Checkpoints"]
    # Every model entry carries the group of the header above it.
    header = ""
    grouped: list[tuple[object, str]] = []
    for i in range(combo.count()):
        if items.flags(items.index(i, 0)) & Qt.ItemFlag.ItemIsEnabled:
            grouped.append((combo.itemData(i, GroupRole), header))
        else:
            header = combo.itemText(i)
    assert grouped and all(group == want for group, want in grouped), grouped
    assert combo.set_current_model(CHECKPOINT) and combo.current_group() == "Checkpoints"


def test_ctrl_enter_runs_a_job_to_finished_with_thumbnail(session: Session, qtbot: QtBot, home: Home) -> None:
    job_id = generate(session, qtbot, "a lighthouse at dusk")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="job finished")
    assert session.statuses(job_id)[:1] in ([JobStatus.QUEUED], [JobStatus.PROCESSING])
    assert session.statuses(job_id)[-2:] == [JobStatus.PROCESSING, JobStatus.FINISHED]
    assert (home.outputs / f"{job_id}.png").is_file()
    row = session.model.row_of(job_id)
    run_until(qtbot, lambda: session.model.index(row, Column.THUMBNAIL).data(ThumbnailRole) is not None,
              message="thumbnail loaded")
    assert not session.model.index(row, Column.THUMBNAIL).data(ThumbnailRole).isNull()
    counts = session.window.status_strip.counts_label
    run_until(qtbot, lambda: counts.text() == "0 queued · 0 running", message="the counts after the last change")


def test_cancel_and_retry_from_the_context_menu(session: Session, qtbot: QtBot, fake: FakeComfyProcess) -> None:
    fake.control(step_time=0.3)
    job_id = generate(session, qtbot, "slow enough to cancel")
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
    job_id = generate(first, qtbot, "remember me")
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
    def paused() -> bool:  # read anew each time (a plain attribute read would be narrowed by the type checker)
        return worker.consumer.paused

    tray.pause_action.trigger()
    assert paused() and session.window.pause_action.isChecked()
    assert session.window.status_strip.worker_label.text() == "Worker: paused"
    tray.pause_action.trigger()
    assert not paused() and session.window.status_strip.worker_label.text() == "Worker: running"
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
        # A refresh a late signal asks for after the quit starts nothing that would outlive the loop.
        before = asyncio.all_tasks(loop)
        session.app.controller.request_counts()
        session.window.queue_outlook.request()
        assert asyncio.all_tasks(loop) == before

        async def late() -> None:
            pass

        coro = late()
        assert session.app.controller.spawn(coro) is None
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
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
    assert __version__ in text and str(home.root) in text and "embedded Redis" in text
    assert "RedisEndpoint(" not in text
    session.window.about_action.trigger()  # opens (non-modal) without error
