"""The whole window on the real qasync loop, for tests: waiting helpers and a started `AppSession`.

The fixtures that go with it (`loop`, `fake`, `settings`) are in `tests/ui/conftest.py`.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import qasync
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobEvent, JobStatus
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.ui.app import AppSession
from comfystudio_desktop.ui.app_controller import AppController

__all__ = ["CHECKPOINT", "Session", "generate", "run_coro", "run_until"]

CHECKPOINT = "tiny/sd15-random.safetensors"
T = TypeVar("T")


def run_until(qtbot: QtBot, condition: Callable[[], object], timeout: float = 30.0, message: str = "") -> None:
    """Process Qt events (and with them the asyncio loop) until `condition()` holds."""
    try:
        qtbot.waitUntil(lambda: bool(condition()), timeout=int(timeout * 1000))
    except qtbot.TimeoutError as exc:
        raise AssertionError(f"timed out after {timeout} s waiting for {message or 'condition'}") from exc


def run_until_status(qtbot: QtBot, session: Session, job_id: str, status: JobStatus, timeout: float = 30.0) -> None:
    """Process Qt events until the window shows `job_id` with `status`."""
    run_until(qtbot, lambda: session.status(job_id) is status, timeout, message=f"job {job_id} {status.value}")


#: How long a session's shutdown may take: the app bounds each of its steps (35 + 45 + 5 + 5 + 5 + 60 s at the
#: worst, AppController.shutdown), and a harness that gave up sooner would leave a slow but bounded quit (the
#: Windows stage, two test processes on two cores) running into the next tests as stray processes.
SHUTDOWN_WAIT_S = 160.0


def run_coro(qtbot: QtBot, loop: qasync.QEventLoop, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a coroutine on the loop and wait for its result."""
    task: asyncio.Task[T] = loop.create_task(coro)
    run_until(qtbot, task.done, timeout, f"{coro!r}")
    return task.result()


class Session:
    """An AppSession started on the loop, with every job event it shows recorded."""

    def __init__(self, qtbot: QtBot, loop: qasync.QEventLoop, home: Home, settings: Settings, *,
                 controller: AppController | None = None) -> None:
        self.qtbot = qtbot
        self.loop = loop
        self.app = AppSession(home, settings, controller=controller)
        self.events: list[JobEvent] = []
        self.app.controller.job_event.connect(self.events.append)
        run_coro(qtbot, loop, self.app.start())
        self.window = self.app.window
        self.model = self.window.model
        self.closed = False

    def statuses(self, job_id: str) -> list[JobStatus]:
        """The status of every job event the window got for `job_id`, repeats kept (one per event)."""
        return [event.status for event in self.events if event.job_id == job_id]

    def status(self, job_id: str) -> JobStatus | None:
        record = self.model.record(job_id)
        return record.status if record is not None else None

    def close(self) -> None:
        self.shutdown()
        self.dispose()

    def shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            run_coro(self.qtbot, self.loop, self.app.shutdown(), SHUTDOWN_WAIT_S)

    def dispose(self) -> None:
        # Free the window's Qt objects here, on the GUI thread: a garbage collection that happens to run on a
        # worker thread later must not be the one that destroys them.
        for obj in (self.window, self.app.tray, self.app.tray.menu, self.app.controller):
            obj.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()


def generate(session: Session, qtbot: QtBot, prompt: str) -> str:
    """Type a prompt, press Ctrl+Enter, and return the new job's id."""
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
