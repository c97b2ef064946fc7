"""In the window: a UNET model's text encoder / VAE combos come from ComfyUI, and a pick is saved per model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import load_settings
from tests.ui.window_session import Session, run_until

UNET = "tiny/sd15-unet-random.safetensors"


def test_unet_parts_from_comfy_and_a_pick_remembered_in_the_settings(session: Session, qtbot: QtBot,
                                                                      home: Home) -> None:
    panel = session.window.prompt_panel
    run_until(qtbot, lambda: UNET in panel.model_combo.models(), message="the model list from ComfyUI")
    assert panel.model_combo.set_current_model(UNET)
    picker = panel.unet_parts
    run_until(qtbot, picker.isVisible, message="the text encoder and VAE combos")
    combo = picker.text_encoder_combo
    assert [combo.itemData(i) for i in range(combo.count())] == ["", "tiny/clip-l-random.safetensors"]
    assert combo.itemText(0) == "Automatic (clip-l-random.safetensors)"
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    run_until(qtbot, lambda: load_settings(home.config_file).unet_parts, message="the pick saved")
    assert load_settings(home.config_file).unet_parts == {
        UNET: {"text_encoder": "tiny/clip-l-random.safetensors", "vae": ""}}
    assert session.window.settings.unet_choice(UNET)["text_encoder"] == "tiny/clip-l-random.safetensors"
