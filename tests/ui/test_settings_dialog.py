"""The settings dialog saves through the typed settings and shows a bad value next to its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox
from pytestqt.qtbot import QtBot

from comfystudio_desktop.comfy.unet_parts import PartLists
from comfystudio_desktop.settings import Settings, load_settings
from comfystudio_desktop.ui.file_choice_combo import AUTOMATIC, FileChoiceCombo, FileChoiceState, file_choice_state
from comfystudio_desktop.ui.settings_dialog import SettingsDialog
from tests.ui.find import child

LISTS = PartLists(text_encoders=("clip_l.safetensors", "qwen_3_4b.safetensors"), vaes=("ae.safetensors",))


def test_saves_edited_settings(qtbot: QtBot, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    dialog = SettingsDialog(Settings(), config, part_lists=LISTS)
    qtbot.addWidget(dialog)
    child(dialog, QSpinBox, "pipeline_depth").setValue(3)
    child(dialog, QDoubleSpinBox, "job_timeout_s").setValue(120)
    vae = child(dialog, QComboBox, "unet_vae")
    assert [vae.itemText(i) for i in range(vae.count())] == [AUTOMATIC, "ae.safetensors"]
    vae.setCurrentIndex(vae.findData("ae.safetensors"))
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        dialog._on_buttons_accepted()
    saved = load_settings(config)
    assert (saved.pipeline_depth, saved.job_timeout_s, saved.unet_vae) == (3, 120.0, "ae.safetensors")
    assert dialog.result_settings == saved


def test_invalid_value_is_shown_next_to_its_field_and_nothing_is_saved(qtbot: QtBot, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    dialog = SettingsDialog(Settings(), config)
    qtbot.addWidget(dialog)
    dialog.show()
    child(dialog, QLineEdit, "comfy_url").setText("ftp://nowhere")
    dialog._on_buttons_accepted()
    assert not config.exists() and dialog.result_settings is None
    label = dialog._errors["comfy_url"]
    assert label.isVisible() and "comfy_url" in label.text() and "http" in label.text()
    child(dialog, QLineEdit, "comfy_url").setText("http://127.0.0.1:8190")
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        dialog._on_buttons_accepted()
    assert json.loads(config.read_text())["comfy_url"] == "http://127.0.0.1:8190"


@pytest.mark.parametrize(("current", "available", "state"), [
    ("", ("a.safetensors",), FileChoiceState.AUTOMATIC),
    ("", (), FileChoiceState.AUTOMATIC),
    ("a.safetensors", ("a.safetensors",), FileChoiceState.INSTALLED),
    ("b.safetensors", ("a.safetensors",), FileChoiceState.MISSING),
    ("b.safetensors", (), FileChoiceState.UNKNOWN),
])
def test_a_saved_file_is_checked_against_what_comfyui_lists(current: str, available: tuple[str, ...],
                                                            state: FileChoiceState) -> None:
    assert file_choice_state(current, available) is state


def test_a_missing_file_stays_chosen_and_is_flagged(qtbot: QtBot, tmp_path: Path) -> None:
    settings = Settings(unet_text_encoder="t5xxl.safetensors", flux_clip_l="clip_l.safetensors")
    dialog = SettingsDialog(settings, tmp_path / "config.json", part_lists=LISTS)
    qtbot.addWidget(dialog)
    dialog.show()
    encoder = child(dialog, FileChoiceCombo, "unet_text_encoder")
    assert encoder.currentData() == "t5xxl.safetensors" and "not installed" in encoder.currentText()
    note = dialog._errors["unet_text_encoder"]
    assert note.isVisible() and note.text() == "not installed in ComfyUI"
    assert not dialog._errors["flux_clip_l"].isVisible()  # installed: nothing to say
    assert not dialog.error_label.isVisible()  # a warning, not a refusal: saving still works
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        dialog._on_buttons_accepted()
    assert load_settings(tmp_path / "config.json").unet_text_encoder == "t5xxl.safetensors"


def test_automatic_saves_an_empty_choice_and_focus_field_opens_its_tab(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = SettingsDialog(Settings(unet_vae="ae.safetensors", theme="dark"), tmp_path / "config.json",
                            part_lists=LISTS)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.focus_field("theme") and dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Desktop"
    assert child(dialog, QComboBox, "theme").currentData() == "dark"
    assert dialog.focus_field("flux_clip_l") and dialog.tabs.tabText(dialog.tabs.currentIndex()) == "ComfyUI"
    vae = child(dialog, QComboBox, "unet_vae")
    vae.setCurrentIndex(vae.findText(AUTOMATIC))
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        dialog._on_buttons_accepted()
    assert load_settings(tmp_path / "config.json").unet_vae == ""
