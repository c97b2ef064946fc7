"""The queue's outlook in the window: ETA on queued rows, the queue's line in the status bar and tray, and a
one-click Resume after ComfyUI ran out of memory."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.queue_pause import PauseReason, QueuePauseStore
from comfystudio_desktop.ui.jobs_model import Column
from tests.ui.window_session import Session, generate, run_until


def status_text(session: Session, job_id: str) -> str:
    return str(session.model.index(session.model.row_of(job_id), Column.STATUS).data())


def test_out_of_memory_pause_is_shown_with_resume_and_queued_rows_get_a_start(session: Session,
                                                                              qtbot: QtBot) -> None:
    runtime = session.app.controller.runtime
    assert runtime is not None
    store = QueuePauseStore(runtime.queue.conn)
    assert store.pause(PauseReason.OUT_OF_MEMORY, "CUDA out of memory")
    job_id = generate(session, qtbot, "waits while the queue is paused")
    window = session.window
    strip = window.outlook_strip
    run_until(qtbot, lambda: strip.resume_button.isVisibleTo(window), message="the Resume button")
    assert strip.label.text() == "Queue paused: ComfyUI ran out of memory (CUDA out of memory)"
    assert "ran out of memory" in session.app.tray.tooltip
    run_until(qtbot, lambda: "starts ≈" in status_text(session, job_id), message="the queued row's start")
    assert status_text(session, job_id).startswith("Queued #1 · starts ≈ ")

    strip.resume_button.click()
    run_until(qtbot, lambda: store.current() is None, message="the pause lifted")
    run_until(qtbot, lambda: session.status(job_id) is JobStatus.FINISHED, message="the job ran")
    run_until(qtbot, lambda: not strip.resume_button.isVisibleTo(window), message="Resume hidden")
    assert "ran out of memory" not in session.app.tray.tooltip
