"""The settings dialog saves through the typed settings and shows a bad value next to its field."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QDoubleSpinBox, QLineEdit, QSpinBox
from pytestqt.qtbot import QtBot

from comfystudio_desktop.settings import Settings, load_settings
from comfystudio_desktop.ui.settings_dialog import SettingsDialog


def test_saves_edited_settings(qtbot: QtBot, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    dialog = SettingsDialog(Settings(), config)
    qtbot.addWidget(dialog)
    dialog.findChild(QSpinBox, "pipeline_depth").setValue(3)
    dialog.findChild(QDoubleSpinBox, "job_timeout_s").setValue(120)
    dialog.findChild(QLineEdit, "unet_vae").setText("ae.safetensors")
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
    dialog.findChild(QLineEdit, "comfy_url").setText("ftp://nowhere")
    dialog._on_buttons_accepted()
    assert not config.exists() and dialog.result_settings is None
    label = dialog._errors["comfy_url"]
    assert label.isVisible() and "comfy_url" in label.text() and "http" in label.text()
    dialog.findChild(QLineEdit, "comfy_url").setText("http://127.0.0.1:8190")
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        dialog._on_buttons_accepted()
    assert json.loads(config.read_text())["comfy_url"] == "http://127.0.0.1:8190"
