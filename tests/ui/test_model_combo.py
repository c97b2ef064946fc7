"""ModelCombo: groups with disabled headers, ids in item data, offline note, filtering, kept selection."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from pytestqt.qtbot import QtBot

from comfystudio_desktop.ui.model_combo import OFFLINE_NOTE, GroupRole, ModelCombo, ModelIdRole

MODELS = {
    "Checkpoints": ["sdxl/juggernaut.safetensors", "sd15/dreamshaper.ckpt", "sdxl/dreamshaper.ckpt"],
    "UNET": ["flux/flux1-dev.safetensors", "wan2.1.gguf"],
}


def make_combo(qtbot: QtBot) -> ModelCombo:
    combo = ModelCombo()
    qtbot.addWidget(combo)
    combo.set_models(MODELS, online=True)
    return combo


def texts(combo: ModelCombo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_groups_in_order_with_disabled_bold_headers(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    assert texts(combo) == ["UNET", "flux1-dev.safetensors", "wan2.1.gguf", "Checkpoints",
                            "dreamshaper.ckpt (sd15)", "dreamshaper.ckpt (sdxl)", "juggernaut.safetensors"]
    model = combo.model()
    for row in (0, 3):
        flags = model.flags(model.index(row, 0))
        assert not flags & Qt.ItemFlag.ItemIsEnabled
        assert not flags & Qt.ItemFlag.ItemIsSelectable
        font = model.index(row, 0).data(Qt.ItemDataRole.FontRole)
        assert isinstance(font, QFont)
        assert font.bold()
        assert combo.itemData(row, ModelIdRole) is None
    flux = model.index(1, 0)
    assert flux.flags() & Qt.ItemFlag.ItemIsSelectable
    assert combo.itemData(1, ModelIdRole) == "flux/flux1-dev.safetensors"
    assert combo.itemData(1, GroupRole) == "UNET"
    assert combo.itemData(1, Qt.ItemDataRole.ToolTipRole) == "Folder: flux/"
    assert combo.itemData(2, Qt.ItemDataRole.ToolTipRole) == "Folder: (top level)"
    assert combo.models() == ["flux/flux1-dev.safetensors", "wan2.1.gguf", "sd15/dreamshaper.ckpt",
                              "sdxl/dreamshaper.ckpt", "sdxl/juggernaut.safetensors"]


def test_first_model_is_selected_and_headers_cannot_become_current(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    assert combo.current_model() == "flux/flux1-dev.safetensors"
    assert combo.current_group() == "UNET"
    combo.setCurrentIndex(3)  # the Checkpoints header
    assert combo.current_model() == "flux/flux1-dev.safetensors"
    assert combo.currentIndex() == 1


def test_selection_survives_refresh_and_returns_when_a_model_reappears(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    with qtbot.waitSignal(combo.model_changed) as blocker:
        assert combo.set_current_model("sdxl/juggernaut.safetensors")
    assert blocker.args == ["sdxl/juggernaut.safetensors"]
    with qtbot.assertNotEmitted(combo.model_changed):
        combo.set_models({"Checkpoints": ["a.safetensors", "sdxl/juggernaut.safetensors"]}, online=True)
    assert combo.current_model() == "sdxl/juggernaut.safetensors"
    with qtbot.waitSignal(combo.model_changed) as blocker:
        combo.set_models({"Checkpoints": ["a.safetensors"]}, online=True)
    assert blocker.args == [""]  # gone: nothing selected, rather than silently another model
    with qtbot.waitSignal(combo.model_changed) as blocker:
        combo.set_models(MODELS, online=True)
    assert blocker.args == ["sdxl/juggernaut.safetensors"]


def test_model_asked_for_before_the_list_arrives_is_selected(qtbot: QtBot) -> None:
    combo = ModelCombo()
    qtbot.addWidget(combo)
    assert not combo.set_current_model("wan2.1.gguf")
    combo.set_models(MODELS, online=True)
    assert combo.current_model() == "wan2.1.gguf"


def test_offline_state_marks_the_list(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    combo.set_models({"Checkpoints": ["sdxl/juggernaut.safetensors"]}, online=False)
    assert not combo.is_online()
    assert texts(combo)[0].startswith("Offline")
    assert not combo.model().flags(combo.model().index(0, 0)) & Qt.ItemFlag.ItemIsEnabled
    assert combo.itemData(0, Qt.ItemDataRole.ToolTipRole) == OFFLINE_NOTE
    assert OFFLINE_NOTE in combo.toolTip()
    indicator = combo._offline_action
    assert indicator.isVisible()
    with qtbot.waitSignal(combo.refresh_requested):  # clicking the warning icon retries
        indicator.trigger()
    combo.set_models(MODELS, online=True)
    assert not indicator.isVisible()
    assert combo.is_online()
    assert OFFLINE_NOTE not in combo.toolTip()
    assert texts(combo)[0] == "UNET"


def test_empty_list_selects_nothing(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    combo.set_models({}, online=False)
    assert combo.current_model() == ""
    assert texts(combo) == ["Offline — models found on disk", "No models found on disk"]


def test_typing_filters_and_enter_selects(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    combo.show()
    qtbot.waitExposed(combo)
    combo.setFocus()
    line = combo.lineEdit()
    assert line is not None
    line.selectAll()
    qtbot.keyClicks(line, "dream")
    completer = combo.completer()
    assert completer is not None
    popup = completer.popup()
    assert popup is not None
    qtbot.waitUntil(popup.isVisible)
    assert completer.completionCount() == 2  # headers are never offered
    with qtbot.waitSignal(combo.model_changed) as blocker:
        qtbot.keyClick(popup, Qt.Key.Key_Down)
        qtbot.keyClick(popup, Qt.Key.Key_Down)
        qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert blocker.args == ["sdxl/dreamshaper.ckpt"]
    assert line.text() == "dreamshaper.ckpt (sdxl)"


def test_unknown_text_reverts_to_the_selection(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    line = combo.lineEdit()
    assert line is not None
    line.setText("UNET")
    with qtbot.assertNotEmitted(combo.model_changed):
        qtbot.keyClick(line, Qt.Key.Key_Return)
    line.editingFinished.emit()
    assert combo.current_model() == "flux/flux1-dev.safetensors"
    assert line.text() == "flux1-dev.safetensors"


def test_refresh_action_and_f5(qtbot: QtBot) -> None:
    combo = make_combo(qtbot)
    with qtbot.waitSignal(combo.refresh_requested):
        combo.refresh_action.trigger()
    combo.show()
    qtbot.waitExposed(combo)
    combo.activateWindow()
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    with qtbot.waitSignal(combo.refresh_requested):
        qtbot.keyClick(combo, Qt.Key.Key_F5)
