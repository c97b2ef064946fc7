"""File → Export queue… / Import queue…, and a queue archive (.zip) dropped on the window.

The work runs off the GUI thread (`QueueControl.export` / `import_`); the result is one dialog: a summary of
what was written or added, or one clear message naming what was wrong.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from comfystudio_desktop.queue.archive import ExportReport, ImportReport
from comfystudio_desktop.ui.queue_control import ArchiveDone, ArchiveFailed, QueueControl

__all__ = ["ArchiveMenu", "archive_failure_text", "archive_summary", "dropped_archive"]

_FILTER = "Queue archives (*.zip)"


def archive_summary(done: ArchiveDone) -> tuple[str, str]:
    """The result dialog's title and text."""
    report = done.report
    name = done.path.name
    if isinstance(report, ExportReport):
        return "Export finished", (f"{report.jobs} job(s) written to {name}, with {report.inputs} input image(s) "
                                   f"and {report.outputs} output image(s).")
    assert isinstance(report, ImportReport)
    lines = [f"From {name}:", f"{report.queued} job(s) queued again",
             f"{report.to_history} ended job(s) added to the history",
             f"{report.already_known} job(s) already known here, left as they were"]
    if report.outputs_copied:
        lines.append(f"{report.outputs_copied} output image(s) copied")
    return "Import finished", "\n".join(lines)


def archive_failure_text(failed: ArchiveFailed) -> tuple[str, str]:
    """The failure dialog's title and text (the error's one line; nothing was imported on failure)."""
    if failed.exporting:
        return "Export failed", f"{failed.path.name} was not written: {failed.message}"
    return "Import failed", f"Nothing was imported from {failed.path.name}: {failed.message}"


def dropped_archive(paths: list[Path]) -> Path | None:
    """The archive among dropped files: exactly one local `.zip` file, else None."""
    if len(paths) != 1 or paths[0].suffix.lower() != ".zip":
        return None
    return paths[0]


class ArchiveMenu(QObject):
    """Adds a File menu with export and import to `window` and imports an archive dropped on it."""

    def __init__(self, window: QMainWindow, control: QueueControl) -> None:
        super().__init__(window)
        self.window = window
        self.control = control
        self.export_action = QAction("Export queue…", window)
        self.export_action.setToolTip("Write every job (queued and history) and its input images to a .zip")
        self.export_outputs_action = QAction("Export queue with images…", window)
        self.export_outputs_action.setToolTip("The same, with the output images")
        self.import_action = QAction("Import queue…", window)
        self.import_action.setToolTip("Add the jobs of a .zip archive (jobs this app knows are left alone)")
        self.menu = QMenu("&File", window)
        for act in (self.import_action, self.export_action, self.export_outputs_action):
            self.menu.addAction(act)
        bar = window.menuBar()
        first = bar.actions()[0] if bar.actions() else None
        bar.insertMenu(first, self.menu) if first is not None else bar.addMenu(self.menu)
        self.dialog: QFileDialog | None = None
        self.result_box: QMessageBox | None = None
        self.export_action.triggered.connect(self._on_export_action_triggered)
        self.export_outputs_action.triggered.connect(self._on_export_outputs_action_triggered)
        self.import_action.triggered.connect(self._on_import_action_triggered)
        control.archive_done.connect(self._on_control_archive_done)
        control.archive_failed.connect(self._on_control_archive_failed)
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def _ask(self, title: str, *, save: bool, on_chosen: object) -> None:
        dialog = QFileDialog(self.window, title, str(Path.home()), _FILTER)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave if save else QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile if save else QFileDialog.FileMode.ExistingFile)
        dialog.setDefaultSuffix("zip")
        dialog.fileSelected.connect(on_chosen)
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()

    def _on_export_action_triggered(self) -> None:
        self._ask("Export queue", save=True, on_chosen=lambda f: self.control.export(Path(f)))

    def _on_export_outputs_action_triggered(self) -> None:
        self._ask("Export queue with images", save=True,
                  on_chosen=lambda f: self.control.export(Path(f), with_outputs=True))

    def _on_import_action_triggered(self) -> None:
        self._ask("Import queue", save=False, on_chosen=lambda f: self.control.import_(Path(f)))

    def _show(self, icon: QMessageBox.Icon, title: str, text: str) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self.window)
        box.finished.connect(box.deleteLater)
        self.result_box = box
        box.open()

    def _on_control_archive_done(self, done: ArchiveDone) -> None:
        self._show(QMessageBox.Icon.Information, *archive_summary(done))

    def _on_control_archive_failed(self, failed: ArchiveFailed) -> None:
        self._show(QMessageBox.Icon.Warning, *archive_failure_text(failed))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Accept one dropped .zip file anywhere on the window that does not take the drop itself."""
        if watched is not self.window:
            return False
        if event.type() == QEvent.Type.DragEnter and isinstance(event, QDragEnterEvent):
            if _archive_of(event) is not None:
                event.acceptProposedAction()
                return True
        elif event.type() == QEvent.Type.Drop and isinstance(event, QDropEvent):
            path = _archive_of(event)
            if path is not None:
                event.acceptProposedAction()
                self.control.import_(path)
                return True
        return False


def _archive_of(event: QDropEvent) -> Path | None:
    mime = event.mimeData()
    if not mime.hasUrls():
        return None
    urls = mime.urls()
    if not all(u.isLocalFile() for u in urls):
        return None
    return dropped_archive([Path(u.toLocalFile()) for u in urls])
