"""Batches from the prompt panel, on the real window: matrix, dropped prompt files, seeds × checked models, the cap.

The queue is paused first, so every job waits in Redis where its batch and its place in the run order are read.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfystudio_desktop.batch_expansion import MAX_BATCH_JOBS
from comfystudio_desktop.jobs import Job, JobRecord
from comfystudio_desktop.queue.job_batches import JobBatches
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.ordering import QueueOrder
from comfystudio_desktop.queue.queue_pause import PauseReason, QueuePauseStore
from comfystudio_desktop.ui.prompt_panel import PromptPanel
from tests.ui.window_session import CHECKPOINT, Session, run_until

UNET = "tiny/sd15-unet-random.safetensors"


def paused_queue(session: Session, qtbot: QtBot) -> JobQueue:
    runtime = session.app.controller.runtime
    assert runtime is not None
    assert QueuePauseStore(runtime.queue.conn).pause(PauseReason.USER)
    panel = session.window.prompt_panel
    run_until(qtbot, lambda: {CHECKPOINT, UNET} <= set(panel.model_combo.models()), message="the model list")
    assert panel.model_combo.set_current_model(CHECKPOINT)
    return runtime.queue


def generate_batch(session: Session, qtbot: QtBot, count: int) -> list[Job]:
    """Press Ctrl+Enter; wait until `count` jobs are queued in Redis; return them in run order."""
    queue = session.app.controller.runtime.queue  # type: ignore[union-attr]
    before = {job_id for job_id, _ in QueueOrder(queue).order()}
    panel = session.window.prompt_panel
    qtbot.keyClick(panel.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    run_until(qtbot, lambda: len(QueueOrder(queue).order()) - len(before) == count, message=f"{count} queued jobs")
    ids = [job_id for job_id, _ in QueueOrder(queue).order() if job_id not in before]
    records = [queue.status(job_id) for job_id in ids]
    jobs = [r.job for r in records if isinstance(r, JobRecord) and r.job is not None]
    assert len(jobs) == count
    return jobs


def drop_file(panel: PromptPanel, path: Path) -> bool:
    """Drag `path` onto the prompt box and drop it, as a file manager would; whether the drop was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    target = panel.prompt_edit.viewport()
    centre = target.rect().center()
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(QPoint(centre)), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    return drop.isAccepted()


def test_a_matrix_queues_one_batch_in_matrix_order(session: Session, qtbot: QtBot) -> None:
    queue = paused_queue(session, qtbot)
    panel = session.window.prompt_panel
    panel.prompt_edit.setPlainText("a {red|green|blue} {cube|sphere}")
    assert panel.batch_row.preview.text() == "6 jobs · 6 prompts"
    jobs = generate_batch(session, qtbot, 6)
    assert [j.prompt for j in jobs] == ["a red cube", "a red sphere", "a green cube", "a green sphere",
                                        "a blue cube", "a blue sphere"]
    (batch_id,) = {j.batch_id for j in jobs}
    assert batch_id.startswith("batch-")
    assert JobBatches(queue).member_ids(batch_id) == [j.job_id for j in jobs]
    assert {j.model for j in jobs} == {CHECKPOINT}
    run_until(qtbot, lambda: all(session.model.record(j.job_id) is not None for j in jobs), message="the rows")


def test_a_dropped_txt_and_csv_fill_the_box_and_queue_their_prompts(session: Session, qtbot: QtBot,
                                                                    tmp_path: Path) -> None:
    queue = paused_queue(session, qtbot)
    panel = session.window.prompt_panel
    txt = tmp_path / "prompts.txt"
    txt.write_text("a lighthouse\n\n# a comment\na harbour at night\n", encoding="utf-8")
    assert drop_file(panel, txt)
    run_until(qtbot, lambda: panel.prompt_edit.toPlainText() == "a lighthouse\na harbour at night",
              message="the file's prompts in the box")
    assert panel.batch_row.per_line() and panel.batch_row.preview.text() == "2 jobs · 2 prompts"
    assert [j.prompt for j in generate_batch(session, qtbot, 2)] == ["a lighthouse", "a harbour at night"]

    csv_file = tmp_path / "shots.CSV"
    csv_file.write_bytes("\ufeffid,prompt\n1,\"a fox,\nin snow\"\n2,an owl\n".encode())
    assert drop_file(panel, csv_file)
    run_until(qtbot, lambda: panel.prompt_edit.toPlainText() == "a fox, in snow\nan owl", message="the CSV's prompts")
    jobs = generate_batch(session, qtbot, 2)
    assert [j.prompt for j in jobs] == ["a fox, in snow", "an owl"]
    assert len({j.batch_id for j in jobs}) == 1
    assert len(QueueOrder(queue).order()) == 4


def test_a_bad_file_is_told_at_the_prompt_box_and_queues_nothing(session: Session, qtbot: QtBot,
                                                                 tmp_path: Path) -> None:
    queue = paused_queue(session, qtbot)
    panel = session.window.prompt_panel
    panel.prompt_edit.setPlainText("kept as it was")
    cases = {"latin1.txt": "café".encode("latin-1"), "empty.csv": b"", "blank.txt": b"\n  \n# only a comment\n",
             "many.txt": b"p\n" * (MAX_BATCH_JOBS + 1), "binary.csv": b"prompt\n\x00\x01"}
    expected = {"latin1.txt": "not UTF-8", "empty.csv": "no prompts", "blank.txt": "no prompts",
                "many.txt": "at most 1,000", "binary.csv": "NUL"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert drop_file(panel, path)
        run_until(qtbot, lambda: panel.error_message("prompt"), message=f"the message for {name}")
        message = panel.error_message("prompt")
        assert message.startswith(f"{name}: ") and expected[name] in message, message
        assert panel.prompt_edit.toPlainText() == "kept as it was"
    assert queue.counts()["queued"] == 0


def test_seeds_times_checked_models_in_cli_order(session: Session, qtbot: QtBot) -> None:
    paused_queue(session, qtbot)
    panel = session.window.prompt_panel
    panel.model_checks.set_checked([CHECKPOINT, UNET])
    assert panel.model_checks.checked_models() == [UNET, CHECKPOINT]  # the list's order: UNET first, as grouped
    panel.batch_row.per_line_check.setChecked(True)
    panel.prompt_edit.setPlainText("a cat\na dog")
    panel.seed_field.set_seed(40)
    panel.batch_row.seeds_spin.setValue(3)
    assert panel.batch_row.preview.text() == "12 jobs · 2 models × 2 prompts × 3 seeds"
    jobs = generate_batch(session, qtbot, 12)
    expected = [(model, prompt, seed) for model in (UNET, CHECKPOINT) for prompt in ("a cat", "a dog")
                for seed in (40, 41, 42)]
    assert [(j.model, j.prompt, j.seed) for j in jobs] == expected
    assert len({j.batch_id for j in jobs}) == 1


def test_over_the_limit_is_refused_at_the_jobs_row(session: Session, qtbot: QtBot) -> None:
    queue = paused_queue(session, qtbot)
    panel = session.window.prompt_panel
    panel.prompt_edit.setPlainText("{a|b|c|d|e|f|g|h|i|j} {a|b|c|d|e|f|g|h|i|j} {a|b|c|d|e|f|g|h|i|j}")
    panel.batch_row.seeds_spin.setValue(2)
    assert panel.error_message("jobs") == "2,000 jobs · 1,000 prompts × 2 seeds: at most 1,000 jobs are allowed " \
                                          "in one batch"
    rows = len(session.model.job_ids())
    qtbot.keyClick(panel.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert panel.error_message("jobs").startswith("2,000 jobs")
    panel.batch_row.seeds_spin.setValue(1)
    assert panel.error_message("jobs") == "" and panel.batch_row.preview.text() == "1,000 jobs · 1,000 prompts"
    assert len(session.model.job_ids()) == rows and queue.counts()["queued"] == 0
