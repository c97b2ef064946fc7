"""PromptPanel: building a valid Job, messages next to bad fields, shortcuts, load_job round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfystudio_desktop.jobs import SEED_MAX, Job
from comfystudio_desktop.ui.advanced_section import DEFAULT_TEXT
from comfystudio_desktop.ui.prompt_panel import PromptPanel
from comfystudio_desktop.ui.workflow_choices import WorkflowInfo

WORKFLOWS = [
    WorkflowInfo("text_to_image", "Text to image"),
    WorkflowInfo("image_to_image", "Image to image", ("input",)),
    WorkflowInfo("face_swap", "Face swap", ("source", "target")),
]
MODELS = {"UNET": ["flux/flux1-dev.safetensors"], "Checkpoints": ["sdxl/juggernaut.safetensors"]}


@pytest.fixture
def panel(qtbot: QtBot, tmp_path: Path) -> PromptPanel:
    widget = PromptPanel(tmp_path / "pending")
    qtbot.addWidget(widget)
    widget.set_workflows(WORKFLOWS)
    widget.set_models(MODELS, online=True)
    widget.resize(420, 680)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def focus(qtbot: QtBot, panel: PromptPanel, widget: object) -> None:
    panel.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is panel)
    widget.setFocus()  # type: ignore[attr-defined]
    qtbot.waitUntil(widget.hasFocus)  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", [Qt.Key.Key_Return, Qt.Key.Key_Enter])
def test_ctrl_enter_emits_a_valid_job(qtbot: QtBot, panel: PromptPanel, key: Qt.Key) -> None:
    panel.prompt_edit.setPlainText("  a lighthouse at dusk  ")
    panel.negative_edit.setPlainText("blurry")
    focus(qtbot, panel, panel.prompt_edit)
    with qtbot.waitSignal(panel.generate_requested) as blocker:
        qtbot.keyClick(panel.prompt_edit, key, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args is not None
    job = blocker.args[0]
    assert isinstance(job, Job)
    assert job.validate() is job
    assert (job.prompt, job.negative_prompt) == ("a lighthouse at dusk", "blurry")
    assert (job.workflow, job.model, job.seed, job.aspect_ratio, job.batch_size) == (
        "text_to_image", "flux/flux1-dev.safetensors", -1, "1:1", 1)
    assert (job.steps, job.cfg, job.denoise, job.images) == (None, None, None, {})
    assert panel.prompt_edit.toPlainText() == "  a lighthouse at dusk  "  # the shortcut inserted no newline


def test_empty_prompt_shows_a_message_next_to_it_and_emits_nothing(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.prompt_edit.setPlainText("   ")
    focus(qtbot, panel, panel.negative_edit)
    with qtbot.assertNotEmitted(panel.generate_requested):
        qtbot.keyClick(panel.negative_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert panel.error_message("prompt") == "Prompt must not be empty"
    label = panel._fields["prompt"][1]
    assert label.isVisible()
    # The message sits right under the prompt box.
    below = label.mapTo(panel, label.rect().topLeft()).y()
    edit_bottom = panel.prompt_edit.mapTo(panel, panel.prompt_edit.rect().bottomLeft()).y()
    assert 0 <= below - edit_bottom <= 12
    assert panel.prompt_edit.hasFocus()
    panel.prompt_edit.setPlainText("fixed")
    assert panel.error_message("prompt") == ""  # editing the field clears its message


def test_every_problem_is_shown_at_once(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.set_models({}, online=False)
    panel.seed_field.random_check.setChecked(False)
    panel.seed_field.edit.setText(str(SEED_MAX + 1))
    assert panel.build_job() is None
    assert panel.error_message("prompt") == "Prompt must not be empty"
    assert panel.error_message("model").startswith("Choose a model")
    assert panel.error_message("seed") == f"Seed must be at most {SEED_MAX}"


def test_required_image_slots(qtbot: QtBot, panel: PromptPanel, tmp_path: Path) -> None:
    from PIL import Image

    panel.workflow_combo.setCurrentIndex(panel.workflow_combo.findData("face_swap"))
    assert panel.image_slots.visible_slots() == ["source", "target"]
    assert panel.image_slots.isVisible()
    panel.prompt_edit.setPlainText("swap")
    assert panel.build_job() is None
    assert panel.image_slots.slot("source").message() == "This workflow needs a source image"
    assert panel.image_slots.slot("target").message() == "This workflow needs a target image"
    for name in ("source", "target"):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (32, 32), "white").save(path)
        with qtbot.waitSignal(panel.image_slots.slot(name).changed):
            panel.image_slots.slot(name).load_file(path)
    job = panel.build_job()
    assert job is not None
    assert job.images == {"source": str(tmp_path / "source.png"), "target": str(tmp_path / "target.png")}
    panel.workflow_combo.setCurrentIndex(panel.workflow_combo.findData("text_to_image"))
    assert not panel.image_slots.isVisible()
    job = panel.build_job()
    assert job is not None
    assert job.images == {}


def test_workflow_items_say_which_images_they_need(panel: PromptPanel) -> None:
    labels = [panel.workflow_combo.itemText(i) for i in range(panel.workflow_combo.count())]
    assert labels == ["Text to image", "Image to image (input image)", "Face swap (source + target images)"]


def test_seed_random_fixed_and_reuse_last(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.prompt_edit.setPlainText("p")
    assert panel.seed_field.random_check.isChecked()
    assert not panel.seed_field.reuse_button.isEnabled()
    panel.seed_field.random_check.setChecked(False)
    assert panel.seed_field.edit.isEnabled()
    assert panel.seed_field.edit.text().isdigit()  # a fresh seed to start from
    panel.seed_field.edit.setText(str(2**63 + 5))  # beyond QSpinBox's and int64's range
    job = panel.build_job()
    assert job is not None
    assert job.seed == 2**63 + 5
    panel.set_last_seed(1234)
    panel.seed_field.random_check.setChecked(True)
    qtbot.mouseClick(panel.seed_field.reuse_button, Qt.MouseButton.LeftButton)
    assert not panel.seed_field.random_check.isChecked()
    job = panel.build_job()
    assert job is not None
    assert job.seed == 1234
    panel.seed_field.edit.setText("")
    assert panel.build_job() is None
    assert panel.error_message("seed").startswith("Seed is empty")
    qtbot.keyClicks(panel.seed_field.edit, "12a")  # the validator refuses what is not a digit
    assert panel.seed_field.edit.text() == "12"
    panel.seed_field.edit.setText("-3")  # set by code, past the validator
    assert panel.build_job() is None
    assert panel.error_message("seed").startswith("Seed must be a whole number")


def test_advanced_overrides_default_to_the_template(qtbot: QtBot, panel: PromptPanel) -> None:
    panel.prompt_edit.setPlainText("p")
    assert not panel.advanced.body.isVisible()
    qtbot.mouseClick(panel.advanced.toggle_button, Qt.MouseButton.LeftButton)
    assert panel.advanced.body.isVisible()
    assert panel.advanced.steps.text() == DEFAULT_TEXT
    panel.advanced.steps.setValue(30)
    panel.advanced.cfg.setValue(0.0)  # zero is a real value, not "default"
    job = panel.build_job()
    assert job is not None
    assert (job.steps, job.cfg, job.denoise) == (30, 0.0, None)
    panel.advanced.cfg.setValue(-0.2)
    assert panel.build_job() is None
    assert panel.error_message("cfg") == "CFG must be 0..30"


def test_load_job_round_trip(qtbot: QtBot, panel: PromptPanel, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "in.png"
    Image.new("RGB", (16, 16), "black").save(image)
    original = Job(prompt="a cat", negative_prompt="dog", seed=42, workflow="image_to_image",
                   model="sdxl/juggernaut.safetensors", aspect_ratio="16:9", batch_size=3,
                   images={"input": str(image)}, steps=12, cfg=4.5, denoise=0.6)
    with qtbot.waitSignal(panel.image_slots.slot("input").changed):
        panel.load_job(original)
    assert panel.advanced.is_expanded()
    job = panel.build_job()
    assert job is not None
    fields = ("prompt", "negative_prompt", "seed", "workflow", "model", "aspect_ratio", "batch_size", "images",
              "steps", "cfg", "denoise")
    assert {f: getattr(job, f) for f in fields} == {f: getattr(original, f) for f in fields}
    assert job.job_id != original.job_id


def test_load_job_with_unknown_model_and_workflow_says_so(panel: PromptPanel) -> None:
    panel.load_job(Job(prompt="x", workflow="gone_workflow", model="old/model.ckpt"))
    assert "gone_workflow" in panel.error_message("workflow")
    assert panel.error_message("model") == "old/model.ckpt is not in the model list"


def test_tab_order_follows_the_form(qtbot: QtBot, panel: PromptPanel) -> None:
    focus(qtbot, panel, panel.prompt_edit)
    qtbot.keyClick(panel.prompt_edit, Qt.Key.Key_Tab)
    assert panel.batch_row.per_line_check.hasFocus()  # the Jobs row: how many jobs the prompt box makes
    qtbot.keyClick(panel.batch_row.per_line_check, Qt.Key.Key_Tab)
    assert panel.batch_row.seeds_spin.hasFocus()
    qtbot.keyClick(panel.batch_row.seeds_spin, Qt.Key.Key_Tab)
    assert panel.negative_edit.hasFocus()
    qtbot.keyClick(panel.negative_edit, Qt.Key.Key_Tab)
    assert panel.aspect_combo.hasFocus()


def test_fits_a_1280x720_window(panel: PromptPanel) -> None:
    hint = panel.minimumSizeHint()
    assert hint.width() <= 480
    assert hint.height() <= 640  # leaves room for a title bar, menu and status bar at 720 px
    panel.workflow_combo.setCurrentIndex(panel.workflow_combo.findData("face_swap"))
    panel.advanced.set_expanded(True)
    assert panel.minimumSizeHint().height() <= 900  # tallest form; the main window puts it in a scroll area
