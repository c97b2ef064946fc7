"""The window's status bar shows the dead-letter count pushed by other tools, and opens the list."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.queue.job_queue import SEED_QUEUE_KEY
from tests.ui.find import cell_text
from tests.ui.window_session import Session, run_until


def test_status_bar_counts_dead_letters_and_opens_them(session: Session, qtbot: QtBot) -> None:
    indicator = session.window.status_strip.dead_letters
    assert indicator.isHidden()
    runtime = session.app.controller.runtime
    assert runtime is not None
    runtime.queue.conn.client.rpush(SEED_QUEUE_KEY, b'{"prompt":"x","model":5}', b"\xff")
    # The window's own worker takes comfy_jobs in; the count follows within its poll interval.
    run_until(qtbot, lambda: indicator.count == 2, timeout=20, message="two dead letters in the status bar")
    assert not indicator.isHidden() and indicator.parent() is not None
    qtbot.mouseClick(indicator, Qt.MouseButton.LeftButton)
    dialog = indicator.dialog
    assert dialog is not None
    run_until(qtbot, lambda: dialog.table.rowCount() == 2, message="the dialog's rows")
    assert "model: must be text" in cell_text(dialog.table, 0, 1)
    dialog.close()
