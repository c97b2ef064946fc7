"""The prompt panel's batch parts on their own: checkable models, the live count, messages at the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfystudio_desktop.batch_plan import JobBatch
from comfystudio_desktop.jobs import MAX_PROMPT_CHARS
from comfystudio_desktop.ui.batch_form import dropped_prompt_file
from comfystudio_desktop.ui.prompt_panel import PromptPanel
from comfystudio_desktop.ui.workflow_choices import WorkflowInfo

MODELS = {"Checkpoints": ["sdxl/juggernaut.safetensors", "sd15/dream.safetensors"],
          "UNET": ["flux/flux1-dev.safetensors"]}


@pytest.fixture
def panel(qtbot: QtBot, tmp_path: Path) -> PromptPanel:
    widget = PromptPanel(tmp_path / "pending")
    qtbot.addWidget(widget)
    widget.set_workflows([WorkflowInfo("text_to_image", "Text to image")])
    widget.set_models(MODELS, online=True)
    return widget


def test_models_are_checkable_in_their_groups(panel: PromptPanel) -> None:
    checks = panel.model_checks
    rows = [checks.list.item(r) for r in range(checks.list.count())]
    assert [r.text() for r in rows] == ["UNET", "flux1-dev.safetensors", "Checkpoints", "dream.safetensors",
                                        "juggernaut.safetensors"]
    assert [bool(r.flags() & Qt.ItemFlag.ItemIsUserCheckable) for r in rows] == [False, True, False, True, True]
    assert checks.text() == "Batch…"
    rows[4].setCheckState(Qt.CheckState.Checked)
    rows[1].setCheckState(Qt.CheckState.Checked)
    assert checks.checked_models() == ["flux/flux1-dev.safetensors", "sdxl/juggernaut.safetensors"]
    assert checks.text() == "2 checked" and panel.batch_row.preview.text() == "2 jobs · 2 models"
    panel.set_models({"Checkpoints": ["sdxl/juggernaut.safetensors"]}, online=True)  # flux is gone
    assert checks.checked_models() == ["sdxl/juggernaut.safetensors"]
    checks.clear_checks()
    assert checks.checked_models() == [] and panel.batch_row.preview.text() == "1 job"


def test_the_count_follows_the_form_and_a_bad_matrix_is_told_at_the_prompt(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.prompt_edit.setPlainText("a {red|blue}\nan owl")
    assert panel.batch_row.preview.text() == "2 jobs · 2 prompts"  # one prompt holding newlines, two choices
    panel.batch_row.per_line_check.setChecked(True)
    assert panel.batch_row.preview.text() == "3 jobs · 3 prompts"
    panel.prompt_edit.setPlainText("ok\n{a|b} \\q")
    assert panel.batch_row.preview.text().startswith("line 2: matrix:")
    with qtbot.assertNotEmitted(panel.batch_requested), qtbot.assertNotEmitted(panel.generate_requested):
        assert panel.generate() is None
    assert panel.error_message("prompt").startswith("line 2: matrix: '\\' at 7 must escape")


def test_a_bad_job_in_the_batch_is_named(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.batch_row.per_line_check.setChecked(True)
    panel.prompt_edit.setPlainText(f"fine\n{'x' * (MAX_PROMPT_CHARS + 1)}\nalso fine")
    with qtbot.assertNotEmitted(panel.batch_requested):
        assert panel.generate() is None
    assert panel.error_message("prompt").startswith("Job 2 of 3: Prompt ")


def test_a_batch_is_one_signal_with_every_job(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.prompt_edit.setPlainText("a {red|blue} cube")
    panel.batch_row.seeds_spin.setValue(2)
    with qtbot.waitSignal(panel.batch_requested) as blocker:
        first = panel.generate()
    assert blocker.args is not None
    batch = blocker.args[0]
    assert isinstance(batch, JobBatch) and batch.jobs[0] is first
    assert [j.prompt for j in batch.jobs] == ["a red cube"] * 2 + ["a blue cube"] * 2
    assert [j.seed for j in batch.jobs] == [-1] * 4  # Random: each job picks its own seed


@pytest.mark.parametrize(("names", "taken"), [(["photo.png"], False), (["a.txt", "b.txt"], False),
                                             (["list.TXT"], True)])
def test_only_one_prompt_file_is_taken_from_a_drop(panel: PromptPanel, tmp_path: Path, names: list[str],
                                                   taken: bool) -> None:
    (tmp_path / "list.TXT").write_text("one\ntwo\n", encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / name)) for name in names])
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    assert (dropped_prompt_file(drop) is not None) is taken
    emitted: list[Path] = []
    panel.prompt_edit.file_dropped.connect(emitted.append)
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(panel.prompt_edit.viewport(), enter)
    QApplication.sendEvent(panel.prompt_edit.viewport(), drop)
    assert emitted == ([tmp_path / "list.TXT"] if taken else [])
