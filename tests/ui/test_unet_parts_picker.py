"""The text encoder / VAE combos of the prompt panel: shown for UNET models, filled from ComfyUI's lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.comfy.unet_parts import PartLists
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.ui.prompt_panel import PromptPanel
from comfystudio_desktop.ui.unet_parts_picker import UnetChoice
from comfystudio_desktop.ui.workflow_choices import WorkflowInfo

MODELS = {"UNET": ["z-image/turbo.safetensors", "my-model.safetensors"], "Checkpoints": ["sd15.ckpt"]}
LISTS = PartLists(text_encoders=("clip_l.safetensors", "qwen_3_4b.safetensors", "t5xxl.safetensors"),
                  vaes=("ae.safetensors", "sd15-vae.safetensors"),
                  clip_types=frozenset({"lumina2", "stable_diffusion"}), dual_clip_types=frozenset({"flux"}))


@pytest.fixture
def panel(qtbot: QtBot, tmp_path: Path) -> PromptPanel:
    widget = PromptPanel(tmp_path / "pending")
    qtbot.addWidget(widget)
    widget.set_workflows([WorkflowInfo("text_to_image", "Text to image")])
    widget.set_unet_part_lists(LISTS)
    widget.set_models(MODELS, online=True)
    widget.resize(420, 760)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _items(combo: object) -> list[tuple[str, str]]:
    return [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]  # type: ignore[attr-defined]


def test_shown_only_for_unet_models_with_the_files_that_fit(panel: PromptPanel) -> None:
    picker = panel.unet_parts
    assert panel.model_combo.set_current_model("sd15.ckpt")
    assert not picker.isVisible()
    assert panel.model_combo.set_current_model("z-image/turbo.safetensors")
    assert picker.isVisible()
    assert _items(picker.text_encoder_combo) == [("Automatic (qwen_3_4b.safetensors)", ""),
                                                 ("qwen_3_4b.safetensors", "qwen_3_4b.safetensors")]
    assert _items(picker.vae_combo) == [("Automatic (ae.safetensors)", ""), ("ae.safetensors", "ae.safetensors")]
    # a name that says no family: every installed file, and "Automatic" cannot say which
    assert panel.model_combo.set_current_model("my-model.safetensors")
    assert [data for _, data in _items(picker.text_encoder_combo)] == ["", *LISTS.text_encoders]
    assert picker.text_encoder_combo.itemText(0) == "Automatic"


def test_a_pick_is_announced_for_remembering_and_goes_into_the_job(panel: PromptPanel, qtbot: QtBot) -> None:
    assert panel.model_combo.set_current_model("my-model.safetensors")
    combo = panel.unet_parts.text_encoder_combo
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    with qtbot.waitSignal(panel.unet_choice_changed) as blocker:
        qtbot.keyClick(combo, Qt.Key.Key_Down)  # the user moves to the first file
    assert blocker.args == [UnetChoice("my-model.safetensors", "clip_l.safetensors", "")]
    panel.prompt_edit.setPlainText("a cat")
    job = panel.build_job()
    assert job is not None and (job.text_encoder, job.vae) == ("clip_l.safetensors", "")
    assert panel.model_combo.set_current_model("sd15.ckpt")
    job = panel.build_job()
    assert job is not None and (job.text_encoder, job.vae) == ("", "")  # checkpoints carry no picks


def test_remembered_choices_and_a_loaded_job_are_shown(panel: PromptPanel) -> None:
    panel.set_unet_choices({"my-model.safetensors": {"text_encoder": "t5xxl.safetensors", "vae": "gone.safetensors"}})
    assert panel.model_combo.set_current_model("my-model.safetensors")
    picker = panel.unet_parts
    assert picker.choice() == UnetChoice("my-model.safetensors", "t5xxl.safetensors", "gone.safetensors")
    assert picker.vae_combo.currentText() == "gone.safetensors (not installed)"
    panel.load_job(Job(prompt="again", model="z-image/turbo.safetensors", text_encoder="qwen_3_4b.safetensors",
                       vae="ae.safetensors"))
    assert picker.choice() == UnetChoice("z-image/turbo.safetensors", "qwen_3_4b.safetensors", "ae.safetensors")
