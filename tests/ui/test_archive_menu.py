"""File → Export queue… on one home, File → Import queue… (and a dropped archive) on another: the same jobs."""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from comfystudio_desktop.home import Home
from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.history import History
from comfystudio_desktop.queue.ordering import QueueOrder
from comfystudio_desktop.settings import Settings, save_settings
from comfystudio_desktop.ui.archive_menu import ArchiveMenu
from tests.fake_comfyui.process import FakeComfyProcess
from tests.ui.window_session import Session, generate, run_until


def choose_file(qtbot: QtBot, menu: ArchiveMenu, path: Path) -> None:
    """Answer the file dialog the menu opened with `path`."""
    run_until(qtbot, lambda: menu.dialog is not None and menu.dialog.isVisible(), message="the file dialog")
    dialog = menu.dialog
    assert isinstance(dialog, QFileDialog)
    dialog.selectFile(str(path))
    dialog.accept()


def result_text(qtbot: QtBot, menu: ArchiveMenu, before: QMessageBox | None) -> str:
    run_until(qtbot, lambda: menu.result_box is not None and menu.result_box is not before
              and menu.result_box.isVisible(), message="the result dialog")
    box = menu.result_box
    assert box is not None
    text = f"{box.windowTitle()}: {box.text()}"
    box.accept()
    return text


def test_export_then_import_on_another_home_from_the_file_menu(loop: qasync.QEventLoop, home: Home,
                                                               settings: Settings, fake: FakeComfyProcess,
                                                               qtbot: QtBot, tmp_path: Path) -> None:
    archive = tmp_path / "my queue.zip"
    first = Session(qtbot, loop, home, settings)
    try:
        ended = generate(first, qtbot, "an exported lighthouse")
        run_until(qtbot, lambda: first.status(ended) is JobStatus.FINISHED, message="finished")
        first.window.pause_action.trigger()
        waiting = generate(first, qtbot, "an exported queued job")
        menu = first.window.archive_menu
        assert first.window.menuBar().actions()[0].text() == "&File"
        menu.export_action.trigger()
        choose_file(qtbot, menu, archive)
        text = result_text(qtbot, menu, None)
        assert text.startswith("Export finished: 2 job(s) written to my queue.zip"), text
    finally:
        first.close()
    assert archive.is_file()

    other = Home(tmp_path / "other-home").create()
    save_settings(other.config_file, settings)
    second = Session(qtbot, loop, other, settings)
    try:
        second.window.pause_action.trigger()  # the imported job stays queued where we can see it
        menu = second.window.archive_menu
        menu.import_action.trigger()
        choose_file(qtbot, menu, archive)
        text = result_text(qtbot, menu, None)
        runtime = second.app.controller.runtime
        assert runtime is not None
        entry = History(runtime.queue.conn).get(ended)
        assert entry is not None and entry.job.prompt == "an exported lighthouse"
        assert waiting in [job_id for job_id, _ in QueueOrder(runtime.queue).order()]
        assert "1 job(s) queued again" in text and "1 ended job(s) added to the history" in text, text
        run_until(qtbot, lambda: second.status(waiting) is JobStatus.QUEUED, message="the imported row")

        # The same archive dropped on the window: every job is known now, nothing is added twice.
        before = menu.result_box
        assert drop_file(second, archive)
        text = result_text(qtbot, menu, before)
        assert "2 job(s) already known here" in text, text

        # A file that is no archive: one clear message, nothing imported.
        broken = tmp_path / "broken.zip"
        broken.write_bytes(b"not a zip at all")
        before = menu.result_box
        assert drop_file(second, broken)
        text = result_text(qtbot, menu, before)
        assert text.startswith("Import failed: Nothing was imported from broken.zip: 'broken.zip' is not a"), text
        assert "\n" not in text
    finally:
        second.close()


def drop_file(session: Session, path: Path) -> bool:
    """Drop a file on the window (where no child takes it); True if the window took it."""
    window = session.window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    point = QPoint(5, 5)
    enter = QDragEnterEvent(point, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(point.toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    return enter.isAccepted() and drop.isAccepted()
