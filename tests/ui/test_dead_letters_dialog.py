"""The dead-letter count and dialog against the real queue on the embedded Redis."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.job_queue import SEED_QUEUE_KEY, JobQueue
from comfystudio_desktop.ui.dead_letters_dialog import DeadLetterIndicator, DeadLettersDialog
from tests.ui.find import cell_text


def test_count_opens_the_dialog_with_reason_time_and_raw(qtbot: QtBot, queue: JobQueue) -> None:
    indicator = DeadLetterIndicator(lambda: queue)
    qtbot.addWidget(indicator)
    indicator.refresh()
    qtbot.waitUntil(lambda: not indicator._reading)
    assert indicator.isHidden() and indicator.count == 0
    queue.conn.client.rpush(SEED_QUEUE_KEY, b'{"prompt":"x","model":5}', b"\xff junk\nsecond line")
    queue.pump_intake()
    indicator.refresh()
    qtbot.waitUntil(lambda: indicator.count == 2)
    assert not indicator.isHidden() and indicator.text() == "⚠ 2 rejected"

    qtbot.mouseClick(indicator, Qt.MouseButton.LeftButton)
    dialog = indicator.dialog
    assert isinstance(dialog, DeadLettersDialog)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2)
    reasons = [cell_text(dialog.table, row, 1) for row in range(2)]
    assert "model: must be text, not a number" in reasons[0] and "not valid UTF-8" in reasons[1]
    assert cell_text(dialog.table, 0, 0) == dialog.letters[0].at
    assert "⏎" in cell_text(dialog.table, 1, 2)  # one line per row; the full text shows below
    dialog.table.selectRow(1)
    assert dialog.raw_view.toPlainText() == "\\xff junk\nsecond line"
    assert dialog.requeue_button.isEnabled()


def test_requeue_and_clear_buttons(qtbot: QtBot, queue: JobQueue) -> None:
    client = queue.conn.client
    client.rpush(SEED_QUEUE_KEY, json.dumps({"prompt": "fine", "job_id": "taken"}),
                 json.dumps({"prompt": "again", "job_id": "taken"}), b"junk")
    assert queue.pump_intake() == 1
    dialog = DeadLettersDialog(lambda: queue)
    qtbot.addWidget(dialog)
    counts: list[int] = []
    dialog.count_changed.connect(counts.append)
    dialog.refresh()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2)
    # The duplicate cannot be queued while its id is taken: it stays, with the reason shown.
    dialog.table.selectRow(0)
    qtbot.mouseClick(dialog.requeue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Not queued"))
    assert "duplicate job id" in dialog.message.text()
    qtbot.waitUntil(lambda: counts[-1:] == [2] and len(counts) >= 2)
    # Once the id is free, requeue queues it.
    client.delete("job:status:taken")
    dialog.table.selectRow(next(i for i, letter in enumerate(dialog.letters) if "duplicate" in letter.reason))
    qtbot.mouseClick(dialog.requeue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.message.text() == "Queued as job taken.")
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1)
    record = queue.status("taken")
    assert record is not None and record.status is JobStatus.QUEUED and record.job is not None
    assert record.job.prompt == "again"
    qtbot.mouseClick(dialog.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 0 and counts[-1] == 0)
    assert dialog.message.text() == "Cleared 1 dead letter(s)." and queue.dead_count() == 0
    assert not dialog.clear_button.isEnabled()
