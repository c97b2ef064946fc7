"""ImageSlot and ImageSlotsPanel: drops, pastes, browsing, validation messages, swap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QFileDialog
from pytestqt.qtbot import QtBot

from comfystudio_desktop.ui.image_slot import WEB_URL_MESSAGE, ImageSlot
from comfystudio_desktop.ui.image_slots_panel import ImageSlotsPanel

MakeImage = Callable[..., bytes]


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    return tmp_path / "pending-inputs"


@pytest.fixture
def slot(qtbot: QtBot, temp_dir: Path) -> ImageSlot:
    widget = ImageSlot("input", temp_dir, max_bytes=1024 * 1024, max_pixels=1_000_000)
    qtbot.addWidget(widget)
    return widget


def file_mime(path: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def accept_and_wait(qtbot: QtBot, slot: ImageSlot, mime: QMimeData) -> list[object]:
    with qtbot.waitSignal(slot.changed) as blocker:
        slot.accept_mime(mime)
    return list(blocker.args or [])


def reject_and_wait(qtbot: QtBot, slot: ImageSlot, mime: QMimeData) -> str:
    with qtbot.assertNotEmitted(slot.changed), qtbot.waitSignal(slot.rejected) as blocker:
        slot.accept_mime(mime)
    assert blocker.args is not None
    return str(blocker.args[1])


def test_drop_of_a_file_url_fills_the_slot(qtbot: QtBot, slot: ImageSlot, png_file: Path) -> None:
    assert accept_and_wait(qtbot, slot, file_mime(png_file)) == ["input", str(png_file)]
    assert slot.path() == str(png_file)
    info = slot.info()
    assert info is not None
    assert (info.width, info.height, info.format) == (64, 48, "PNG")
    assert slot.message() == ""
    assert not slot.is_busy()


def test_drop_of_image_data_is_saved_to_the_temp_folder(qtbot: QtBot, slot: ImageSlot, temp_dir: Path) -> None:
    mime = QMimeData()
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.blue)
    mime.setImageData(image)
    _, path = accept_and_wait(qtbot, slot, mime)
    saved = Path(str(path))
    assert saved.parent == temp_dir
    assert saved.suffix == ".png"
    with Image.open(saved) as img:
        assert img.size == (40, 30)


def test_raw_image_bytes_are_kept_as_they_are(qtbot: QtBot, slot: ImageSlot, make_image: MakeImage) -> None:
    data = make_image(fmt="JPEG")
    mime = QMimeData()
    mime.setData("image/jpeg", data)
    _, path = accept_and_wait(qtbot, slot, mime)
    assert Path(str(path)).suffix == ".jpg"
    assert Path(str(path)).read_bytes() == data


def test_drop_of_a_text_file_is_refused(qtbot: QtBot, slot: ImageSlot, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    message = reject_and_wait(qtbot, slot, file_mime(notes))
    assert message == "notes.txt is not an image (PNG, JPEG, WebP or BMP)"
    assert slot.message() == message
    assert slot.path() == ""


def test_drop_of_a_truncated_png_is_refused(qtbot: QtBot, slot: ImageSlot, tmp_path: Path,
                                           make_image: MakeImage) -> None:
    data = make_image(size=(200, 200))
    broken = tmp_path / "broken.png"
    broken.write_bytes(data[: len(data) // 2])
    assert reject_and_wait(qtbot, slot, file_mime(broken)) == "broken.png is truncated or corrupt"
    assert slot.path() == ""


def test_drop_of_an_over_limit_image_is_refused(qtbot: QtBot, slot: ImageSlot, tmp_path: Path,
                                               make_image: MakeImage) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(make_image(size=(1200, 1000)))
    assert reject_and_wait(qtbot, slot, file_mime(huge)) == "huge.png is 1200×1000 pixels; the limit is 1 MP"
    assert slot.path() == ""


def test_web_address_is_not_fetched(qtbot: QtBot, slot: ImageSlot) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.png")])
    assert reject_and_wait(qtbot, slot, mime) == WEB_URL_MESSAGE


def test_refused_drop_keeps_the_previous_image(qtbot: QtBot, slot: ImageSlot, png_file: Path,
                                              tmp_path: Path) -> None:
    accept_and_wait(qtbot, slot, file_mime(png_file))
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    reject_and_wait(qtbot, slot, file_mime(notes))
    assert slot.path() == str(png_file)


def test_real_drag_and_drop_events(qtbot: QtBot, slot: ImageSlot, png_file: Path) -> None:
    slot.show()
    qtbot.waitExposed(slot)
    mime = file_mime(png_file)
    actions = Qt.DropAction.CopyAction
    # QDragEnterEvent takes a QPoint (the C++ constructor; only newer bindings also convert a QPointF).
    enter = QDragEnterEvent(QPoint(10, 10), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(slot, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(slot.changed):
        QApplication.sendEvent(slot, drop)
    assert slot.path() == str(png_file)


def test_ctrl_v_pastes_the_clipboard_image(qtbot: QtBot, slot: ImageSlot, temp_dir: Path) -> None:
    slot.show()
    qtbot.waitExposed(slot)
    slot.setFocus()
    image = QImage(20, 10, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.green)
    QGuiApplication.clipboard().setImage(image)
    with qtbot.waitSignal(slot.changed) as blocker:
        qtbot.keyClick(slot, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args is not None
    assert Path(str(blocker.args[1])).parent == temp_dir
    QGuiApplication.clipboard().setText("no image here")
    with qtbot.waitSignal(slot.rejected) as rejected:
        qtbot.keyClick(slot, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert rejected.args == ["input", "The clipboard holds no image"]


def test_enter_browses_and_delete_clears(qtbot: QtBot, slot: ImageSlot, png_file: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args: (str(png_file), "Images"))
    with qtbot.waitSignal(slot.changed):
        qtbot.keyClick(slot, Qt.Key.Key_Return)
    assert slot.path() == str(png_file)
    with qtbot.waitSignal(slot.changed) as blocker:
        qtbot.keyClick(slot, Qt.Key.Key_Delete)
    assert blocker.args == ["input", ""]
    assert slot.path() == ""


def test_click_browses_and_cancel_changes_nothing(qtbot: QtBot, slot: ImageSlot,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def cancelled(*args: object) -> tuple[str, str]:
        calls.append(args)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", cancelled)
    with qtbot.assertNotEmitted(slot.changed):
        qtbot.mouseClick(slot, Qt.MouseButton.LeftButton)
    assert len(calls) == 1


def test_panel_shows_the_workflow_slots_and_swaps(qtbot: QtBot, temp_dir: Path, png_file: Path,
                                                  tmp_path: Path, make_image: MakeImage) -> None:
    panel = ImageSlotsPanel(temp_dir)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_slots(["input"])
    assert panel.visible_slots() == ["input"]
    assert panel.slot("input").isVisible()
    assert not panel.slot("source").isVisible()
    panel.set_slots(["target", "source"])
    assert panel.visible_slots() == ["source", "target"]
    other = tmp_path / "other.jpg"
    other.write_bytes(make_image(fmt="JPEG"))
    with qtbot.waitSignals([panel.slot("source").changed, panel.slot("target").changed]):
        panel.set_paths({"source": str(png_file), "target": str(other)})
    assert panel.paths() == {"source": str(png_file), "target": str(other)}
    with qtbot.waitSignals([panel.changed, panel.changed]):
        panel.swap()
    assert panel.paths() == {"source": str(other), "target": str(png_file)}
    panel.set_slots(["input"])
    assert panel.paths() == {}  # hidden slots keep their image but are not part of the job
    with pytest.raises(ValueError, match="unknown image slot"):
        panel.set_slots(["mask"])


def test_new_limits_apply_to_the_next_image(qtbot: QtBot, slot: ImageSlot, png_file: Path) -> None:
    slot.set_limits(max_bytes=100, max_pixels=1_000_000)
    message = reject_and_wait(qtbot, slot, file_mime(png_file))
    assert message.startswith("photo.png is ") and message.endswith("; the limit is 100 bytes")
